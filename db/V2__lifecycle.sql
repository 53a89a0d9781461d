-- The transfer lifecycle: idempotency keys, holds (two-phase transfers) and reversals.

-- Idempotency keys -------------------------------------------------------------------------------
-- A key is written in the same database transaction as the movement it protects, so no crash can
-- separate "moved the money" from "remembered the answer".
CREATE TABLE idempotency_keys (
    scope         text        NOT NULL,
    key           text        NOT NULL,
    fingerprint   bytea       NOT NULL,
    status_code   int         NOT NULL,
    location      text,
    response_body bytea       NOT NULL,
    created_at    timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT idempotency_keys_pkey PRIMARY KEY (scope, key),
    CONSTRAINT idempotency_keys_key_format CHECK (key ~ '^[\x20-\x7E]{1,255}$'),
    CONSTRAINT idempotency_keys_fingerprint_sha256 CHECK (octet_length(fingerprint) = 32),
    CONSTRAINT idempotency_keys_status_stored CHECK (status_code BETWEEN 200 AND 499),
    CONSTRAINT idempotency_keys_body_size CHECK (octet_length(response_body) <= 1048576)
);

-- The purge deletes the oldest keys first.
CREATE INDEX idempotency_keys_by_age ON idempotency_keys (created_at);

-- Holds --------------------------------------------------------------------------------------------
CREATE TABLE holds (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    debit_account_id  uuid        NOT NULL,
    credit_account_id uuid        NOT NULL,
    amount            bigint      NOT NULL,
    currency          char(3)     NOT NULL,
    description       text,
    metadata          jsonb       NOT NULL DEFAULT '{}',
    expires_at        timestamptz NOT NULL,
    created_at        timestamptz NOT NULL,
    CONSTRAINT holds_pkey PRIMARY KEY (id),
    CONSTRAINT holds_amount_positive CHECK (amount > 0),
    CONSTRAINT holds_amount_max CHECK (amount <= 1000000000000000),
    CONSTRAINT holds_distinct_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT holds_expire_later CHECK (expires_at > created_at),
    CONSTRAINT holds_description_length CHECK (char_length(description) <= 500),
    CONSTRAINT holds_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT holds_metadata_size CHECK (octet_length(metadata::text) <= 8192),
    CONSTRAINT holds_debit_account_fkey FOREIGN KEY (debit_account_id, currency) REFERENCES accounts (id, currency),
    CONSTRAINT holds_credit_account_fkey FOREIGN KEY (credit_account_id, currency) REFERENCES accounts (id, currency)
);

-- The expiry sweeper looks for holds past their time.
CREATE INDEX holds_by_expiry ON holds (expires_at);

-- A hold's life, insert-only: 'pending' when placed, then exactly one outcome.
CREATE TABLE hold_events (
    hold_id         uuid        NOT NULL,
    status          text        NOT NULL,
    captured_amount bigint,
    transaction_id  uuid,
    created_at      timestamptz NOT NULL,
    CONSTRAINT hold_events_pkey PRIMARY KEY (hold_id, status),
    CONSTRAINT hold_events_hold_fkey FOREIGN KEY (hold_id) REFERENCES holds (id),
    CONSTRAINT hold_events_transaction_fkey FOREIGN KEY (transaction_id) REFERENCES transactions (id),
    CONSTRAINT hold_events_status_known CHECK (status IN ('pending', 'posted', 'voided', 'expired')),
    CONSTRAINT hold_events_posted_has_capture
        CHECK ((status = 'posted') = (transaction_id IS NOT NULL AND captured_amount IS NOT NULL)),
    CONSTRAINT hold_events_captured_positive CHECK (captured_amount > 0)
);

-- Racing capture, void and expiry: whatever the application does, only one outcome can be recorded.
CREATE UNIQUE INDEX hold_events_one_outcome ON hold_events (hold_id) WHERE status <> 'pending';

