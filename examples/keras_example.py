"""Keras: a small MLP with a validation split, early stopping and a checkpoint; then evaluate.
Everything (params, summary, epoch metrics, checkpoints, the final .keras model and the
evaluation) is recorded."""

from __future__ import annotations

import os

REQUIRES = ("keras",)


def main() -> None:
    import tempfile

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
    import keras
    import numpy as np

    rng = np.random.default_rng(0)
    X = rng.standard_normal((2_000, 10)).astype("float32")
    y = (X[:, 0] + 0.5 * X[:, 1] * X[:, 2] > 0).astype("float32")

    model = keras.Sequential([
        keras.Input((10,)),
        keras.layers.Dense(32, activation="relu"),
        keras.layers.Dense(1, activation="sigmoid"),
    ], name="mlp")
    model.compile(optimizer=keras.optimizers.Adam(1e-2), loss="binary_crossentropy", metrics=["accuracy"])
    checkpoint = os.path.join(tempfile.mkdtemp(prefix="keras-example-"), "best.keras")
    callbacks = [
        keras.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True),
        keras.callbacks.ModelCheckpoint(checkpoint, monitor="val_loss", save_best_only=True),
    ]
    history = model.fit(X[:1_600], y[:1_600], epochs=8, batch_size=64, validation_split=0.2,
                        callbacks=callbacks, verbose=0)
    loss, accuracy = model.evaluate(X[1_600:], y[1_600:], verbose=0)
    print(f"Keras MLP: {len(history.epoch)} epochs, test loss {loss:.3f}, test accuracy {accuracy:.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
