-- Index advice from the real workload: one row per proposed index, refreshed by every advisor run.
CREATE TABLE quarry_meta.index_advice (
    advice_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    table_schema text NOT NULL,
    table_name text NOT NULL,
    columns text[] NOT NULL CHECK (cardinality(columns) > 0),
    create_statement text NOT NULL,
    cost_before double precision NOT NULL,
    cost_after double precision NOT NULL,
    improvement_pct double precision NOT NULL,
    queryids bigint[] NOT NULL,
    estimated_size_bytes bigint NOT NULL,
    first_seen timestamptz NOT NULL DEFAULT now(),
    last_seen timestamptz NOT NULL DEFAULT now(),
    status text NOT NULL DEFAULT 'proposed' CHECK (status IN ('proposed', 'applied')),
    applied_at timestamptz,
    UNIQUE (table_schema, table_name, columns)
);
COMMENT ON TABLE quarry_meta.index_advice IS 'Indexes the advisor proposes, proven with hypothetical indexes (hypopg) against the pg_stat_statements workload.';
COMMENT ON COLUMN quarry_meta.index_advice.cost_before IS 'Summed planner cost of the helped statements before the index (generic plans).';
COMMENT ON COLUMN quarry_meta.index_advice.cost_after IS 'Summed planner cost of the helped statements with the hypothetical index.';
COMMENT ON COLUMN quarry_meta.index_advice.queryids IS 'pg_stat_statements queryids of the statements the index helps.';
