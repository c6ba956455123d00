-- network.allowed_hosts of a persistent sandbox (and of the snapshots taken of it): a JSON
-- list of canonical entries (core/allowed_hosts.py), kept whether or not the network is on.
ALTER TABLE sandboxes ADD COLUMN allowed_hosts TEXT NOT NULL DEFAULT '[]';
ALTER TABLE sandbox_snapshots ADD COLUMN allowed_hosts TEXT NOT NULL DEFAULT '[]';
