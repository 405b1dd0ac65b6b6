-- The schema of release b90ae96, which GORM AutoMigrate created. IF NOT EXISTS
-- everywhere: on a database made by that release this migration only adopts
-- it; on a new one it creates the same schema.

-- +goose Up
CREATE TABLE IF NOT EXISTS webhooks (
	id varchar(40) NOT NULL,
	tenant_id varchar(255) NOT NULL,
	user_id varchar(255) NOT NULL,
	url text NOT NULL,
	normalized_url text NOT NULL,
	status varchar(16) NOT NULL,
	pause_reason varchar(32) DEFAULT '' NOT NULL,
	secret text NOT NULL,
	created_at timestamptz NOT NULL,
	updated_at timestamptz NOT NULL,
	paused_at timestamptz,
	last_unpaused_at timestamptz,
	failing_since timestamptz,
	CONSTRAINT webhooks_pkey PRIMARY KEY (id)
);
CREATE INDEX IF NOT EXISTS ix_webhooks_owner ON webhooks (tenant_id, user_id, created_at);
CREATE UNIQUE INDEX IF NOT EXISTS ux_webhooks_owner_url ON webhooks (tenant_id, user_id, normalized_url);

CREATE TABLE IF NOT EXISTS webhook_event_types (
	webhook_id varchar(40) NOT NULL,
	event_type varchar(128) NOT NULL,
	CONSTRAINT webhook_event_types_pkey PRIMARY KEY (webhook_id, event_type),
	CONSTRAINT fk_webhook_event_types_webhook FOREIGN KEY (webhook_id) REFERENCES webhooks(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS ix_webhook_event_types_type ON webhook_event_types (event_type);

CREATE TABLE IF NOT EXISTS owners (
	tenant_id varchar(255) NOT NULL,
	user_id varchar(255) NOT NULL,
	webhook_count bigint DEFAULT 0 NOT NULL,
	CONSTRAINT owners_pkey PRIMARY KEY (tenant_id, user_id)
);

CREATE TABLE IF NOT EXISTS tokens (
	id varchar(40) NOT NULL,
	hash varchar(64) NOT NULL,
	tenant_id varchar(255) NOT NULL,
	user_id varchar(255) NOT NULL,
	permissions text NOT NULL,
	created_at timestamptz NOT NULL,
	revoked_at timestamptz,
	CONSTRAINT tokens_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS idx_tokens_hash ON tokens (hash);

CREATE TABLE IF NOT EXISTS events (
	id varchar(40) NOT NULL,
	tenant_id varchar(255) NOT NULL,
	producer_id varchar(255),
	type varchar(128) NOT NULL,
	payload bytea NOT NULL,
	deliveries bigint DEFAULT 0 NOT NULL,
	created_at timestamptz NOT NULL,
	CONSTRAINT events_pkey PRIMARY KEY (id)
);
CREATE UNIQUE INDEX IF NOT EXISTS ux_events_producer ON events (tenant_id, producer_id);

CREATE TABLE IF NOT EXISTS deliveries (
	id bigserial NOT NULL,
	event_id varchar(40) NOT NULL,
	webhook_id varchar(40) NOT NULL,
	event_type varchar(128) NOT NULL,
	status varchar(16) NOT NULL,
	attempts bigint DEFAULT 0 NOT NULL,
	schedule_pos bigint DEFAULT 0 NOT NULL,
	next_attempt_at timestamptz,
	leased_until timestamptz,
	claim_seq bigint DEFAULT 0 NOT NULL,
	last_status_code bigint,
	last_error text DEFAULT '' NOT NULL,
	created_at timestamptz NOT NULL,
	delivered_at timestamptz,
	CONSTRAINT deliveries_pkey PRIMARY KEY (id),
	CONSTRAINT fk_deliveries_event FOREIGN KEY (event_id) REFERENCES events(id) ON DELETE CASCADE,
	CONSTRAINT fk_deliveries_webhook FOREIGN KEY (webhook_id) REFERENCES webhooks(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_deliveries_event_id ON deliveries (event_id);
CREATE INDEX IF NOT EXISTS ix_deliveries_webhook ON deliveries (webhook_id, status);
CREATE INDEX IF NOT EXISTS ix_deliveries_due ON deliveries (next_attempt_at, id) WHERE ((status)::text = 'PENDING'::text);

CREATE TABLE IF NOT EXISTS attempts (
	id bigserial NOT NULL,
	delivery_id bigint NOT NULL,
	attempted_at timestamptz NOT NULL,
	status_code bigint,
	error text DEFAULT '' NOT NULL,
	duration_ms numeric NOT NULL,
	CONSTRAINT attempts_pkey PRIMARY KEY (id),
	CONSTRAINT fk_attempts_delivery FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE
);
CREATE INDEX IF NOT EXISTS idx_attempts_delivery_id ON attempts (delivery_id);
