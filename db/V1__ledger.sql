-- Paystream's ledger: accounts, and an insert-only record of every money movement.
--
-- The application checks every rule below before it writes; the database checks them again, so a
-- bug in one place cannot corrupt the ledger (pair assertions). A rule the database refuses arrives
-- in the application as a SQLSTATE, never as silently wrong money.

-- Accounts ---------------------------------------------------------------------------------------
CREATE TABLE accounts (
    id             uuid        NOT NULL DEFAULT gen_random_uuid(),
    currency       char(3)     NOT NULL,
    name           text        NOT NULL,
    kind           text        NOT NULL,
    allow_negative boolean     NOT NULL DEFAULT false,
    metadata       jsonb       NOT NULL DEFAULT '{}',
    created_at     timestamptz NOT NULL DEFAULT clock_timestamp(),
    CONSTRAINT accounts_pkey PRIMARY KEY (id),
    -- Lets ledger rows reference (account, currency) together, so a movement in EUR can never
    -- touch a USD account, whatever the application sends.
    CONSTRAINT accounts_id_currency_key UNIQUE (id, currency),
    CONSTRAINT accounts_currency_format CHECK (currency ~ '^[A-Z]{3}$'),
    CONSTRAINT accounts_name_length CHECK (char_length(name) BETWEEN 1 AND 200),
    CONSTRAINT accounts_kind_known CHECK (kind IN ('user', 'system')),
    -- Only the outside world (a system account) may go below zero.
    CONSTRAINT accounts_negative_only_system CHECK (NOT allow_negative OR kind = 'system'),
    -- Metadata is a small JSON object: 4 KiB of text at most.
    CONSTRAINT accounts_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT accounts_metadata_size CHECK (octet_length(metadata::text) <= 4096)
);

-- One system account per currency: the outside world that deposits come from and withdrawals go to.
CREATE UNIQUE INDEX accounts_one_system_per_currency ON accounts (currency) WHERE kind = 'system';

-- Identity of an account never changes; accounts are never deleted (the ledger points at them).
CREATE FUNCTION accounts_guard_identity() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        RAISE EXCEPTION 'accounts are never deleted' USING ERRCODE = 'restrict_violation';
    END IF;
    IF NEW.id <> OLD.id OR NEW.currency <> OLD.currency OR NEW.kind <> OLD.kind
       OR NEW.created_at <> OLD.created_at THEN
        RAISE EXCEPTION 'an account''s id, currency, kind and creation time are immutable'
            USING ERRCODE = 'restrict_violation';
    END IF;
    RETURN NEW;
END $$;

CREATE TRIGGER accounts_guard_identity BEFORE UPDATE OR DELETE ON accounts
    FOR EACH ROW EXECUTE FUNCTION accounts_guard_identity();

