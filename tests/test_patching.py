"""The patching engine on a real library of our own (tests/toylib)."""

from __future__ import annotations

import inspect
import sys
import threading

import pytest

import modelbox_autolog as mbx
from modelbox_autolog import _patching
from modelbox_autolog._run import autorun
from tests import toylib
from tests.toylib import BoostedTrainer, Trainer, TrainingError


@pytest.fixture(autouse=True)
def _unpatch():
    yield
    _patching.revert("toy")


def fit_hook(call):
    """Like a real integration: inject a callback, log params before and a metric after."""
    user_callbacks = call.argument("callbacks")
    seen = []
    with autorun("toy", name=type(call.instance).__name__) as run:
        run.log_params({"epochs": call.instance.epochs})
        yield call.replace(callbacks=[*(user_callbacks or []), lambda e, loss: seen.append(loss)])
        run.log_metric("epochs_seen", len(seen))


def test_hook_logs_and_returns_original_result(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    assert _patching.patch_call("toy", Trainer, "fit", fit_hook, group="toy.fit")
    trainer = Trainer(epochs=2)
    assert trainer.fit([1.0, 2.0]) is trainer
    mbx.flush(10)
    (run,) = client.runs()
    assert run.name == "Trainer" and run.status == "finished"
    assert run.params["epochs"] == 2
    assert [p.value for p in run.metrics("epochs_seen")] == [2.0]


def test_user_callbacks_list_is_never_mutated_and_positional_works(store_uri):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    _patching.patch_call("toy", Trainer, "fit", fit_hook)
    mine: list = []
    callbacks = [lambda e, loss: mine.append(e)]
    snapshot = list(callbacks)
    Trainer(epochs=2).fit([1.0], callbacks)  # positional
    Trainer(epochs=2).fit([1.0], callbacks=callbacks)  # keyword, same list reused
    assert callbacks == snapshot
    assert mine == [0, 1, 0, 1]


def test_user_exception_passes_through_untouched_and_run_fails(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    _patching.patch_call("toy", Trainer, "fit", fit_hook)
    before = Trainer.calls
    with pytest.raises(TrainingError) as info:
        Trainer().fit([1.0], fail_at=1)
    assert Trainer.calls == before + 1  # called exactly once
    frames = [f.function for f in inspect.getinnerframes(info.value.__traceback__)]
    assert frames[-1] == "fit" and "fit_hook" not in frames  # our hook's frames are not added
    assert str(info.value) == "diverged at epoch 1"
    mbx.flush(10)
    assert client.runs()[0].status == "failed"


def test_our_errors_never_reach_the_user(monkeypatch, store_uri):
    monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False, silent=True)
    received = []

    def broken_before(call):
        received.append((call.args, call.kwargs))
        raise ValueError("bug before the call")
        yield  # pragma: no cover

    def broken_after(call):
        yield None
        raise ValueError("bug after the call")

    _patching.patch_call("toy", Trainer, "fit", broken_before)
    _patching.patch_call("toy", Trainer, "describe", broken_after)
    before = Trainer.calls
    data = [1.0]
    trainer = Trainer(epochs=1)
    assert trainer.fit(data) is trainer
    assert Trainer.calls == before + 1  # exactly once, despite our failure before it
    assert received[0][0][0] is data  # the user's own object, not a copy
    assert Trainer.describe(3) == "trainer:3"


def test_testing_mode_reraises_our_errors(store_uri):
    def broken(call):
        raise ValueError("ours")
        yield  # pragma: no cover

    _patching.patch_call("toy", Trainer, "describe", broken)
    with pytest.raises(ValueError, match="ours"):
        Trainer.describe(1)


def test_revert_restores_originals_by_identity_including_descriptors():
    fit, cm, sm = Trainer.__dict__["fit"], Trainer.__dict__["from_config"], Trainer.__dict__["describe"]
    save = toylib.save
    signature = inspect.signature(Trainer.fit)
    noop = lambda call: (yield None)  # noqa: E731
    for owner, attr in ((Trainer, "fit"), (Trainer, "from_config"), (Trainer, "describe"), (toylib, "save")):
        assert _patching.patch_call("toy", owner, attr, noop)
        assert not _patching.patch_call("toy", owner, attr, noop)  # idempotent
    assert inspect.signature(Trainer.fit) == signature
    assert isinstance(Trainer.from_config({"epochs": 1}), Trainer)
    assert Trainer.describe(2) == "trainer:2"
    assert _patching.revert("toy") == 4
    assert Trainer.__dict__["fit"] is fit
    assert Trainer.__dict__["from_config"] is cm
    assert Trainer.__dict__["describe"] is sm
    assert toylib.save is save


def test_revert_of_inherited_attribute_deletes_the_override():
    noop = lambda call: (yield None)  # noqa: E731
    assert "from_config" not in BoostedTrainer.__dict__
    _patching.patch_call("toy", BoostedTrainer, "from_config", noop)
    assert "from_config" in BoostedTrainer.__dict__
    _patching.revert("toy")
    assert "from_config" not in BoostedTrainer.__dict__
    assert isinstance(BoostedTrainer.from_config({}), BoostedTrainer)


def test_recursion_guard_logs_nested_fit_once(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    _patching.patch_call("toy", Trainer, "fit", fit_hook, group="toy.fit")
    _patching.patch_call("toy", BoostedTrainer, "fit", fit_hook, group="toy.fit")
    BoostedTrainer(epochs=2).fit([1.0])
    mbx.flush(10)
    (run,) = client.runs()
    assert run.name == "BoostedTrainer"
    assert [p.value for p in run.metrics("epochs_seen")] == [2.0]


def test_threads_never_log_into_each_others_runs(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    _patching.patch_call("toy", Trainer, "fit", fit_hook, group="toy.fit")
    barrier = threading.Barrier(4)

    def work(i: int) -> None:
        with mbx.start_run(name=f"t{i}") as run:
            barrier.wait()
            Trainer(epochs=i + 1).fit([1.0])
            assert mbx.active_run() is run

    threads = [threading.Thread(target=work, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    mbx.flush(10)
    runs = {r.name: r for r in client.runs()}
    assert sorted(runs) == ["t0", "t1", "t2", "t3"]
    for i in range(4):
        assert runs[f"t{i}"].params["epochs"] == i + 1
        assert [p.value for p in runs[f"t{i}"].metrics("epochs_seen")] == [float(i + 1)]


def test_post_import_hook_fires_on_later_import_and_can_be_cancelled():
    name = "tests.toylib_late"
    sys.modules.pop(name, None)
    fired = []
    _patching.when_imported("toy-late", name, lambda mod: fired.append(mod.__name__))
    assert fired == []
    import tests.toylib_late  # noqa: F401

    assert fired == [name]
    _patching.cancel_import_hooks("toy-late")
    sys.modules.pop(name, None)
    import tests.toylib_late  # noqa: F401,F811

    assert fired == [name]


# ---------------------------------------------------------------------- the user's results, unchanged
def _raise_chained(how: str):
    try:
        {}["root cause"]
    except KeyError as exc:
        if how == "cause":
            raise TrainingError("explicit") from exc
        if how == "suppressed":
            raise TrainingError("suppressed") from None
        raise TrainingError("implicit")  # noqa: B904 - the chain under test


class ChainedTrainer(Trainer):
    def fit(self, data, callbacks=None, *, fail_at=None):
        _raise_chained(self.how)

    def __init__(self, how: str) -> None:
        super().__init__()
        self.how = how


def _caught(fn, *args):
    try:
        fn(*args)
    except BaseException as exc:  # noqa: BLE001 - compared attribute by attribute
        return exc
    raise AssertionError("no exception")


def _fit_chained(how):
    return ChainedTrainer(how).fit([1.0])


@pytest.mark.parametrize("how", ["cause", "implicit", "suppressed"])
def test_exception_chain_and_traceback_text_are_the_users(store_uri, client, how):
    import traceback

    plain = _caught(_fit_chained, how)
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    _patching.patch_call("toy", ChainedTrainer, "fit", fit_hook, group="toy.fit")
    ours = _caught(_fit_chained, how)
    for attr in ("__cause__", "__context__"):
        assert type(getattr(ours, attr)) is type(getattr(plain, attr))
        assert str(getattr(ours, attr)) == str(getattr(plain, attr))
    assert ours.__suppress_context__ is plain.__suppress_context__
    text, plain_text = "".join(traceback.format_exception(ours)), "".join(traceback.format_exception(plain))
    assert text == plain_text  # frame by frame: no frame of ours
    assert ("KeyError: 'root cause'" in text) == (how != "suppressed")
    mbx.flush(10)
    assert client.runs()[0].status == "failed"


def test_our_failure_before_a_call_that_fails_too_leaves_only_the_users_error(store_uri, client, capfd):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)

    def needs_valid_input(call):
        with autorun("toy", name="Trainer"):
            len(call.args[0])  # our reading of the input fails first (testing mode would re-raise it)
            yield None

    _patching.patch_call("toy", Trainer, "fit", needs_valid_input)
    with pytest.raises(TypeError, match="not iterable"):  # the framework's own error, not ours
        Trainer(epochs=1).fit(3)
    assert "modelbox" not in capfd.readouterr().err


def test_our_failure_after_a_successful_call_keeps_the_run_finished_and_prints_one_line(
        monkeypatch, store_uri, client, caplog):
    monkeypatch.setenv("MODELBOX_AUTOLOG_TESTING", "0")
    monkeypatch.setattr(_patching, "_reported_sites", set())
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)

    def broken_after(call):
        with autorun("toy", name="Trainer") as run:
            yield None
            run.log_metric("before_the_bug", 1.0)
            {}["feature importance"]  # a bug in our post-processing

    _patching.patch_call("toy", Trainer, "fit", broken_after)
    trainer = Trainer(epochs=1)
    assert trainer.fit([1.0]) is trainer
    assert trainer.fit([1.0]) is trainer  # the same cause again: said once
    mbx.flush(10)
    (warning,) = [r for r in caplog.records if r.name == "modelbox_autolog" and r.levelname == "WARNING"]
    assert "KeyError: 'feature importance'" in warning.getMessage() and "\n" not in warning.getMessage()
    assert warning.exc_info is None  # the traceback goes to the debug log only
    runs = client.runs()
    assert [r.status for r in runs] == ["finished", "finished"]
    assert runs[0].metrics("before_the_bug") and runs[0].events("autolog_error")


def test_nothing_instrumented_inside_our_own_code_makes_a_run(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)

    def hook_that_trains(call):
        Trainer(epochs=1).fit([2.0])  # e.g. a helper our hook uses: never a run of its own
        with autorun("toy", name="Outer"):
            yield None
            Trainer(epochs=1).fit([3.0])
        with _patching.own_code():
            Trainer(epochs=1).fit([4.0])

    _patching.patch_call("toy", Trainer, "fit", fit_hook, group="toy.fit")
    _patching.patch_call("toy", BoostedTrainer, "from_config", hook_that_trains)
    BoostedTrainer.from_config({"epochs": 1})
    mbx.flush(10)
    assert [r.name for r in client.runs()] == ["Outer"]


def test_arguments_are_bound_by_the_real_signature_however_passed():
    """Keyword-only parameters that a deprecate-positional-args decorator still takes by position."""
    import functools

    def accepts_positional_keyword_only(fn):
        names = [p.name for p in inspect.signature(fn).parameters.values() if p.kind is p.KEYWORD_ONLY]

        @functools.wraps(fn)
        def inner(*args, **kwargs):
            positional = 3
            kwargs.update(zip(names, args[positional:], strict=False))
            return fn(*args[:positional], **kwargs)

        return inner

    @accepts_positional_keyword_only
    def train(params, data, rounds=10, *, evals=(), callbacks=None):
        return params, rounds, evals, callbacks

    seen = {}

    def hook(call):
        seen.update(params=call.argument("params"), rounds=call.argument("rounds"), evals=call.argument("evals"),
                    callbacks=call.argument("callbacks"))
        yield call.replace(callbacks=["ours"])

    namespace = type("ns", (), {"train": staticmethod(train)})
    _patching.patch_call("toy", namespace, "train", hook)
    assert namespace.train({"eta": 1}, "d", 3, ["e"], ["mine"]) == ({"eta": 1}, 3, ["e"], ["ours"])
    assert seen == {"params": {"eta": 1}, "rounds": 3, "evals": ["e"], "callbacks": ["mine"]}


def test_instrumented_calls_on_our_threads_make_no_runs(store_uri, client):
    mbx.autolog(backend=store_uri, frameworks=[], capture_console=False)
    _patching.patch_call("toy", Trainer, "fit", fit_hook, group="toy.fit")
    ours = threading.Thread(target=lambda: Trainer(epochs=1).fit([1.0]), name="modelbox-exporter-like")
    ours.start()
    ours.join()
    theirs = threading.Thread(target=lambda: Trainer(epochs=1).fit([1.0]), name="user-thread")
    theirs.start()
    theirs.join()
    mbx.flush(10)
    assert [r.name for r in client.runs()] == ["Trainer"]  # the user's thread only
