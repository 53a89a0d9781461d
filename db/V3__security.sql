-- Who may do what: API keys, and the owner of every user account.

CREATE TABLE api_keys (
    id         uuid        NOT NULL DEFAULT gen_random_uuid(),
    client_id  uuid        NOT NULL,
    name       text        NOT NULL,
    role       text        NOT NULL,
    -- The key's first characters, to recognise it in a list. The key itself is never stored: only its
    -- SHA-256 (a key has 256 random bits, so a fast hash is as safe as a slow one).
    key_prefix text        NOT NULL,
    key_hash   bytea       NOT NULL,
    created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
    revoked_at timestamptz,
    CONSTRAINT api_keys_pkey PRIMARY KEY (id),
    CONSTRAINT api_keys_key_hash_key UNIQUE (key_hash),
    CONSTRAINT api_keys_name_length CHECK (char_length(name) BETWEEN 1 AND 100),
    CONSTRAINT api_keys_role_known CHECK (role IN ('admin', 'client')),
    CONSTRAINT api_keys_hash_sha256 CHECK (octet_length(key_hash) = 32),
    CONSTRAINT api_keys_revoked_after_created CHECK (revoked_at IS NULL OR revoked_at >= created_at)
);

-- A user account belongs to the client that opened it; system accounts belong to no one.
ALTER TABLE accounts
    ADD COLUMN owner_id uuid,
    ADD CONSTRAINT accounts_user_has_owner CHECK (kind = 'system' OR owner_id IS NOT NULL) NOT VALID;

-- A client lists its accounts in id order.
CREATE INDEX accounts_by_owner ON accounts (owner_id, id);

-- Ownership is part of an account's identity: it never changes.
CREATE OR REPLACE FUNCTION accounts_guard_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'accounts are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.currency <> OLD.currency OR NEW.kind <> OLD.kind
       OR NEW.created_at <> OLD.created_at OR NEW.owner_id IS DISTINCT FROM OLD.owner_id THEN
        RAISE EXCEPTION 'an account''s id, currency, kind, owner and creation time are immutable'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;
