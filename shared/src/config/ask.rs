//! Settings of the `ask` orchestrator.
//!
//! | variable | default | meaning |
//! |---|---|---|
//! | `SQL_EXEC_URL` | this server | base URL of the sql-exec function |
//! | `RETRIEVE_URL` | this server | base URL of the retrieve function |
//! | `ASK_MAX_ATTEMPTS` | 3 | queries the model writes per question (the first plus repairs) |
//! | `ASK_ROWS_TO_LLM` | 10 | result rows the model sees when writing the answer; 0 = none ever |
//! | `ASK_MAX_ROWS` | 200 | result rows returned to the caller |
//! | `ASK_TOP_K` | 6 | passages retrieved for a documents answer |
//! | `ASK_LINK_ABOVE_TABLES` | 30 | schemas with more tables are linked to the question first (below it the whole schema is one cached prompt prefix) |
//! | `ASK_LINK_TABLES` | 6 | tables picked by similarity when linking (before bridges) |
//! | `ASK_SCOPE_MARGIN` | 0.08 | when the readable tables span several database schemas, those whose best table is within this cosine similarity of the best schema's reach the prompt; 2 = always all |
//! | `ASK_CACHE_THRESHOLD` | 0.92 | cosine similarity a cached question needs (same numbers, dates, negations too) |
//! | `ASK_CACHE_TTL_SECS` | 86400 | how long cached answers live |

use super::{ranged, ConfigError};

/// Every `ask` setting, validated.
#[derive(Debug, Clone, PartialEq)]
pub struct AskSettings {
    /// sql-exec's base URL; `None` = this server (`quarry dev`).
    pub sql_exec_url: Option<url::Url>,
    /// retrieve's base URL; `None` = this server.
    pub retrieve_url: Option<url::Url>,
    /// Queries the model writes per question (the first plus repairs).
    pub max_attempts: u32,
    /// Rows the model sees.
    pub rows_to_llm: usize,
    /// Rows returned to the caller.
    pub max_rows: u32,
    /// Passages retrieved.
    pub top_k: usize,
    /// Schemas with more tables than this are linked first.
    pub link_above_tables: usize,
    /// Tables picked when linking.
    pub link_tables: usize,
    /// How far behind the best database schema another may score and still reach the prompt.
    pub scope_margin: f32,
    /// Cosine similarity a cached question needs to answer a new one.
    pub cache_threshold: f32,
    /// How long cached answers live.
    pub cache_ttl: std::time::Duration,
}

impl AskSettings {
    pub(super) fn from_lookup(get: &impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let url = |var: &'static str| -> Result<Option<url::Url>, ConfigError> {
            get(var)
                .map(|v| {
                    super::validate_url(var, v.clone(), &["http", "https"])?;
                    url::Url::parse(&v).map_err(|_| ConfigError::new(var, "is not a valid URL"))
                })
                .transpose()
        };
        let size = |var: &'static str, default: u64, range| {
            ranged(get(var), var, default, range).map(|v| usize::try_from(v).unwrap_or(usize::MAX))
        };
        Ok(Self {
            sql_exec_url: url("SQL_EXEC_URL")?,
            retrieve_url: url("RETRIEVE_URL")?,
            max_attempts: u32::try_from(ranged(
                get("ASK_MAX_ATTEMPTS"),
                "ASK_MAX_ATTEMPTS",
                3,
                1..=5,
            )?)
            .unwrap_or(3),
            rows_to_llm: size("ASK_ROWS_TO_LLM", 10, 0..=500)?,
            max_rows: u32::try_from(ranged(
                get("ASK_MAX_ROWS"),
                "ASK_MAX_ROWS",
                200,
                1..=10_000,
            )?)
            .unwrap_or(200),
            top_k: size("ASK_TOP_K", 6, 1..=20)?,
            link_above_tables: size("ASK_LINK_ABOVE_TABLES", 30, 1..=10_000)?,
            link_tables: size("ASK_LINK_TABLES", 6, 1..=100)?,
            scope_margin: number(get("ASK_SCOPE_MARGIN"), "ASK_SCOPE_MARGIN", 0.08, 0.0..=2.0)?,
            cache_threshold: number(
                get("ASK_CACHE_THRESHOLD"),
                "ASK_CACHE_THRESHOLD",
                0.92,
                0.5..=1.0,
            )?,
            cache_ttl: std::time::Duration::from_secs(ranged(
                get("ASK_CACHE_TTL_SECS"),
                "ASK_CACHE_TTL_SECS",
                86_400,
                1..=30 * 86_400,
            )?),
        })
    }
}

/// A decimal setting within `range` (NaN is outside every range).
fn number(
    value: Option<String>,
    var: &'static str,
    default: f32,
    range: std::ops::RangeInclusive<f32>,
) -> Result<f32, ConfigError> {
    let bounds = format!("between {} and {}", range.start(), range.end());
    let v = super::parse_or(value, var, &format!("a number {bounds}"), || default)?;
    if range.contains(&v) {
        Ok(v)
    } else {
        Err(ConfigError::new(var, format!("must be {bounds}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(vars: &[(&str, &str)]) -> Result<AskSettings, ConfigError> {
        let get = |name: &str| {
            vars.iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| (*v).to_owned())
        };
        AskSettings::from_lookup(&get)
    }

    #[test]
    fn defaults_and_bounds() {
        let s = load(&[]).unwrap();
        assert_eq!(
            (s.max_attempts, s.rows_to_llm, s.max_rows, s.top_k),
            (3, 10, 200, 6)
        );
        assert_eq!(s.sql_exec_url, None);
        assert_eq!((s.scope_margin, s.cache_threshold), (0.08, 0.92));
        assert_eq!(
            load(&[("ASK_SCOPE_MARGIN", "2")]).unwrap().scope_margin,
            2.0
        );
        assert_eq!(load(&[("ASK_ROWS_TO_LLM", "0")]).unwrap().rows_to_llm, 0);
        for (var, value) in [
            ("ASK_MAX_ATTEMPTS", "0"),
            ("ASK_MAX_ATTEMPTS", "9"),
            ("ASK_TOP_K", "x"),
            ("SQL_EXEC_URL", "ftp://h"),
            ("ASK_CACHE_THRESHOLD", "0.2"),
            ("ASK_CACHE_THRESHOLD", "NaN"),
            ("ASK_SCOPE_MARGIN", "-0.1"),
            ("ASK_SCOPE_MARGIN", "inf"),
        ] {
            assert_eq!(load(&[(var, value)]).unwrap_err().var, var);
        }
    }
}
