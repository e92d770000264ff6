"""Autolog never changes what the user's scikit-learn code does or gets: the same models, return
values, exceptions and warnings, and only the runs the user would expect (real estimators, tiny
data, a real SQLite store; each test compares with the same code run without autolog)."""

from __future__ import annotations

import contextlib
import os
import sys
import threading
import traceback

import numpy as np
import pytest
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.decomposition import PCA
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import FeatureUnion, Pipeline
from sklearn.preprocessing import StandardScaler

import modelbox_autolog as mbx
from modelbox_autolog import _patching, testing

PACKAGE_DIR = os.path.dirname(mbx.__file__)
PASS_THROUGH = {"_call_with_hook"}  # our frame that only calls the user's original


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(80, 4))
    y = (X[:, 0] + 0.3 * rng.normal(size=80) > 0).astype(int)
    return X, y


@contextlib.contextmanager
def background_work_held():
    """Our exporter holds background work (snapshots, metrics) while a fit runs: pretend one
    does, so the snapshot of a fit is taken by the training thread at the refit, the path that
    once wrote old hyperparameters back into the user's estimators."""
    with _patching._in_progress_lock:
        _patching._in_progress[0] += 1
    try:
        yield
    finally:
        with _patching._in_progress_lock:
            _patching._in_progress[0] -= 1


def _written_by_us(frame) -> bool:
    """Is the code that made this attribute write ours (not the user's original call passing through us)?"""
    if threading.current_thread() is not threading.main_thread():
        return True  # our exporter thread: it may only ever touch copies
    while frame is not None:
        if frame.f_code.co_filename.startswith(PACKAGE_DIR):
            return frame.f_code.co_name not in PASS_THROUGH
        frame = frame.f_back
    return False


@contextlib.contextmanager
def attribute_write_spy(monkeypatch, *users_objects):
    """Every attribute write on the user's estimators (by identity), with who made it."""
    watched = {id(o): o for o in users_objects}
    writes: list[tuple[str, str, bool]] = []

    def spy(self, name, value):
        if id(self) in watched:
            writes.append((type(self).__name__, name, _written_by_us(sys._getframe(1))))
        object.__setattr__(self, name, value)

    monkeypatch.setattr(BaseEstimator, "__setattr__", spy, raising=False)
    yield writes


def _pipeline():
    return Pipeline([("scale", StandardScaler()), ("lr", LogisticRegression())])


def _union():
    return FeatureUnion([("a", PCA(n_components=1)), ("b", PCA(n_components=2))])


def _refit_pipeline(pipe, X, y):
    pipe.fit(X, y)
    pipe.set_params(lr__C=0.01)
    return pipe.fit(X, y)


def _refit_union(union, X):
    union.fit(X)
    union.set_params(a__n_components=2)
    return union.fit_transform(X)


# ---------------------------------------------------------------------- item 1: set_params refits
@pytest.mark.parametrize("held", [True, False], ids=["snapshot-at-refit", "snapshot-in-background"])
def test_refit_after_set_params_keeps_the_users_params_and_we_write_nothing(store_uri, client, data, monkeypatch, held):
    X, y = data
    plain = _refit_pipeline(_pipeline(), X, y)
    plain_columns = _refit_union(_union(), X).shape[1]
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)

    pipe, union = _pipeline(), _union()
    users = [pipe, *pipe.named_steps.values(), union, *dict(union.transformer_list).values()]
    with attribute_write_spy(monkeypatch, *users) as writes, (background_work_held() if held else contextlib.nullcontext()):
        _refit_pipeline(pipe, X, y)
        columns = _refit_union(union, X).shape[1]
        mbx.flush(10)

    assert pipe.named_steps["lr"].C == 0.01
    np.testing.assert_allclose(pipe.predict_proba(X), plain.predict_proba(X))
    assert columns == plain_columns == 4
    assert writes, "the spy saw the frameworks' own writes"
    assert [w for w in writes if w[2]] == []
    # each run's model is the one that run trained
    runs = sorted((r for r in client.runs() if r.name == "Pipeline"), key=lambda r: r.start_time)
    stored = [client.load_model(r.models()[0].id).named_steps["lr"].C for r in runs]
    assert stored == [1.0, 0.01]


