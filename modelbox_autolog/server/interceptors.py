"""One server interceptor for every RPC: token check, latency histograms, stream gauges, byte counts."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable
from typing import Any

import grpc

from .metrics import ServerMetrics

# Load balancers and orchestrators probe health without credentials; it reveals nothing else.
UNAUTHENTICATED_PREFIXES = ("/grpc.health.v1.Health/",)


class ServerInterceptor(grpc.ServerInterceptor):
    def __init__(self, token: str | None, metrics: ServerMetrics) -> None:
        self._expected = f"Bearer {token}".encode() if token else None
        self._metrics = metrics

    def _authorized(self, details: grpc.HandlerCallDetails) -> bool:
        if self._expected is None or details.method.startswith(UNAUTHENTICATED_PREFIXES):
            return True
        for key, value in details.invocation_metadata or ():
            if key == "authorization":
                given = value.encode() if isinstance(value, str) else value
                return hmac.compare_digest(given, self._expected)
        return False

    def intercept_service(self, continuation: Callable, details: grpc.HandlerCallDetails) -> Any:
        handler = continuation(details)
        if handler is None:
            return None
        method = details.method.rsplit("/", 1)[-1]
        authorized = self._authorized(details)
        if not authorized:
            self._metrics.auth_failures.inc()
        kind = _kind(handler)
        behaviour = getattr(handler, kind)
        wrapped = self._wrap(behaviour, method, authorized, handler.request_streaming, handler.response_streaming)
        deserializer = handler.request_deserializer
        received = self._metrics.received_bytes.labels(method)

        def counting(data: bytes) -> Any:
            received.inc(len(data))
            return deserializer(data) if deserializer else data

        return handler._replace(**{kind: wrapped, "request_deserializer": counting})

    def _wrap(self, behaviour: Callable, method: str, authorized: bool, upstream: bool, downstream: bool) -> Callable:
        metrics = self._metrics

        def refuse(context: grpc.ServicerContext) -> None:
            context.abort(grpc.StatusCode.UNAUTHENTICATED, "missing or wrong token (metadata 'authorization: Bearer <token>')")

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
                    if not authorized:
                        refuse(context)
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
                if not authorized:
                    refuse(context)
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
