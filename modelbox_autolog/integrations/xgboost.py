"""XGBoost: ``xgboost.train``, ``xgboost.cv`` and the scikit-learn wrappers, through an injected
``TrainingCallback``.

Layering: ``train`` does the training record (params, per-iteration metrics, best iteration,
feature importance, and the booster as a Model when called directly); a wrapper's ``fit`` opens
the run, adds the estimator's params and logs the fitted wrapper as the Model instead (so
``client.load_model`` gives back an ``XGBClassifier``). ``Booster``/wrapper ``save_model`` and
``load_model`` are recorded as checkpoint files and model inputs. Inside a scikit-learn
meta-estimator's fit (Pipeline, GridSearchCV) a fit is a child run of it, without a Model.
``cv`` is one run (as ``lgb.cv``): params, ``cv.*`` settings, each iteration's mean and standard
deviation over the folds (``test-error-mean``, ``test-error-std``: the names of ``cv``'s own
result) and the best iteration; it trains no model to keep.
"""

from __future__ import annotations

import os
import sys
from typing import Any

from .._patching import Call, entered, safe, safe_method
from .._run import Run
from . import _boosting as boosting
from .base import Integration

FRAMEWORK = "xgboost"
TRAIN_GROUP = "xgboost.train"
FIT_GROUP = "xgboost.fit"
SAVE_GROUP = "xgboost.save"
LOAD_GROUP = "xgboost.load"
PROGRESS_STEPS = 20  # progress updates per training, at most
BOOSTER_MUTATORS = ("update", "boost", "set_param", "set_attr", "load_config")  # change what a save writes


_callback_classes: list[type] = []