def test_searches_and_nested_refits_write_nothing_to_the_users_estimators(autologged, data, monkeypatch):
    from sklearn.model_selection import GridSearchCV

    X, y = data
    pipe = _pipeline()
    search = GridSearchCV(pipe, {"lr__C": [0.1, 1.0]}, cv=3)
    with attribute_write_spy(monkeypatch, pipe, *pipe.named_steps.values(), search) as writes, background_work_held():
        search.fit(X, y)
        search.set_params(cv=2)
        search.fit(X, y)
        pipe.fit(X, y)
    assert [w for w in writes if w[2]] == []
    assert pipe.named_steps["lr"].C == 1.0 and search.cv == 2


# ---------------------------------------------------------------------- item 4: the framework validates first
def _error_of(fn, *args):
    try:
        fn(*args)
    except Exception as exc:
        return exc
    raise AssertionError("no error")


def test_a_class_instead_of_an_instance_gives_exactly_the_frameworks_error(store_uri, client, data, capfd):
    X, _ = data
    plain = _error_of(lambda: Pipeline([("pca", PCA)]).fit(X))
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    ours = _error_of(lambda: Pipeline([("pca", PCA)]).fit(X))
    mbx.flush(10)
    assert type(ours) is type(plain) and str(ours) == str(plain)
    assert "Expected an estimator instance" in str(ours)
    assert "modelbox" not in capfd.readouterr().err
    assert client.runs() == []  # the call never trained: nothing recorded


def test_the_same_without_testing_mode_prints_nothing(store_uri, client, data, capfd, monkeypatch):
    monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
    X, _ = data
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    with pytest.raises(TypeError, match="Expected an estimator instance"):
        Pipeline([("pca", PCA)]).fit(X)
    assert capfd.readouterr().err == ""


# ---------------------------------------------------------------------- item 6: exceptions unchanged
class _Failing(ClassifierMixin, BaseEstimator):
    def __init__(self, how="cause"):
        self.how = how

    def fit(self, X, y):
        try:
            import modelbox_no_such_module  # noqa: F401  (the root cause)
        except ImportError as exc:
            if self.how == "cause":
                raise RuntimeError("explicit cause") from exc
            if self.how == "suppressed":
                raise RuntimeError("suppressed context") from None
            raise RuntimeError("implicit context")  # noqa: B904 - the chain under test
        return self


def _chain(exc):
    return (type(exc), str(exc), type(exc.__cause__), type(exc.__context__), exc.__suppress_context__,
            str(exc.__context__))


def _text(exc):
    """The traceback as the user reads it."""
    return "".join(traceback.format_exception(exc))


def _fit_failing(how, X, y):
    return _Failing(how).fit(X, y)


def _fit_failing_pipeline(X, y):
    return Pipeline([("scale", StandardScaler()), ("bad", _Failing("implicit"))]).fit(X, y)


@pytest.mark.parametrize("how", ["cause", "implicit", "suppressed"])
def test_exception_chain_is_the_same_with_and_without_autolog(store_uri, client, data, how):
    X, y = data
    plain = _error_of(_fit_failing, how, X, y)
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    ours = _error_of(_fit_failing, how, X, y)
    assert _chain(ours) == _chain(plain)
    assert _text(ours) == _text(plain)  # the same text, frame by frame: none of ours
    assert "modelbox_autolog" not in _text(ours)
    assert ("No module named 'modelbox_no_such_module'" in _text(ours)) == (how != "suppressed")
    mbx.flush(10)
    (run,) = client.runs()
    assert run.status == "failed"


def test_exception_through_a_pipeline_keeps_its_chain(store_uri, client, data):
    X, y = data
    plain = _error_of(_fit_failing_pipeline, X, y)
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    ours = _error_of(_fit_failing_pipeline, X, y)
    assert _chain(ours) == _chain(plain) and _text(ours) == _text(plain)


def test_disable_restores_the_warnings_module_by_identity(store_uri):
    import warnings

    original = warnings._showwarnmsg
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    assert warnings._showwarnmsg is not original
    mbx.autolog(disable=True)
    assert warnings._showwarnmsg is original
    testing.reset()
    assert _patching.patches("sklearn") == []


