-- 20_domain: the fleet domain: vehicles, devices, drivers, customers, jobs,
-- stops, proof of delivery, charges and invoices.
--
-- Status columns are text with CHECK constraints rather than enums, so a
-- later version can widen them with an upgrade script.  Foreign keys between
-- tenant-owned tables always include tenant_id, so no row can point into
-- another tenant.

CREATE TABLE fleet.vehicle (
	tenant_id  bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	vehicle_id bigint GENERATED ALWAYS AS IDENTITY,
	code       text NOT NULL CHECK (pg_catalog.length(code) OPERATOR(pg_catalog.>=) 1 AND pg_catalog.length(code) OPERATOR(pg_catalog.<=) 64),
	name       text,
	plate      text,
	vin        text,
	status     text NOT NULL DEFAULT 'active'
	           CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'maintenance', 'retired'])),
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, vehicle_id),
	UNIQUE (tenant_id, code)
);
COMMENT ON TABLE fleet.vehicle IS 'Vehicles of a tenant; code is the tenant''s own identifier (fleet number)';

CREATE TABLE fleet.device (
	tenant_id  bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	device_id  bigint GENERATED ALWAYS AS IDENTITY,
	identifier text NOT NULL CHECK (identifier OPERATOR(pg_catalog.~) '^[A-Za-z0-9._:-]{1,64}$'),
	protocol   text NOT NULL
	           CHECK (protocol OPERATOR(pg_catalog.=) ANY (ARRAY['teltonika', 'gt06', 'osmand', 'provider', 'app'])),
	vehicle_id bigint,
	secret     bytea,
	active     boolean NOT NULL DEFAULT true,
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, device_id),
	UNIQUE (tenant_id, identifier),
	FOREIGN KEY (tenant_id, vehicle_id) REFERENCES fleet.vehicle (tenant_id, vehicle_id)
);
COMMENT ON TABLE fleet.device IS
	'Trackers and apps: identifier is what the device sends (IMEI, OsmAnd id), unique across all tenants; secret (optional) signs its traffic and is readable only by fleet_admin';

-- Devices announce only their identifier, so the ingest path must find the
-- tenant before any tenant context exists.  This routing table is global on
-- purpose (a reference table when distributed): it maps an identifier to
-- its tenant, device and vehicle and is written only by the trigger below.
CREATE TABLE fleet.device_route (
	identifier text PRIMARY KEY,
	tenant_id  bigint NOT NULL,
	device_id  bigint NOT NULL,
	vehicle_id bigint,
	protocol   text NOT NULL,
	active     boolean NOT NULL
);
COMMENT ON TABLE fleet.device_route IS
	'Global device identifier -> tenant, device, vehicle routing for ingest; maintained from fleet.device by trigger, read by fleet''s ingest functions as the extension owner, granted to no role';

CREATE FUNCTION fleet.device_route_sync() RETURNS trigger
LANGUAGE plpgsql VOLATILE
-- SECURITY DEFINER because the routing table spans tenants: no fleet role may
-- read or write it directly, yet registering a device (by fleet_admin, in a
-- tenant context) must claim its identifier there.  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
BEGIN
	IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' OR TG_OP OPERATOR(pg_catalog.=) 'UPDATE' THEN
		DELETE FROM fleet.device_route r
		 WHERE r.identifier OPERATOR(pg_catalog.=) OLD.identifier
		   AND r.tenant_id OPERATOR(pg_catalog.=) OLD.tenant_id;
	END IF;
	IF TG_OP OPERATOR(pg_catalog.=) 'DELETE' THEN
		RETURN OLD;
	END IF;
	IF EXISTS (SELECT 1 FROM fleet.device_route r WHERE r.identifier OPERATOR(pg_catalog.=) NEW.identifier) THEN
		RAISE EXCEPTION 'device identifier "%" is already registered', NEW.identifier
			USING ERRCODE = 'unique_violation',
			      DETAIL = 'A device identifier (IMEI, OsmAnd id) can belong to one device of one tenant only.',
			      HINT = 'Remove the device from its current tenant first.';
	END IF;
	-- A concurrent registration of the same identifier by another tenant
	-- waits on the primary key and fails here with the same message.
	BEGIN
		INSERT INTO fleet.device_route (identifier, tenant_id, device_id, vehicle_id, protocol, active)
		VALUES (NEW.identifier, NEW.tenant_id, NEW.device_id, NEW.vehicle_id, NEW.protocol, NEW.active);
	EXCEPTION WHEN unique_violation THEN
		RAISE EXCEPTION 'device identifier "%" is already registered', NEW.identifier
			USING ERRCODE = 'unique_violation',
			      DETAIL = 'A device identifier (IMEI, OsmAnd id) can belong to one device of one tenant only.',
			      HINT = 'Remove the device from its current tenant first.';
	END;
	RETURN NEW;
