-- Schema v5: the model registry and the run lifecycle (as the SQLite store's v4).
-- Aliases: one version per (name, alias), moved atomically by an upsert.
CREATE TABLE model_aliases (
    name TEXT NOT NULL,
    alias TEXT NOT NULL,
    model_id TEXT NOT NULL,
    version INTEGER NOT NULL,
    updated_at DOUBLE PRECISION NOT NULL,
    PRIMARY KEY (name, alias)
);
CREATE INDEX model_aliases_by_model ON model_aliases (model_id);
-- Archived runs and experiments are hidden from default listings and can be restored; a run
-- carries a note a person wrote; a model registered by reference keeps its URI, not files.
ALTER TABLE runs ADD COLUMN archived_at DOUBLE PRECISION, ADD COLUMN note TEXT;
ALTER TABLE experiments ADD COLUMN archived_at DOUBLE PRECISION;
ALTER TABLE models ADD COLUMN source_uri TEXT;
-- Deleting a run walks to its children.
CREATE INDEX runs_by_parent ON runs (parent_run_id);
