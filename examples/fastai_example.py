"""fastai: a tabular learner on a small pandas DataFrame, trained with ``fine_tune`` (two fits,
one run), then saved and exported. Hyperparameters, the Recorder's per-epoch metrics, epoch
timings, ``learn.save`` as a checkpoint and ``learn.export`` as a Model are recorded."""

from __future__ import annotations

REQUIRES = ("fastai", "pandas")


def main() -> None:
    import tempfile

    import numpy as np
    import pandas as pd
    from fastai.tabular.all import (
        Categorify,
        CategoryBlock,
        Normalize,
        TabularDataLoaders,
        accuracy,
        tabular_learner,
    )

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=1_000), "b": rng.normal(size=1_000),
                       "colour": rng.choice(["red", "green", "blue"], 1_000)})
    df["label"] = ((df.a + df.b > 0) ^ (df.colour == "red")).astype(int)
    dls = TabularDataLoaders.from_df(
        df, path=tempfile.mkdtemp(prefix="fastai-example-"), procs=[Categorify, Normalize],
        cat_names=["colour"], cont_names=["a", "b"], y_names="label", y_block=CategoryBlock(),
        valid_idx=list(range(800, 1_000)), bs=64,
    )
    learn = tabular_learner(dls, layers=[32, 16], n_out=2, metrics=accuracy)
    with learn.no_bar(), learn.no_logging():
        learn.fine_tune(3, base_lr=1e-2)
    learn.save("tabular")
    learn.export("tabular.pkl")
    print(f"fastai tabular learner: valid accuracy {float(learn.recorder.values[-1][2]):.3f}")


if __name__ == "__main__":
    import modelbox_autolog as mbx

    mbx.autolog()
    main()
