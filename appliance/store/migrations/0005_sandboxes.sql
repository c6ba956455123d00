-- Persistent sandboxes (sandbox-api.md): one row each; the files live in DATA_DIR/sandboxes/<id>/files.
CREATE TABLE sandboxes (
    seq                  INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox_id           TEXT NOT NULL UNIQUE,
    owner                TEXT NOT NULL,
    name                 TEXT NOT NULL,
    runtime              TEXT NOT NULL,
    template             TEXT,
    engine               TEXT NOT NULL,
    image                TEXT NOT NULL,
    status               TEXT NOT NULL,
    status_reason        TEXT,
    memory_limit         INTEGER NOT NULL,   -- bytes
    cpu_limit            REAL NOT NULL,      -- cores
    disk_limit           INTEGER NOT NULL,   -- bytes
    network_enabled      INTEGER NOT NULL DEFAULT 0,
    environment          TEXT NOT NULL DEFAULT '{}',  -- JSON object, set by the caller
    template_environment TEXT NOT NULL DEFAULT '{}',  -- JSON object, from the template
    container_id         TEXT,
    created_at           TEXT NOT NULL,
    last_activity        TEXT NOT NULL
);
CREATE INDEX sandboxes_owner_seq ON sandboxes (owner, seq);

-- Snapshots of a sandbox's files, environment and resources; archives in DATA_DIR/snapshots/<id>/.
CREATE TABLE sandbox_snapshots (
    seq             INTEGER PRIMARY KEY AUTOINCREMENT,
    snapshot_id     TEXT NOT NULL UNIQUE,
    sandbox_id      TEXT NOT NULL,
    owner           TEXT NOT NULL,
    name            TEXT NOT NULL,
    description     TEXT NOT NULL DEFAULT '',
    type            TEXT NOT NULL,
    compressed      INTEGER NOT NULL,
    status          TEXT NOT NULL,
    status_reason   TEXT,
    tags            TEXT NOT NULL DEFAULT '{}',
    environment     TEXT NOT NULL DEFAULT '{}',
    runtime         TEXT NOT NULL,
    memory_limit    INTEGER NOT NULL,
    cpu_limit       REAL NOT NULL,
    disk_limit      INTEGER NOT NULL,
    network_enabled INTEGER NOT NULL DEFAULT 0,
    size_bytes      INTEGER,
    content_bytes   INTEGER,
    file_count      INTEGER,
    created_at      TEXT NOT NULL,
    completed_at    TEXT
);
CREATE INDEX sandbox_snapshots_sandbox ON sandbox_snapshots (sandbox_id, seq);
