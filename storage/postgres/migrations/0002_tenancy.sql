-- Shared tenancy: the current record of every project, token and the
-- global kill switch, as the replica that changed it last wrote it. Each
-- replica mirrors these rows into its own ledger. A token's row holds the
-- hashes of its secrets, never a secret.
CREATE SEQUENCE hardcap.tenancy_version;

CREATE TABLE hardcap.tenancy (
	-- kind is "project", "token" or "all" (the global kill switch, id '').
	kind    text NOT NULL,
	id      text NOT NULL,
	-- body is the record as storage exports it (storage.MirrorRecord).
	body    jsonb NOT NULL,
	-- deleted: a tombstone (a deleted project), kept so that it reaches
	-- every replica.
	deleted boolean NOT NULL DEFAULT false,
	-- version orders the writes: it is taken under an advisory lock held
	-- until the commit, so versions commit in order and a reader that
	-- has seen version N never misses a later commit of a lower one.
	version bigint NOT NULL,
	-- origin is the replica that wrote the row.
	origin  text NOT NULL,
	changed timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (kind, id)
);

CREATE UNIQUE INDEX tenancy_by_version ON hardcap.tenancy (version);
