-- Usage records of every replica, shipped from each replica's ledger
-- outbox (cluster.Outbox). (replica, id, ended) is the record's identity,
-- so shipping a record twice (a crash between the insert and the outbox's
-- delete) inserts it once: id is its reservation id, unique in the
-- replica's ledger; ended (to the microsecond) keeps the records of a
-- replica whose data directory was started afresh under the same
-- replica_id, whose reservation ids start again from the first, from
-- being taken for the old ones. Amounts are integer nano-USD; body is the
-- whole record as JSON (its time to the nanosecond).
CREATE TABLE hardcap.records (
	replica       text NOT NULL,
	id            text NOT NULL,
	ended         timestamptz NOT NULL,
	project       text NOT NULL,
	token         text NOT NULL,
	model         text NOT NULL,
	provider      text NOT NULL,
	route         text NOT NULL,
	charged_nano  bigint NOT NULL,
	reserved_nano bigint NOT NULL,
	body          jsonb NOT NULL,
	PRIMARY KEY (replica, id, ended)
);

CREATE INDEX records_ended ON hardcap.records (ended, replica, id);
CREATE INDEX records_project ON hardcap.records (project, ended);
CREATE INDEX records_token ON hardcap.records (token, ended);

-- Alerts delivered once across the cluster: the first replica to insert
-- an alert's dedupe key delivers it (ClaimAlert).
CREATE TABLE hardcap.alerts_fired (
	dedupe_key text PRIMARY KEY,
	replica    text NOT NULL,
	at         timestamptz NOT NULL DEFAULT now()
);
