"""The only module that touches wrapt: reversible patches, safe call hooks, recursion guards,
and post-import hooks (via ``_imports``). wrapt itself is imported on first patch, i.e. only
once a framework has been imported.

A *call hook* is a generator function ``hook(call)`` run around the original call::

    def fit_hook(call):
        with autorun("sklearn") as run:          # our code before the call
            result = yield call.replace(callbacks=[*cbs, ours])   # or: yield None
            run.log_metric("score", ...)         # our code after it

The engine calls the original exactly once, with the user's own arguments unless the hook
yielded replacements (new objects built by us; the user's are never mutated). Our exceptions,
before or after, are logged once per site and swallowed (re-raised under
MODELBOX_AUTOLOG_TESTING=1); the user's exceptions pass through untouched, after being
thrown into the hook so runs can be marked failed.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
import threading
from collections.abc import Callable, Generator, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from . import _imports
from ._config import current as current_config
from ._config import testing_mode

log = logging.getLogger("modelbox_autolog")

Hook = Callable[["Call"], Generator[Any, Any, None]]

_reported_sites: set[str] = set()
_report_lock = threading.Lock()


class AutologError(RuntimeError):
    """Our own failure, re-raised only in testing mode."""


def report_error(site: str, exc: BaseException) -> None:
    """Log our own failure once per site, in one line; re-raise it when testing.

    The traceback goes to the debug log only: a user's stderr gets one line per cause.
    """
    if testing_mode():
        raise exc
    with _report_lock:
        if site in _reported_sites:
            return
        _reported_sites.add(site)
    if not current_config().silent:
        text = " ".join(f"{type(exc).__name__}: {exc}".split())[:300]
        log.warning("modelbox-autolog: %s failed and was skipped (training is unaffected): %s", site, text)
    log.debug("modelbox-autolog: %s failed", site, exc_info=exc)


def safe(site: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """Run our code; on failure report it and return None."""
    try:
        return fn(*args, **kwargs)
    except Exception as exc:
        report_error(site, exc)
        return None


def safe_method(site: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Decorator for our callbacks' methods: a bug in them never reaches the user's loop."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        def guarded(*args: Any, **kwargs: Any) -> Any:
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                report_error(site, exc)
                return None

        guarded.__name__ = fn.__name__
        guarded.__qualname__ = fn.__qualname__
        guarded.__doc__ = fn.__doc__
        return guarded

    return decorate


# ---------------------------------------------------------------------- recursion guard
_active_groups: ContextVar[tuple[str, ...]] = ContextVar("modelbox_active_groups", default=())


def active_groups() -> tuple[str, ...]:
    """Guard groups whose hooks are running in this thread/task, outermost first."""
    return _active_groups.get()


def in_group(group: str) -> bool:
    return group in _active_groups.get()


@contextlib.contextmanager
def entered(group: str) -> Iterator[None]:
    token = _active_groups.set((*_active_groups.get(), group))
    try:
        yield
    finally:
        _active_groups.reset(token)


# ---------------------------------------------------------------------- our own code
# While a hook's own code runs (before or after the original call, or handling the user's
# exception), or our background work (``own_code()``), instrumented calls go straight to the
# original: nothing we do creates runs, and warnings raised meanwhile are not the user's.
OUTSIDE, BEFORE, AFTER, THROWN, BACKGROUND = 0, 1, 2, 3, 4
_phase: ContextVar[int] = ContextVar("modelbox_hook_phase", default=OUTSIDE)


def in_own_code() -> bool:
    """Our code (a hook's before/after part, or background work) is running in this context."""
    return _phase.get() != OUTSIDE


def failing_after_call() -> bool:
    """A hook's code after a *successful* original call is running: an exception now is ours,
    and must not mark the user's run failed."""
    return _phase.get() == AFTER


@contextlib.contextmanager
def own_code() -> Iterator[None]:
    """Mark work we started (e.g. training metrics on the exporter thread) as ours."""
    token = _phase.set(BACKGROUND)
    try:
        yield
    finally:
        _phase.reset(token)


# ---------------------------------------------------------------------- warnings of our own work
OWN_THREAD_PREFIX = "modelbox-"  # our threads' names (exporter, I/O, warm-up, plugins)


def is_own_work() -> bool:
    """Our code runs here: a hook's own part, our background work, or one of our threads."""
    return _phase.get() != OUTSIDE or threading.current_thread().name.startswith(OWN_THREAD_PREFIX)


def _drop_own_warnings(wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    """``warnings._showwarnmsg``: the one place every warning shown or recorded passes (the
    warnings module is process-wide, and ``catch_warnings(record=True)`` records through it).
    A warning raised by work we started (training metrics calling the model's ``predict`` on our
    thread, say) is neither shown nor recorded in the user's context, and the "already shown"
    registries forget it, so the user's own identical warning later is shown as without us."""
    if not is_own_work():
        return wrapped(*args, **kwargs)
    message = args[0] if args else kwargs.get("msg")
    with contextlib.suppress(Exception):
        _forget_warning(message)
    return None


def _forget_warning(message: Any) -> None:
    import warnings

    text, category, lineno = str(message.message), message.category, message.lineno
    warnings.onceregistry.pop((text, category), None)
    for module in list(sys.modules.values()):
        if getattr(module, "__file__", None) == message.filename:
            registry = getattr(module, "__warningregistry__", None)
            if isinstance(registry, dict):
                registry.pop((text, category, lineno), None)
                registry.pop((text, category, 0), None)


def guard_warnings(integration: str) -> bool:
    """Keep warnings of our own work out of the user's context (reverted with ``integration``)."""
    import warnings

    return patch_function(integration, warnings, "_showwarnmsg", _drop_own_warnings)


# ---------------------------------------------------------------------- calls
_in_progress = [0]  # instrumented calls running now, in any thread (for background work to wait)
_in_progress_lock = threading.Lock()


def calls_in_progress() -> int:
    return _in_progress[0]


def _relaxed_signature(signature: Any) -> Any:
    """The signature with keyword-only parameters accepted by position too, in order: what
    the deprecate-positional-arguments decorators (XGBoost, scikit-learn) still accept."""
    params = list(signature.parameters.values())
    if not any(p.kind is p.KEYWORD_ONLY for p in params) or any(p.kind is p.VAR_POSITIONAL for p in params):
        return None
    relaxed = [p.replace(kind=p.POSITIONAL_OR_KEYWORD) if p.kind is p.KEYWORD_ONLY else p for p in params]
    try:  # a default-less parameter after one with a default cannot be positional: stay strict
        return signature.replace(parameters=relaxed)
    except ValueError:
        return None


class Call:
    """The intercepted call, as the hook sees it."""

    __slots__ = ("wrapped", "instance", "args", "kwargs", "site", "_bound", "_signature")

    def __init__(self, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict, site: str) -> None:
        self.wrapped = wrapped
        self.instance = instance
        self.args = args
        self.kwargs = kwargs
        self.site = site
        self._bound: Any = None
        self._signature: Any = None

    @property
    def signature(self) -> Any:
        """The signature the arguments were bound with: the original's, or (for positional
        arguments a deprecation decorator still maps to keyword-only parameters) its relaxed form."""
        if self._signature is None:
            self.bound  # noqa: B018 - binds and picks the signature
        return self._signature

    @property
    def bound(self) -> Any:
        """Arguments bound to the original's signature (defaults not applied), however passed."""
        import inspect

        if self._bound is None:
            signature = inspect.signature(self.wrapped)
            try:
                self._bound = signature.bind(*self.args, **self.kwargs)
            except TypeError:
                relaxed = _relaxed_signature(signature)
                if relaxed is None:
                    raise
                self._bound = relaxed.bind(*self.args, **self.kwargs)
                signature = relaxed
            self._signature = signature
        return self._bound

    def argument(self, name: str, default: Any = None) -> Any:
        """An argument by parameter name, however it was passed (positionally or by keyword)."""
        try:
            arguments = self.bound.arguments
        except (TypeError, ValueError):
            return self.kwargs.get(name, default)
        if name in arguments:
            return arguments[name]
        for param in self._signature.parameters.values():
            if param.kind is param.VAR_KEYWORD and name in arguments.get(param.name, {}):
                return arguments[param.name][name]
        return default

    def replace(self, **changes: Any) -> tuple[tuple, dict]:
        """New (args, kwargs) with the named arguments replaced where the caller put them."""
        import inspect

        args = list(self.args)
        kwargs = dict(self.kwargs)
        try:
            params = list(self.signature.parameters.values())
        except (TypeError, ValueError):
            params = list(inspect.signature(self.wrapped).parameters.values())
        positional = [p.name for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        for name, value in changes.items():
            if name in positional and positional.index(name) < len(args):
                args[positional.index(name)] = value
            else:
                kwargs[name] = value
        return tuple(args), kwargs


def _call_with_hook(site: str, group: str | None, hook: Hook, wrapped: Callable[..., Any], instance: Any, args: tuple, kwargs: dict) -> Any:
    if _phase.get() or (group is not None and group in _active_groups.get()) \
            or threading.current_thread().name.startswith(OWN_THREAD_PREFIX):
        # our own code or thread is running, or a nested call of the same kind: log once, outermost
        try:
            return wrapped(*args, **kwargs)
        except BaseException as exc:
            _leave_out_this_frame(exc)
            raise

    call_args, call_kwargs = args, kwargs
    gen: Generator[Any, Any, None] | None = None
    our_error: Exception | None = None
    phase = _phase.set(BEFORE)
    try:
        gen = hook(Call(wrapped, instance, args, kwargs, site))
        replacement = next(gen)
        if replacement is not None:
            call_args, call_kwargs = replacement
    except StopIteration:
        gen = None  # the hook chose not to wrap this call
    except Exception as exc:
        gen = _close_quietly(gen)
        call_args, call_kwargs = args, kwargs
        our_error = exc  # reported once the call succeeds: if it fails, the user's error is the story
    finally:
        _phase.reset(phase)

    token = _active_groups.set((*_active_groups.get(), group)) if group is not None else None
    counted = gen is not None
    if counted:
        with _in_progress_lock:
            _in_progress[0] += 1
    try:
        result = wrapped(*call_args, **call_kwargs)
    except BaseException as user_exc:
        if counted:
            counted = False
            with _in_progress_lock:
                _in_progress[0] -= 1
        if token is not None:
            _active_groups.reset(token)
            token = None
        if gen is not None:
            _throw_into(site, gen, user_exc)
        if our_error is not None:  # most likely the same bad input, which the framework reports itself
            log.debug("modelbox-autolog: %s failed before a call that failed too", site, exc_info=our_error)
        _leave_out_this_frame(user_exc)
        raise
    finally:
        if counted:
            with _in_progress_lock:
                _in_progress[0] -= 1
        if token is not None:
            _active_groups.reset(token)

    if our_error is not None:
        report_error(site, our_error)
    if gen is not None:
        phase = _phase.set(AFTER)
        try:
            gen.send(result)
        except StopIteration:
            pass
        except Exception as exc:
            _close_quietly(gen)
            report_error(site, exc)
        else:
            _close_quietly(gen)
            report_error(site, AutologError(f"hook for {site} yielded more than once"))
        finally:
            _phase.reset(phase)
    return result


def _leave_out_this_frame(exc: BaseException) -> None:
    """The user reads the traceback they would read without us: the frame of ``_call_with_hook``
    (which only passed the call on) is taken out of the exception's traceback."""
    tb = exc.__traceback__
    if tb is not None and tb.tb_frame is sys._getframe(1):
        exc.__traceback__ = tb.tb_next


def _throw_into(site: str, gen: Generator[Any, Any, None], user_exc: BaseException) -> None:
    """Let the hook see the user's exception (to mark the run failed) without altering it:
    its traceback, cause, context and whether the context is shown are put back as they were."""
    saved = (user_exc.__traceback__, user_exc.__context__, user_exc.__cause__, user_exc.__suppress_context__)
    phase = _phase.set(THROWN)
    try:
        gen.throw(user_exc)
    except StopIteration:
        pass
    except BaseException as exc:
        if exc is not user_exc:
            if isinstance(exc, Exception):
                try:
                    report_error(site, exc)
                except Exception:
                    pass  # testing mode: the user's exception still wins
            else:
                raise
    else:
        _close_quietly(gen)
    finally:
        _phase.reset(phase)
        # assigning __cause__ sets __suppress_context__: restore it last
        user_exc.__traceback__, user_exc.__context__, user_exc.__cause__ = saved[:3]
        user_exc.__suppress_context__ = saved[3]


def _close_quietly(gen: Generator[Any, Any, None] | None) -> None:
    if gen is not None:
        try:
            gen.close()
        except Exception:
            pass
    return None


# ---------------------------------------------------------------------- ledger
@dataclass
class Patch:
    integration: str
    owner: Any
    attr: str
    original: Any  # what owner.__dict__[attr] held (descriptor and all), or _INHERITED
    replacement: Any


_INHERITED = object()
_ledger: list[Patch] = []
_ledger_lock = threading.RLock()


def _own_attribute(owner: Any, attr: str) -> Any:
    namespace = owner.__dict__ if hasattr(owner, "__dict__") else {}
    return namespace.get(attr, _INHERITED)


def is_patched(owner: Any, attr: str) -> bool:
    with _ledger_lock:
        return any(p.owner is owner and p.attr == attr for p in _ledger)


def patch_call(integration: str, owner: Any, attr: str, hook: Hook, group: str | None = None, site: str | None = None) -> bool:
    """Wrap ``owner.attr`` (a function, method, classmethod or staticmethod) with a call hook.

    Idempotent per (owner, attr). ``group``: calls nested inside another call of the same
    group (in this thread/task) go straight to the original. Returns False when already patched
    or when the attribute does not exist.
    """
    site = site or f"{integration}:{getattr(owner, '__name__', owner)}.{attr}"
    with _ledger_lock:
        if is_patched(owner, attr) or not hasattr(owner, attr):
            return False
        original = _own_attribute(owner, attr)

        # a partial, not a closure: one frame of ours on the stack between the user and the original
        wrapper = functools.partial(_call_with_hook, site, group, hook)
        import wrapt

        wrapt.wrap_function_wrapper(owner, attr, wrapper)
        replacement = _own_attribute(owner, attr)
        _ledger.append(Patch(integration, owner, attr, original, replacement))
        return True


def patch_function(integration: str, owner: Any, attr: str, wrapper: Callable[[Callable[..., Any], Any, tuple, dict], Any]) -> bool:
    """Wrap with a raw wrapt wrapper ``wrapper(wrapped, instance, args, kwargs)``.

    For the rare case a call hook does not fit; the wrapper owns its exception safety.
    """
    with _ledger_lock:
        if is_patched(owner, attr) or not hasattr(owner, attr):
            return False
        original = _own_attribute(owner, attr)
        import wrapt

        wrapt.wrap_function_wrapper(owner, attr, wrapper)
        _ledger.append(Patch(integration, owner, attr, original, _own_attribute(owner, attr)))
        return True


def revert(integration: str | None = None) -> int:
    """Undo patches (of one integration, or all) in reverse order; originals are restored by identity."""
    undone = 0
    with _ledger_lock:
        for patch in reversed(list(_ledger)):
            if integration is not None and patch.integration != integration:
                continue
            if _own_attribute(patch.owner, patch.attr) is patch.replacement:
                if patch.original is _INHERITED:
                    delattr(patch.owner, patch.attr)
                else:
                    setattr(patch.owner, patch.attr, patch.original)
            _ledger.remove(patch)
            undone += 1
    return undone


def patches(integration: str | None = None) -> list[Patch]:
    with _ledger_lock:
        return [p for p in _ledger if integration is None or p.integration == integration]


# ---------------------------------------------------------------------- post-import hooks
_hook_generation: dict[str, int] = {}


def when_imported(key: str, module: str, callback: Callable[[Any], None]) -> None:
    """Run ``callback(module)`` once ``module`` is imported (now, if it already is).

    ``cancel_import_hooks`` makes a registration inert (a generation per key).
    """
    # one key may register several modules (lightning, pytorch_lightning): only cancel bumps it
    generation = _hook_generation.setdefault(key, 0)

    def fire(mod: Any) -> None:
        if _hook_generation.get(key) == generation:
            try:
                callback(mod)
            except Exception as exc:  # never break the user's import
                report_error(f"{key}:import-hook", exc)

    _imports.register(module, fire)


def cancel_import_hooks(key: str) -> None:
    _hook_generation[key] = _hook_generation.get(key, 0) + 1
