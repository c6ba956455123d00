-- Evaluations: one row per submission; `seq` gives queue order.
CREATE TABLE evaluations (
    seq              INTEGER PRIMARY KEY AUTOINCREMENT,
    eval_id          TEXT NOT NULL UNIQUE,
    owner            TEXT NOT NULL,
    language         TEXT NOT NULL,
    engine           TEXT NOT NULL,
    code             TEXT NOT NULL,
    timeout          REAL NOT NULL,
    status           TEXT NOT NULL,
    created_at       TEXT NOT NULL,
    started_at       TEXT,
    completed_at     TEXT,
    output           TEXT NOT NULL DEFAULT '',
    error            TEXT NOT NULL DEFAULT '',
    exit_code        INTEGER,
    reason           TEXT,
    output_truncated INTEGER NOT NULL DEFAULT 0,
    error_truncated  INTEGER NOT NULL DEFAULT 0,
    execution_time   REAL,
    memory_used      INTEGER
);
CREATE INDEX evaluations_status_seq ON evaluations (status, seq);
CREATE INDEX evaluations_owner_seq ON evaluations (owner, seq);

-- API keys: the secret is kept only as an argon2 hash.
CREATE TABLE api_keys (
    key_id       TEXT PRIMARY KEY,
    name         TEXT NOT NULL,
    owner        TEXT NOT NULL,
    permissions  TEXT NOT NULL,          -- JSON array of permission names
    secret_hash  TEXT NOT NULL,
    created_at   TEXT NOT NULL,
    expires_at   TEXT,
    revoked_at   TEXT,
    last_used_at TEXT
);

-- Small facts about this installation (instance id, ...).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);
