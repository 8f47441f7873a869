-- Ingested documents and their retrieval chunks, with access control on every chunk.
--
-- PostgreSQL is the source of truth; Chroma holds a copy of the vectors that is reconciled from
-- here (documents.chroma_version lags documents.version until the copy is written).
-- A chunk carries its document's ACL (denormalised) so that every retrieval query filters by it
-- inside the index scan, and row-level security repeats the filter for the quarry_app role.

CREATE TABLE quarry_meta.documents (
    document_id uuid PRIMARY KEY,
    -- The URI the document was ingested from: file:///…, gs://bucket/key, upload://name.
    source text NOT NULL UNIQUE CHECK (source <> ''),
    title text,
    media_type text NOT NULL,
    -- sha256 of the original bytes, hex: the same bytes (and ACL) again change nothing.
    content_hash text NOT NULL CHECK (content_hash ~ '^[0-9a-f]{64}$'),
    byte_size bigint NOT NULL CHECK (byte_size >= 0),
    page_count integer,
    ocr_pages integer NOT NULL DEFAULT 0,
    allowed_roles text[] NOT NULL CHECK (cardinality(allowed_roles) > 0),
    allowed_regions text[] NOT NULL CHECK (cardinality(allowed_regions) > 0),
    -- Bumped by every change of content or ACL.
    version integer NOT NULL DEFAULT 1 CHECK (version > 0),
    -- The version whose chunks Chroma holds; NULL before the first write.
    chroma_version integer,
    chunk_count integer NOT NULL CHECK (chunk_count >= 0),
    ingested_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE quarry_meta.documents IS 'One row per ingested source URI; version bumps on every content or ACL change.';

CREATE TABLE quarry_meta.chunks (
    chunk_id uuid PRIMARY KEY,
    document_id uuid NOT NULL REFERENCES quarry_meta.documents (document_id) ON DELETE CASCADE,
    ordinal integer NOT NULL CHECK (ordinal >= 0),
    heading_path text[] NOT NULL DEFAULT '{}',
    -- heading_path joined with ' > ' (a plain column so the generated tsvector stays immutable).
    heading text NOT NULL DEFAULT '',
    page integer,
    char_start integer NOT NULL,
    char_end integer NOT NULL,
    byte_start integer NOT NULL,
    byte_end integer NOT NULL,
    token_count integer NOT NULL,
    text text NOT NULL,
    embedding vector(384) NOT NULL,
    allowed_roles text[] NOT NULL,
    allowed_regions text[] NOT NULL,
    -- Headings weigh more than body text: a query naming a section's subject should find it.
    tsv tsvector GENERATED ALWAYS AS (
        setweight(to_tsvector('english', heading), 'A') || setweight(to_tsvector('english', text), 'B')
    ) STORED,
    UNIQUE (document_id, ordinal),
    CHECK (char_start <= char_end AND byte_start <= byte_end)
);
COMMENT ON TABLE quarry_meta.chunks IS 'Retrieval chunks: text, offsets, embedding (all-MiniLM-L6-v2, L2-normalised) and the document ACL.';

CREATE INDEX chunks_embedding_hnsw ON quarry_meta.chunks USING hnsw (embedding vector_cosine_ops);
CREATE INDEX chunks_tsv_gin ON quarry_meta.chunks USING gin (tsv);
CREATE INDEX chunks_roles_gin ON quarry_meta.chunks USING gin (allowed_roles);

-- Path-prefix ACL rules: a document without ACL metadata takes the rule with the longest prefix of
-- its source URI; with no rule, only admin sees it.
CREATE TABLE quarry_meta.document_acl_rules (
    prefix text PRIMARY KEY CHECK (prefix <> ''),
    allowed_roles text[] NOT NULL CHECK (cardinality(allowed_roles) > 0),
    allowed_regions text[] NOT NULL DEFAULT '{*}' CHECK (cardinality(allowed_regions) > 0),
    description text NOT NULL DEFAULT ''
);
COMMENT ON TABLE quarry_meta.document_acl_rules IS 'ACL for documents by source URI prefix (longest match wins; upload metadata overrides).';

CREATE TABLE quarry_meta.ingest_failures (
    failure_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    source text NOT NULL,
    content_hash text,
    media_type text,
    -- Stable slug: unsupported-format, too-large, too-many-pages, encrypted, corrupt, empty, ocr-timeout, …
    kind text NOT NULL,
    detail text NOT NULL,
    -- What delivered it: upload, event, cli.
    trigger text NOT NULL,
    occurred_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX ingest_failures_source ON quarry_meta.ingest_failures (source, occurred_at DESC);
COMMENT ON TABLE quarry_meta.ingest_failures IS 'Documents that could not be ingested, and why; nothing of them is stored elsewhere.';

-- The caller may see a chunk or document when its role is listed and its region is listed (or '*').
CREATE FUNCTION quarry_meta.acl_permits(roles text[], regions text[]) RETURNS boolean
LANGUAGE sql STABLE PARALLEL SAFE
RETURN current_setting('quarry.role', true) = ANY (roles)
   AND (current_setting('quarry.region', true) = ANY (regions) OR '*' = ANY (regions));

GRANT SELECT ON quarry_meta.documents, quarry_meta.chunks TO quarry_app;

ALTER TABLE quarry_meta.documents ENABLE ROW LEVEL SECURITY;
CREATE POLICY acl ON quarry_meta.documents FOR SELECT TO quarry_app
    USING (quarry_meta.acl_permits(allowed_roles, allowed_regions));

ALTER TABLE quarry_meta.chunks ENABLE ROW LEVEL SECURITY;
CREATE POLICY acl ON quarry_meta.chunks FOR SELECT TO quarry_app
    USING (quarry_meta.acl_permits(allowed_roles, allowed_regions));
