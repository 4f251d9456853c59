-- Usage records of every replica, shipped from each replica's ledger
-- outbox (cluster.Outbox). (replica, id) is the record's identity: id is
-- its reservation id, unique in the replica's ledger, so shipping a record
-- twice (a crash between the insert and the outbox's delete) inserts it
-- once. Amounts are integer nano-USD; body is the whole record as JSON.
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
	PRIMARY KEY (replica, id)
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
