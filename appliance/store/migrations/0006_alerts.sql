-- Alerts the appliance raises about itself (services/alerts.py). `rule` is the rule's
-- stable key; at most one alert per rule is open (active or acknowledged) at a time.
CREATE TABLE alerts (
    alert_id             TEXT PRIMARY KEY,
    rule                 TEXT NOT NULL,
    rule_name            TEXT NOT NULL,
    severity             TEXT NOT NULL,
    status               TEXT NOT NULL,
    message              TEXT NOT NULL,
    triggered_at         TEXT NOT NULL,
    value                REAL,
    threshold            REAL,
    acknowledged_at      TEXT,
    acknowledged_by      TEXT,
    acknowledged_comment TEXT,
    resolved_at          TEXT,
    resolved_by          TEXT,
    resolved_comment     TEXT
);
CREATE UNIQUE INDEX alerts_one_open_per_rule ON alerts (rule) WHERE status != 'resolved';
CREATE INDEX alerts_by_time ON alerts (triggered_at);
