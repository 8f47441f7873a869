//! `GET /v1/schema`: what the caller's role may read: tables, columns with types, keys, comments and
//! a few common values of short text columns. The LLM's schema context is built from this, so a
//! table or column the role cannot read is never shown to the model.
//!
//! Relations an extension installed (`pg_stat_statements`, hypopg's `hypopg_list_indexes`) are
//! left out even where a grant such as `public.*` covers them: they are the server's
//! bookkeeping, not the data questions are about, and in a prompt they cost a small model ~50
//! columns of distraction. The guard, not this view, still decides whether a query may read them.

use std::collections::{BTreeMap, BTreeSet};

use axum::extract::State;
use quarry_shared::http::caller::record;
use quarry_shared::http::{ApiError, Caller, Json, Problem};
use quarry_shared::policy::RolePolicy;
use quarry_shared::sql::schema::{ColumnView, ForeignKey, SchemaView, TableView};
use quarry_shared::state::AppState;

/// Common values shown per text column, at most.
const SAMPLES: usize = 5;

type Key = (String, String);

/// The schema as the caller's role may see it.
#[utoipa::path(
    get,
    path = "/v1/schema",
    tag = "sql",
    security(("bearer" = [])),
    responses(
        (status = 200, description = "Readable tables and columns", body = SchemaView),
        (status = 401, description = "Missing or invalid token", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "Role or region not admitted", body = Problem, content_type = "application/problem+json"),
    )
)]
pub async fn schema(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<SchemaView>, ApiError> {
    let Some(role) = caller.role() else {
        return Err(ApiError::Forbidden {
            kind: "role-unknown",
            detail: "the caller's role is not in the policy".to_owned(),
        });
    };
    let view = load(&state.governance.app_db, role).await?;
    record(
        &state.governance,
        caller.audit_record("read", "schema".to_owned(), true, "granted".to_owned()),
    )
    .await?;
    Ok(Json(view))
}

fn readable(role: &RolePolicy, schema: &str, table: &str, column: &str) -> bool {
    role.grant_for(schema, table)
        .is_some_and(|g| g.columns.as_ref().is_none_or(|c| c.contains(column)))
}

async fn load(pool: &deadpool_postgres::Pool, role: &RolePolicy) -> Result<SchemaView, ApiError> {
    let schemas: Vec<String> = role
        .tables
        .iter()
        .map(|g| g.schema.clone())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect();
    let client = pool.get().await?;

    let mut tables: BTreeMap<Key, TableView> = BTreeMap::new();
    let columns = client
        .query(
            "SELECT n.nspname, c.relname, obj_description(c.oid, 'pg_class'), a.attname,
                    format_type(a.atttypid, a.atttypmod), NOT a.attnotnull, col_description(c.oid, a.attnum)
             FROM pg_class c
             JOIN pg_namespace n ON n.oid = c.relnamespace
             JOIN pg_attribute a ON a.attrelid = c.oid
             WHERE n.nspname = ANY($1) AND c.relkind IN ('r', 'p', 'v', 'm') AND a.attnum > 0 AND NOT a.attisdropped
               AND NOT EXISTS (SELECT 1 FROM pg_depend d
                               WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.deptype = 'e')
             ORDER BY n.nspname, c.relname, a.attnum",
            &[&schemas],
        )
        .await
        ?;
    for row in columns {
        let (schema, table, column): (String, String, String) =
            (row.get(0), row.get(1), row.get(3));
        if !readable(role, &schema, &table, &column) {
            continue;
        }
        let entry = tables
            .entry((schema.clone(), table.clone()))
            .or_insert_with(|| TableView {
                schema,
                name: table,
                comment: row.get(2),
                columns: Vec::new(),
                primary_key: Vec::new(),
                foreign_keys: Vec::new(),
            });
        entry.columns.push(ColumnView {
            name: column,
            ty: row.get(4),
            nullable: row.get(5),
            comment: row.get(6),
            samples: Vec::new(),
        });
    }

    let keys = client
        .query(
            "SELECT n.nspname, c.relname, a.attname
             FROM pg_index i
             JOIN pg_class c ON c.oid = i.indrelid
             JOIN pg_namespace n ON n.oid = c.relnamespace
             CROSS JOIN LATERAL unnest(i.indkey::int2[]) WITH ORDINALITY AS k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.attnum
             WHERE i.indisprimary AND n.nspname = ANY($1)
             ORDER BY 1, 2, k.ord",
            &[&schemas],
        )
        .await?;
    for row in keys {
        let (schema, table, column): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        if let Some(t) = tables.get_mut(&(schema, table)) {
            if t.columns.iter().any(|c| c.name == column) {
                t.primary_key.push(column);
            }
        }
    }

    let fks = client
        .query(
            "SELECT k.oid::int8, cn.nspname, c.relname, a.attname, fn.nspname, f.relname, fa.attname
             FROM pg_constraint k
             JOIN pg_class c ON c.oid = k.conrelid JOIN pg_namespace cn ON cn.oid = c.relnamespace
             JOIN pg_class f ON f.oid = k.confrelid JOIN pg_namespace fn ON fn.oid = f.relnamespace
             CROSS JOIN LATERAL unnest(k.conkey, k.confkey) WITH ORDINALITY AS u(ck, fk, ord)
             JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = u.ck
             JOIN pg_attribute fa ON fa.attrelid = f.oid AND fa.attnum = u.fk
             WHERE k.contype = 'f' AND cn.nspname = ANY($1)
             ORDER BY 1, u.ord",
            &[&schemas],
        )
        .await
        ?;
    let mut grouped: BTreeMap<i64, (Key, Key, Vec<String>, Vec<String>)> = BTreeMap::new();
    for row in fks {
        let entry = grouped.entry(row.get(0)).or_insert_with(|| {
            (
                (row.get(1), row.get(2)),
                (row.get(4), row.get(5)),
                Vec::new(),
                Vec::new(),
            )
        });
        entry.2.push(row.get(3));
        entry.3.push(row.get(6));
    }
    for (_, (from, to, columns, referenced)) in grouped {
        let visible = columns.iter().all(|c| readable(role, &from.0, &from.1, c))
            && referenced.iter().all(|c| readable(role, &to.0, &to.1, c));
        if let (true, Some(t)) = (visible, tables.get_mut(&from)) {
            t.foreign_keys.push(ForeignKey {
                columns,
                references: format!("{}.{}", to.0, to.1),
                referenced_columns: referenced,
            });
        }
    }

    // The most common values, or for columns without repeats the histogram bounds (a spread of
    // real values). pg_stats hides tables whose row-level security applies to this role, so
    // fenced rows never leak through the samples.
    let samples = client
        .query(
            "SELECT s.schemaname::text, s.tablename::text, s.attname::text,
                    (coalesce(s.most_common_vals, s.histogram_bounds)::text)::text[]
             FROM pg_stats s
             WHERE s.schemaname = ANY($1) AND s.avg_width <= 24
               AND coalesce(s.most_common_vals, s.histogram_bounds) IS NOT NULL",
            &[&schemas],
        )
        .await?;
    for row in samples {
        let (schema, table, column): (String, String, String) =
            (row.get(0), row.get(1), row.get(2));
        let Some(t) = tables.get_mut(&(schema, table)) else {
            continue;
        };
        let Some(c) = t.columns.iter_mut().find(|c| c.name == column) else {
            continue;
        };
        if c.ty == "text" || c.ty.starts_with("character") {
            let values: Vec<String> = row.get(3);
            c.samples = values.into_iter().take(SAMPLES).collect();
        }
    }
    Ok(SchemaView {
        tables: tables.into_values().collect(),
    })
}
