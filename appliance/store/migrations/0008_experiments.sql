-- Experiments, their runs, and what runs report: metric history, log lines, checkpoints
-- (core/experiments.py). Times are ISO 8601 with milliseconds and Z, so text order is
-- time order; lists page by keyset on (sort column, id), hence the indexes below.
CREATE TABLE experiments (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    owner TEXT NOT NULL,
    name TEXT NOT NULL,
    description TEXT NOT NULL DEFAULT '',
    tags TEXT NOT NULL DEFAULT '[]',
    status TEXT NOT NULL,
    config TEXT NOT NULL,
    -- The program its runs execute, fixed at start (type code), and its sha256.
    program TEXT,
    program_sha256 TEXT,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT
);
CREATE INDEX experiments_created ON experiments (created_at, id);
CREATE INDEX experiments_updated ON experiments (updated_at, id);
CREATE INDEX experiments_name ON experiments (name, id);
CREATE INDEX experiments_status ON experiments (status, id);
CREATE INDEX experiments_owner_created ON experiments (owner, created_at, id);

CREATE TABLE runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    owner TEXT NOT NULL,
    source TEXT NOT NULL DEFAULT 'plan',
    position INTEGER NOT NULL,
    status TEXT NOT NULL,
    attempt INTEGER NOT NULL DEFAULT 1,
    progress REAL NOT NULL DEFAULT 0,
    hyperparameters TEXT NOT NULL DEFAULT '{}',
    -- The latest value of each metric (JSON object) and the latest metrics line's step.
    metrics TEXT NOT NULL DEFAULT '{}',
    step INTEGER,
    seed INTEGER,
    code_sha256 TEXT,
    image TEXT,
    engine TEXT,
    language TEXT,
    exit_code INTEGER,
    reason TEXT,
    error TEXT,
    -- Counted against the per-run caps (settings experiment_run_max_*).
    metric_points INTEGER NOT NULL DEFAULT 0,
    log_lines INTEGER NOT NULL DEFAULT 0,
    log_bytes INTEGER NOT NULL DEFAULT 0,
    checkpoint_count INTEGER NOT NULL DEFAULT 0,
    checkpoint_bytes INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    updated_at TEXT NOT NULL,
    started_at TEXT,
    completed_at TEXT
);
CREATE INDEX runs_experiment_position ON runs (experiment_id, position);
CREATE INDEX runs_experiment_status ON runs (experiment_id, status);
CREATE INDEX runs_created ON runs (created_at, id);
CREATE INDEX runs_updated ON runs (updated_at, id);
CREATE INDEX runs_status ON runs (status, id);
CREATE INDEX runs_owner_created ON runs (owner, created_at, id);

CREATE TABLE run_metrics (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    step INTEGER NOT NULL,
    value REAL NOT NULL,
    timestamp TEXT NOT NULL
);
CREATE INDEX run_metrics_run_name ON run_metrics (run_id, name, step);

CREATE TABLE run_logs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    timestamp TEXT NOT NULL,
    level TEXT NOT NULL,
    message TEXT NOT NULL
);
CREATE INDEX run_logs_run ON run_logs (run_id, seq);

-- The file is DATA_DIR/checkpoints/<run_id>/<id>.
CREATE TABLE checkpoints (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    id TEXT NOT NULL UNIQUE,
    run_id TEXT NOT NULL REFERENCES runs (id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    size INTEGER NOT NULL,
    sha256 TEXT NOT NULL,
    epoch INTEGER,
    step INTEGER,
    metrics TEXT NOT NULL DEFAULT '{}',
    created_at TEXT NOT NULL
);
CREATE INDEX checkpoints_run ON checkpoints (run_id, seq)
