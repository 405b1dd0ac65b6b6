-- Each webhook's count of PENDING deliveries (buffered_events), kept by
-- triggers on deliveries so that no statement can forget it: reading it is a
-- few rows, not a count of a backlog that may be millions long. A webhook's
-- count is the sum of its shards; each connection adds to its own (its
-- backend pid modulo 16), so that the publish writer and the recorders of a
-- hot webhook do not queue on one row until each other's commit.
--
-- Inserts and deletes count per statement (a publish inserts many rows in
-- one), in webhook order, so that one statement's locks never cross
-- another's. Updates count per row, and only those that change whether the
-- row is PENDING: claims, releases and retries (most updates) do not call the
-- function at all, where a statement trigger collected every updated row
-- (~10 µs a row).

-- +goose Up
CREATE TABLE webhook_backlog (
	webhook_id text NOT NULL REFERENCES webhooks(id) ON DELETE CASCADE,
	shard integer NOT NULL,
	n bigint NOT NULL,
	PRIMARY KEY (webhook_id, shard)
);

-- A delivery deleted with its webhook (the webhook row is gone) counts
-- nothing: the webhook's rows go with it.
-- +goose StatementBegin
CREATE FUNCTION webhook_backlog_add() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	IF TG_OP = 'INSERT' THEN
		INSERT INTO webhook_backlog AS b (webhook_id, shard, n)
		SELECT webhook_id, pg_backend_pid() % 16, COUNT(*) FROM new_rows WHERE status = 'PENDING'
		GROUP BY webhook_id ORDER BY webhook_id
		ON CONFLICT (webhook_id, shard) DO UPDATE SET n = b.n + excluded.n;
	ELSE
		INSERT INTO webhook_backlog AS b (webhook_id, shard, n)
		SELECT o.webhook_id, pg_backend_pid() % 16, -COUNT(*) FROM old_rows o
		WHERE o.status = 'PENDING' AND EXISTS (SELECT 1 FROM webhooks w WHERE w.id = o.webhook_id)
		GROUP BY o.webhook_id ORDER BY o.webhook_id
		ON CONFLICT (webhook_id, shard) DO UPDATE SET n = b.n + excluded.n;
	END IF;
	RETURN NULL;
END $$;
-- +goose StatementEnd

-- +goose StatementBegin
CREATE FUNCTION webhook_backlog_update() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
	INSERT INTO webhook_backlog AS b (webhook_id, shard, n)
	VALUES (NEW.webhook_id, pg_backend_pid() % 16, CASE WHEN NEW.status = 'PENDING' THEN 1 ELSE -1 END)
	ON CONFLICT (webhook_id, shard) DO UPDATE SET n = b.n + excluded.n;
	RETURN NULL;
END $$;
-- +goose StatementEnd

CREATE TRIGGER deliveries_backlog_insert AFTER INSERT ON deliveries
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_backlog_add();
CREATE TRIGGER deliveries_backlog_update AFTER UPDATE OF status ON deliveries
	FOR EACH ROW WHEN ((OLD.status = 'PENDING') <> (NEW.status = 'PENDING')) EXECUTE FUNCTION webhook_backlog_update();
CREATE TRIGGER deliveries_backlog_delete AFTER DELETE ON deliveries
	REFERENCING OLD TABLE AS old_rows FOR EACH STATEMENT EXECUTE FUNCTION webhook_backlog_add();

INSERT INTO webhook_backlog (webhook_id, shard, n)
	SELECT webhook_id, 0, COUNT(*) FROM deliveries WHERE status = 'PENDING' GROUP BY webhook_id;

-- +goose Down
DROP TRIGGER deliveries_backlog_delete ON deliveries;
DROP TRIGGER deliveries_backlog_update ON deliveries;
DROP TRIGGER deliveries_backlog_insert ON deliveries;
DROP FUNCTION webhook_backlog_update();
DROP FUNCTION webhook_backlog_add();
DROP TABLE webhook_backlog;
