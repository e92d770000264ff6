# Source: the catboost/catboost repository, catboost/docs (Quick start, Python package:
# "CatBoostClassifier" and "CatBoostRegressor" examples), in order.
# License: Apache-2.0, Copyright (c) 2017-2024 YANDEX LLC.
# Edits: the predictions printed (the page leaves them in variables); nothing else.
from catboost import CatBoostClassifier, CatBoostRegressor, Pool

# Initialize data
cat_features = [0, 1]
train_data = [["a", "b", 1, 4, 5, 6],
              ["a", "b", 4, 5, 6, 7],
              ["c", "d", 30, 40, 50, 60]]
train_labels = [1, 1, -1]
eval_data = [["a", "b", 2, 4, 6, 8],
             ["a", "d", 1, 4, 50, 60]]

# Initialize CatBoostClassifier
model = CatBoostClassifier(iterations=2,
                           learning_rate=1,
                           depth=2)
# Fit model
model.fit(train_data, train_labels, cat_features)
# Get predicted classes
preds_class = model.predict(eval_data)
# Get predicted probabilities for each class
preds_proba = model.predict_proba(eval_data)
# Get predicted RawFormulaVal
preds_raw = model.predict(eval_data,
                          prediction_type='RawFormulaVal')
print(preds_class, preds_proba, preds_raw)  # edit

# CatBoostRegressor
train_data = [[1, 4, 5, 6],
              [4, 5, 6, 7],
              [30, 40, 50, 60]]

eval_data = [[2, 4, 6, 8],
             [1, 4, 50, 60]]

train_labels = [10, 20, 30]
# Initialize CatBoostRegressor
model = CatBoostRegressor(iterations=2,
                          learning_rate=1,
                          depth=2)
# Fit model
model.fit(train_data, train_labels)
# Get predictions
preds = model.predict(eval_data)
print(preds)  # edit

# Pool with an eval set and the best model
train_pool = Pool(train_data, train_labels)
model = CatBoostRegressor(iterations=10, depth=2, learning_rate=1, loss_function='RMSE')
model.fit(train_pool, eval_set=Pool(eval_data, [12, 25]), verbose=True)
print(model.get_best_score())  # edit