CREATE FUNCTION hold_events_check_capture() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    held_amount bigint;
BEGIN
    SELECT h.amount INTO held_amount FROM holds h WHERE h.id = NEW.hold_id;
    IF NEW.captured_amount > held_amount THEN
        RAISE EXCEPTION 'capture of % exceeds hold % of %', NEW.captured_amount, NEW.hold_id, held_amount
            USING ERRCODE = 'check_violation', CONSTRAINT = 'hold_events_capture_within_hold';
    END IF;
    IF NEW.status <> 'pending' AND NOT EXISTS (
            SELECT 1 FROM hold_events e WHERE e.hold_id = NEW.hold_id AND e.status = 'pending') THEN
        RAISE EXCEPTION 'hold % was never pending', NEW.hold_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'hold_events_outcome_after_pending';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER hold_events_check_capture BEFORE INSERT ON hold_events
    FOR EACH ROW EXECUTE FUNCTION hold_events_check_capture();

-- Balances carry what is held ----------------------------------------------------------------------
-- available = balance - held. A hold moves no money: it adds to held (held_delta > 0); a capture posts
-- a transaction and releases the hold (held_delta < 0) in the same balance row; a void or an expiry
-- only releases it.
ALTER TABLE balances
    ADD COLUMN held       bigint NOT NULL DEFAULT 0,
    ADD COLUMN held_delta bigint NOT NULL DEFAULT 0,
    ADD COLUMN hold_id    uuid,
    ALTER COLUMN transaction_id DROP NOT NULL,
    DROP CONSTRAINT balances_delta_nonzero,
    ADD CONSTRAINT balances_changes_something CHECK (delta <> 0 OR held_delta <> 0),
    ADD CONSTRAINT balances_held_nonnegative CHECK (held >= 0),
    ADD CONSTRAINT balances_has_cause CHECK (transaction_id IS NOT NULL OR hold_id IS NOT NULL),
    ADD CONSTRAINT balances_hold_fkey FOREIGN KEY (hold_id) REFERENCES holds (id);

CREATE INDEX balances_by_hold ON balances (hold_id) WHERE hold_id IS NOT NULL;

-- The chain check now covers held as well, and guards available (balance - held), not just balance.
CREATE OR REPLACE FUNCTION balances_check_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev_version    bigint;
    prev_balance    bigint;
    prev_held       bigint;
    prev_created_at timestamptz;
    may_go_negative boolean;
BEGIN
    SELECT b.version, b.balance, b.held, b.created_at
      INTO prev_version, prev_balance, prev_held, prev_created_at
      FROM balances b
     WHERE b.account_id = NEW.account_id AND b.version < NEW.version
     ORDER BY b.version DESC
     LIMIT 1;
    IF coalesce(prev_version, 0) + 1 <> NEW.version THEN
        RAISE EXCEPTION 'balance chain broken for account %: version % after %',
            NEW.account_id, NEW.version, coalesce(prev_version, 0)
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF coalesce(prev_balance, 0) + NEW.delta <> NEW.balance
       OR coalesce(prev_held, 0) + NEW.held_delta <> NEW.held THEN
        RAISE EXCEPTION 'balance chain broken for account %', NEW.account_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'balances_chain_exact';
    END IF;
    IF NEW.created_at < prev_created_at THEN
        RAISE EXCEPTION 'balance chain broken for account %: time went backwards', NEW.account_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'balances_chain_exact';
    END IF;
    IF NEW.balance - NEW.held < 0 THEN
        SELECT a.allow_negative INTO may_go_negative FROM accounts a WHERE a.id = NEW.account_id;
        IF NOT may_go_negative THEN
            RAISE EXCEPTION 'account % would go negative', NEW.account_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'balances_non_negative';
        END IF;
    END IF;
    RETURN NULL;
END $$;

-- Transactions: reversals and captures ---------------------------------------------------------------
ALTER TABLE transactions
    ADD COLUMN reversal_of uuid,
    ADD COLUMN hold_id     uuid,
    DROP CONSTRAINT transactions_type_known,
    ADD CONSTRAINT transactions_type_known CHECK (type IN ('transfer', 'deposit', 'withdrawal', 'reversal')),
    ADD CONSTRAINT transactions_reversal_fkey FOREIGN KEY (reversal_of) REFERENCES transactions (id),
    ADD CONSTRAINT transactions_reversal_typed CHECK ((type = 'reversal') = (reversal_of IS NOT NULL)),
    ADD CONSTRAINT transactions_hold_fkey FOREIGN KEY (hold_id) REFERENCES holds (id);

