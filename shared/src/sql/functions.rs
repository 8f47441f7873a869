//! Function policy: a deny list that always applies, and an optional allow-list mode.
//!
//! Names are compared after PostgreSQL's identifier folding: an unquoted name is lower-cased, a
//! quoted one is taken as written (`"PG_SLEEP"` names a different, non-existent function, so it
//! passes here and fails in PostgreSQL). The schema is ignored, so `pg_catalog.pg_sleep` and
//! `myschema.pg_sleep` are both `pg_sleep`: a look-alike in another schema is refused rather than
//! trusted.

use std::collections::BTreeSet;

use sqlparser::ast::ObjectName;

use super::guard::Rejection;
use super::relations::ident;

/// Functions refused by exact name: side effects, session state, dynamic SQL, file access.
const DENIED: &[&str] = &[
    // Sequences advance or expose session state.
    "nextval",
    "setval",
    "currval",
    "lastval",
    // Session state.
    "set_config",
    "setseed",
    // Server control and signalling.
    "pg_terminate_backend",
    "pg_cancel_backend",
    "pg_reload_conf",
    "pg_promote",
    "pg_notify",
    "pg_export_snapshot",
    "pg_stat_file",
    "pg_current_logfile",
    "pg_import_system_collations",
    "pg_truncate_visibility_map",
    "pg_stat_statements_reset",
    "pg_hba_file_rules",
    "pg_ident_file_mappings",
    "pg_show_all_file_settings",
    "pg_config",
    // Large objects without the `lo_` prefix.
    "loread",
    "lowrite",
    // Run SQL given as text, which the guard cannot see: ts_stat/ts_rewrite take a query string,
    // tablefunc's crosstab/connectby too.
    "ts_stat",
    "ts_rewrite",
    "connectby",
    // pageinspect reads raw pages, around row-level security.
    "get_raw_page",
    "heap_page_items",
];

/// Functions refused by prefix: families where every member is dangerous or new members appear.
const DENIED_PREFIXES: &[&str] = &[
    "pg_sleep",        // pg_sleep, pg_sleep_for, pg_sleep_until
    "pg_read_",        // pg_read_file, pg_read_binary_file
    "pg_ls_",          // pg_ls_dir, pg_ls_logdir, pg_ls_waldir, ...
    "pg_file_",        // adminpack: pg_file_write, pg_file_rename, pg_file_unlink
    "lo_",             // large objects: lo_import, lo_export, lo_get, lo_put, ...
    "dblink",          // dblink, dblink_exec, dblink_connect, ...
    "postgres_fdw_",   // connection management
    "pg_advisory",     // advisory locks
    "pg_try_advisory", // advisory locks
    "pg_create_",      // replication slots, restore points
    "pg_drop_",        // replication slots
    "pg_copy_",        // replication slots
    "pg_replication_", // replication origins and slot advance
    "pg_logical_",     // logical decoding, pg_logical_emit_message
    "pg_sync_",        // slot synchronisation
    "pg_switch_",      // pg_switch_wal, pg_switch_xlog
    "pg_wal_replay_",  // pause / resume recovery
    "pg_backup_",      // pg_backup_start / stop
    "pg_start_backup", // older spelling
    "pg_stop_backup",  // older spelling
    "pg_rotate_",      // pg_rotate_logfile
    "pg_log_",         // pg_log_backend_memory_contexts, pg_log_standby_snapshot
    "pg_stat_reset",   // statistics resets
    "pg_restore_",     // PostgreSQL 18 statistics import
    "pg_clear_",       // PostgreSQL 18 statistics import
    "pg_get_wal_",     // pg_walinspect reads raw WAL
    "binary_upgrade_", // pg_upgrade internals
    "query_to_xml",    // dynamic SQL: query_to_xml, query_to_xmlschema, query_to_xml_and_xmlschema
    "table_to_xml",    // reads a table the guard cannot see (name as text)
    "cursor_to_xml",   // reads an open cursor
    "schema_to_xml",   // reads a whole schema
    "database_to_xml", // reads the whole database
    "crosstab",        // tablefunc: runs its text argument as SQL
];

/// Functions allowed in allow-list mode even when the list omits them: the aggregates and the
/// operator-like conditionals a reporting query cannot do without. Casts, `EXTRACT`, `SUBSTRING`,
/// `TRIM`, `POSITION`, `CASE` and `COALESCE`-like syntax that `sqlparser` parses as their own
/// expression kinds are not function calls at all and pass in either mode.
const BASICS: &[&str] = &[
    "count", "sum", "avg", "min", "max", "coalesce", "nullif", "greatest", "least",
];

/// Whether `name` (already folded) is on the deny list.
pub(crate) fn is_denied(name: &str) -> bool {
    DENIED.contains(&name) || DENIED_PREFIXES.iter().any(|p| name.starts_with(p))
}

/// Checks one function call by its (possibly schema-qualified) name.
///
/// # Errors
/// [`Rejection::Function`] with the folded, schema-stripped name when the deny list has it, or
/// when an allow list is set and it has neither the name nor one of the [`BASICS`].
pub(crate) fn check(name: &ObjectName, allow: Option<&BTreeSet<String>>) -> Result<(), Rejection> {
    let Some(last) = name.0.last() else {
        return Err(Rejection::NotAQuery("function without a name".into()));
    };
    // A name part computed by a function (a non-PostgreSQL dialect feature) cannot be judged.
    let Some(last) = last.as_ident() else {
        return Err(Rejection::NotAQuery("computed function name".into()));
    };
    let folded = ident(last);
    if is_denied(&folded) {
        return Err(Rejection::Function(folded));
    }
    if let Some(allow) = allow {
        if !allow.contains(&folded) && !BASICS.contains(&folded.as_str()) {
            return Err(Rejection::Function(folded));
        }
    }
    Ok(())
}
