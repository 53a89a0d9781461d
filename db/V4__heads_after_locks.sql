-- An account's head (its newest balance row), read with a snapshot taken when it is called.
--
-- A statement at READ COMMITTED reads with the snapshot it took when it started. A statement that locks
-- accounts may wait for those locks, and a movement committed meanwhile by the lock's holder is not in
-- that snapshot. This function is VOLATILE, so each call reads with a snapshot of its own: called for an
-- account after the statement holds that account's lock, it sees everything committed before the lock
-- was granted. The transfer groups lock their accounts and read their heads in one statement with it,
-- one round trip fewer than a second statement for the heads.
--
-- No row (an account that never moved): NULLs. Nothing here decides anything: a stale head could
-- only make the movement's write fail against the primary key and the chain trigger, and be retried.
CREATE FUNCTION ledger_head(account uuid,
                            OUT head_version bigint, OUT head_balance bigint, OUT head_held bigint,
                            OUT head_created_at timestamptz)
    LANGUAGE plpgsql VOLATILE AS $$
BEGIN
    SELECT b.version, b.balance, b.held, b.created_at
      INTO head_version, head_balance, head_held, head_created_at
      FROM balances b
     WHERE b.account_id = account
     ORDER BY b.version DESC
     LIMIT 1;
END $$;
