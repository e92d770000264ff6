"""What each role may do: one table per API (gRPC methods here, HTTP routes beside their
declaration in ``ui/api.py``) read by one check that every call goes through.

- ``reader``: reads everything, writes nothing;
- ``writer``: also creates runs and models (logging, ``register_model``, uploads), and changes
  only the runs and models it created: logs into them, renames, retags and notes its runs,
  relabels its draft models, archives, restores and deletes its own runs and draft models;
- ``admin``: everything, including what a team promotes or shares: finalizing models, aliases
  (``NAME@production`` is what inference services load), and archiving or deleting experiments
  (which hold everyone's runs) or anyone's runs and models.

Deleting stays safe for an owner because the store refuses to delete a final or aliased model
(and a run that holds one): what an admin promoted is kept until an admin lets it go. A run's
child runs are archived and deleted with it (they come from the same training). ``modelbox gc``
is not a server call: it runs where the store is, with the store's own credentials.

A write to a run includes everything logged into it: params, metrics, events, artifacts,
models logged in it, updates of its name, tags or status. Runs and models stored before owners
were kept have none: only an admin changes them. A method or route with no entry in the table
is admin-only (and reported once), so a new write is never open by omission.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from .access import Principal

log = logging.getLogger("modelbox_autolog.server")

OWNER_CACHE_MAX = 100_000  # owners never change: run id -> creator, cleared when full


@dataclass(frozen=True)
class Rule:
    """``need``: read | create | own | admin. For ``own``: the kind of object (run | model) and
    where its id is (a request field, or an HTTP path parameter)."""

    need: str
    kind: str | None = None
    field: str | None = None


READ = Rule("read")
CREATE = Rule("create")
ADMIN = Rule("admin")
BATCH = Rule("create", "batch")  # WriteBatch: create, and write only into one's own runs


def own(kind: str, field: str) -> Rule:
    return Rule("own", kind, field)


# Every method of modelbox.v1.ModelBox (tests/access checks none is missing).
RPC_RULES: dict[str, Rule] = {
    "WriteBatch": BATCH,
    "Upload": CREATE,
    "Download": READ,
    "ListExperiments": READ,
    "ListRuns": READ,
    "GetRun": READ,
    "ListMetricKeys": READ,
    "GetMetrics": READ,
    "ListEvents": READ,
    "ListArtifacts": READ,
    "ListInputs": READ,
    "ListModels": READ,
    "GetModel": READ,
    "UpdateModel": own("model", "model_id"),
    "FinalizeModel": ADMIN,
    "CountRuns": READ,
    "GetMetricSummaries": READ,
    "SearchKeys": READ,
    "ListChanges": READ,
    "Watch": READ,
    # the registry and the run lifecycle
    "GetExperiment": READ,
    "UpdateRun": own("run", "run_id"),  # rename, tags, note
    "ArchiveRun": own("run", "run_id"),  # archive or restore, with its child runs
    "DeleteRun": own("run", "run_id"),  # the store refuses it when a model of the run is final or aliased
    "DeleteModel": own("model", "model_id"),  # likewise: a final or aliased version is kept
    "SetAlias": ADMIN,
    "DeleteAlias": ADMIN,
    "ArchiveExperiment": ADMIN,  # experiments hold everyone's runs
    "DeleteExperiment": ADMIN,
}

# The HTTP API's writes, by route handler name (ui/api.py); GET routes are reads.
HTTP_RULES: dict[str, Rule] = {
    "update_model": own("model", "model_id"),
    "finalize_model": ADMIN,
    "update_run": own("run", "run_id"),
    "archive_run": own("run", "run_id"),
    "restore_run": own("run", "run_id"),
    "delete_run": own("run", "run_id"),
    "delete_model": own("model", "model_id"),
    "archive_experiment": ADMIN,
    "restore_experiment": ADMIN,
    "delete_experiment": ADMIN,
    "set_alias": ADMIN,
    "delete_alias": ADMIN,
}
READ_METHODS = frozenset({"GET", "HEAD"})


def http_rule(policy: Policy, method: str, handler: str) -> Rule:
    return READ if method in READ_METHODS else policy.rule_for(HTTP_RULES, handler)


class Denied(Exception):
    """The caller is authenticated but its role does not allow this; the message says what would."""


class Policy:
    """The one check: ``authorize(principal, rule, ident)``; ``authorize_batch`` for WriteBatch.
    Owners are read from the store (and cached: they never change)."""

    def __init__(self, store: Any = None, *, open_store: Callable[[], Any] | None = None) -> None:
        self._store = store
        self._open_store = open_store  # a UI opens its store lazily
        self._owners: dict[str, str | None] = {}
        self._lock = threading.Lock()
        self._unlisted: set[str] = set()

    @property
    def store(self) -> Any:
        return self._store if self._store is not None or self._open_store is None else self._open_store()

    # ------------------------------------------------------------------ rules
    def rule_for(self, table: dict[str, Rule], name: str) -> Rule:
        rule = table.get(name)
        if rule is None:
            if name not in self._unlisted:
                self._unlisted.add(name)
                log.warning("no access rule for %s: admin only until one is added to the policy", name)
            return ADMIN
        return rule

    def authorize(self, principal: Principal, rule: Rule, ident: str | None = None) -> None:
        """Raise Denied unless ``principal`` may do what ``rule`` guards (on object ``ident``)."""
        if principal.role == "admin" or rule.need == "read":
            return
        if rule.need == "admin":
            raise Denied(f"{_who(principal)} may not do this: it needs the admin role")
        if principal.role != "writer":
            raise Denied(f"{_who(principal)} may only read; writing needs the writer role (or admin)")
        if rule.need == "create":
            return
        if rule.kind == "run":
            run_id, owner = self.store.run_owner(ident or "")  # resolves prefixes: the run it will change
            if owner != principal.name:
                raise Denied(f"{_who(principal)} may not change run {run_id}: {_created_by(owner)}; "
                             "a writer changes only the runs it created (ask its owner or an admin)")
        elif rule.kind == "model":
            model_id, owner = self.store.model_owner(ident or "")
            if owner != principal.name:
                raise Denied(f"{_who(principal)} may not change model {model_id}: {_created_by(owner)}; "
                             "a writer changes only the models it created (ask its owner or an admin)")
        else:
            raise Denied(f"{_who(principal)} may not do this: it needs the admin role")

    def authorize_batch(self, principal: Principal, request: Any) -> None:
        """A WriteBatch request (proto): a writer may start runs, and log only into runs it created."""
        if principal.role == "admin":
            return
        self.authorize(principal, CREATE)
        started = {r.run_id for r in request.run_starts}
        touched = set(started)
        touched.update(request.metrics.run_ids)
        for records in (request.params, request.events, request.inputs, request.artifacts, request.run_updates):
            touched.update(r.run_id for r in records)
        for model in request.models:
            if model.status == "final":
                raise Denied(f"{_who(principal)} may not log model {model.name!r} as final: finalizing needs the admin role "
                             "(log it as a draft; an admin finalizes it)")
            if model.HasField("run_id") and model.run_id:
                touched.add(model.run_id)
        touched.discard("")
        self._check_runs(principal, touched)

    # ------------------------------------------------------------------ owners
    def _check_runs(self, principal: Principal, run_ids: Iterable[str]) -> None:
        """Every run (exact ids, as batches name them) that exists must have been created by
        ``principal``; ids that do not exist yet are runs it creates."""
        owners = self.run_owners(run_ids)
        for run_id, owner in owners.items():
            if owner != principal.name:
                raise Denied(f"{_who(principal)} may not change run {run_id}: {_created_by(owner)}; "
                             "a writer changes only the runs it created (ask its owner or an admin)")

    def run_owners(self, run_ids: Iterable[str]) -> dict[str, str | None]:
        """Creator of each run that exists, by exact id (cached; unknown ids are looked up every time)."""
        ids = set(run_ids)
        with self._lock:
            known = {run_id: self._owners[run_id] for run_id in ids if run_id in self._owners}
        missing = [run_id for run_id in ids if run_id not in known]
        if missing:
            found = self.store.run_owners(missing)
            with self._lock:
                if len(self._owners) + len(found) > OWNER_CACHE_MAX:
                    self._owners.clear()
                self._owners.update(found)
            known.update(found)
        return known


def _who(principal: Principal) -> str:
    return f"{principal.name!r} ({principal.role})"


def _created_by(owner: str | None) -> str:
    return f"it was created by {owner!r}" if owner else "it has no recorded owner (stored before owners were kept)"
