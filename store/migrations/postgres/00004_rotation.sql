-- Secret rotation: the signing keys a rotation replaced that still sign, with
-- their expiry, as one value sealed by the keyring like webhooks.secret ('' for
-- none). A webhook's signing (SYMMETRIC or ASYMMETRIC) is the kind of its
-- current key, told by the key's prefix, so it needs no column.

-- +goose Up
ALTER TABLE webhooks ADD COLUMN previous_secrets text NOT NULL DEFAULT '';

-- +goose Down
ALTER TABLE webhooks DROP COLUMN previous_secrets;