def __getattr__(name: str) -> Any:
    """``ModelboxCallback`` is a module attribute (built on first use), so it pickles by reference."""
    if name == "ModelboxCallback":
        import xgboost.callback

        return _callback_class(xgboost.callback.TrainingCallback)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def _callback_class(base: type) -> type:
    """Our ``TrainingCallback`` subclass (XGBoost insists on the type, so it is built at setup)."""
    if _callback_classes:
        return _callback_classes[0]

    class ModelboxCallback(base):  # type: ignore[misc, valid-type]
        """Logs each iteration's eval metrics as ``<set>-<metric>`` with step = iteration."""

        def __init__(self, run: Run, rounds: int) -> None:
            super().__init__()
            self._run = run
            self._keys: dict[tuple[str, str], str] = {}
            self._rounds = max(1, int(rounds or 1))
            self._progress_every = max(1, self._rounds // PROGRESS_STEPS) if run.auto else 0

        @safe_method("xgboost:callback.after_iteration")
        def after_iteration(self, model: Any, epoch: int, evals_log: dict) -> bool:
            log_metric = self._run.log_metric
            keys = self._keys
            for dataset, metrics in evals_log.items():
                for metric, values in metrics.items():
                    key = keys.get((dataset, metric))
                    if key is None:
                        key = keys[(dataset, metric)] = boosting.metric_key(dataset, metric)
                    value = values[-1]
                    if value.__class__ is tuple:  # (mean, std) over the folds when run by xgboost.cv
                        log_metric(key + "-mean", value[0], step=epoch)
                        log_metric(key + "-std", value[1], step=epoch)
                    else:
                        log_metric(key, value, step=epoch)
            if self._progress_every and (epoch + 1) % self._progress_every == 0:
                self._run.set_progress((epoch + 1) / self._rounds)
            return False

    ModelboxCallback.__qualname__ = "ModelboxCallback"
    _callback_classes.append(ModelboxCallback)
    return ModelboxCallback


class XGBoostIntegration(Integration):
    name = "xgboost"
    modules = ("xgboost",)
    distribution = "xgboost"
    requirement = ">=1.6"

    def setup(self, module: Any) -> None:
        import xgboost.core
        import xgboost.training

        self._callback = _callback_class(module.callback.TrainingCallback)
        for owner in (module, xgboost.training, sys.modules.get("xgboost.sklearn")):
            if owner is not None:  # the wrappers import ``train`` by name: patch that name too
                self.patch(owner, "train", self._train_hook, group=TRAIN_GROUP)
        for owner in (module, xgboost.training):
            self.patch(owner, "cv", self._cv_hook, group=TRAIN_GROUP)
        booster = xgboost.core.Booster
        self.patch(booster, "save_model", self._save_hook, group=SAVE_GROUP)
        self.patch(booster, "load_model", self._load_hook, group=LOAD_GROUP)
        for method in BOOSTER_MUTATORS:  # inside train they pass straight through (its group)
            self.patch(booster, method, boosting.take_pending_hook, group=TRAIN_GROUP)
        sklearn_module = sys.modules.get("xgboost.sklearn")
        if sklearn_module is not None:
            self._patch_wrappers(sklearn_module)

    def _patch_wrappers(self, sklearn_module: Any) -> None:
        base = sklearn_module.XGBModel
        for cls in list(vars(sklearn_module).values()):
            if isinstance(cls, type) and issubclass(cls, base) and "fit" in cls.__dict__:
                self.patch(cls, "fit", self._fit_hook, group=FIT_GROUP)  # RF wrappers call super().fit
        self.patch(base, "save_model", self._save_hook, group=SAVE_GROUP)
        self.patch(base, "load_model", self._load_hook, group=LOAD_GROUP)
        self.patch(base, "set_params", boosting.take_pending_hook, group=FIT_GROUP)

    # ------------------------------------------------------------------ training
    def _train_hook(self, call: Call):
        where = boosting.placement(FIT_GROUP, FRAMEWORK)
        if where == boosting.SKIP:
            return
        with boosting.training_run(FRAMEWORK, "xgboost.train", where) as run:
            rounds = boosting.argument(call, "num_boost_round")
            params = boosting.params_dict(call.argument("params"))
            run.log_params({**{k: v for k, v in params.items() if v is not None}, "num_boost_round": rounds})
            stopping = call.argument("early_stopping_rounds")
            if stopping is not None:
                run.log_param("early_stopping_rounds", stopping)
            boosting.log_model_input(run, call.argument("xgb_model"), FRAMEWORK)
            callbacks = [*(call.argument("callbacks") or ()), self._callback(run, rounds)]
            booster = yield call.replace(callbacks=callbacks)
            boosting.training_done(run)
            safe("xgboost:train.outcome", self._log_outcome, run, booster, params)  # the model is logged regardless
            if where != boosting.INNER:  # inside a wrapper's fit, the fit logs the model
                logged = self._log_booster(run, booster) if where == boosting.TOP and self.config.log_models else None
                boosting.remember_trained(run, logged, booster)

    def _cv_hook(self, call: Call):
        where = boosting.placement(FIT_GROUP, FRAMEWORK)
        if where == boosting.SKIP:
            return
        with boosting.training_run(FRAMEWORK, "xgboost.cv", where) as run:
            rounds = boosting.argument(call, "num_boost_round")
            params = boosting.params_dict(call.argument("params"))
            settings = {"num_boost_round": rounds, "cv.nfold": boosting.argument(call, "nfold"),
                        "cv.stratified": boosting.argument(call, "stratified"), "cv.seed": boosting.argument(call, "seed")}
            metrics = call.argument("metrics")
            if metrics:
                settings["cv.metrics"] = ",".join(sorted(metrics)) if not isinstance(metrics, str) else metrics
            stopping = call.argument("early_stopping_rounds")
            if stopping is not None:
                settings["early_stopping_rounds"] = stopping
            run.log_params({**{k: v for k, v in params.items() if v is not None}, **settings})
            callbacks = [*(call.argument("callbacks") or ()), self._callback(run, rounds)]
            results = yield call.replace(callbacks=callbacks)
            boosting.training_done(run)
            if stopping is not None:
                safe("xgboost:cv.outcome", self._log_cv_outcome, run, results)

    @staticmethod
    def _log_cv_outcome(run: Run, results: Any) -> None:
        """With early stopping, ``cv`` keeps the rows up to the best iteration."""
        rows = len(results) if hasattr(results, "__len__") and not isinstance(results, dict) else None
        if isinstance(results, dict) and results:
            rows = len(next(iter(results.values())))
        if rows:
            run.log_metric("best_iteration", rows - 1)

    def _fit_hook(self, call: Call):
        return boosting.wrapper_fit(call, FRAMEWORK, FIT_GROUP, self.config.log_models, self._log_wrapper,
                                    lambda estimator: estimator.get_booster())

    def _log_outcome(self, run: Run, booster: Any, params: dict[str, Any]) -> None:
        best_iteration = booster.attr("best_iteration")
        if best_iteration is not None:
            run.log_metric("best_iteration", int(best_iteration))
            best_score = booster.attr("best_score")
            if best_score is not None:
                run.log_metric("best_score", float(best_score))
        if params.get("booster", "gbtree") == "gblinear":  # importance is defined for trees only
            return
        import xgboost

        try:
            columns = {kind: booster.get_score(importance_type=kind) for kind in ("gain", "weight")}
        except xgboost.core.XGBoostError:  # a linear booster configured another way: no importance to log
            return
        boosting.log_importance_table(run, booster.feature_names or (), columns)

    def _model_format(self) -> str:
        fmt = str(self.option("model_format", "ubj")).lower()
        return fmt if fmt in ("ubj", "json") else "ubj"

    def _log_booster(self, run: Run, booster: Any):
        fmt = self._model_format()

        def save(path: str) -> None:
            with entered(SAVE_GROUP):  # our own file: not a user checkpoint
                booster.save_model(path)

        return boosting.log_final_model(
            run, save, f"model.{fmt}", name="xgboost-booster", framework=FRAMEWORK,
            metadata={"format": fmt, "xgboost_version": _version(), "num_boosted_rounds": booster.num_boosted_rounds()},
            sources=(booster,),
        )

    def _log_wrapper(self, run: Run, estimator: Any):
        fmt = self._model_format()

        def save(path: str) -> None:
            with entered(SAVE_GROUP):
                # The booster itself, not XGBModel.save_model: that one sets and unsets an attribute
                # on the user's booster (only the estimator type, which the class in the metadata
                # gives back), and this may run on our thread while the user predicts.
                estimator.get_booster().save_model(path)

        return boosting.log_final_model(
            run, save, f"model.{fmt}", name=type(estimator).__name__, framework=FRAMEWORK,
            metadata={"format": fmt, "class": boosting.class_path(estimator), "xgboost_version": _version()},
            sources=(estimator, estimator.get_booster()),
        )

    # ------------------------------------------------------------------ save / load
    def _save_hook(self, call: Call):
        yield None
        boosting.record_save(call.instance, call.argument("fname"), FRAMEWORK)

    def _load_hook(self, call: Call):
        boosting.take_pending(call.instance)  # the loaded model replaces the trained one
        yield None
        boosting.record_load(call.instance, call.argument("fname"), FRAMEWORK)

    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        import xgboost

        path = os.path.join(files_dir, model.files[0].name)
        class_name = (model.metadata or {}).get("class")
        target = boosting.import_class(class_name, "xgboost")() if class_name else xgboost.Booster()
        with entered(LOAD_GROUP):  # a temporary download, not an input of the active run
            target.load_model(path)
        return target


def _version() -> str:
    module = sys.modules.get("xgboost")
    return str(getattr(module, "__version__", ""))
