-- Vacuum of the tables that grow with every movement, paced so that it never stalls a commit.
--
-- The ledger is insert-only and idempotency keys are purged in batches, so autovacuum's work on these
-- tables is mostly to mark new pages all-visible (and, for purged keys, to free their space). With data
-- checksums on, the first change to a page after a checkpoint is written to the WAL as a whole page, and
-- marking a page all-visible is such a change. At the default pace (2 ms of sleep per 200 cost units, a
-- dirtied page costing 20) one run wrote 30 MB of WAL in one second. Every commit in that second had to
-- flush it, and transfers in it waited up to 100 to 300 ms instead of about 10.
--
-- 20 ms per 200 units caps a run at about 500 dirtied pages (4 MB of WAL) a second: a few seconds longer
-- per run, in the background, and still about 14 GB of table an hour, far above what the ledger grows by.
ALTER TABLE balances SET (autovacuum_vacuum_cost_delay = 20);
ALTER TABLE transactions SET (autovacuum_vacuum_cost_delay = 20);
ALTER TABLE idempotency_keys SET (autovacuum_vacuum_cost_delay = 20);
