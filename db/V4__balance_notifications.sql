-- Live balance streams: every statement that writes balance rows tells listeners which accounts
-- changed, as "account:version" pairs. A notification is only a hint: watchers read the change from
-- the ledger by version, so a missed or late notification loses nothing.
--
-- NOTIFY is transactional: it is delivered only if, and only after, the transaction commits, so no
-- watcher is ever woken for a change that was rolled back, and no committed change goes unannounced
-- even if the application dies right after COMMIT. One notification per statement, not per row.
CREATE FUNCTION balances_notify() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    payload text;
BEGIN
    SELECT string_agg(i.account_id::text || ':' || i.version, ',') INTO payload FROM inserted i;
    IF payload IS NOT NULL THEN
        PERFORM pg_notify('paystream_balances', payload);
    END IF;
    RETURN NULL;
END $$;

CREATE TRIGGER balances_notify AFTER INSERT ON balances
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION balances_notify();
