#!/bin/bash
# bench/peers_queue.sh: fleet's event log and pipeline beside pgmq and PgQ
# (and a plain FOR UPDATE SKIP LOCKED queue table), on one throwaway cluster
# with the same payloads.  Prints a markdown section and writes it into
# bench/results.md as "## peers: queues".
#
#   bench/peers_queue.sh                          # after make install
#   QUEUE_EVENTS=20000 ROUNDS=1 bench/peers_queue.sh   # quicker
#
# Per round, QUEUE_EVENTS events (JSON objects of ~170 bytes), produced in
# transactions of 1,000 and then consumed in batches of 1,000, one
# transaction per batch, the same empty handler (a PL/pgSQL function doing
# nothing) called for every event:
#   - fleet: fleet.ingest_events() with idempotency keys (kind bench.q, class
#     operational, its handler the empty function); consumed by
#     fleet.process_pending('operational', 1000), one consumer pass per
#     transaction (what the class's worker runs; the workers are off here, as
#     in bench/ingest.sh);
#   - pgmq: pgmq.send_batch() (no idempotency key); consumed by pgmq.read(1000)
#     then pgmq.delete() of the ids read;
#   - PgQ: pgq.insert_event() per event, then pgq.ticker() in its own
#     transaction after each producer transaction (what pgqd would do; it is
#     not running), so a PgQ batch is one producer transaction; consumed by
#     pgq.next_batch / pgq.get_batch_events / pgq.finish_batch (ev_data is
#     text: cast to jsonb for the handler);
#   - a plain queue table: INSERT, then DELETE ... FOR UPDATE SKIP LOCKED
#     RETURNING of 1,000 rows (bench/ingest.sh's baseline).
# The producers run one after the other, then the consumers, their order
# rotating each round; medians of ROUNDS rounds.  Every consumer's count must
# equal what was produced and every queue must be empty afterwards; a last,
# untimed round with a handler that records each event's number checks that
# every queue delivered each event exactly once.
#
# Needs pgmq (installed as root with ${FLEET_DEPS:-../shared/deps}/build.sh
# pg_ivm pgmq) and PgQ (apt-get install postgresql-15-pgq3).
set -euo pipefail

. "$(dirname "$0")/lib.sh"
QUEUE_EVENTS=${QUEUE_EVENTS:-100000}
ROUNDS=${ROUNDS:-3}
DEPS=${FLEET_DEPS:-$BENCH_REPO/../shared/deps}
BATCH=1000

# ---------------------------------------------------------------- peers
sharedir=$(pg_config --sharedir)
if [ ! -f "$sharedir/extension/pgmq.control" ]; then
	if [ "$(id -u)" = 0 ] && [ -x "$DEPS/build.sh" ]; then
		log "pgmq is not installed: $DEPS/build.sh pg_ivm pgmq"
		"$DEPS/build.sh" pg_ivm pgmq >&2 || { echo "peers_queue: $DEPS/build.sh pg_ivm pgmq failed; area skipped" >&2; exit 0; }
	else
		echo "peers_queue: pgmq is not installed; run as root: $(cd "$DEPS" 2>/dev/null && pwd || echo "$DEPS")/build.sh pg_ivm pgmq -- area skipped" >&2
		exit 0
	fi
fi
if [ ! -f "$sharedir/extension/pgq.control" ]; then
	if [ "$(id -u)" = 0 ]; then
		log "PgQ is not installed: apt-get install -y postgresql-15-pgq3"
		DEBIAN_FRONTEND=noninteractive apt-get install -y postgresql-15-pgq3 >&2 ||
			{ echo "peers_queue: apt-get install -y postgresql-15-pgq3 failed; area skipped" >&2; exit 0; }
	else
		echo "peers_queue: PgQ is not installed; run as root: apt-get install -y postgresql-15-pgq3 -- area skipped" >&2
		exit 0
	fi
fi

bench_cluster "fleet.pipeline_enabled = off" "fleet.views_enabled = off"
q -c 'CREATE EXTENSION pgmq' -c 'CREATE EXTENSION pgq' >/dev/null
pgmq_version=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pgmq'")
pgq_version=$(q -c "SELECT extversion FROM pg_extension WHERE extname = 'pgq'")

