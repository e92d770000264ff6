"""LightGBM: ``lgb.train``, ``lgb.cv`` and the scikit-learn wrappers, through an injected callback.

Layering as for XGBoost: ``train``/``cv`` record params, per-iteration metrics, best iteration
and feature importance (and, called directly, the booster as a Model); a wrapper's ``fit`` opens
the run, adds the estimator's params and logs the fitted wrapper as the Model. ``lgb.Booster``
stays a class: only its ``save_model`` and ``__init__(model_file=...)`` are wrapped.
"""

from __future__ import annotations

import os
import pickle
import sys
from typing import Any

from .._patching import Call, entered, safe, safe_method
from .._run import Run
from . import _boosting as boosting
from .base import Integration

FRAMEWORK = "lightgbm"
TRAIN_GROUP = "lightgbm.train"
FIT_GROUP = "lightgbm.fit"
SAVE_GROUP = "lightgbm.save"
LOAD_GROUP = "lightgbm.load"
CALLBACK_ORDER = 25  # after LightGBM's record_evaluation (20), before early_stopping (30), which raises
PROGRESS_STEPS = 20
BOOSTER_MUTATORS = ("update", "rollback_one_iter", "model_from_string", "reset_parameter", "set_leaf_output",
                    "shuffle_models")  # change what a save writes


