"""The ModelBox gRPC service behind ``grpc://``: ``modelbox server`` serves a SQLite store.

Stands above the stores it serves and beside the CLI; the library's hot path never imports it.
"""
