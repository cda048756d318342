-- bench/ingest.sql: fixtures and procedures for bench/ingest.sh (issue 3).
-- Runs in a throwaway database with fleet installed; psql variables are
-- set by the script.

SELECT fleet.create_tenant('Bench Freight') AS tenant \gset
SELECT fleet.set_tenant(:tenant);
INSERT INTO fleet.vehicle (tenant_id, code) SELECT :tenant, 'BV-' || g FROM generate_series(0, 199) g;
INSERT INTO fleet.device (tenant_id, identifier, protocol, vehicle_id)
SELECT :tenant, 'BD-' || g, 'teltonika', v.vehicle_id
  FROM generate_series(0, 199) g JOIN fleet.vehicle v ON v.code = 'BV-' || g;
SELECT fleet.clear_tenant();

-- 10 batches of 10,000 fixes (200 devices x 50 fixes), as the gateway sends them.
CREATE TABLE bench_batch AS
SELECT b AS n,
       array_agg('BD-' || (g % 200) ORDER BY g) AS dev,
       array_agg(date_trunc('hour', now()) - interval '3 hours' + ((b * 10000 + g) * interval '10 ms') ORDER BY g) AS ts,
       array_agg(50 + random() ORDER BY g)::float8[] AS lat,
       array_agg(10 + random() ORDER BY g)::float8[] AS lon,
       array_agg((random() * 120)::real ORDER BY g) AS speed,
       array_agg((random() * 360)::real ORDER BY g) AS heading,
       array_agg((random() * 500)::real ORDER BY g) AS altitude,
       array_agg((random() * 20)::real ORDER BY g) AS accuracy,
       array_agg((b * 10000 + g)::bigint ORDER BY g) AS seq
  FROM generate_series(1, 10) b, generate_series(0, 9999) g
 GROUP BY b;

-- The same rows, for COPY into a plain table with the same unique key.
CREATE TABLE plain_position (LIKE fleet.position INCLUDING DEFAULTS, UNIQUE (tenant_id, device_id, fix_time));
COPY (SELECT :tenant::bigint, r.device_id, u.ts, r.vehicle_id, u.lat, u.lon, u.speed, u.heading, u.altitude, u.accuracy,
             u.seq, NULL::jsonb, now()
        FROM bench_batch b,
             unnest(b.dev, b.ts, b.lat, b.lon, b.speed, b.heading, b.altitude, b.accuracy, b.seq)
               AS u(dev, ts, lat, lon, speed, heading, altitude, accuracy, seq)
        JOIN fleet.device_route r ON r.identifier = u.dev)
  TO :'csv';

CREATE PROCEDURE bench_ingest_positions() LANGUAGE plpgsql AS $$
DECLARE
	b record;
BEGIN
	FOR b IN SELECT * FROM bench_batch ORDER BY n LOOP
		PERFORM count(*) FROM fleet.ingest_positions(b.dev, b.ts, b.lat, b.lon, b.speed, b.heading, b.altitude,
		                                             b.accuracy, b.seq, NULL);
		COMMIT;
	END LOOP;
END $$;

-- Autocommit single-row INSERT per fix, as common tracking servers store them
-- (serial key plus an index on device and time).
CREATE TABLE tracker_position (id bigserial PRIMARY KEY, deviceid bigint, fixtime timestamptz, latitude float8,
                               longitude float8, speed real, course real, altitude real, accuracy real, attributes text);
CREATE INDEX ON tracker_position (deviceid, fixtime);

-- Events for the consumer benchmarks: a kind without handler measures the
-- pipeline itself (read, order, cursor), like a queue pop without work.
SELECT fleet.register_event_kind('bench.op', 'operational', 1, '{"n": "number"}');
CREATE PROCEDURE bench_log_ops(first int, total int) LANGUAGE plpgsql AS $$
DECLARE
	i int := first;
BEGIN
	PERFORM fleet.set_tenant((SELECT tenant_id FROM fleet.tenant WHERE name = 'Bench Freight'));
	WHILE i < first + total LOOP
		PERFORM count(*) FROM fleet.ingest_events(array_fill('bench'::text, ARRAY[5000]),
			(SELECT array_agg('op-' || g ORDER BY g) FROM generate_series(i, i + 4999) g),
			array_fill('bench.op'::text, ARRAY[5000]), NULL, NULL,
			(SELECT array_agg(jsonb_build_object('n', g, 'pad', repeat('x', 150)) ORDER BY g) FROM generate_series(i, i + 4999) g));
		COMMIT;
		PERFORM fleet.set_tenant((SELECT tenant_id FROM fleet.tenant WHERE name = 'Bench Freight'));
		i := i + 5000;
	END LOOP;