class _MetricsCallback:
    """A LightGBM callback (a callable with ``order``/``before_iteration``): logs each
    iteration's results as ``<set>-<metric>`` (``-mean``/``-stdv`` under ``lgb.cv``)."""

    def __init__(self, run: Run, rounds: int) -> None:
        # Instance attributes: LightGBM reads them through ``__dict__``.
        self.order = CALLBACK_ORDER
        self.before_iteration = False
        self._run = run
        self._keys: dict[tuple[str, str], tuple[str, str, str]] = {}
        self._rounds = max(1, int(rounds or 1))
        self._progress_every = max(1, self._rounds // PROGRESS_STEPS) if run.auto else 0

    @safe_method("lightgbm:callback")
    def __call__(self, env: Any) -> None:
        log_metric = self._run.log_metric
        keys = self._keys
        step = env.iteration
        for result in env.evaluation_result_list or ():
            dataset, metric, value = result[0], result[1], result[2]
            names = keys.get((dataset, metric))
            if names is None:
                base = boosting.metric_key(dataset, metric)
                names = keys[(dataset, metric)] = (base, f"{base}-mean", f"{base}-stdv")
            if len(result) > 4 and result[4] is not None:  # cv: mean and std over folds
                log_metric(names[1], value, step=step)
                log_metric(names[2], result[4], step=step)
            else:
                log_metric(names[0], value, step=step)
        done = step - env.begin_iteration + 1
        if self._progress_every and done % self._progress_every == 0:
            self._run.set_progress(done / self._rounds)


class LightGBMIntegration(Integration):
    name = "lightgbm"
    modules = ("lightgbm",)
    distribution = "lightgbm"
    requirement = ">=3.3"

    def setup(self, module: Any) -> None:
        import lightgbm.basic
        import lightgbm.engine

        sklearn_module = sys.modules.get("lightgbm.sklearn")
        for owner in (module, lightgbm.engine, sklearn_module):
            if owner is not None:  # the wrappers import ``train`` by name: patch that name too
                self.patch(owner, "train", self._train_hook, group=TRAIN_GROUP)
        for owner in (module, lightgbm.engine):
            self.patch(owner, "cv", self._cv_hook, group=TRAIN_GROUP)
        booster = lightgbm.basic.Booster
        self.patch(booster, "save_model", self._save_hook, group=SAVE_GROUP)
        self.patch(booster, "__init__", self._init_hook, group=LOAD_GROUP)
        for method in BOOSTER_MUTATORS:  # inside train they pass straight through (its group)
            self.patch(booster, method, boosting.take_pending_hook, group=TRAIN_GROUP)
        if sklearn_module is not None:
            base = sklearn_module.LGBMModel
            for cls in list(vars(sklearn_module).values()):
                if isinstance(cls, type) and issubclass(cls, base) and "fit" in cls.__dict__:
                    self.patch(cls, "fit", self._fit_hook, group=FIT_GROUP)  # subclasses call super().fit
            self.patch(base, "set_params", boosting.take_pending_hook, group=FIT_GROUP)

    # ------------------------------------------------------------------ training
    def _start(self, run: Run, call: Call) -> tuple[tuple, dict]:
        """Params, init-model lineage, and the call with our callback added (user's list copied)."""
        rounds = boosting.argument(call, "num_boost_round")
        params = boosting.params_dict(call.argument("params"))
        run.log_params({**{k: v for k, v in params.items() if v is not None}, "num_boost_round": rounds})
        init_model = call.argument("init_model")
        if isinstance(init_model, (str, os.PathLike)):
            run.log_input(os.path.abspath(os.fspath(init_model)), kind="model", framework=FRAMEWORK)
        else:
            boosting.log_model_input(run, init_model, FRAMEWORK)
        callbacks = [*(call.argument("callbacks") or ()), _MetricsCallback(run, rounds)]
        return call.replace(callbacks=callbacks)

    def _train_hook(self, call: Call):
        where = boosting.placement(FIT_GROUP, FRAMEWORK)
        if where == boosting.SKIP:
            return
        with boosting.training_run(FRAMEWORK, "lightgbm.train", where) as run:
            booster = yield self._start(run, call)
            boosting.training_done(run)
            safe("lightgbm:train.outcome", self._log_outcome, run, booster)  # the model is logged regardless
            if where != boosting.INNER:  # inside a wrapper's fit, the fit logs the model
                logged = self._log_booster(run, booster) if where == boosting.TOP and self.config.log_models else None
                boosting.remember_trained(run, logged, booster)

    def _cv_hook(self, call: Call):
        where = boosting.placement(FIT_GROUP, FRAMEWORK)
        if where == boosting.SKIP:
            return
        with boosting.training_run(FRAMEWORK, "lightgbm.cv", where) as run:
            run.log_params({"cv.nfold": boosting.argument(call, "nfold"), "cv.stratified": boosting.argument(call, "stratified")})
            results = yield self._start(run, call)
            boosting.training_done(run)
            cvbooster = results.get("cvbooster") if isinstance(results, dict) else None
            best = getattr(cvbooster, "best_iteration", -1)
            if best is not None and best > 0:
                run.log_metric("best_iteration", best)

    def _fit_hook(self, call: Call):
        return boosting.wrapper_fit(call, FRAMEWORK, FIT_GROUP, self.config.log_models, self._log_wrapper,
                                    lambda estimator: estimator.booster_)

    def _log_outcome(self, run: Run, booster: Any) -> None:
        best_iteration = getattr(booster, "best_iteration", 0) or 0
        if best_iteration > 0:  # set only by early stopping
            boosting.log_best(run, best_iteration, getattr(booster, "best_score", None))
        names = booster.feature_name()
        columns = {kind: dict(zip(names, booster.feature_importance(importance_type=kind).tolist(), strict=True))
                   for kind in ("gain", "split")}
        boosting.log_importance_table(run, names, columns)

    def _log_booster(self, run: Run, booster: Any):
        def save(path: str) -> None:
            with entered(SAVE_GROUP):  # our own file: not a user checkpoint
                booster.save_model(path)

        return boosting.log_final_model(
            run, save, "model.txt", name="lightgbm-booster", framework=FRAMEWORK,
            metadata={"format": "text", "lightgbm_version": _version(), "num_trees": booster.num_trees()},
            sources=(booster,),
        )

    def _log_wrapper(self, run: Run, estimator: Any):
        """The native text model (portable) plus the pickled wrapper (what ``load_model`` returns)."""

        def save(path: str) -> None:
            with entered(SAVE_GROUP):
                estimator.booster_.save_model(path)

        def dump(path: str) -> None:
            with open(path, "wb") as handle:
                pickle.dump(estimator, handle, protocol=pickle.HIGHEST_PROTOCOL)

        return boosting.log_final_model(
            run, save, "model.txt", name=type(estimator).__name__, framework=FRAMEWORK,
            metadata={"format": "text+pickle", "class": boosting.class_path(estimator), "lightgbm_version": _version()},
            extra={"model.pkl": dump}, sources=(estimator, estimator.booster_),
        )

    # ------------------------------------------------------------------ save / load
    def _save_hook(self, call: Call):
        yield None
        boosting.record_save(call.instance, call.argument("filename"), FRAMEWORK)

    def _init_hook(self, call: Call):
        yield None
        model_file = call.argument("model_file")
        if model_file is not None:
            boosting.record_load(call.instance, model_file, FRAMEWORK)

    @classmethod
    def load_model(cls, files_dir: str, model: Any) -> Any:
        import lightgbm

        names = {f.name for f in model.files}
        if "model.pkl" in names:  # our own pickle of a fitted wrapper
            with open(os.path.join(files_dir, "model.pkl"), "rb") as handle:
                return pickle.load(handle)
        with entered(LOAD_GROUP):  # a temporary download, not an input of the active run
            return lightgbm.Booster(model_file=os.path.join(files_dir, "model.txt"))


def _version() -> str:
    module = sys.modules.get("lightgbm")
    return str(getattr(module, "__version__", ""))
