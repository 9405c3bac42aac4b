-- Live ticks update every symbol's progress rows every second. Packed pages (fillfactor
-- 100) left no room on the page for the new version, so nine updates in ten were not HOT:
-- each added an index entry, and the primary key bloated until every lookup (the live read
-- joins it three times per symbol) walked dead entries. With room on every page, updates
-- stay on their page (HOT, no index write) and pruning reclaims the old versions without
-- waiting for vacuum. CLUSTER rewrites the table now, so existing rows get the room too.
ALTER TABLE progress SET (fillfactor = 50, autovacuum_vacuum_scale_factor = 0.05,
                          autovacuum_vacuum_insert_scale_factor = 0.05);
CLUSTER progress USING progress_pkey;
