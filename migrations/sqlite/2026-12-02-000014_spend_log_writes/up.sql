-- See the PostgreSQL version. SQLite keeps the spend logs' foreign key (dropping it would rebuild
-- the table, and a check there is an index lookup without a lock); the deletes remove a
-- campaign's logs first on both backends, so its cascade never acts. Its event ids are unique in
-- the logs' own index, compared with SQLite's binary collation already.
SELECT 1;
