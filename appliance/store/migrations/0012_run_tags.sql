-- Run tags (services/experiments/run_tags.py): a JSON array of text, like experiments.tags.
-- Lists filter on them with json_each (filter[tag]); statistics group runs by them
-- (group_field `tags` or `tags.<key>`, store/experiment_tables.py). Runs are few per
-- experiment, so a scan of an experiment's runs is cheap and no side table is needed.
ALTER TABLE runs ADD COLUMN tags TEXT NOT NULL DEFAULT '[]';
