-- Governance as data: roles, table grants, region rules, endpoint fencing, the append-only audit
-- log, and the database's own walls: a non-owner login role with SELECT only, and row-level
-- security on the region-bearing tables keyed on per-transaction settings.

CREATE TABLE quarry_meta.roles (
    name text PRIMARY KEY CHECK (name ~ '^[a-z][a-z0-9_-]{0,62}$'),
    description text NOT NULL DEFAULT '',
    -- 'all': every row of a region-bearing table; 'own_region': only rows of the caller's region.
    row_scope text NOT NULL CHECK (row_scope IN ('all', 'own_region')),
    -- Token bucket per `sub`: sustained requests per minute and burst size.
    rate_per_minute integer NOT NULL DEFAULT 120 CHECK (rate_per_minute > 0),
    burst integer NOT NULL DEFAULT 30 CHECK (burst > 0)
);
COMMENT ON TABLE quarry_meta.roles IS 'Roles a JWT may carry; a role not listed here is refused everywhere.';

CREATE TABLE quarry_meta.role_tables (
    role text NOT NULL REFERENCES quarry_meta.roles (name) ON DELETE CASCADE,
    schema_name text NOT NULL,
    table_name text NOT NULL,         -- '*' grants every table of the schema
    columns text[],                   -- NULL grants every column; else only these
    PRIMARY KEY (role, schema_name, table_name)
);
COMMENT ON TABLE quarry_meta.role_tables IS 'Which tables (and optionally which columns) each role may read.';

CREATE TABLE quarry_meta.role_regions (
    role text NOT NULL REFERENCES quarry_meta.roles (name) ON DELETE CASCADE,
    region text NOT NULL CHECK (region ~ '^(\*|[a-z][a-z0-9_-]{0,62})$'),   -- '*' accepts any region
    PRIMARY KEY (role, region)
);
COMMENT ON TABLE quarry_meta.role_regions IS 'Which token regions each role may act from (''*'' = any).';

CREATE TABLE quarry_meta.endpoint_regions (
    endpoint text NOT NULL CHECK (endpoint LIKE '/%'),
    region text NOT NULL CHECK (region ~ '^[a-z][a-z0-9_-]{0,62}$'),
    PRIMARY KEY (endpoint, region)
);
COMMENT ON TABLE quarry_meta.endpoint_regions IS 'Region fencing: an endpoint listed here serves only these regions; unlisted endpoints serve all.';

CREATE TABLE quarry_meta.audit_log (
    audit_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    at timestamptz NOT NULL DEFAULT clock_timestamp(),
    request_id text,
    sub text,
    role text,
    region text,
    function text NOT NULL,
    action text NOT NULL,
    resource text NOT NULL,
    allowed boolean NOT NULL,
    reason text NOT NULL,
    statement_hash text,
    row_count bigint,
    duration_ms double precision
);
CREATE INDEX audit_log_at ON quarry_meta.audit_log (at);
CREATE INDEX audit_log_sub_at ON quarry_meta.audit_log (sub, at);
COMMENT ON TABLE quarry_meta.audit_log IS 'Every authorization decision of every function. Append-only.';

-- Append-only even for roles that somehow gain UPDATE/DELETE: the trigger refuses, whoever asks.
CREATE FUNCTION quarry_meta.audit_log_is_append_only() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'quarry_meta.audit_log is append-only (% refused)', TG_OP
        USING ERRCODE = 'insufficient_privilege';
END;
$$;
CREATE TRIGGER audit_log_no_update_delete BEFORE UPDATE OR DELETE ON quarry_meta.audit_log
    FOR EACH ROW EXECUTE FUNCTION quarry_meta.audit_log_is_append_only();
CREATE TRIGGER audit_log_no_truncate BEFORE TRUNCATE ON quarry_meta.audit_log
    FOR EACH STATEMENT EXECUTE FUNCTION quarry_meta.audit_log_is_append_only();

-- The application's login role: not the owner, SELECT on the data, INSERT on the audit log,
-- nothing else. Roles are cluster-wide, so create it only once; `quarry migrate` gives it LOGIN
-- and the password from APP_DATABASE_URL.
DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = 'quarry_app') THEN
        CREATE ROLE quarry_app NOLOGIN NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOBYPASSRLS;
    END IF;
END;
$$;
GRANT USAGE ON SCHEMA public, flights, quarry_meta TO quarry_app;
GRANT SELECT ON ALL TABLES IN SCHEMA public, flights TO quarry_app;
ALTER DEFAULT PRIVILEGES IN SCHEMA public, flights GRANT SELECT ON TABLES TO quarry_app;
GRANT SELECT ON quarry_meta.roles, quarry_meta.role_tables, quarry_meta.role_regions, quarry_meta.endpoint_regions TO quarry_app;
GRANT INSERT ON quarry_meta.audit_log TO quarry_app;

-- The caller's role and region arrive as transaction-local settings (SET LOCAL quarry.role / quarry.region).
-- set_config() is revoked from PUBLIC so that SQL which slips past the guard cannot rewrite them
-- from inside a query: the extended protocol runs one statement, and a SELECT cannot run SET.
REVOKE EXECUTE ON FUNCTION pg_catalog.set_config(text, text, boolean) FROM PUBLIC;

-- True when the caller's role sees every region. Not correlated with the row, so the planner
-- evaluates it once per query rather than once per row.
CREATE FUNCTION quarry_meta.role_sees_all_regions() RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN coalesce(
    (SELECT r.row_scope = 'all' FROM quarry_meta.roles r WHERE r.name = current_setting('quarry.role', true)),
    false);

-- The caller's region, but only for a role the policy knows: an unknown role sees no rows at all.
CREATE FUNCTION quarry_meta.caller_region() RETURNS text
LANGUAGE sql STABLE PARALLEL SAFE
RETURN (SELECT nullif(current_setting('quarry.region', true), '')
        WHERE EXISTS (SELECT 1 FROM quarry_meta.roles r WHERE r.name = current_setting('quarry.role', true)));

ALTER TABLE customer ENABLE ROW LEVEL SECURITY;
CREATE POLICY region_fence ON customer FOR SELECT TO quarry_app
    USING (quarry_meta.role_sees_all_regions() OR region = quarry_meta.caller_region());

ALTER TABLE invoice ENABLE ROW LEVEL SECURITY;
CREATE POLICY region_fence ON invoice FOR SELECT TO quarry_app
    USING (quarry_meta.role_sees_all_regions() OR region = quarry_meta.caller_region());

-- Lines follow their invoice: the subquery reads `invoice` under its own policy.
ALTER TABLE invoice_line ENABLE ROW LEVEL SECURITY;
CREATE POLICY region_fence ON invoice_line FOR SELECT TO quarry_app
    USING (quarry_meta.role_sees_all_regions()
           OR EXISTS (SELECT 1 FROM invoice i WHERE i.invoice_id = invoice_line.invoice_id));
