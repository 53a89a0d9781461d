-- One transfer as the application posts it: lock both accounts in id order, then read both chain
-- heads, insert the transaction and its two balance rows in one statement.
\set a random(1, :accounts)
\set b (:a % :accounts) + 1
BEGIN;
SELECT id FROM accounts WHERE id IN (SELECT id FROM bench_accounts WHERE n IN (:a, :b)) ORDER BY id FOR NO KEY UPDATE;
WITH pair AS (
    SELECT (SELECT id FROM bench_accounts WHERE n = :a) AS debit, (SELECT id FROM bench_accounts WHERE n = :b) AS credit
), sides (account_id, delta) AS (
    SELECT debit, -1::bigint FROM pair UNION ALL SELECT credit, 1::bigint FROM pair
), head AS (
    SELECT s.account_id, s.delta, coalesce(b.version, 0) AS version, coalesce(b.balance, 0) AS balance, b.created_at
      FROM sides s LEFT JOIN LATERAL (SELECT version, balance, created_at FROM balances
                                       WHERE account_id = s.account_id ORDER BY version DESC LIMIT 1) b ON true
), tx AS (
    INSERT INTO transactions (type, debit_account_id, credit_account_id, amount, currency, metadata, created_at)
    SELECT 'transfer', debit, credit, 1, 'EUR', '{}', greatest(clock_timestamp(), (SELECT max(created_at) FROM head))
      FROM pair
    RETURNING id, created_at
)
INSERT INTO balances (account_id, version, delta, balance, held_delta, held, currency, transaction_id, created_at)
SELECT h.account_id, h.version + 1, h.delta, h.balance + h.delta, 0, 0, 'EUR', tx.id, tx.created_at
  FROM head h CROSS JOIN tx ORDER BY h.account_id;
COMMIT;