log "setup: $(( ROUNDS + 1 )) rounds of $QUEUE_EVENTS events, pgmq $pgmq_version, PgQ $pgq_version"
T=$(q -c "SELECT fleet.create_tenant('Bench Queues')")
q >/dev/null <<SQL
-- the handler: run by fleet as its owner, which must not be a superuser
CREATE ROLE bench_owner NOLOGIN;
CREATE SCHEMA bench AUTHORIZATION bench_owner;
CREATE TABLE bench.seen (queue text, n int);
ALTER TABLE bench.seen OWNER TO bench_owner;
CREATE FUNCTION bench.on_event(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void LANGUAGE plpgsql AS \$f\$ BEGIN END \$f\$;
ALTER FUNCTION bench.on_event(bigint, bigint, text, jsonb, timestamptz) OWNER TO bench_owner;
SELECT fleet.register_event_kind('bench.q', 'operational', 1, '{"n": "integer"}',
	'bench.on_event(bigint,bigint,text,jsonb,timestamptz)');

SELECT pgmq.create('bench');
SELECT pgq.create_queue('bench');
SELECT pgq.register_consumer('bench', 'bench_consumer');
CREATE TABLE skip_queue (id bigserial PRIMARY KEY, payload jsonb NOT NULL);

-- round r's events in batches of $BATCH: idempotency keys, payloads as jsonb and as text
CREATE TABLE bench_ev (round int, b int, tenant bigint, src text[], key text[], kind text[], payload jsonb[], payload_text text[],
	PRIMARY KEY (round, b));
CREATE PROCEDURE bench_make(r int, total int) LANGUAGE sql AS \$\$
	INSERT INTO bench_ev
	SELECT r, (g - 1) / $BATCH, $T, array_agg('bench'::text ORDER BY g), array_agg('r' || r || '-' || g ORDER BY g),
	       array_agg('bench.q'::text ORDER BY g), array_agg(p ORDER BY g), array_agg(p::text ORDER BY g)
	  FROM generate_series(1, total) g, LATERAL (SELECT jsonb_build_object('n', g, 'round', r, 'pad', repeat('x', 150)) p) x
	 GROUP BY (g - 1) / $BATCH
\$\$;
CREATE TABLE bench_count (round int, queue text, produced bigint, consumed bigint, PRIMARY KEY (round, queue));

-- producers: one transaction per batch
CREATE PROCEDURE bench_p_fleet(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	e record;
	n bigint := 0;
	k bigint;
BEGIN
	FOR e IN SELECT * FROM bench_ev WHERE round = r ORDER BY b LOOP
		PERFORM fleet.set_tenant(e.tenant, true);
		SELECT count(*) FILTER (WHERE status = 'accepted') INTO k
		  FROM fleet.ingest_events(e.src, e.key, e.kind, NULL, NULL, e.payload);
		n := n + k;
		COMMIT;
	END LOOP;
	INSERT INTO bench_count VALUES (r, 'fleet', n, 0);
END \$\$;
CREATE PROCEDURE bench_p_pgmq(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	e record;
	n bigint := 0;
	k bigint;
BEGIN
	FOR e IN SELECT * FROM bench_ev WHERE round = r ORDER BY b LOOP
		SELECT count(*) INTO k FROM pgmq.send_batch('bench', e.payload);
		n := n + k;
		COMMIT;
	END LOOP;
	INSERT INTO bench_count VALUES (r, 'pgmq', n, 0);
END \$\$;
CREATE PROCEDURE bench_p_pgq(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	e record;
	n bigint := 0;
	k bigint;
BEGIN
	FOR e IN SELECT * FROM bench_ev WHERE round = r ORDER BY b LOOP
		SELECT count(pgq.insert_event('bench', 'bench.q', x)) INTO k FROM unnest(e.payload_text) x;
		n := n + k;
		COMMIT;
		PERFORM pgq.ticker('bench');
		COMMIT;
	END LOOP;
	INSERT INTO bench_count VALUES (r, 'pgq', n, 0);
END \$\$;
CREATE PROCEDURE bench_p_skip(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	e record;
	n bigint := 0;
	k bigint;
BEGIN
	FOR e IN SELECT * FROM bench_ev WHERE round = r ORDER BY b LOOP
		INSERT INTO skip_queue (payload) SELECT unnest(e.payload);
		GET DIAGNOSTICS k = ROW_COUNT;
		n := n + k;
		COMMIT;
	END LOOP;
	INSERT INTO bench_count VALUES (r, 'skip', n, 0);
END \$\$;

-- consumers: one transaction per batch, the handler called per event (by
-- the peers in the statement that reads the batch, as fleet calls it: a
-- function call per event, no statement per event)
CREATE PROCEDURE bench_c_fleet(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	n bigint := 0;
	k int;
BEGIN
	LOOP
		SELECT applied INTO k FROM fleet.process_pending('operational', $BATCH);
		COMMIT;
		EXIT WHEN k = 0;
		n := n + k;
	END LOOP;
	UPDATE bench_count SET consumed = n WHERE round = r AND queue = 'fleet';
END \$\$;
CREATE PROCEDURE bench_c_pgmq(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	ids bigint[];
	n bigint := 0;
	k int;
BEGIN
	LOOP
		SELECT count(bench.on_event($T, m.msg_id, 'bench.q', m.message, m.enqueued_at)), array_agg(m.msg_id) INTO k, ids
		  FROM pgmq.read('bench', 300, $BATCH) m;
		EXIT WHEN k = 0;
		PERFORM count(*) FROM pgmq.delete('bench', ids);
		COMMIT;
		n := n + k;
	END LOOP;
	UPDATE bench_count SET consumed = n WHERE round = r AND queue = 'pgmq';
END \$\$;
CREATE PROCEDURE bench_c_pgq(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	batch bigint;
	n bigint := 0;
	k int;
BEGIN
	LOOP
		batch := pgq.next_batch('bench', 'bench_consumer');
		EXIT WHEN batch IS NULL;
		SELECT count(bench.on_event($T, e.ev_id, e.ev_type, e.ev_data::jsonb, e.ev_time)) INTO k
		  FROM pgq.get_batch_events(batch) e;
		n := n + k;
		PERFORM pgq.finish_batch(batch);
		COMMIT;
	END LOOP;
	UPDATE bench_count SET consumed = n WHERE round = r AND queue = 'pgq';
END \$\$;
CREATE PROCEDURE bench_c_skip(r int) LANGUAGE plpgsql AS \$\$
DECLARE
	n bigint := 0;
	k int;
BEGIN
	LOOP
		WITH c AS (SELECT id FROM skip_queue ORDER BY id LIMIT $BATCH FOR UPDATE SKIP LOCKED),
		     d AS (DELETE FROM skip_queue s USING c WHERE s.id = c.id RETURNING s.id, s.payload)
		SELECT count(bench.on_event($T, d.id, 'bench.q', d.payload, now())) INTO k FROM d;
		COMMIT;
		EXIT WHEN k = 0;
		n := n + k;
	END LOOP;
	UPDATE bench_count SET consumed = n WHERE round = r AND queue = 'skip';
END \$\$;
SQL
for ((r = 0; r <= ROUNDS; r++)); do q -c "CALL bench_make($r, $QUEUE_EVENTS)"; done
q -c 'VACUUM ANALYZE' >/dev/null

QUEUES=(fleet pgmq pgq skip)
declare -A P C	# P[queue] / C[queue]: producer / consumer times (ms) of the rounds
for ((r = 1; r <= ROUNDS; r++)); do
	order=("${QUEUES[@]:$(((r - 1) % 4))}" "${QUEUES[@]:0:$(((r - 1) % 4))}")
	q -c 'VACUUM ANALYZE' -c 'CHECKPOINT' >/dev/null
	for s in "${order[@]}"; do P[$s]+="$(ms "CALL bench_p_$s($r)") "; done
	q -c 'CHECKPOINT' >/dev/null
	for s in "${order[@]}"; do C[$s]+="$(ms "CALL bench_c_$s($r)") "; done
	log "round $r (${order[*]}): produce fleet ${P[fleet]}/ pgmq ${P[pgmq]}/ PgQ ${P[pgq]}/ table ${P[skip]}ms;" \
		"consume fleet ${C[fleet]}/ pgmq ${C[pgmq]}/ PgQ ${C[pgq]}/ table ${C[skip]}ms"
done
note_load "timed rounds"

log "check round: a handler that records every event it is given"
q >/dev/null <<'SQL'
CREATE OR REPLACE FUNCTION bench.on_event(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void LANGUAGE plpgsql AS $f$
BEGIN
	INSERT INTO bench.seen VALUES (COALESCE(current_setting('bench.queue', true), 'fleet'), (payload ->> 'n')::int);
END $f$;
SQL
for s in "${QUEUES[@]}"; do
	q -c "CALL bench_p_$s(0)"
	# fleet's handler runs inside its pipeline; the peers' consumers name the queue
	q -c "SET bench.queue = '$s'" -c "CALL bench_c_$s(0)"
done
note_load "check round"
bad_counts=$(q -c "SELECT count(*) FROM bench_count WHERE produced <> $QUEUE_EVENTS OR consumed <> $QUEUE_EVENTS")
counts=$(q -c "SELECT string_agg(queue || ' ' || produced || '/' || consumed, ', ' ORDER BY queue) FROM bench_count WHERE round = 1")
left=$(q -c "SELECT 'pgmq ' || (SELECT queue_length FROM pgmq.metrics('bench')) || ', PgQ ' ||
	(SELECT count(*) FROM pgq.next_batch_info('bench', 'bench_consumer') WHERE batch_id IS NOT NULL) || ' batch, table ' ||
	(SELECT count(*) FROM skip_queue) || ', fleet ' || (SELECT applied FROM fleet.process_pending('operational', $BATCH))")
seen=$(q -c "SELECT string_agg(format('%s %s events, %s distinct, %s-%s', queue, c, d, lo, hi), '; ' ORDER BY queue)
	FROM (SELECT queue, count(*) c, count(DISTINCT n) d, min(n) lo, max(n) hi FROM bench.seen GROUP BY queue) s")
seen_bad=$(q -c "SELECT 4 - count(*) FROM (SELECT queue FROM bench.seen GROUP BY queue
	HAVING count(*) = $QUEUE_EVENTS AND count(DISTINCT n) = $QUEUE_EVENTS AND min(n) = 1 AND max(n) = $QUEUE_EVENTS) s")
log "counts off: $bad_counts; left: $left; seen: $seen"

declare -A PR CR
for s in "${QUEUES[@]}"; do
	p=(); c=()
	for t in ${P[$s]}; do p+=("$(rate "$QUEUE_EVENTS" "$t")"); done
	for t in ${C[$s]}; do c+=("$(rate "$QUEUE_EVENTS" "$t")"); done
	PR[$s]=$(median -f %.0f "${p[@]}"); PR[$s,all]="${p[*]}"
	CR[$s]=$(median -f %.0f "${c[@]}"); CR[$s,all]="${c[*]}"
done

section=$(cat <<MD
## peers: queues

Producer and consumer: fleet's event log and pipeline against pgmq $pgmq_version and PgQ $pgq_version;
\`bench/peers_queue.sh\` on $(date -u +%Y-%m-%d) at commit $(git -C "$BENCH_REPO" rev-parse --short HEAD), $(machine --short).
One cluster, the same $QUEUE_EVENTS JSON payloads (~170 bytes) per round and queue, produced in
transactions of $BATCH events (fleet: one \`fleet.ingest_events()\` call with idempotency keys; pgmq:
one \`pgmq.send_batch()\`; PgQ: \`pgq.insert_event()\` per event, then \`pgq.ticker()\` in its own
transaction, as pgqd would, so that a PgQ batch is one producer transaction; the table: one INSERT),
then consumed in batches of $BATCH, one transaction each, the same empty PL/pgSQL handler called for
every event (by the peers in the statement that reads the batch: a function call per event, as
fleet's pipeline makes it; fleet: \`fleet.process_pending('operational', $BATCH)\`, the pipeline workers off as in
\`bench/ingest.sh\`; pgmq: \`pgmq.read(.., $BATCH)\` then \`pgmq.delete()\` of those ids; PgQ:
\`next_batch\`, \`get_batch_events\`, the payload text cast to jsonb, \`finish_batch\`; the table:
\`DELETE ... FOR UPDATE SKIP LOCKED RETURNING\` of $BATCH rows). Producers first, then consumers, their
order rotating each round; medians of $ROUNDS rounds (each round's figure in brackets), events/s.

| | fleet | pgmq | PgQ | table, SKIP LOCKED | fleet / pgmq | fleet / PgQ | fleet / table |
|---|---|---|---|---|---|---|---|
| producer | ${PR[fleet]} (${PR[fleet,all]}) | ${PR[pgmq]} (${PR[pgmq,all]}) | ${PR[pgq]} (${PR[pgq,all]}) | ${PR[skip]} (${PR[skip,all]}) | **$(ratio "${PR[fleet]}" "${PR[pgmq]}")** | **$(ratio "${PR[fleet]}" "${PR[pgq]}")** | $(ratio "${PR[fleet]}" "${PR[skip]}") |
| consumer | ${CR[fleet]} (${CR[fleet,all]}) | ${CR[pgmq]} (${CR[pgmq,all]}) | ${CR[pgq]} (${CR[pgq,all]}) | ${CR[skip]} (${CR[skip,all]}) | **$(ratio "${CR[fleet]}" "${CR[pgmq]}")** | **$(ratio "${CR[fleet]}" "${CR[pgq]}")** | $(ratio "${CR[fleet]}" "${CR[skip]}") |

fleet's producer does more per event than the others: it checks the payload against the kind's
schema, stores the idempotency key (a second index entry per event, looked up first) and answers
per event (accepted, duplicate, conflict, rejected): per event two rows (log and key store) and
their index entries, against pgmq's one row and two btree entries. A perf profile of fleet's
producer (2026-12-08, commit 61d6424, when the log still had a third btree, on logged_at): 92% inside
\`fleet.ingest_events()\`, about 31% of it index insertion and 27% scans (the batch's keys looked up
before the insert), 2.5% turning payloads into text for their hash. Its consumer runs each handler as the
handler's owner in the event's tenant context, inside a subtransaction per 50 events (a failing
event goes to retry, not the whole batch). pgmq's read also rewrites each message once (its
visibility timeout and read count) before the delete; PgQ's consumer reads events between two
ticks by transaction snapshot and writes only its subscription row.

Checks: produced/consumed in every timed round equal ($bad_counts round(s) off; round 1: $counts);
left after the check round: $left. Check round (untimed, a handler recording each event's number):
$seen; queues not delivering each event exactly once: $seen_bad.

$(cat <<'QUAL'
| | fleet | pgmq | PgQ |
|---|---|---|---|
| idempotency on produce | key per (tenant, source): a resent event is answered `duplicate`, a reused key with another payload `conflict` (kept in `fleet.event_conflict`) | none: a resent message is a second message | none |
| delivery | exactly once: a handler's effects and the cursor move commit together | "exactly once within a visibility timeout": a message not deleted or archived in time is read again (at least once across timeouts) | a batch is handed out again until `finish_batch`; effects outside the consumer's transaction may repeat (at least once) |
| late commits | consumed by transaction snapshots (PgQ style): a transaction that commits after later ones is in a later batch, never skipped | a message is a row, visible once committed; read in msg_id order, so commit order is not kept | by snapshots between ticks: never skipped, in tick order |
| failures, dead letters | retries with exponential backoff and jitter per class, then `fleet.dead_letter` with the error, SQLSTATE and every attempt; `fleet.requeue_dead_letters()` | none built in: a message comes back after its visibility timeout with `read_ct` + 1; the consumer decides (`archive()` keeps it in the archive table) | `pgq.event_retry()` / `batch_retry()` put events back after a delay (`ev_retry` counts); no dead-letter queue in PgQ 3 |
| priorities | four classes (financial, audit, operational, telemetry), each its own cursor, worker and batch size; financial first | none (one queue = one table; use several queues) | none (several queues) |
| per-event status | the log is append-only; per-event state only for retries and dead letters | per message: `read_ct`, `vt`, `enqueued_at`; deleted or archived when done | none: events are immutable, consumers keep a position (the tick) |
| consumers | one cursor per class; handlers per kind | competing consumers (SKIP LOCKED) | every registered consumer receives every event (independent positions) |
| tenant isolation | every row carries tenant_id, forced row-level security; handlers run in the event's tenant context | none (per-queue tables and grants) | none (per-queue tables and grants) |
QUAL
)

1-minute load average when each measurement ended (2 cores, a shared box): $(loads_line).
MD
)
echo "$section"
echo "$section" | put_section "peers: queues"
