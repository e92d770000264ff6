-- Store-wide settings every replica and client reads: where the artifact bytes live.
CREATE TABLE store_settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
-- Listing a status (running runs for liveness, failed runs) without a scan.
CREATE INDEX runs_by_status ON runs (status, start_time);
