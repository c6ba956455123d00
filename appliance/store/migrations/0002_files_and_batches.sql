-- Every limit a run hit (JSON array). Files placed in the work dir before the run (JSON object name -> text), and the
-- batch an evaluation was submitted in (the batch lane runs a batch's items together).
ALTER TABLE evaluations ADD COLUMN files TEXT NOT NULL DEFAULT '{}';
ALTER TABLE evaluations ADD COLUMN batch_id TEXT;
ALTER TABLE evaluations ADD COLUMN limits_hit TEXT NOT NULL DEFAULT '[]';
