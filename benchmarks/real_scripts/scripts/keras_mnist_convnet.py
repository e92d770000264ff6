"""
Source: the keras-team/keras-io repository, examples/vision/mnist_convnet.py
("Simple MNIST convnet", by fchollet).
License: Apache-2.0.
Edits for an offline machine:
 - keras.datasets.mnist.load_data() -> seeded random uint8 images and labels of MNIST's shapes,
   2,000 training and 500 test images (28x28);
 - epochs 15 -> 2; keras.utils.set_random_seed(0) added so both runs start from the same weights.
"""

"""
## Setup
"""

import numpy as np
import keras
from keras import layers

keras.utils.set_random_seed(0)  # edit

"""
## Prepare the data
"""

# Model / data parameters
num_classes = 10
input_shape = (28, 28, 1)

# Load the data and split it between train and test sets
# edit: synthetic images of MNIST's shape instead of keras.datasets.mnist.load_data()
rng = np.random.default_rng(0)
x_train, y_train = rng.integers(0, 256, (2000, 28, 28), dtype=np.uint8), rng.integers(0, 10, 2000)
x_test, y_test = rng.integers(0, 256, (500, 28, 28), dtype=np.uint8), rng.integers(0, 10, 500)

# Scale images to the [0, 1] range
x_train = x_train.astype("float32") / 255
x_test = x_test.astype("float32") / 255
# Make sure images have shape (28, 28, 1)
x_train = np.expand_dims(x_train, -1)
x_test = np.expand_dims(x_test, -1)
print("x_train shape:", x_train.shape)
print(x_train.shape[0], "train samples")
print(x_test.shape[0], "test samples")


# convert class vectors to binary class matrices
y_train = keras.utils.to_categorical(y_train, num_classes)
y_test = keras.utils.to_categorical(y_test, num_classes)

"""
## Build the model
"""

model = keras.Sequential(
    [
        keras.Input(shape=input_shape),
        layers.Conv2D(32, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Conv2D(64, kernel_size=(3, 3), activation="relu"),
        layers.MaxPooling2D(pool_size=(2, 2)),
        layers.Flatten(),
        layers.Dropout(0.5),
        layers.Dense(num_classes, activation="softmax"),
    ]
)

model.summary()

"""
## Train the model
"""

batch_size = 128
epochs = 2  # edit: 15

model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])

model.fit(x_train, y_train, batch_size=batch_size, epochs=epochs, validation_split=0.1)

"""
## Evaluate the trained model
"""

score = model.evaluate(x_test, y_test, verbose=0)
print("Test loss:", score[0])
print("Test accuracy:", score[1])
