-- Synchronous executions (POST /api/execute, /ws/execute) are rows of the evaluations
-- table run by the same queue: `kind` tells them apart ('eval' or 'execute'). Their own
-- limits (NULL: the appliance's default), network access, and the files the run left in
-- the work dir (JSON array of {name, size}). Environment variables are never stored.
ALTER TABLE evaluations ADD COLUMN kind TEXT NOT NULL DEFAULT 'eval';
ALTER TABLE evaluations ADD COLUMN memory_limit_mb INTEGER;
ALTER TABLE evaluations ADD COLUMN cpu_limit REAL;
ALTER TABLE evaluations ADD COLUMN network_access INTEGER NOT NULL DEFAULT 0;
ALTER TABLE evaluations ADD COLUMN files_created TEXT NOT NULL DEFAULT '[]';
