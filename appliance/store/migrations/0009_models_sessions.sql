-- The model registry (services/models/registry.py). `source` is 'api' for entries made
-- through POST /api/v1/models (their `owner` may change them) or 'config' for entries of
-- the `models` setting (owner '', read-only, re-synced at every start). `config` is JSON
-- without secrets: a provider key is named by config.api_key_env, never stored.
CREATE TABLE models (
    model_id   TEXT PRIMARY KEY,
    name       TEXT NOT NULL,
    provider   TEXT NOT NULL,
    type       TEXT NOT NULL,
    config     TEXT NOT NULL,
    status     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    source     TEXT NOT NULL,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL
);
CREATE INDEX models_by_owner ON models (owner, created_at);

-- Browser sessions of the experiments API (services/access/sessions.py): the cookie's
-- token is stored only as its SHA-256 hash. A session acts as the API key it was opened
-- with, and ends with it.
CREATE TABLE sessions (
    session_id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    key_id     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    created_at TEXT NOT NULL,
    expires_at TEXT NOT NULL
);
CREATE INDEX sessions_by_key ON sessions (key_id);
CREATE INDEX sessions_by_expiry ON sessions (expires_at)
