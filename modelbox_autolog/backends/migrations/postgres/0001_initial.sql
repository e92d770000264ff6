-- The ModelBox store: experiments, runs and what they logged, models, applied batches, changes.
-- Same data model as the SQLite store; ``ordinal`` columns keep insertion order (SQLite's rowid).
CREATE TABLE experiments (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    created_at DOUBLE PRECISION NOT NULL
);
CREATE TABLE runs (
    id TEXT PRIMARY KEY,
    experiment_id TEXT NOT NULL,
    name TEXT,
    status TEXT NOT NULL,
    parent_run_id TEXT,
    start_time DOUBLE PRECISION NOT NULL,
    end_time DOUBLE PRECISION,
    progress DOUBLE PRECISION,
    tags TEXT NOT NULL DEFAULT '{}',
    env TEXT NOT NULL DEFAULT '{}',
    updated_at DOUBLE PRECISION,
    ordinal BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX runs_by_experiment ON runs (experiment_id, start_time);
CREATE TABLE params (
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    value TEXT NOT NULL,
    PRIMARY KEY (run_id, key)
);
-- Metric points are stored as chunks: per batch and series, packed little-endian arrays of
-- steps (int64), values (float64), timestamps (float64) and epochs (int64), one row per chunk.
CREATE TABLE metric_series (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL,
    key TEXT NOT NULL,
    UNIQUE (run_id, key)
);
CREATE TABLE metric_chunks (
    id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    series_id BIGINT NOT NULL,
    count INTEGER NOT NULL,
    min_step BIGINT NOT NULL,
    max_step BIGINT NOT NULL,
    steps BYTEA NOT NULL,
    vals BYTEA NOT NULL,
    times BYTEA NOT NULL,
    epochs BYTEA NOT NULL
);
CREATE INDEX metric_chunks_by_series ON metric_chunks (series_id, id);
CREATE TABLE events (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    timestamp DOUBLE PRECISION NOT NULL,
    duration_s DOUBLE PRECISION,
    attrs TEXT NOT NULL DEFAULT '{}',
    ordinal BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX events_by_run ON events (run_id, timestamp);
CREATE TABLE inputs (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    kind TEXT NOT NULL,
    ref TEXT NOT NULL,
    timestamp DOUBLE PRECISION NOT NULL,
    attrs TEXT NOT NULL DEFAULT '{}',
    ordinal BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX inputs_by_run ON inputs (run_id);
CREATE TABLE artifacts (
    id TEXT PRIMARY KEY,
    run_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT,
    sha256 TEXT,
    kind TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    ordinal BIGINT GENERATED ALWAYS AS IDENTITY
);
CREATE INDEX artifacts_by_run ON artifacts (run_id);
CREATE TABLE models (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    version INTEGER NOT NULL,
    framework TEXT NOT NULL,
    run_id TEXT,
    experiment_id TEXT,
    metadata TEXT NOT NULL,
    labels TEXT NOT NULL,
    datasets TEXT NOT NULL,
    status TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    UNIQUE (name, version)
);
CREATE INDEX models_by_run ON models (run_id);
CREATE TABLE model_files (
    model_id TEXT NOT NULL,
    name TEXT NOT NULL,
    path TEXT NOT NULL,
    bytes BIGINT,
    sha256 TEXT,
    PRIMARY KEY (model_id, name)
);
-- Exactly-once batches: the id is inserted in the batch's own transaction (a unique key, not
-- a read-then-write), so a batch re-sent to any replica is skipped whole.
CREATE TABLE applied_batches (
    id TEXT PRIMARY KEY,
    applied_at DOUBLE PRECISION NOT NULL
);
-- The change feed. Writers take one transaction-scoped advisory lock before inserting here,
-- so sequence numbers become visible in increasing order across every server replica.
CREATE TABLE changes (
    seq BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind TEXT NOT NULL,
    object_type TEXT NOT NULL,
    object_id TEXT NOT NULL,
    payload TEXT NOT NULL,
    timestamp DOUBLE PRECISION NOT NULL
);