# ---------------------------------------------------------------------- item 3: our warnings are not the user's
class _WarnsWhenPredicting(ClassifierMixin, BaseEstimator):
    def fit(self, X, y):
        import warnings

        warnings.warn("the user's own fit warning", UserWarning, stacklevel=2)
        self.classes_ = np.unique(y)
        return self

    def predict(self, X):
        import warnings

        warnings.warn("predict warns", UserWarning, stacklevel=2)
        return np.full(len(X), self.classes_[0])


def _recorded(X, y, action="always"):
    import warnings

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter(action)
        model = _WarnsWhenPredicting().fit(X, y)
        mbx.flush(10)  # our training metrics (model.predict on the exporter thread) run in here
        after_fit = [str(w.message) for w in caught]
        model.predict(X)  # the user's own predict: its warning is theirs, shown as without us
    return after_fit, [str(w.message) for w in caught]


@pytest.mark.parametrize("action", ["always", "default"])
def test_warnings_of_our_background_work_never_reach_the_users_recorder(store_uri, client, data, action):
    X, y = data
    plain = _recorded(X, y, action)
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    ours = _recorded(X, y, action)
    assert ours == plain == (["the user's own fit warning"], ["the user's own fit warning", "predict warns"])
    (run,) = client.runs()
    assert run.metrics("training_accuracy_score")  # predict did run on our thread, and warned there


# ---------------------------------------------------------------------- items 5 and 8: only the runs the user expects
def _counts(client, before=0):
    mbx.flush(10)
    runs = client.runs()
    return runs, sum(len(r.models()) for r in runs)


def test_metric_functions_and_library_helpers_make_no_runs(autologged, data):
    from sklearn.metrics import classification_report, confusion_matrix, f1_score
    from sklearn.preprocessing import LabelBinarizer, LabelEncoder, label_binarize

    X, y = data
    classification_report(y, 1 - y)
    f1_score(y, 1 - y, average="macro")
    confusion_matrix(y, 1 - y)
    label_binarize(y, classes=[0, 1])
    assert _counts(autologged) == ([], 0)
    LabelEncoder().fit(y)  # the user's own call: a run, as the user expects
    LabelBinarizer().fit_transform(y)
    runs, models = _counts(autologged)
    assert sorted(r.name for r in runs) == ["LabelBinarizer", "LabelEncoder"] and models == 2


def test_a_metric_inside_the_users_run_leaves_it_alone(autologged, data):
    from sklearn.metrics import classification_report

    X, y = data
    with mbx.start_run(name="mine") as run:
        run.log_params({"C": 7})
        classification_report(y, 1 - y)
    (view,) = _counts(autologged)[0]
    assert view.params == {"C": 7} and view.models() == []


def test_calibrated_classifier_is_one_run_with_one_model(autologged, data):
    from sklearn.calibration import CalibratedClassifierCV

    X, y = data
    CalibratedClassifierCV(LogisticRegression(), cv=3).fit(X, y)
    runs, models = _counts(autologged)
    assert [r.name for r in runs] == ["CalibratedClassifierCV"] and models == 1


@pytest.mark.parametrize("helper", ["cross_val_score", "cross_validate"])
def test_cross_validation_is_one_parent_run_with_capped_child_runs(store_uri, client, data, helper):
    from sklearn import model_selection

    X, y = data
    plain = getattr(model_selection, helper)(_pipeline(), X, y, cv=8)
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False,
                options={"sklearn": {"max_tuning_runs": 3}})
    from sklearn import model_selection  # noqa: F811 - as a user imports it after autolog()

    result = getattr(model_selection, helper)(_pipeline(), X, y, cv=8)
    scores = result if helper == "cross_val_score" else result["test_score"]
    np.testing.assert_allclose(scores, plain if helper == "cross_val_score" else plain["test_score"])
    runs, models = _counts(client)
    assert models == 0  # no fitted model comes out of a cross-validation
    (parent,) = [r for r in runs if r.parent_run_id is None]
    assert parent.name == f"{helper}(Pipeline)" and parent.status == "finished"
    assert parent.params["cv"] == 8 and parent.params["lr__C"] == 1.0
    assert parent.metrics("test_score_mean")[-1].value == pytest.approx(float(np.mean(scores)))
    assert [p.value for p in parent.metrics("test_score")] == pytest.approx(list(scores))
    children = sorted((r for r in runs if r.parent_run_id == parent.id), key=lambda r: r.name)
    assert [c.name for c in children] == [f"{helper}[fold {i}]" for i in range(3)]
    assert children[1].metrics("test_score")[-1].value == pytest.approx(scores[1])


