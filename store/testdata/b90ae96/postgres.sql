-- hookferry b90ae96 fixture (PostgreSQL): pg_dump --no-owner --no-privileges --inserts, made schema-neutral (see README.md).
CREATE TABLE attempts (
    id bigint NOT NULL,
    delivery_id bigint NOT NULL,
    attempted_at timestamp with time zone NOT NULL,
    status_code bigint,
    error text DEFAULT ''::text NOT NULL,
    duration_ms numeric NOT NULL
);

CREATE SEQUENCE attempts_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE attempts_id_seq OWNED BY attempts.id;

CREATE TABLE deliveries (
    id bigint NOT NULL,
    event_id character varying(40) NOT NULL,
    webhook_id character varying(40) NOT NULL,
    event_type character varying(128) NOT NULL,
    status character varying(16) NOT NULL,
    attempts bigint DEFAULT 0 NOT NULL,
    schedule_pos bigint DEFAULT 0 NOT NULL,
    next_attempt_at timestamp with time zone,
    leased_until timestamp with time zone,
    claim_seq bigint DEFAULT 0 NOT NULL,
    last_status_code bigint,
    last_error text DEFAULT ''::text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    delivered_at timestamp with time zone
);

CREATE SEQUENCE deliveries_id_seq
    START WITH 1
    INCREMENT BY 1
    NO MINVALUE
    NO MAXVALUE
    CACHE 1;

ALTER SEQUENCE deliveries_id_seq OWNED BY deliveries.id;

CREATE TABLE events (
    id character varying(40) NOT NULL,
    tenant_id character varying(255) NOT NULL,
    producer_id character varying(255),
    type character varying(128) NOT NULL,
    payload bytea NOT NULL,
    deliveries bigint DEFAULT 0 NOT NULL,
    created_at timestamp with time zone NOT NULL
);

CREATE TABLE owners (
    tenant_id character varying(255) NOT NULL,
    user_id character varying(255) NOT NULL,
    webhook_count bigint DEFAULT 0 NOT NULL
);

CREATE TABLE tokens (
    id character varying(40) NOT NULL,
    hash character varying(64) NOT NULL,
    tenant_id character varying(255) NOT NULL,
    user_id character varying(255) NOT NULL,
    permissions text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    revoked_at timestamp with time zone
);

CREATE TABLE webhook_event_types (
    webhook_id character varying(40) NOT NULL,
    event_type character varying(128) NOT NULL
);

CREATE TABLE webhooks (
    id character varying(40) NOT NULL,
    tenant_id character varying(255) NOT NULL,
    user_id character varying(255) NOT NULL,
    url text NOT NULL,
    normalized_url text NOT NULL,
    status character varying(16) NOT NULL,
    pause_reason character varying(32) DEFAULT ''::character varying NOT NULL,
    secret text NOT NULL,
    created_at timestamp with time zone NOT NULL,
    updated_at timestamp with time zone NOT NULL,
    paused_at timestamp with time zone,
    last_unpaused_at timestamp with time zone,
    failing_since timestamp with time zone
);

ALTER TABLE ONLY attempts ALTER COLUMN id SET DEFAULT nextval('attempts_id_seq'::regclass);

ALTER TABLE ONLY deliveries ALTER COLUMN id SET DEFAULT nextval('deliveries_id_seq'::regclass);

INSERT INTO attempts VALUES (1, 1, '2026-12-01 20:44:43.913663+00', 500, '500 Internal Server Error', 5.553);
INSERT INTO attempts VALUES (2, 2, '2026-12-01 20:44:43.914528+00', 204, '', 6.678);
INSERT INTO attempts VALUES (3, 5, '2026-12-01 20:44:43.9216+00', 204, '', 1.605);
INSERT INTO attempts VALUES (4, 4, '2026-12-01 20:44:43.921692+00', 500, '500 Internal Server Error', 1.608);
INSERT INTO attempts VALUES (5, 8, '2026-12-01 20:44:43.931067+00', 204, '', 1.009);
INSERT INTO attempts VALUES (6, 7, '2026-12-01 20:44:43.931109+00', 500, '500 Internal Server Error', 0.967);

