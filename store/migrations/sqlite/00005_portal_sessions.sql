-- Portal sessions: a token may expire. NULL is never (every token made by
-- `hookferry token create`); a portal session's token carries its end.

-- +goose Up
ALTER TABLE tokens ADD COLUMN expires_at datetime;

-- +goose Down
ALTER TABLE tokens DROP COLUMN expires_at;
