-- Benchmark datasets (services/llm/datasets.py): one row per imported dataset and one
-- per item, the item as JSON (core/llm/datasets.py's DatasetItem). Numbered 13: 12 is
-- the run tags' migration.
CREATE TABLE datasets (
    name       TEXT PRIMARY KEY,
    kind       TEXT NOT NULL,
    item_count INTEGER NOT NULL,
    source     TEXT NOT NULL,
    owner      TEXT NOT NULL,
    created_at TEXT NOT NULL
);

CREATE TABLE dataset_items (
    dataset  TEXT NOT NULL REFERENCES datasets (name) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    item     TEXT NOT NULL,
    PRIMARY KEY (dataset, position)
);

-- Benchmark results (POST /api/v1/benchmark, experiments of type benchmark and ensemble):
-- the document's integer id, one row per model (or ensemble) and run, and whether each
-- item was answered right, so two results on the same items pair up (McNemar). They go
-- with their experiment.
CREATE TABLE benchmark_results (
    id            INTEGER PRIMARY KEY AUTOINCREMENT,
    experiment_id TEXT NOT NULL REFERENCES experiments (id) ON DELETE CASCADE,
    run_id        TEXT NOT NULL UNIQUE,
    owner         TEXT NOT NULL,
    dataset       TEXT NOT NULL,
    provider      TEXT NOT NULL,
    model         TEXT NOT NULL,
    status        TEXT NOT NULL,
    correct       INTEGER NOT NULL DEFAULT 0,
    errors        INTEGER NOT NULL DEFAULT 0,
    total         INTEGER NOT NULL,
    total_time_ms INTEGER NOT NULL DEFAULT 0,
    total_tokens  INTEGER NOT NULL DEFAULT 0,
    error         TEXT,
    created_at    TEXT NOT NULL,
    finished_at   TEXT
);
CREATE INDEX benchmark_results_by_dataset ON benchmark_results (dataset, status);

CREATE TABLE benchmark_items (
    result_id  INTEGER NOT NULL REFERENCES benchmark_results (id) ON DELETE CASCADE,
    item_id    TEXT NOT NULL,
    position   INTEGER NOT NULL,
    correct    INTEGER NOT NULL,
    transcript TEXT NOT NULL,
    PRIMARY KEY (result_id, item_id)
)
