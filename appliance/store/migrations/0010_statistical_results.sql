-- Stored results of statistical tests (services/statistics): the request (test type,
-- groups, where the values came from, options) and the outcome as one JSON document,
-- with the columns lists filter and sort on beside it. experiment_id is NULL for a test
-- on inline data that names no experiment; an experiment's results go with it.
CREATE TABLE statistical_results (
    stat_id       TEXT PRIMARY KEY,
    owner         TEXT NOT NULL,
    experiment_id TEXT REFERENCES experiments (id) ON DELETE CASCADE,
    test_type     TEXT NOT NULL,
    metric        TEXT,
    p_value       REAL NOT NULL,
    body          TEXT NOT NULL,
    created_at    TEXT NOT NULL
);
CREATE INDEX statistical_results_by_experiment ON statistical_results (experiment_id, created_at);
CREATE INDEX statistical_results_by_owner ON statistical_results (owner, created_at)