def test_other_cross_validation_helpers_are_one_run_each(autologged, data):
    from sklearn.model_selection import (
        cross_val_predict,
        learning_curve,
        permutation_test_score,
        validation_curve,
    )

    X, y = data
    predicted = cross_val_predict(LogisticRegression(), X, y, cv=4)
    learning_curve(LogisticRegression(), X, y, cv=3, train_sizes=[0.5, 1.0])
    validation_curve(LogisticRegression(), X, y, param_name="C", param_range=[0.1, 1.0], cv=3)
    score, _, pvalue = permutation_test_score(LogisticRegression(), X, y, cv=3, n_permutations=4)
    runs, models = _counts(autologged)
    assert models == 0
    by_name = {r.name: r for r in runs}
    assert sorted(by_name) == ["cross_val_predict(LogisticRegression)", "learning_curve(LogisticRegression)",
                               "permutation_test_score(LogisticRegression)", "validation_curve(LogisticRegression)"]
    accuracy = by_name["cross_val_predict(LogisticRegression)"].metrics("cv_accuracy_score")[-1].value
    assert accuracy == pytest.approx(float(np.mean(predicted == y)))
    steps = [p.step for p in by_name["learning_curve(LogisticRegression)"].metrics("test_score_mean")]
    assert steps == [26, 53]  # absolute training sizes of 53 training rows per fold
    assert by_name["validation_curve(LogisticRegression)"].params["param_range"] == [0.1, 1.0]
    permutation = by_name["permutation_test_score(LogisticRegression)"]
    assert permutation.metrics("pvalue")[-1].value == pytest.approx(pvalue)
    assert permutation.metrics("score")[-1].value == pytest.approx(score)


def test_boosting_wrappers_make_no_helper_runs_and_searches_cap_their_children(autologged, data):
    xgboost = pytest.importorskip("xgboost")
    lightgbm = pytest.importorskip("lightgbm")
    from sklearn.model_selection import GridSearchCV

    X, y = data
    xgboost.XGBClassifier(n_estimators=3, n_jobs=1).fit(X, y)
    lightgbm.LGBMClassifier(n_estimators=3, verbose=-1, n_jobs=1).fit(X, y)
    runs, models = _counts(autologged)
    assert sorted(r.name for r in runs) == ["LGBMClassifier", "XGBClassifier"] and models == 2
    search = GridSearchCV(xgboost.XGBClassifier(n_jobs=1), {"n_estimators": [2, 3, 4]}, cv=3).fit(X, y)
    runs, models = _counts(autologged)
    (parent,) = [r for r in runs if r.name == "GridSearchCV"]
    children = [r for r in runs if r.parent_run_id == parent.id]
    assert len(children) <= 5 + 3  # capped trainings (5) plus the best candidates (3 here)
    assert models == 3 and len(parent.models()) == 1
    assert search.best_estimator_.n_estimators in (2, 3, 4)


# ---------------------------------------------------------------------- item 9: models load back elsewhere
TRAIN_SCRIPT = '''
import os, sys
import numpy as np
import modelbox_autolog as mbx
mbx.autolog(backend=sys.argv[1], experiment="script", capture_console=False)
from sklearn.base import BaseEstimator, TransformerMixin
from sklearn.linear_model import LogisticRegression
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import FunctionTransformer

OFFSET = 3.0


def shift(X):
    return np.asarray(X) + OFFSET  # a function of the script, using one of its globals


class Squash(TransformerMixin, BaseEstimator):  # an estimator class of the script
    def fit(self, X, y=None):
        self.scale_ = float(np.abs(X).max())
        return self

    def transform(self, X):
        return np.tanh(np.asarray(X) / self.scale_)


rng = np.random.default_rng(1)
X = rng.normal(size=(60, 3))
y = (X[:, 0] > 0).astype(int)
pipe = make_pipeline(FunctionTransformer(shift), Squash(), FunctionTransformer(lambda Z: Z * 2), LogisticRegression())
pipe.fit(X, y)
np.save(sys.argv[2], pipe.predict_proba(X))
if os.environ.get("FLUSH_IN_SCRIPT") == "1":
    assert mbx.flush(30)
'''