END $$;
CREATE PROCEDURE bench_consume(batch int) LANGUAGE plpgsql AS $$
DECLARE
	n int;
BEGIN
	LOOP
		SELECT applied INTO n FROM fleet.process_pending('operational', batch);
		COMMIT;
		EXIT WHEN n = 0;
	END LOOP;
END $$;

-- The SKIP LOCKED queue at the same batch size.
CREATE TABLE skip_queue (id bigserial PRIMARY KEY, payload jsonb NOT NULL);
CREATE PROCEDURE bench_fill_queue(total int) LANGUAGE sql AS $$
	INSERT INTO skip_queue (payload)
	SELECT jsonb_build_object('n', g, 'pad', repeat('x', 150)) FROM generate_series(1, total) g
$$;
CREATE PROCEDURE bench_pop(batch int) LANGUAGE plpgsql AS $$
DECLARE
	n int;
BEGIN
	LOOP
		WITH c AS (SELECT id FROM skip_queue ORDER BY id LIMIT batch FOR UPDATE SKIP LOCKED)
		DELETE FROM skip_queue q USING c WHERE q.id = c.id;
		GET DIAGNOSTICS n = ROW_COUNT;
		COMMIT;
		EXIT WHEN n = 0;
	END LOOP;
END $$;

-- Financial latency: the handler stamps when it ran.
CREATE ROLE bench_owner NOLOGIN;
CREATE SCHEMA bench AUTHORIZATION bench_owner;
CREATE TABLE bench.applied (event_id bigint, applied_at timestamptz);
ALTER TABLE bench.applied OWNER TO bench_owner;
CREATE FUNCTION bench.on_pay(tenant_id bigint, event_id bigint, kind text, payload jsonb, occurred_at timestamptz)
RETURNS void LANGUAGE sql AS $f$ INSERT INTO bench.applied VALUES (event_id, clock_timestamp()) $f$;
ALTER FUNCTION bench.on_pay(bigint, bigint, text, jsonb, timestamptz) OWNER TO bench_owner;
SELECT fleet.register_event_kind('bench.pay', 'financial', 1, '{"amount": "number"}',
	'bench.on_pay(bigint,bigint,text,jsonb,timestamptz)');
CREATE PROCEDURE bench_pay(tag text, total int) LANGUAGE plpgsql AS $$
BEGIN
	FOR i IN 1..total LOOP
		PERFORM fleet.set_tenant((SELECT tenant_id FROM fleet.tenant WHERE name = 'Bench Freight'), true);
		PERFORM fleet.ingest_event('pay', tag || '-' || i, 'bench.pay', jsonb_build_object('amount', i));
		COMMIT;
		PERFORM pg_sleep(0.02);
	END LOOP;
END $$;
CREATE PROCEDURE bench_flood(batches int) LANGUAGE plpgsql AS $$
BEGIN
	FOR b IN 1..batches LOOP
		PERFORM fleet.set_tenant((SELECT tenant_id FROM fleet.tenant WHERE name = 'Bench Freight'), true);
		PERFORM count(*) FROM fleet.ingest_events(array_fill('flood'::text, ARRAY[2000]),
			(SELECT array_agg('fl-' || b || '-' || g ORDER BY g) FROM generate_series(1, 2000) g),
			array_fill('vehicle.state'::text, ARRAY[2000]), NULL, NULL,
			(SELECT array_agg(jsonb_build_object('vehicle', 'BV-' || (g % 200), 'odometer_km', b * 2000 + g) ORDER BY g)
			   FROM generate_series(1, 2000) g));
		COMMIT;
	END LOOP;
END $$;
CREATE FUNCTION bench_pay_p99(tag text) RETURNS float8 LANGUAGE sql AS $$
	SELECT percentile_cont(0.99) WITHIN GROUP (ORDER BY extract(epoch FROM a.applied_at - e.logged_at) * 1000)
	  FROM fleet.event_log e JOIN bench.applied a USING (event_id)
	 WHERE e.kind = 'bench.pay' AND e.idem_key LIKE tag || '-%'
$$;
