-- The telemetry file (DATA_DIR/telemetry.db), apart from appliance.db: events have their
-- own writer and readers, so ingest, long aggregates and exports never queue behind (or
-- in front of) API-key lookups and the evaluation queue, and backups and migrations of
-- the main database do not carry them.

-- Dotted event names ("crucible.model.inference"), each stored once.
CREATE TABLE event_names (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);

-- One row per event, kept in time order (the primary key): a time range is one stretch
-- of the table, for exact scans, exports and retention alike. ts: milliseconds since the
-- epoch, UTC; seq: the writer's counter (the event's id is evt_<seq>). measurements: a
-- JSON object of finite numbers; metadata: a JSON object. experiment_id is
-- metadata.experiment_id when that is a string, a column for its filter and deletion.
CREATE TABLE events (
    ts INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    name_id INTEGER NOT NULL,
    owner TEXT NOT NULL,
    experiment_id TEXT,
    measurements TEXT NOT NULL,
    metadata TEXT NOT NULL,
    PRIMARY KEY (ts, seq)
) WITHOUT ROWID;
-- By name and time; one experiment's events.
CREATE INDEX events_name_ts ON events (name_id, ts);
CREATE INDEX events_experiment_ts ON events (experiment_id, ts) WHERE experiment_id IS NOT NULL;

-- The writer's counters (next_seq).
CREATE TABLE counters (
    name TEXT PRIMARY KEY,
    value INTEGER NOT NULL
);
INSERT INTO counters (name, value) VALUES ('next_seq', 1);

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