END
$$;
COMMENT ON FUNCTION fleet.device_route_sync() IS 'Trigger: keep fleet.device_route in step with fleet.device';
REVOKE ALL ON FUNCTION fleet.device_route_sync() FROM PUBLIC;

CREATE TRIGGER device_route_sync AFTER INSERT OR UPDATE OR DELETE ON fleet.device
	FOR EACH ROW EXECUTE FUNCTION fleet.device_route_sync();
COMMENT ON TRIGGER device_route_sync ON fleet.device IS 'Claims and releases the device identifier in fleet.device_route';

CREATE TABLE fleet.driver (
	tenant_id  bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	driver_id  bigint GENERATED ALWAYS AS IDENTITY,
	code       text NOT NULL CHECK (pg_catalog.length(code) OPERATOR(pg_catalog.>=) 1 AND pg_catalog.length(code) OPERATOR(pg_catalog.<=) 64),
	name       text NOT NULL,
	phone      text,
	status     text NOT NULL DEFAULT 'active'
	           CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['active', 'inactive'])),
	created_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, driver_id),
	UNIQUE (tenant_id, code)
);
COMMENT ON TABLE fleet.driver IS 'Drivers of a tenant';

CREATE TABLE fleet.customer (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	customer_id bigint GENERATED ALWAYS AS IDENTITY,
	code        text NOT NULL CHECK (pg_catalog.length(code) OPERATOR(pg_catalog.>=) 1 AND pg_catalog.length(code) OPERATOR(pg_catalog.<=) 64),
	name        text NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, customer_id),
	UNIQUE (tenant_id, code)
);
COMMENT ON TABLE fleet.customer IS 'The tenant''s customers: who jobs are done for and billed to';

CREATE TABLE fleet.job (
	tenant_id     bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	job_id        bigint GENERATED ALWAYS AS IDENTITY,
	code          text NOT NULL CHECK (pg_catalog.length(code) OPERATOR(pg_catalog.>=) 1 AND pg_catalog.length(code) OPERATOR(pg_catalog.<=) 64),
	customer_id   bigint,
	vehicle_id    bigint,
	driver_id     bigint,
	status        text NOT NULL DEFAULT 'planned'
	              CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['planned', 'assigned', 'en_route', 'in_progress', 'completed', 'cancelled'])),
	planned_start timestamptz,
	planned_end   timestamptz,
	version       bigint NOT NULL DEFAULT 1,
	status_at     timestamptz,
	created_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	updated_at    timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, job_id),
	UNIQUE (tenant_id, code),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES fleet.customer (tenant_id, customer_id),
	FOREIGN KEY (tenant_id, vehicle_id) REFERENCES fleet.vehicle (tenant_id, vehicle_id),
	FOREIGN KEY (tenant_id, driver_id) REFERENCES fleet.driver (tenant_id, driver_id),
	CHECK (planned_end IS NULL OR planned_start IS NULL OR planned_end OPERATOR(pg_catalog.>=) planned_start)
);
COMMENT ON TABLE fleet.job IS
	'Jobs: a planned route of stops for a customer, assigned to a vehicle and driver; status and version are projected from job events';

CREATE TABLE fleet.stop (
	tenant_id    bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	stop_id      bigint GENERATED ALWAYS AS IDENTITY,
	job_id       bigint NOT NULL,
	seq          integer NOT NULL CHECK (seq OPERATOR(pg_catalog.>=) 1),
	kind         text NOT NULL DEFAULT 'delivery'
	             CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['pickup', 'delivery', 'service'])),
	address      text,
	lat          double precision CHECK (lat OPERATOR(pg_catalog.>=) -90 AND lat OPERATOR(pg_catalog.<=) 90),
	lon          double precision CHECK (lon OPERATOR(pg_catalog.>=) -180 AND lon OPERATOR(pg_catalog.<=) 180),
	window_start timestamptz,
	window_end   timestamptz,
	driver_id    bigint,
	status       text NOT NULL DEFAULT 'assigned'
	             CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['planned', 'assigned', 'en_route', 'arrived', 'completed', 'failed', 'cancelled'])),
	version      bigint NOT NULL DEFAULT 1,
	status_at    timestamptz,
	arrived_at   timestamptz,
	completed_at timestamptz,
	updated_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, stop_id),
	UNIQUE (tenant_id, job_id, seq),
	FOREIGN KEY (tenant_id, job_id) REFERENCES fleet.job (tenant_id, job_id),
	FOREIGN KEY (tenant_id, driver_id) REFERENCES fleet.driver (tenant_id, driver_id),
	CHECK (window_end IS NULL OR window_start IS NULL OR window_end OPERATOR(pg_catalog.>=) window_start)
);
COMMENT ON TABLE fleet.stop IS 'Stops of a job in planned order (seq), each assigned to a driver, with its own status';

