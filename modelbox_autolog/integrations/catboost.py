"""CatBoost: every ``fit`` (``CatBoost``, ``CatBoostClassifier``/``Regressor``/``Ranker`` all go
through ``CatBoost._fit``, patched once), plus ``save_model``/``load_model``.

Per-iteration metrics come from ``get_evals_result()`` after the fit, not from a callback:
CatBoost hands a callback the whole history rebuilt at every iteration (quadratic cost), and a
user-visible ``callbacks=`` changes what CatBoost allows (e.g. on GPU). Reading the history
once afterwards costs nothing during training and leaves the fit exactly as the user wrote it;
the price is that metrics appear when the fit ends, not live. A failing fit is never retried.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .._patching import Call, entered, safe
from .._run import Run
from . import _boosting as boosting
from .base import Integration

FRAMEWORK = "catboost"
FIT_GROUP = "catboost.fit"
SAVE_GROUP = "catboost.save"
LOAD_GROUP = "catboost.load"
MODEL_MUTATORS = ("set_params", "shrink", "set_feature_names", "set_scale_and_bias", "set_leaf_values")


class CatBoostIntegration(Integration):
    name = "catboost"
    modules = ("catboost",)
    distribution = "catboost"
    requirement = ">=1.0"

    def setup(self, module: Any) -> None:
        import catboost.core

        base = catboost.core.CatBoost
        self.patch(base, "_fit", self._fit_hook, group=FIT_GROUP)
        self.patch(base, "save_model", self._save_hook, group=SAVE_GROUP)
        self.patch(base, "load_model", self._load_hook, group=LOAD_GROUP)
        for method in MODEL_MUTATORS:  # inside a fit they pass straight through (its group)
            if hasattr(base, method):
                self.patch(base, method, boosting.take_pending_hook, group=FIT_GROUP)

    # ------------------------------------------------------------------ training
    def _fit_hook(self, call: Call):
        boosting.take_pending(call.instance)  # a refit: the previous fit's model is saved first
        where = boosting.placement(FIT_GROUP, FRAMEWORK)
        if where == boosting.SKIP:
            return
        model = call.instance
        with boosting.training_run(FRAMEWORK, type(model).__name__, where) as run:
            run.log_params({**model.get_params(), "estimator_class": boosting.class_path(model)})
            init_model = call.argument("init_model")
            if init_model is not None and not isinstance(init_model, (str, os.PathLike)):
                boosting.log_model_input(run, init_model, FRAMEWORK)  # paths: the load hook
            with boosting.sklearn_internals_quiet():
                yield None
            boosting.training_done(run)
            safe("catboost:fit.outcome", self._log_outcome, run, model, call)  # the model is logged regardless
            logged = self._log_model(run, model) if where == boosting.TOP and self.config.log_models else None
            boosting.remember_trained(run, logged, model)

    def _log_outcome(self, run: Run, model: Any, call: Call) -> None:
        params = model.get_all_params()
        run.log_params(params)  # resolved values (loss, depth, learning rate chosen by CatBoost)
        period = call.argument("metric_period") or model.get_params().get("metric_period") or 1
        iterations = params.get("iterations")
        boosting.log_history(run, model.get_evals_result(), period=int(period),
                             last_step=int(iterations) - 1 if iterations else None)
        best_iteration = model.get_best_iteration()
        if best_iteration is not None:
            boosting.log_best(run, best_iteration, model.get_best_score())
        importance = model.feature_importances_
        if importance is not None and importance.ndim == 1 and len(importance) == len(model.feature_names_):
            values = dict(zip(model.feature_names_, importance.tolist(), strict=True))
            boosting.log_importance_table(run, model.feature_names_, {"importance": values})

    def _log_model(self, run: Run, model: Any):
        def save(path: str) -> None:
            with entered(SAVE_GROUP):  # our own file: not a user checkpoint
                model.save_model(path, format="cbm")

        return boosting.log_final_model(
            run, save, "model.cbm", name=type(model).__name__, framework=FRAMEWORK,
            metadata={"format": "cbm", "class": boosting.class_path(model), "catboost_version": _version(),
                      "tree_count": model.tree_count_},
            sources=(model,),
        )

    # ------------------------------------------------------------------ save / load
    def _save_hook(self, call: Call):
        yield None
        boosting.record_save(call.instance, call.argument("fname"), FRAMEWORK,
                             format=boosting.argument(call, "format"))

    def _load_hook(self, call: Call):
        boosting.take_pending(call.instance)  # the loaded model replaces the trained one
        yield None
        boosting.record_load(call.instance, call.argument("fname"), FRAMEWORK)

    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        import catboost

        class_name = (model.metadata or {}).get("class")
        target = boosting.import_class(class_name, "catboost")() if class_name else catboost.CatBoost()
        with entered(LOAD_GROUP):  # a temporary download, not an input of the active run
            target.load_model(os.path.join(files_dir, "model.cbm"), format="cbm")
        return target


def _version() -> str:
    module = sys.modules.get("catboost")
    return str(getattr(module, "__version__", ""))
