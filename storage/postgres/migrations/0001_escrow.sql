-- Budget slices (escrow): what each replica may spend of each budget
-- window without asking again. Every amount is integer nano-USD.
CREATE TABLE hardcap.replicas (
	id          text PRIMARY KEY,
	started     timestamptz NOT NULL DEFAULT now(),
	seen        timestamptz NOT NULL DEFAULT now(),
	lease_until timestamptz NOT NULL DEFAULT now(),
	-- forgotten: hardcap cluster forget charged its slices in full; the
	-- id may never spend again.
	forgotten   timestamptz
);

-- The limit of each budget scope ("global", "project:NAME", "token:ID");
-- NULL: no limit.
CREATE TABLE hardcap.limits (
	scope      text PRIMARY KEY,
	limit_nano bigint CHECK (limit_nano >= 0),
	period     text NOT NULL
);

-- One budget window ("scope|window"). held is what the replicas hold in
-- slices (the sum of slices.granted): no grant takes it past the scope's
-- limit. committed is the spend the replicas folded in.
CREATE TABLE hardcap.windows (
	key        text PRIMARY KEY,
	scope      text NOT NULL,
	held       bigint NOT NULL DEFAULT 0 CHECK (held >= 0),
	committed  bigint NOT NULL DEFAULT 0 CHECK (committed >= 0),
	-- last_grant is the amount the latest grant added (an UPDATE's
	-- RETURNING sees only new values).
	last_grant bigint NOT NULL DEFAULT 0
);

-- A replica's slice of a window: granted is what it may spend in all
-- (cumulative, net of what it gave back), committed what it folded in;
-- granted >= committed always (an overshoot raises granted with it).
CREATE TABLE hardcap.slices (
	key             text NOT NULL REFERENCES hardcap.windows (key),
	replica         text NOT NULL REFERENCES hardcap.replicas (id),
	granted         bigint NOT NULL DEFAULT 0 CHECK (granted >= 0),
	committed       bigint NOT NULL DEFAULT 0 CHECK (committed >= 0),
	-- The changes of the latest fold, for the window's update in the same
	-- statement.
	granted_delta   bigint NOT NULL DEFAULT 0,
	committed_delta bigint NOT NULL DEFAULT 0,
	PRIMARY KEY (key, replica),
	CHECK (granted >= committed)
);