INSERT INTO deliveries VALUES (3, 'evt_06h36pj5z5rg11ay77sbsd6bzr', 'wh_06h36pj5p1ybh7dfagfy7p06fg', 'order.created', 'PENDING', 0, 0, NULL, NULL, 0, NULL, '', '2026-12-01 20:44:43.897067+00', NULL);
INSERT INTO deliveries VALUES (6, 'evt_06h36pj60hz21f8bqn92r4cg5g', 'wh_06h36pj5p1ybh7dfagfy7p06fg', 'order.created', 'PENDING', 0, 0, NULL, NULL, 0, NULL, '', '2026-12-01 20:44:43.908927+00', NULL);
INSERT INTO deliveries VALUES (1, 'evt_06h36pj5z5rg11ay77sbsd6bzr', 'wh_06h36pj5jxyk79s5yybpv5qa2g', 'order.created', 'PENDING', 1, 1, '2026-12-01 21:42:15.14652+00', NULL, 1, 500, '500 Internal Server Error', '2026-12-01 20:44:43.897067+00', NULL);
INSERT INTO deliveries VALUES (2, 'evt_06h36pj5z5rg11ay77sbsd6bzr', 'wh_06h36pj5hhrfk27vvfhfshf648', 'order.created', 'DELIVERED', 1, 0, NULL, NULL, 1, 204, '', '2026-12-01 20:44:43.897067+00', '2026-12-01 20:44:43.914528+00');
INSERT INTO deliveries VALUES (5, 'evt_06h36pj60hz21f8bqn92r4cg5g', 'wh_06h36pj5hhrfk27vvfhfshf648', 'order.created', 'DELIVERED', 1, 0, NULL, NULL, 1, 204, '', '2026-12-01 20:44:43.908927+00', '2026-12-01 20:44:43.9216+00');
INSERT INTO deliveries VALUES (9, 'evt_06h36pj62nt3q6sxmnx5jncvyc', 'wh_06h36pj5p1ybh7dfagfy7p06fg', 'order.created', 'PENDING', 0, 0, NULL, NULL, 0, NULL, '', '2026-12-01 20:44:43.925278+00', NULL);
INSERT INTO deliveries VALUES (4, 'evt_06h36pj60hz21f8bqn92r4cg5g', 'wh_06h36pj5jxyk79s5yybpv5qa2g', 'order.created', 'PENDING', 1, 1, '2026-12-01 21:32:54.944551+00', NULL, 1, 500, '500 Internal Server Error', '2026-12-01 20:44:43.908927+00', NULL);
INSERT INTO deliveries VALUES (8, 'evt_06h36pj62nt3q6sxmnx5jncvyc', 'wh_06h36pj5hhrfk27vvfhfshf648', 'order.created', 'DELIVERED', 1, 0, NULL, NULL, 1, 204, '', '2026-12-01 20:44:43.925278+00', '2026-12-01 20:44:43.931067+00');
INSERT INTO deliveries VALUES (7, 'evt_06h36pj62nt3q6sxmnx5jncvyc', 'wh_06h36pj5jxyk79s5yybpv5qa2g', 'order.created', 'PENDING', 1, 1, '2026-12-01 21:44:26.46437+00', NULL, 1, 500, '500 Internal Server Error', '2026-12-01 20:44:43.925278+00', NULL);

INSERT INTO events VALUES ('evt_06h36pj5z5rg11ay77sbsd6bzr', 'acme', 'evt-fixture-1', 'order.created', '\x7b226964223a226576745f3036683336706a357a3572673131617937377362736436627a72222c2274797065223a226f726465722e63726561746564222c2274696d657374616d70223a22323032362d31322d30315432303a34343a34335a222c2264617461223a7b226f726465725f6964223a2231227d7d', 3, '2026-12-01 20:44:43.897067+00');
INSERT INTO events VALUES ('evt_06h36pj60hz21f8bqn92r4cg5g', 'acme', NULL, 'order.created', '\x7b226964223a226576745f3036683336706a3630687a3231663862716e3932723463673567222c2274797065223a226f726465722e63726561746564222c2274696d657374616d70223a22323032362d31322d30315432303a34343a34335a222c2264617461223a7b226f726465725f6964223a2232227d7d', 0, '2026-12-01 20:44:43.908927+00');
INSERT INTO events VALUES ('evt_06h36pj62nt3q6sxmnx5jncvyc', 'acme', NULL, 'order.created', '\x7b226964223a226576745f3036683336706a36326e7433713673786d6e78356a6e63767963222c2274797065223a226f726465722e63726561746564222c2274696d657374616d70223a22323032362d31322d30315432303a34343a34335a222c2264617461223a7b226f726465725f6964223a2233222c22746f74616c223a39392e357d7d', 0, '2026-12-01 20:44:43.925278+00');

INSERT INTO owners VALUES ('acme', 'alice', 3);

INSERT INTO tokens VALUES ('tok_06h36pj2jdw9x4yqrrybvmszxw', '53d38c73ef5feec70a9d6aa6c830184445a2bfd75df839ee6ae2b62f9ef1c32f', 'acme', 'alice', 'WEBHOOK_MANAGEMENT', '2026-12-01 20:44:43.027575+00', NULL);
INSERT INTO tokens VALUES ('tok_06h36pj3advxx95erzacd3309w', '1243ff87715718a277227fa52a182a6a2e823545960754ed05758320c1929848', 'acme', 'publisher', 'EVENTS_PUBLISH', '2026-12-01 20:44:43.219519+00', NULL);
INSERT INTO tokens VALUES ('tok_06h36pj3zdwwkc09aem11vs154', '13875348cd7f2844545052d7a276af76423db8aa9fb52f8b332812b445c0050e', 'acme', 'bob', 'WEBHOOK_MANAGEMENT', '2026-12-01 20:44:43.387644+00', '2026-12-01 20:44:43.537229+00');

