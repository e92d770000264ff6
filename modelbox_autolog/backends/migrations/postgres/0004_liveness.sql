-- Run liveness and failure, as in the SQLite store's v3: who runs a run (owner: host, boot id,
-- pid...), its lease (heartbeat_at + lease_s), why it failed (failure: JSON {type, message,
-- traceback}) and when liveness declared it lost (lost_at).
ALTER TABLE runs ADD COLUMN owner TEXT, ADD COLUMN heartbeat_at DOUBLE PRECISION, ADD COLUMN lease_s DOUBLE PRECISION,
    ADD COLUMN failure TEXT, ADD COLUMN lost_at DOUBLE PRECISION;
CREATE INDEX runs_running ON runs (status) WHERE status = 'running';
