-- 21_device_lookup: may this identifier talk to fleet?
--
-- A tracker's login (Teltonika IMEI handshake, GT06 login) must be answered
-- before any data arrives, and the gateway (fleet_ingest) cannot read the
-- cross-tenant routing table.  This function answers yes or no for one
-- identifier and nothing else.

CREATE FUNCTION fleet.device_known(identifier text, protocol text DEFAULT NULL) RETURNS boolean
LANGUAGE sql STABLE
-- SECURITY DEFINER: fleet.device_route is readable by no fleet role; the
-- caller learns only whether one identifier belongs to an active device
-- (of the given protocol, when one is given).  search_path is pinned.
SECURITY DEFINER
SET search_path = pg_catalog, pg_temp
AS $$
	SELECT EXISTS (
		SELECT 1 FROM fleet.device_route r
		 WHERE r.identifier OPERATOR(pg_catalog.=) device_known.identifier
		   AND r.active
		   AND (device_known.protocol IS NULL OR r.protocol OPERATOR(pg_catalog.=) device_known.protocol))
$$;
COMMENT ON FUNCTION fleet.device_known(text, text) IS
	'true if the identifier belongs to an active device (of that protocol, if given): answers tracker logins before data arrives';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_ingest', 'FUNCTION', 'fleet.device_known(text,text)', 'EXECUTE'),
	('fleet_admin',  'FUNCTION', 'fleet.device_known(text,text)', 'EXECUTE');
