-- The telemetry file (DATA_DIR/telemetry.db), apart from appliance.db: events have their
-- own writer and readers, so ingest, long aggregates and exports never queue behind (or
-- in front of) API-key lookups and the evaluation queue, and backups and migrations of
-- the main database do not carry them.

-- Dotted event names ("crucible.model.inference"), each stored once.
CREATE TABLE event_names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per event, in arrival order (the rowid; the event's id is evt_<id>): inserts
-- append to the table, and only the small index entries land out of order. (A table
-- kept in timestamp order was measured at half the ingest rate: events arrive a little
-- out of order, and each commit then rewrote many big table pages.) ts: milliseconds
-- since the epoch, UTC. measurements: a JSON object of finite numbers; metadata: a JSON
-- object. experiment_id is metadata.experiment_id when that is a string, a column for
-- its filter and its deletion.
CREATE TABLE events (
    id INTEGER PRIMARY KEY,
    ts INTEGER NOT NULL,
    name_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    experiment_id TEXT,
    measurements TEXT NOT NULL,
    metadata TEXT NOT NULL
);
-- By time (lists, exports, retention, exact scans); by name and time; one experiment's.
CREATE INDEX events_ts ON events (ts);
CREATE INDEX events_name_ts ON events (name_id, ts);
CREATE INDEX events_experiment_ts ON events (experiment_id, ts) WHERE experiment_id IS NOT NULL;

-- Hourly rollups, kept in the same transaction as the events they count: per hour, event
-- name (name_id 0: every name together), owner and measurement ('' : the events
-- themselves, count only) the count, sum, minimum, maximum and a log-histogram sketch
-- (core/telemetry_sketch.py) of the values.
CREATE TABLE rollups (
    measurement TEXT NOT NULL,
    hour INTEGER NOT NULL,
    name_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    count INTEGER NOT NULL,
    sum REAL NOT NULL,
    min REAL,
    max REAL,
    sketch BLOB,
    PRIMARY KEY (measurement, hour, name_id, owner)
) WITHOUT ROWID;

-- Exports too large to answer at once (POST /api/v1/telemetry/export): the job, and
-- the file it writes under DATA_DIR/exports/.
CREATE TABLE export_jobs (
    id TEXT PRIMARY KEY,
    owner TEXT NOT NULL,
    status TEXT NOT NULL,
    format TEXT NOT NULL,
    request TEXT NOT NULL,
    file TEXT NOT NULL,
    rows INTEGER NOT NULL DEFAULT 0,
    bytes INTEGER NOT NULL DEFAULT 0,
    estimated_rows INTEGER NOT NULL DEFAULT 0,
    error TEXT,
    created_at TEXT NOT NULL,
    completed_at TEXT,
    expires_at TEXT
);
