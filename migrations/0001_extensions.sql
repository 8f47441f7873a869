-- Extensions every later migration and function relies on, and the schema for Quarry's own tables
-- (kept out of `public`, which holds only the business data the LLM may be shown).
CREATE EXTENSION IF NOT EXISTS vector;
CREATE EXTENSION IF NOT EXISTS hypopg;
CREATE EXTENSION IF NOT EXISTS pg_stat_statements;
CREATE SCHEMA IF NOT EXISTS quarry_meta;
COMMENT ON SCHEMA quarry_meta IS 'Quarry''s own tables: migrations, policy, audit, documents. Never shown to the LLM.';
