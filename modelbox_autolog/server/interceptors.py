"""One server interceptor for every RPC: who is calling (``access``), whether its role allows the
call (``policy``, the one table every method is listed in), then the call itself acting as that
caller (its name is the actor of the changes it makes); plus latency histograms, stream gauges
and byte counts.

Authentication runs on the worker thread of the call, not in ``intercept_service`` (which gRPC
runs on its single polling thread): a token lookup in the store never holds up other calls.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import grpc

from .._actor import acting_as
from ..backends.base import BackendUnavailable, NotFound
from .access import Authenticator, AuthError, Principal, bearer
from .metrics import ServerMetrics
from .policy import BATCH, RPC_RULES, Denied, Policy

# Load balancers and orchestrators probe health without credentials; it reveals nothing else.
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/",)


class ServerInterceptor(grpc.ServerInterceptor):
    def __init__(self, authenticator: Authenticator, policy: Policy, metrics: ServerMetrics) -> None:
        self._authenticator = authenticator
        self._policy = policy
        self._metrics = metrics

    def _principal(self, details: grpc.HandlerCallDetails, context: grpc.ServicerContext) -> Principal:
        """The caller, or the call is aborted: UNAUTHENTICATED (no/wrong/revoked token), UNAVAILABLE
        (the store holding the tokens cannot answer)."""
        token = None
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                token = bearer(value)
                break
        try:
            return self._authenticator.authenticate(token)
        except AuthError as exc:
            self._metrics.auth_failures.inc()
            context.abort(grpc.StatusCode.UNAUTHENTICATED, str(exc))
        except BackendUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot check the token now: {exc}")
        raise AssertionError("unreachable")

    def _authorize(self, principal: Principal, method: str, request: Any, context: grpc.ServicerContext) -> None:
        rule = self._policy.rule_for(RPC_RULES, method)
        try:
            if rule is BATCH:
                self._policy.authorize_batch(principal, request)
            else:
                self._policy.authorize(principal, rule, getattr(request, rule.field, None) if rule.field else None)
        except Denied as exc:
            self._metrics.permission_denied.labels(method).inc()
            context.abort(grpc.StatusCode.PERMISSION_DENIED, str(exc))
        except NotFound as exc:
            context.abort(grpc.StatusCode.NOT_FOUND, str(exc))
        except BackendUnavailable as exc:
            context.abort(grpc.StatusCode.UNAVAILABLE, f"cannot check permissions now: {exc}")

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        public = details.method.startswith(UNAUTHENTICATED_PREFIXES)
        kind = _kind(handler)
        behaviour = getattr(handler, kind)
        if not public:
            behaviour = self._guarded(behaviour, details, method, handler.request_streaming, handler.response_streaming)
        wrapped = self._wrap(behaviour, method, handler.request_streaming, handler.response_streaming)
        deserializer = handler.request_deserializer
        received = self._metrics.received_bytes.labels(method)

        def counting(data: bytes) -> Any:
            received.inc(len(data))
            return deserializer(data) if deserializer else data

        return handler._replace(**{kind: wrapped, "request_deserializer": counting})

    def _guarded(self, behaviour: Callable, details: grpc.HandlerCallDetails, method: str, upstream: bool,
                 downstream: bool) -> Callable:
        """``behaviour`` behind authentication and the policy, run as the caller."""
        if downstream:  # streamed answers are reads: no actor to carry across yields
            def stream(request: Any, context: grpc.ServicerContext) -> Any:
                principal = self._principal(details, context)
                self._authorize(principal, method, None if upstream else request, context)
                yield from behaviour(request, context)

            return stream

        def unary(request: Any, context: grpc.ServicerContext) -> Any:
            principal = self._principal(details, context)
            self._authorize(principal, method, None if upstream else request, context)
            with acting_as(principal.name):
                return behaviour(request, context)

        return unary

    def _wrap(self, behaviour: Callable, method: str, upstream: bool, downstream: bool) -> Callable:
        metrics = self._metrics

        def observe(start: float, context: grpc.ServicerContext, failed: BaseException | None) -> None:
            code = context.code() if hasattr(context, "code") else None
            if code is None:
                code = grpc.StatusCode.UNKNOWN if failed is not None and not _is_abort(failed) else grpc.StatusCode.OK
            name = code.name if isinstance(code, grpc.StatusCode) else str(code)
            metrics.rpc_seconds.labels(method, name).observe(time.perf_counter() - start)

        gauge = metrics.active_streams.labels(method)
        if not downstream:
            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                start = time.perf_counter()
                metrics.in_flight.inc()
                if upstream:
                    gauge.inc()
                failed = None
                try:
                    return behaviour(request, context)
                except BaseException as exc:
                    failed = exc
                    raise
                finally:
                    if upstream:
                        gauge.dec()
                    metrics.in_flight.dec()
                    observe(start, context, failed)

            return unary


        def stream(request: Any, context: grpc.ServicerContext) -> Any:
            start = time.perf_counter()
            metrics.in_flight.inc()
            gauge.inc()
            failed = None
            try:
                yield from behaviour(request, context)
            except BaseException as exc:
                failed = exc
                raise
            finally:
                gauge.dec()
                metrics.in_flight.dec()
                observe(start, context, failed)

        return stream


def _kind(handler: grpc.RpcMethodHandler) -> str:
    if handler.request_streaming:
        return "stream_stream" if handler.response_streaming else "stream_unary"
    return "unary_stream" if handler.response_streaming else "unary_unary"


def _is_abort(exc: BaseException) -> bool:
    return type(exc).__name__ == "_AbortedError" or isinstance(exc, grpc.RpcError)
