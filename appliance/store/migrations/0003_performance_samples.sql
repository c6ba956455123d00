-- What the scheduler measures every few seconds, for /api/metrics/performance.
CREATE TABLE performance_samples (
    taken_at       TEXT PRIMARY KEY,
    cpu_percent    REAL NOT NULL,
    memory_percent REAL NOT NULL,
    disk_percent   REAL NOT NULL,
    queue_depth    INTEGER NOT NULL,
    running        INTEGER NOT NULL,
    containers     INTEGER NOT NULL
);
