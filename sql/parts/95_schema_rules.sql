-- 95_schema_rules: the rules every tenant-owned table follows, as a query.
--
-- A table in schema fleet with a tenant_id column is tenant-owned unless it
-- is listed in fleet.schema_exemption.  The rules keep the schema ready to be
-- distributed by tenant (Citus) and isolated by row-level security:
--   pk_has_tenant       the primary key exists and includes tenant_id
--   unique_has_tenant   every unique index includes tenant_id
--   fk_has_tenant       every foreign key carries tenant_id to tenant_id (or to fleet.tenant)
--   rls_forced          row-level security is enabled and forced
--   policy_checks_tenant a policy for all commands with USING and WITH CHECK on fleet.current_tenant()
--   view_security_invoker every view in schema fleet runs with the reader's privileges
--   hot_path_no_sequence a partitioned (high-volume) tenant-owned table has no
--                       identity column and no nextval() default: a global
--                       sequence is a cross-shard round trip per row once
--                       distributed (docs/SCALING.md)
--   fk_has_index        every foreign key of a table in schema fleet (tenant-owned
--                       or not) is backed by a valid, non-partial index whose
--                       leading columns are the key's columns, in any order;
--                       else deleting a referenced row, and every "the rows
--                       of this parent" look-up, reads the whole table.  A
--                       key that never needs one is listed, with its reason,
--                       in fleet.schema_fk_exemption.

CREATE TABLE fleet.schema_fk_exemption (
	relation   text NOT NULL,
	constraint_name text NOT NULL,
	reason     text NOT NULL,
	PRIMARY KEY (relation, constraint_name)
);
COMMENT ON TABLE fleet.schema_fk_exemption IS
	'Foreign keys in schema fleet exempt from the rule fk_has_index (every foreign key backed by an index led by its columns), each with its reason';
INSERT INTO fleet.schema_fk_exemption VALUES
	('fleet.event_kind', 'event_kind_class_fkey',
	 'fleet.event_class is a fixed list of a few classes that no role may delete, and fleet.event_kind holds a few dozen kinds: checking the key when a class row is updated scans those few dozen rows, as cheap as an index');

CREATE FUNCTION fleet.check_schema_rules()
RETURNS TABLE (relation regclass, rule text, detail text)
LANGUAGE sql STABLE
SET search_path = pg_catalog, pg_temp
AS $$
WITH owned AS (
	SELECT c.oid, c.relrowsecurity, c.relforcerowsecurity,
	       (SELECT a.attnum FROM pg_catalog.pg_attribute a
	         WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) 'tenant_id'
	           AND NOT a.attisdropped) AS tenant_att
	  FROM pg_catalog.pg_class c
	 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace
	   AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
	   AND NOT c.relispartition
	   AND EXISTS (SELECT 1 FROM pg_catalog.pg_attribute a
	                WHERE a.attrelid OPERATOR(pg_catalog.=) c.oid AND a.attname OPERATOR(pg_catalog.=) 'tenant_id'
	                  AND NOT a.attisdropped)
	   AND NOT EXISTS (SELECT 1 FROM fleet.schema_exemption e
	                    WHERE e.relation::pg_catalog.regclass OPERATOR(pg_catalog.=) c.oid)
)
SELECT o.oid::pg_catalog.regclass, 'pk_has_tenant', 'no primary key'
  FROM owned o
 WHERE NOT EXISTS (SELECT 1 FROM pg_catalog.pg_index i
                    WHERE i.indrelid OPERATOR(pg_catalog.=) o.oid AND i.indisprimary)
UNION ALL
SELECT o.oid::pg_catalog.regclass,
       CASE WHEN i.indisprimary THEN 'pk_has_tenant' ELSE 'unique_has_tenant' END,
       pg_catalog.format('index %s does not include tenant_id', i.indexrelid::pg_catalog.regclass)
  FROM owned o
  JOIN pg_catalog.pg_index i ON i.indrelid OPERATOR(pg_catalog.=) o.oid
 WHERE i.indisunique
   AND NOT (o.tenant_att OPERATOR(pg_catalog.=) ANY (i.indkey::pg_catalog.int2[]))
UNION ALL
SELECT o.oid::pg_catalog.regclass, 'fk_has_tenant',
       pg_catalog.format('foreign key %s does not carry tenant_id to tenant_id', k.conname)
  FROM owned o
  JOIN pg_catalog.pg_constraint k ON k.conrelid OPERATOR(pg_catalog.=) o.oid AND k.contype OPERATOR(pg_catalog.=) 'f'
 WHERE NOT EXISTS (
	SELECT 1 FROM pg_catalog.generate_subscripts(k.conkey, 1) s
	 WHERE k.conkey[s] OPERATOR(pg_catalog.=) o.tenant_att
	   AND (SELECT a.attname FROM pg_catalog.pg_attribute a
	         WHERE a.attrelid OPERATOR(pg_catalog.=) k.confrelid
	           AND a.attnum OPERATOR(pg_catalog.=) k.confkey[s]) OPERATOR(pg_catalog.=) 'tenant_id')