CREATE TABLE fleet.proof_of_delivery (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	pod_id      bigint GENERATED ALWAYS AS IDENTITY,
	stop_id     bigint NOT NULL,
	kind        text NOT NULL
	            CHECK (kind OPERATOR(pg_catalog.=) ANY (ARRAY['signature', 'photo', 'barcode', 'note', 'inspection'])),
	driver_id   bigint,
	captured_at timestamptz NOT NULL,
	received_at timestamptz NOT NULL DEFAULT pg_catalog.now(),
	metadata    jsonb NOT NULL DEFAULT '{}',
	PRIMARY KEY (tenant_id, pod_id),
	FOREIGN KEY (tenant_id, stop_id) REFERENCES fleet.stop (tenant_id, stop_id),
	FOREIGN KEY (tenant_id, driver_id) REFERENCES fleet.driver (tenant_id, driver_id)
);
COMMENT ON TABLE fleet.proof_of_delivery IS
	'Evidence captured at a stop (signature, photo and inspection metadata); append-only, kept even when the stop is reassigned';

CREATE TABLE fleet.charge (
	tenant_id   bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	charge_id   bigint GENERATED ALWAYS AS IDENTITY,
	customer_id bigint NOT NULL,
	job_id      bigint,
	kind        text NOT NULL,
	amount      numeric(14, 2) NOT NULL,
	currency    character(3) NOT NULL CHECK (currency OPERATOR(pg_catalog.~) '^[A-Z]{3}$'),
	occurred_at timestamptz NOT NULL,
	created_at  timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, charge_id),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES fleet.customer (tenant_id, customer_id),
	FOREIGN KEY (tenant_id, job_id) REFERENCES fleet.job (tenant_id, job_id)
);
COMMENT ON TABLE fleet.charge IS 'Financial: billable charges per customer (projected from financial events)';

CREATE TABLE fleet.invoice (
	tenant_id    bigint NOT NULL REFERENCES fleet.tenant (tenant_id),
	invoice_id   bigint GENERATED ALWAYS AS IDENTITY,
	customer_id  bigint NOT NULL,
	period_start date NOT NULL,
	period_end   date NOT NULL,
	currency     character(3) NOT NULL CHECK (currency OPERATOR(pg_catalog.~) '^[A-Z]{3}$'),
	total        numeric(14, 2) NOT NULL DEFAULT 0,
	status       text NOT NULL DEFAULT 'open'
	             CHECK (status OPERATOR(pg_catalog.=) ANY (ARRAY['open', 'issued', 'paid', 'void'])),
	created_at   timestamptz NOT NULL DEFAULT pg_catalog.now(),
	PRIMARY KEY (tenant_id, invoice_id),
	UNIQUE (tenant_id, customer_id, period_start, currency),
	FOREIGN KEY (tenant_id, customer_id) REFERENCES fleet.customer (tenant_id, customer_id),
	CHECK (period_end OPERATOR(pg_catalog.>=) period_start)
);
COMMENT ON TABLE fleet.invoice IS 'Financial: invoices per customer and period (projected from financial events)';

-- Every foreign key is backed by an index led by its columns (rule
-- fk_has_index, 95_schema_rules): a delete or key update of the referenced
-- row, and every look-up "the X of this Y", reads that index instead of all
-- of the tenant's rows.
CREATE INDEX device_vehicle ON fleet.device (tenant_id, vehicle_id);
COMMENT ON INDEX fleet.device_vehicle IS 'The devices of a vehicle (backs the foreign key to fleet.vehicle)';
CREATE INDEX job_customer ON fleet.job (tenant_id, customer_id);
COMMENT ON INDEX fleet.job_customer IS 'The jobs of a customer (backs the foreign key to fleet.customer)';
CREATE INDEX job_vehicle ON fleet.job (tenant_id, vehicle_id);
COMMENT ON INDEX fleet.job_vehicle IS 'The jobs of a vehicle: whose scope a vehicle is in (sync), and the foreign key to fleet.vehicle';
CREATE INDEX job_driver ON fleet.job (tenant_id, driver_id);
COMMENT ON INDEX fleet.job_driver IS 'The jobs a driver drives: a driver''s sync scope, and the foreign key to fleet.driver';
CREATE INDEX stop_driver ON fleet.stop (tenant_id, driver_id);
COMMENT ON INDEX fleet.stop_driver IS 'The stops of a driver: a driver''s sync scope, and the foreign key to fleet.driver';
CREATE INDEX proof_of_delivery_stop ON fleet.proof_of_delivery (tenant_id, stop_id, pod_id);
COMMENT ON INDEX fleet.proof_of_delivery_stop IS
	'The evidence of a stop in capture order: a stop''s "evidence" as driver apps pull it, and the foreign key to fleet.stop';
