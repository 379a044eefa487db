#!/bin/bash
# sqlite3 under zcmem: a few hundred thousand rows, indexes, joins and aggregates; output compared with a
# run on the system malloc.
. "$(dirname "$0")/lib.sh"
zc_init "$@"
zc_require sqlite3
cat >"$ZC_WORK/work.sql" <<'SQL'
PRAGMA cache_size = -65536;
CREATE TABLE msg(id INTEGER PRIMARY KEY, topic INTEGER, sender TEXT, size INTEGER, body TEXT);
WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 300000)
INSERT INTO msg SELECT i, (i * 7919) % 997, 'sender' || (i % 1013), (i * 31) % 16384,
                       printf('%.*c', 10 + (i % 90), 'm') FROM n;
CREATE INDEX msg_topic ON msg(topic, size);
CREATE INDEX msg_sender ON msg(sender);
CREATE TABLE topic(id INTEGER PRIMARY KEY, name TEXT);
WITH RECURSIVE n(i) AS (SELECT 0 UNION ALL SELECT i + 1 FROM n WHERE i < 996)
INSERT INTO topic SELECT i, 'topic-' || hex(i * 2654435761) FROM n;
SELECT count(*), sum(size), avg(length(body)), max(sender) FROM msg;
SELECT t.name, count(*), sum(m.size) FROM msg m JOIN topic t ON t.id = m.topic
 GROUP BY t.name ORDER BY sum(m.size) DESC, t.name LIMIT 20;
SELECT sender, count(DISTINCT topic), group_concat(DISTINCT size % 7) FROM msg
 WHERE sender LIKE 'sender1%' GROUP BY sender ORDER BY sender LIMIT 30;
UPDATE msg SET body = body || body WHERE id % 3 = 0;
DELETE FROM msg WHERE size < 1000;
SELECT count(*), sum(length(body)) FROM msg;
SELECT topic, size FROM msg WHERE topic BETWEEN 100 AND 102 ORDER BY topic, size, id LIMIT 40;
VACUUM;
PRAGMA integrity_check;
SQL
zc_run_both sqlite sqlite3 sh -c 'sqlite3 test.db < "$0"' "$ZC_WORK/work.sql"
zc_finish