UNION ALL
SELECT o.oid::pg_catalog.regclass, 'rls_forced', 'row-level security is not enabled and forced'
  FROM owned o
 WHERE NOT (o.relrowsecurity AND o.relforcerowsecurity)
UNION ALL
SELECT o.oid::pg_catalog.regclass, 'policy_checks_tenant',
       'no policy for all commands whose USING and WITH CHECK compare tenant_id with fleet.current_tenant()'
  FROM owned o
 WHERE NOT EXISTS (
	SELECT 1 FROM pg_catalog.pg_policy p
	 WHERE p.polrelid OPERATOR(pg_catalog.=) o.oid
	   AND p.polcmd OPERATOR(pg_catalog.=) '*'
	   AND p.polpermissive
	   AND pg_catalog.pg_get_expr(p.polqual, o.oid) OPERATOR(pg_catalog.~) 'tenant_id .*fleet\.current_tenant\(\)'
	   AND pg_catalog.pg_get_expr(p.polwithcheck, o.oid) OPERATOR(pg_catalog.~) 'tenant_id .*fleet\.current_tenant\(\)')
UNION ALL
SELECT c.oid::pg_catalog.regclass, 'view_security_invoker', 'view does not run with security_invoker = true'
  FROM pg_catalog.pg_class c
 WHERE c.relnamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace
   AND c.relkind OPERATOR(pg_catalog.=) 'v'
   AND NOT COALESCE('security_invoker=true' OPERATOR(pg_catalog.=) ANY (c.reloptions), false)
UNION ALL
SELECT o.oid::pg_catalog.regclass, 'hot_path_no_sequence',
       pg_catalog.format('column %s takes its value from a sequence', a.attname)
  FROM owned o
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) o.oid AND c.relkind OPERATOR(pg_catalog.=) 'p'
  JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) o.oid AND a.attnum OPERATOR(pg_catalog.>) 0 AND NOT a.attisdropped
  LEFT JOIN pg_catalog.pg_attrdef d ON d.adrelid OPERATOR(pg_catalog.=) o.oid AND d.adnum OPERATOR(pg_catalog.=) a.attnum
 WHERE a.attidentity OPERATOR(pg_catalog.<>) ''
    OR pg_catalog.pg_get_expr(d.adbin, d.adrelid) OPERATOR(pg_catalog.~) 'nextval\('
UNION ALL
SELECT k.conrelid::pg_catalog.regclass, 'fk_has_index',
       pg_catalog.format('foreign key %s (%s) has no index led by its columns', k.conname,
           (SELECT pg_catalog.string_agg(pg_catalog.quote_ident(a.attname::text), ', ' ORDER BY u.o)
              FROM pg_catalog.unnest(k.conkey) WITH ORDINALITY u (n, o)
              JOIN pg_catalog.pg_attribute a ON a.attrelid OPERATOR(pg_catalog.=) k.conrelid AND a.attnum OPERATOR(pg_catalog.=) u.n))
  FROM pg_catalog.pg_constraint k
  JOIN pg_catalog.pg_class c ON c.oid OPERATOR(pg_catalog.=) k.conrelid
 WHERE k.contype OPERATOR(pg_catalog.=) 'f'
   AND c.relnamespace OPERATOR(pg_catalog.=) 'fleet'::pg_catalog.regnamespace
   AND c.relkind OPERATOR(pg_catalog.=) ANY (ARRAY['r', 'p']::"char"[])
   AND NOT c.relispartition
   AND k.conparentid OPERATOR(pg_catalog.=) 0	-- clones of a key on a partitioned table (either side) are covered by it
   AND NOT EXISTS (
	SELECT 1 FROM pg_catalog.pg_index i
	 WHERE i.indrelid OPERATOR(pg_catalog.=) k.conrelid
	   AND i.indisvalid AND i.indpred IS NULL
	   AND i.indnkeyatts OPERATOR(pg_catalog.>=) pg_catalog.cardinality(k.conkey)
	   AND (i.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(k.conkey) OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.@>) k.conkey
	   AND (i.indkey::pg_catalog.int2[])[0:pg_catalog.cardinality(k.conkey) OPERATOR(pg_catalog.-) 1] OPERATOR(pg_catalog.<@) k.conkey)
   AND NOT EXISTS (
	SELECT 1 FROM fleet.schema_fk_exemption e
	 WHERE e.relation::pg_catalog.regclass OPERATOR(pg_catalog.=) k.conrelid
	   AND e.constraint_name OPERATOR(pg_catalog.=) k.conname::text)
ORDER BY 1, 2, 3
$$;
COMMENT ON FUNCTION fleet.check_schema_rules() IS
	'List every breach of the tenant rules in schema fleet (tenant in every key and foreign key, forced row-level security with a tenant policy, security_invoker views, no sequence on partitioned hot-path tables, every foreign key backed by an index led by its columns); empty when the schema is sound';

INSERT INTO fleet.role_grant (role_name, object_kind, object_name, privileges) VALUES
	('fleet_admin', 'FUNCTION', 'fleet.check_schema_rules()', 'EXECUTE'),
	('fleet_admin', 'TABLE', 'fleet.schema_fk_exemption', 'SELECT');
