"""Versioned schema migrations: numbered SQL files (``0001_initial.sql``...) per database engine."""
