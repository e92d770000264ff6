"""The versioned protobuf API of the ModelBox service (``modelbox.v1``) and its generated code.

The ``.proto`` files under ``modelbox/v1/`` are the source of truth; the ``*_pb2.py`` modules
beside them are generated from them by ``python -m modelbox_autolog.proto.generate`` and
committed, so using the service needs grpcio and protobuf but not grpcio-tools.
"""

from __future__ import annotations

__all__ = ["records_pb2", "service_pb2", "service_pb2_grpc"]


def __getattr__(name: str):
    if name in __all__:
        import importlib

        return importlib.import_module(f"{__name__}.modelbox.v1.{name}")
    raise AttributeError(name)