LOAD_SCRIPT = '''
import sys
import numpy as np
import modelbox_autolog as mbx

client = mbx.Client(sys.argv[1])
(run,) = client.runs()
(logged,) = run.models()
model = client.load_model(logged.id)  # shift, Squash and the lambda are not defined here
rng = np.random.default_rng(1)
X = rng.normal(size=(60, 3))
np.testing.assert_allclose(model.predict_proba(X), np.load(sys.argv[2]))
print(logged.metadata.get("serializer"), run.status)
'''

RUNPY_SCRIPT = '''
import runpy, sys
import modelbox_autolog as mbx
from modelbox_autolog import _patching

script, run_name = sys.argv[1], sys.argv[2]
sys.argv = [script, *sys.argv[3:]]
with _patching._in_progress_lock:  # our background work waits (as while a fit runs): the model
    _patching._in_progress[0] += 1  # is snapshotted after the script body has ended
runpy.run_path(script, run_name=run_name)
with _patching._in_progress_lock:
    _patching._in_progress[0] -= 1
assert mbx.flush(30)
'''


def _python(tmp_path, source, *args, **env):
    import subprocess

    script = tmp_path / f"script_{abs(hash(source)) % 10**8}.py"
    script.write_text(source)
    full_env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), **env}
    done = subprocess.run([sys.executable, str(script), *map(str, args)], capture_output=True, text=True,
                          env=full_env, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout.strip(), script


def test_a_pipeline_of_script_functions_loads_back_in_another_process(store_uri, tmp_path):
    predictions = tmp_path / "predictions.npy"
    _python(tmp_path, TRAIN_SCRIPT, store_uri, predictions, FLUSH_IN_SCRIPT="1")
    out, _ = _python(tmp_path, LOAD_SCRIPT, store_uri, predictions)
    assert out == "cloudpickle finished"


@pytest.mark.parametrize("run_name", ["__main__", "<run_path>"])
def test_a_script_run_through_runpy_is_saved_after_it_ended_and_loads_back(store_uri, tmp_path, run_name):
    predictions = tmp_path / "predictions.npy"
    train = tmp_path / "train.py"
    train.write_text(TRAIN_SCRIPT)
    _python(tmp_path, RUNPY_SCRIPT, train, run_name, store_uri, predictions)
    out, _ = _python(tmp_path, LOAD_SCRIPT, store_uri, predictions)
    assert out == "cloudpickle finished"


def test_models_of_importable_code_stay_plain_pickles(autologged, data):
    X, y = data
    _pipeline().fit(X, y)
    mbx.flush(10)
    (run,) = autologged.runs()
    assert "serializer" not in run.models()[0].metadata


# ---------------------------------------------------------------------- item 5: the model size limit
def test_a_model_above_max_model_mb_is_an_event_not_a_copy(store_uri, client, data, tmp_path):
    import joblib
    from sklearn.ensemble import RandomForestClassifier

    X, y = data
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False, max_model_mb=0.01)
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)  # ~ 30 kB pickled, the limit 10 kB
    LogisticRegression().fit(X, y)
    joblib.dump(forest, tmp_path / "forest.joblib")  # a user's save of it: the same limit
    mbx.flush(10)
    runs = {r.name: r for r in client.runs()}
    big = runs["RandomForestClassifier"]
    assert big.status == "finished" and big.models() == []
    events = big.events("model_not_logged")
    assert len(events) == 2 and all("max_model_mb" in e.attrs["reason"] for e in events)
    assert len(runs["LogisticRegression"].models()) == 1
    leftovers = [f for _, _, files in os.walk(tmp_path / "store") for f in files if f.endswith((".pkl", ".joblib"))]
    assert len(leftovers) == 1  # the small model only


