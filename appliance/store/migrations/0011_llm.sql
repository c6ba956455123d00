-- LLM evaluation (services/llm). The response cache: one row per answer, keyed by the
-- SHA-256 of provider, base URL, model, parameters, messages and trial number
-- (services/llm/calls.py); it holds answers, never a key.
CREATE TABLE llm_cache (
    cache_key  TEXT PRIMARY KEY,
    provider   TEXT NOT NULL,
    base_url   TEXT NOT NULL,
    model      TEXT NOT NULL,
    completion TEXT NOT NULL,
    created_at TEXT NOT NULL
);

-- Suite runs and evaluate calls (kind 'suite' or 'evaluate'), with their result as JSON
-- once they end, and one transcript per case and trial.
CREATE TABLE llm_runs (
    run_id        TEXT PRIMARY KEY,
    kind          TEXT NOT NULL,
    owner         TEXT NOT NULL,
    status        TEXT NOT NULL,
    prompt        TEXT NOT NULL,
    suite         TEXT,
    model         TEXT NOT NULL,
    created_at    TEXT NOT NULL,
    finished_at   TEXT,
    done          INTEGER NOT NULL DEFAULT 0,
    total         INTEGER NOT NULL,
    error         TEXT,
    result        TEXT
);
CREATE INDEX llm_runs_by_owner ON llm_runs (owner, created_at);

CREATE TABLE llm_transcripts (
    run_id     TEXT NOT NULL REFERENCES llm_runs (run_id) ON DELETE CASCADE,
    case_index INTEGER NOT NULL,
    trial      INTEGER NOT NULL,
    case_id    TEXT NOT NULL,
    transcript TEXT NOT NULL,
    PRIMARY KEY (run_id, case_index, trial)
)
