"""The framework integrations we ship, by name, with what is needed to find them without
importing them. Third-party integrations register through the entry-point group
``modelbox_autolog.integrations`` (name -> Integration subclass)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Spec:
    name: str
    target: str  # "module:Class" of our integration
    modules: tuple[str, ...]  # framework import names
    distribution: str  # pip distribution of the framework
    extra: str  # our pip extra
    note: str = ""


SPECS: dict[str, Spec] = {
    s.name: s
    for s in (
        Spec("pytorch", "modelbox_autolog.integrations.pytorch:PyTorchIntegration", ("torch",), "torch", "pytorch"),
        Spec("lightning", "modelbox_autolog.integrations.lightning:LightningIntegration",
             ("lightning", "pytorch_lightning"), "lightning", "lightning"),
        Spec("keras", "modelbox_autolog.integrations.keras:KerasIntegration", ("keras",), "keras", "keras"),
        Spec("sklearn", "modelbox_autolog.integrations.sklearn:SklearnIntegration", ("sklearn",), "scikit-learn", "sklearn"),
        Spec("xgboost", "modelbox_autolog.integrations.xgboost:XGBoostIntegration", ("xgboost",), "xgboost", "xgboost"),
        Spec("lightgbm", "modelbox_autolog.integrations.lightgbm:LightGBMIntegration", ("lightgbm",), "lightgbm", "lightgbm"),
        Spec("catboost", "modelbox_autolog.integrations.catboost:CatBoostIntegration", ("catboost",), "catboost", "catboost"),
        Spec("fastai", "modelbox_autolog.integrations.fastai:FastaiIntegration", ("fastai",), "fastai", "fastai"),
        Spec("megengine", "modelbox_autolog.integrations.megengine:MegEngineIntegration", ("megengine",), "megengine",
             "megengine", note="MegEngine publishes no wheels for Python 3.11 or newer; no integration ships yet"),
        Spec("tensorboard", "modelbox_autolog.integrations.tensorboard:TensorBoardIntegration",
             ("tensorboard", "tensorboardX", "torch.utils.tensorboard", "tensorboard.summary.v2",
              "tensorflow.python.ops.summary_ops_v2", "keras",
              "lightning.fabric.loggers.tensorboard", "lightning.pytorch.loggers.tensorboard",
              "lightning_fabric.loggers.tensorboard", "pytorch_lightning.loggers.tensorboard",
              "transformers.integrations.integration_utils"), "tensorboard", "tensorboard"),
        Spec("matplotlib", "modelbox_autolog.integrations.matplotlib:MatplotlibIntegration",
             ("matplotlib.figure", "matplotlib.pyplot"), "matplotlib", "plots"),
        Spec("transformers", "modelbox_autolog.integrations.transformers:TransformersIntegration",
             ("transformers.trainer",), "transformers", "transformers"),
    )
}
