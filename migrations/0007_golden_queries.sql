-- Curated question → SQL pairs: the few-shot examples text-to-SQL shows the model. ask picks the
-- ones nearest a question (by embedding) among those the caller's role could run itself, so an
-- example never reveals a table the caller cannot read.

CREATE TABLE quarry_meta.golden_queries (
    golden_id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    question text NOT NULL UNIQUE CHECK (length(question) BETWEEN 1 AND 1000),
    sql text NOT NULL CHECK (length(sql) BETWEEN 1 AND 10000),
    created_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE quarry_meta.golden_queries IS 'Curated question/SQL pairs used as few-shot examples by ask.';
