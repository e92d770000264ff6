-- Who did what. Per-user access tokens of a team server (only a sha256 of each token is kept),
-- the user who created each run and model (a writer may change only its own), and the actor of
-- every change event (the feed is the audit log). Rows from before have no owner (NULL).
ALTER TABLE runs ADD COLUMN created_by TEXT;
ALTER TABLE models ADD COLUMN created_by TEXT;
ALTER TABLE changes ADD COLUMN actor TEXT;
CREATE TABLE access_tokens (
    id TEXT PRIMARY KEY,
    user_name TEXT NOT NULL,
    role TEXT NOT NULL,
    token_sha256 TEXT NOT NULL,
    created_at DOUBLE PRECISION NOT NULL,
    created_by TEXT,
    revoked_at DOUBLE PRECISION,
    revoked_by TEXT
);
CREATE INDEX access_tokens_by_user ON access_tokens (user_name);