INSERT INTO webhook_event_types VALUES ('wh_06h36pj5hhrfk27vvfhfshf648', 'order.created');
INSERT INTO webhook_event_types VALUES ('wh_06h36pj5jxyk79s5yybpv5qa2g', 'order.created');
INSERT INTO webhook_event_types VALUES ('wh_06h36pj5p1ybh7dfagfy7p06fg', 'order.created');

INSERT INTO webhooks VALUES ('wh_06h36pj5hhrfk27vvfhfshf648', 'acme', 'alice', 'https://127.0.0.1:41577/ok', 'https://127.0.0.1:41577/ok', 'ACTIVE', '', 'whsec_5ZDkA6ImaXLLLbUeRAEULhX+GZvUoxawfL7o4elSM90=', '2026-12-01 20:44:43.788061+00', '2026-12-01 20:44:43.788061+00', NULL, NULL, NULL);
INSERT INTO webhooks VALUES ('wh_06h36pj5p1ybh7dfagfy7p06fg', 'acme', 'alice', 'https://127.0.0.1:41577/ok?webhook=C', 'https://127.0.0.1:41577/ok?webhook=C', 'PAUSED', 'USER', 'whsec_a9p6c1yGxetZ8JjfdNElCh6DiLAdFzyXcKf7pEuYoEI=', '2026-12-01 20:44:43.824829+00', '2026-12-01 20:44:43.886858+00', '2026-12-01 20:44:43.886858+00', NULL, NULL);
INSERT INTO webhooks VALUES ('wh_06h36pj5jxyk79s5yybpv5qa2g', 'acme', 'alice', 'https://127.0.0.1:41577/fail', 'https://127.0.0.1:41577/fail', 'ACTIVE', '', 'whsec_sJnUlkePrdpx2luu+VVJkAG/GgKjOqguBHbE5GbgTNw=', '2026-12-01 20:44:43.79986+00', '2026-12-01 20:44:43.916146+00', NULL, NULL, '2026-12-01 20:44:43.913682+00');

SELECT pg_catalog.setval('attempts_id_seq', 6, true);

SELECT pg_catalog.setval('deliveries_id_seq', 9, true);

ALTER TABLE ONLY attempts
    ADD CONSTRAINT attempts_pkey PRIMARY KEY (id);

ALTER TABLE ONLY deliveries
    ADD CONSTRAINT deliveries_pkey PRIMARY KEY (id);

ALTER TABLE ONLY events
    ADD CONSTRAINT events_pkey PRIMARY KEY (id);

ALTER TABLE ONLY owners
    ADD CONSTRAINT owners_pkey PRIMARY KEY (tenant_id, user_id);

ALTER TABLE ONLY tokens
    ADD CONSTRAINT tokens_pkey PRIMARY KEY (id);

ALTER TABLE ONLY webhook_event_types
    ADD CONSTRAINT webhook_event_types_pkey PRIMARY KEY (webhook_id, event_type);

ALTER TABLE ONLY webhooks
    ADD CONSTRAINT webhooks_pkey PRIMARY KEY (id);

CREATE INDEX idx_attempts_delivery_id ON attempts USING btree (delivery_id);

CREATE INDEX idx_deliveries_event_id ON deliveries USING btree (event_id);

CREATE UNIQUE INDEX idx_tokens_hash ON tokens USING btree (hash);

CREATE INDEX ix_deliveries_due ON deliveries USING btree (next_attempt_at, id) WHERE ((status)::text = 'PENDING'::text);

CREATE INDEX ix_deliveries_webhook ON deliveries USING btree (webhook_id, status);

CREATE INDEX ix_webhook_event_types_type ON webhook_event_types USING btree (event_type);

CREATE INDEX ix_webhooks_owner ON webhooks USING btree (tenant_id, user_id, created_at);

CREATE UNIQUE INDEX ux_events_producer ON events USING btree (tenant_id, producer_id);

CREATE UNIQUE INDEX ux_webhooks_owner_url ON webhooks USING btree (tenant_id, user_id, normalized_url);

ALTER TABLE ONLY attempts
    ADD CONSTRAINT fk_attempts_delivery FOREIGN KEY (delivery_id) REFERENCES deliveries(id) ON DELETE CASCADE;

ALTER TABLE ONLY deliveries
    ADD CONSTRAINT fk_deliveries_event FOREIGN KEY (event_id) REFERENCES events(id) ON DELETE CASCADE;

ALTER TABLE ONLY deliveries
    ADD CONSTRAINT fk_deliveries_webhook FOREIGN KEY (webhook_id) REFERENCES webhooks(id) ON DELETE CASCADE;

ALTER TABLE ONLY webhook_event_types
    ADD CONSTRAINT fk_webhook_event_types_webhook FOREIGN KEY (webhook_id) REFERENCES webhooks(id) ON DELETE CASCADE;