CREATE INDEX proof_of_delivery_driver ON fleet.proof_of_delivery (tenant_id, driver_id);
COMMENT ON INDEX fleet.proof_of_delivery_driver IS 'The evidence a driver captured (backs the foreign key to fleet.driver)';
CREATE INDEX charge_customer ON fleet.charge (tenant_id, customer_id);
COMMENT ON INDEX fleet.charge_customer IS 'The charges of a customer (backs the foreign key to fleet.customer)';
CREATE INDEX charge_job ON fleet.charge (tenant_id, job_id);
COMMENT ON INDEX fleet.charge_job IS 'The charges of a job (backs the foreign key to fleet.job)';

SELECT fleet.enable_tenant_rls(t) FROM pg_catalog.unnest(ARRAY[
	'fleet.vehicle', 'fleet.device', 'fleet.driver', 'fleet.customer', 'fleet.job',
	'fleet.stop', 'fleet.proof_of_delivery', 'fleet.charge', 'fleet.invoice']::pg_catalog.regclass[]) t;

-- Which tables may break the tenant rules, and why (checked by fleet.check_schema_rules()).
CREATE TABLE fleet.schema_exemption (
	relation text PRIMARY KEY,
	reason   text NOT NULL
);
COMMENT ON TABLE fleet.schema_exemption IS
	'Tables in schema fleet exempt from the tenant-ownership rules, each with its reason (reference and catalog tables)';
INSERT INTO fleet.schema_exemption VALUES
	('fleet.tenant', 'the tenant root table: its key is the tenant id itself'),
	('fleet.device_route', 'global routing of device identifiers to tenants; a reference table when distributed');

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges, columns) VALUES
	('fleet_admin', 'TABLE', 'fleet.vehicle', 'SELECT, INSERT, UPDATE, DELETE', NULL),
	('fleet_admin', 'TABLE', 'fleet.device', 'SELECT, INSERT, UPDATE, DELETE', NULL),
	('fleet_admin', 'TABLE', 'fleet.driver', 'SELECT, INSERT, UPDATE, DELETE', NULL),
	('fleet_admin', 'TABLE', 'fleet.customer', 'SELECT, INSERT, UPDATE, DELETE', NULL),
	('fleet_admin', 'TABLE', 'fleet.job', 'SELECT, INSERT, UPDATE, DELETE', NULL),
	('fleet_admin', 'TABLE', 'fleet.stop', 'SELECT, INSERT, UPDATE, DELETE', NULL),
	('fleet_admin', 'TABLE', 'fleet.proof_of_delivery', 'SELECT', NULL),
	('fleet_admin', 'TABLE', 'fleet.charge', 'SELECT', NULL),
	('fleet_admin', 'TABLE', 'fleet.invoice', 'SELECT, UPDATE', NULL),
	('fleet_admin', 'TABLE', 'fleet.schema_exemption', 'SELECT', NULL),
	('fleet_app', 'TABLE', 'fleet.vehicle', 'SELECT, INSERT, UPDATE', NULL),
	('fleet_app', 'TABLE', 'fleet.device', 'SELECT',
		ARRAY['tenant_id', 'device_id', 'identifier', 'protocol', 'vehicle_id', 'active', 'created_at']),
	('fleet_app', 'TABLE', 'fleet.driver', 'SELECT, INSERT, UPDATE', NULL),
	('fleet_app', 'TABLE', 'fleet.customer', 'SELECT, INSERT, UPDATE', NULL),
	('fleet_app', 'TABLE', 'fleet.job', 'SELECT, INSERT, UPDATE', NULL),
	('fleet_app', 'TABLE', 'fleet.stop', 'SELECT, INSERT, UPDATE', NULL),
	('fleet_app', 'TABLE', 'fleet.proof_of_delivery', 'SELECT', NULL),
	('fleet_app', 'TABLE', 'fleet.charge', 'SELECT', NULL),
	('fleet_app', 'TABLE', 'fleet.invoice', 'SELECT', NULL),
	('fleet_ingest', 'TABLE', 'fleet.vehicle', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.vehicle', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.device', 'SELECT',
		ARRAY['tenant_id', 'device_id', 'identifier', 'protocol', 'vehicle_id', 'active', 'created_at']),
	('fleet_analyst', 'TABLE', 'fleet.driver', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.customer', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.job', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.stop', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.proof_of_delivery', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.charge', 'SELECT', NULL),
	('fleet_analyst', 'TABLE', 'fleet.invoice', 'SELECT', NULL);