def test_max_model_mb_is_validated_and_read_from_the_environment(monkeypatch, store_uri):
    from modelbox_autolog import _config

    with pytest.raises(ValueError, match="max_model_mb"):
        mbx.autolog(backend=store_uri, max_model_mb=0)
    monkeypatch.setenv("MODELBOX_MAX_MODEL_MB", "12.5")
    assert _config.build_config().max_model_mb == 12.5
    assert _config.Config().max_model_mb == 1024.0  # 1 GB by default


# ---------------------------------------------------------------------- data read only once stays the user's
def _fit_on_iterators():
    from sklearn.feature_extraction.text import CountVectorizer
    from sklearn.preprocessing import MultiLabelBinarizer

    labels = MultiLabelBinarizer().fit_transform(iter([(1, 2), (0,), (0, 2)]))
    words = CountVectorizer().fit(d for d in ["aa bb", "bb cc", "cc dd"]).get_feature_names_out()
    return labels.tolist(), list(words)


def test_iterators_and_generators_are_never_consumed_by_us(store_uri, client):
    plain = _fit_on_iterators()
    mbx.autolog(backend=store_uri, experiment="test", capture_console=False)
    assert _fit_on_iterators() == plain == ([[0, 1, 1], [1, 0, 0], [1, 0, 1]], ["aa", "bb", "cc", "dd"])
    mbx.flush(10)
    runs = {r.name: r for r in client.runs()}
    assert sorted(runs) == ["CountVectorizer", "MultiLabelBinarizer"]
    assert runs["CountVectorizer"].params["dataset.type"] == "generator"


def test_rfecv_results_without_candidate_params_are_logged(autologged, data):
    from sklearn.feature_selection import RFECV

    X, y = data
    selector = RFECV(LogisticRegression(), cv=3).fit(X, y)
    runs, models = _counts(autologged)
    (run,) = [r for r in runs if r.parent_run_id is None]
    assert run.name == "RFECV" and run.status == "finished" and models == 1
    assert [a.name for a in run.artifacts() if a.name == "cv_results.csv"] == ["cv_results.csv"]
    assert run.metrics("best_cv_score") == [] and selector.n_features_ >= 1


def test_a_big_pickle_goes_through_a_file_and_loads_back(autologged, data, monkeypatch):
    from sklearn.ensemble import RandomForestClassifier

    from modelbox_autolog.integrations import _sklearn_snapshot
    from modelbox_autolog.integrations import sklearn as sk

    monkeypatch.setattr(_sklearn_snapshot, "SPILL_BYTES", 1000)  # ~30 kB pickle: spilled to a file
    X, y = data
    forest = RandomForestClassifier(n_estimators=30, random_state=0).fit(X, y)
    forest.set_params(n_estimators=5)  # the model stored is still the one fitted
    mbx.flush(10)
    (run,) = autologged.runs()
    restored = autologged.load_model(run.models()[0].id)
    assert restored.n_estimators == 30 and len(restored.estimators_) == 30
    np.testing.assert_array_equal(restored.predict(X), forest.predict(X))
    assert run.metrics("training_accuracy_score")
    root = sk._staging._root
    assert root is None or not os.path.isdir(root) or [f for f in os.listdir(root) if f.endswith(".pkl")] == []


def test_saving_a_model_after_its_run_ended_warns_nobody(autologged, data, tmp_path, caplog):
    """A user's joblib.dump / save_model after the fit: we add the file to the run that trained
    the model (already ended); that is our bookkeeping, not the user logging into an ended run."""
    import joblib

    xgboost = pytest.importorskip("xgboost")
    X, y = data
    joblib.dump(LogisticRegression().fit(X, y), tmp_path / "model.joblib")
    xgboost.train({"nthread": 1}, xgboost.DMatrix(X, label=y), 2).save_model(str(tmp_path / "booster.json"))
    mbx.flush(10)
    assert [r.getMessage() for r in caplog.records if "already ended" in r.getMessage()] == []
    runs = {r.name: r for r in autologged.runs()}
    assert len(runs["LogisticRegression"].models()) == 2  # autologged, and the user's joblib.dump
    assert runs["xgboost.train"].events("model_saved")
