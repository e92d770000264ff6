"""
=================================================================
Test with permutations the significance of a classification score
=================================================================

Source: the scikit-learn repository,
examples/model_selection/plot_permutation_tests_for_classification.py.
License: BSD-3-Clause (Authors: Alexandre Gramfort, Lucy Liu).
Edits: the two p-values and scores printed (the original only draws them); nothing else:
1,000 permutations x 2 folds x 2 datasets = 4,004 SVC fits, as in the gallery.
"""

from sklearn.datasets import load_iris

iris = load_iris()
X = iris.data
y = iris.target

import numpy as np

n_uncorrelated_features = 20
rng = np.random.RandomState(seed=0)
# Use same number of samples as in iris and 20 features
X_rand = rng.normal(size=(X.shape[0], n_uncorrelated_features))

from sklearn.model_selection import StratifiedKFold, permutation_test_score
from sklearn.svm import SVC

clf = SVC(kernel="linear", random_state=7)
cv = StratifiedKFold(2, shuffle=True, random_state=0)

score_iris, perm_scores_iris, pvalue_iris = permutation_test_score(
    clf, X, y, scoring="accuracy", cv=cv, n_permutations=1000
)

score_rand, perm_scores_rand, pvalue_rand = permutation_test_score(
    clf, X_rand, y, scoring="accuracy", cv=cv, n_permutations=1000
)
print(f"iris score: {score_iris:.4f} p-value: {pvalue_iris:.4f}")  # edit
print(f"random score: {score_rand:.4f} p-value: {pvalue_rand:.4f}")  # edit

import matplotlib.pyplot as plt

fig, ax = plt.subplots()

ax.hist(perm_scores_iris, bins=20, density=True)
ax.axvline(score_iris, ls="--", color="r")
score_label = f"Score on original\niris data: {score_iris:.2f}\n(p-value: {pvalue_iris:.3f})"
ax.text(0.7, 10, score_label, fontsize=12)
ax.set_xlabel("Accuracy score")
_ = ax.set_ylabel("Probability")

fig, ax = plt.subplots()

ax.hist(perm_scores_rand, bins=20, density=True)
ax.set_xlim(0.13)
ax.axvline(score_rand, ls="--", color="r")
score_label = f"Score on original\nrandom data: {score_rand:.2f}\n(p-value: {pvalue_rand:.3f})"
ax.text(0.14, 7.5, score_label, fontsize=12)
ax.set_xlabel("Accuracy score")
ax.set_ylabel("Probability")
plt.show()