CREATE INDEX transactions_reversals ON transactions (reversal_of) WHERE reversal_of IS NOT NULL;

-- A reversal sends money back along the original's path, and all reversals of one transaction
-- together never exceed it. The original's row is locked first, so concurrent reversals of it take
-- turns here even if they come from outside the application.
CREATE FUNCTION transactions_check_reversal() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    original transactions%ROWTYPE;
    reversed bigint;
BEGIN
    SELECT * INTO original FROM transactions WHERE id = NEW.reversal_of FOR NO KEY UPDATE;
    IF original.type NOT IN ('transfer') OR NEW.debit_account_id <> original.credit_account_id
       OR NEW.credit_account_id <> original.debit_account_id OR NEW.currency <> original.currency THEN
        RAISE EXCEPTION 'reversal % does not mirror transaction %', NEW.id, NEW.reversal_of
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_reversal_mirrors';
    END IF;
    SELECT coalesce(sum(t.amount), 0) INTO reversed FROM transactions t WHERE t.reversal_of = NEW.reversal_of;
    IF reversed + NEW.amount > original.amount THEN
        RAISE EXCEPTION 'reversals of % would exceed its amount', NEW.reversal_of
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_reversal_within_original';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER transactions_check_reversal BEFORE INSERT ON transactions
    FOR EACH ROW WHEN (NEW.reversal_of IS NOT NULL) EXECUTE FUNCTION transactions_check_reversal();

-- Holds and their events are history too: insert-only.
CREATE TRIGGER holds_insert_only BEFORE UPDATE OR DELETE ON holds
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER holds_no_truncate BEFORE TRUNCATE ON holds
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER hold_events_insert_only BEFORE UPDATE OR DELETE ON hold_events
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER hold_events_no_truncate BEFORE TRUNCATE ON hold_events
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();

-- Double entry, checked from both ends ---------------------------------------------------------------
-- The check on transactions (V1) fires when a transaction is inserted. A balance row added later to an
-- already committed transaction must not slip past it: the same check fires, at commit, for every
-- balance row that belongs to a transaction. One function serves both triggers.
CREATE FUNCTION ledger_check_balanced(transaction uuid) RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    tx          transactions%ROWTYPE;
    debit_rows  int;
    credit_rows int;
    all_rows    int;
BEGIN
    SELECT * INTO tx FROM transactions WHERE id = transaction;
    SELECT count(*) FILTER (WHERE b.account_id = tx.debit_account_id AND b.delta = -tx.amount),
           count(*) FILTER (WHERE b.account_id = tx.credit_account_id AND b.delta = tx.amount),
           count(*)
      INTO debit_rows, credit_rows, all_rows
      FROM balances b
     WHERE b.transaction_id = transaction;
    IF debit_rows <> 1 OR credit_rows <> 1 OR all_rows <> 2 THEN
        RAISE EXCEPTION 'transaction % is not balanced', transaction
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_balanced';
    END IF;
END $$;

CREATE OR REPLACE FUNCTION transactions_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_balanced(NEW.id);
    RETURN NULL;
END $$;

CREATE FUNCTION balances_check_transaction_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM ledger_check_balanced(NEW.transaction_id);
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER balances_check_transaction_balanced AFTER INSERT ON balances
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW WHEN (NEW.transaction_id IS NOT NULL)
    EXECUTE FUNCTION balances_check_transaction_balanced();

-- Metadata caps: the application allows 4 KiB as jsonb prints it; the database allows twice that, so
-- the two checks can never disagree on a request the application accepted.
ALTER TABLE accounts
    DROP CONSTRAINT accounts_metadata_size,
    ADD CONSTRAINT accounts_metadata_size CHECK (octet_length(metadata::text) <= 8192);
ALTER TABLE transactions
    DROP CONSTRAINT transactions_metadata_size,
    ADD CONSTRAINT transactions_metadata_size CHECK (octet_length(metadata::text) <= 8192);
