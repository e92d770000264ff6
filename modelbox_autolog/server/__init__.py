"""The ModelBox gRPC service behind ``grpc://``: ``modelbox server`` serves a SQLite or PostgreSQL store
with its artifact store (a folder, or an S3 bucket).

Stands above the stores it serves and beside the CLI; the library's hot path never imports it.
"""