-- Transactions: one immutable row per money movement -------------------------------------------
CREATE TABLE transactions (
    id                uuid        NOT NULL DEFAULT gen_random_uuid(),
    type              text        NOT NULL,
    debit_account_id  uuid        NOT NULL,
    credit_account_id uuid        NOT NULL,
    amount            bigint      NOT NULL,
    currency          char(3)     NOT NULL,
    description       text,
    metadata          jsonb       NOT NULL DEFAULT '{}',
    created_at        timestamptz NOT NULL,
    CONSTRAINT transactions_pkey PRIMARY KEY (id),
    CONSTRAINT transactions_id_currency_key UNIQUE (id, currency),
    CONSTRAINT transactions_type_known CHECK (type IN ('transfer', 'deposit', 'withdrawal')),
    -- Amounts are minor units: strictly positive, at most 10^15 (well inside bigint, so a balance
    -- built from them cannot overflow before it hits the ledger's own limits).
    CONSTRAINT transactions_amount_positive CHECK (amount > 0),
    CONSTRAINT transactions_amount_max CHECK (amount <= 1000000000000000),
    CONSTRAINT transactions_distinct_accounts CHECK (debit_account_id <> credit_account_id),
    CONSTRAINT transactions_description_length CHECK (char_length(description) <= 500),
    CONSTRAINT transactions_metadata_object CHECK (jsonb_typeof(metadata) = 'object'),
    CONSTRAINT transactions_metadata_size CHECK (octet_length(metadata::text) <= 4096),
    -- Both sides are in the transaction's currency.
    CONSTRAINT transactions_debit_account_fkey FOREIGN KEY (debit_account_id, currency)
        REFERENCES accounts (id, currency),
    CONSTRAINT transactions_credit_account_fkey FOREIGN KEY (credit_account_id, currency)
        REFERENCES accounts (id, currency)
);

-- The daily deposit limit sums one account's deposits of one day.
CREATE INDEX transactions_deposits_by_account ON transactions (credit_account_id, created_at)
    WHERE type = 'deposit';

-- Balances: one row per side of a movement, chained per account --------------------------------
CREATE TABLE balances (
    account_id     uuid        NOT NULL,
    -- 1, 2, 3, ... per account. The primary key is UNIQUE(account_id, version): two movements that
    -- read the same previous version can never both commit. Its btree, read backwards, is the
    -- (account_id, version DESC) index that makes the current balance one index probe, the same
    -- cost with 10 entries as with 10 million.
    version        bigint      NOT NULL,
    delta          bigint      NOT NULL,
    balance        bigint      NOT NULL,
    currency       char(3)     NOT NULL,
    transaction_id uuid        NOT NULL,
    created_at     timestamptz NOT NULL,
    CONSTRAINT balances_account_version_key PRIMARY KEY (account_id, version),
    CONSTRAINT balances_version_positive CHECK (version >= 1),
    CONSTRAINT balances_delta_nonzero CHECK (delta <> 0),
    CONSTRAINT balances_account_fkey FOREIGN KEY (account_id, currency)
        REFERENCES accounts (id, currency),
    CONSTRAINT balances_transaction_fkey FOREIGN KEY (transaction_id, currency)
        REFERENCES transactions (id, currency)
);

-- A movement's balance rows, for the conservation check below and for reading a transfer's sides.
CREATE INDEX balances_by_transaction ON balances (transaction_id);
-- "The balance at instant T": created_at never decreases along an account's chain (enforced below).
CREATE INDEX balances_by_account_time ON balances (account_id, created_at);

-- Every balance row extends its account's chain by exactly one link: version = previous + 1,
-- balance = previous + delta, time never goes backwards, and no account other than a system account
-- goes below zero. Runs after the statement's rows are in, so one statement may insert the
-- transaction and both of its balance rows.
CREATE FUNCTION balances_check_chain() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    prev_version    bigint;
    prev_balance    bigint;
    prev_created_at timestamptz;
    may_go_negative boolean;
BEGIN
    SELECT b.version, b.balance, b.created_at
      INTO prev_version, prev_balance, prev_created_at
      FROM balances b
     WHERE b.account_id = NEW.account_id AND b.version < NEW.version
     ORDER BY b.version DESC
     LIMIT 1;
    IF coalesce(prev_version, 0) + 1 <> NEW.version THEN
        RAISE EXCEPTION 'balance chain broken for account %: version % after %',
            NEW.account_id, NEW.version, coalesce(prev_version, 0)
            USING ERRCODE = 'serialization_failure';
    END IF;
    IF coalesce(prev_balance, 0) + NEW.delta <> NEW.balance THEN
        RAISE EXCEPTION 'balance chain broken for account %: % + % <> %',
            NEW.account_id, coalesce(prev_balance, 0), NEW.delta, NEW.balance
            USING ERRCODE = 'check_violation', CONSTRAINT = 'balances_chain_exact';
    END IF;
    IF NEW.created_at < prev_created_at THEN
        RAISE EXCEPTION 'balance chain broken for account %: time went backwards', NEW.account_id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'balances_chain_exact';
    END IF;
    IF NEW.balance < 0 THEN
        SELECT a.allow_negative INTO may_go_negative FROM accounts a WHERE a.id = NEW.account_id;
        IF NOT may_go_negative THEN
            RAISE EXCEPTION 'account % would go negative', NEW.account_id
                USING ERRCODE = 'check_violation', CONSTRAINT = 'balances_non_negative';
        END IF;
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER balances_check_chain AFTER INSERT ON balances
    FOR EACH ROW EXECUTE FUNCTION balances_check_chain();

-- Double entry, checked at commit: every transaction has exactly one debit row of -amount on its
-- debit account and one credit row of +amount on its credit account. Money is conserved by
-- construction, whatever the application sends.
CREATE FUNCTION transactions_check_balanced() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    debit_rows  int;
    credit_rows int;
    all_rows    int;
BEGIN
    SELECT count(*) FILTER (WHERE b.account_id = NEW.debit_account_id AND b.delta = -NEW.amount),
           count(*) FILTER (WHERE b.account_id = NEW.credit_account_id AND b.delta = NEW.amount),
           count(*)
      INTO debit_rows, credit_rows, all_rows
      FROM balances b
     WHERE b.transaction_id = NEW.id;
    IF debit_rows <> 1 OR credit_rows <> 1 OR all_rows <> 2 THEN
        RAISE EXCEPTION 'transaction % is not balanced', NEW.id
            USING ERRCODE = 'check_violation', CONSTRAINT = 'transactions_balanced';
    END IF;
    RETURN NULL;
END $$;

CREATE CONSTRAINT TRIGGER transactions_check_balanced AFTER INSERT ON transactions
    DEFERRABLE INITIALLY DEFERRED
    FOR EACH ROW EXECUTE FUNCTION transactions_check_balanced();

-- Insert-only: history is never rewritten. Corrections are new movements.
CREATE FUNCTION ledger_refuse_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is insert-only: % refused', TG_TABLE_NAME, TG_OP
        USING ERRCODE = 'restrict_violation';
END $$;

CREATE TRIGGER transactions_insert_only BEFORE UPDATE OR DELETE ON transactions
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER transactions_no_truncate BEFORE TRUNCATE ON transactions
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER balances_insert_only BEFORE UPDATE OR DELETE ON balances
    FOR EACH ROW EXECUTE FUNCTION ledger_refuse_change();
CREATE TRIGGER balances_no_truncate BEFORE TRUNCATE ON balances
    FOR EACH STATEMENT EXECUTE FUNCTION ledger_refuse_change();
