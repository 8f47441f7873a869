//! Few-shot examples from the curated golden queries (`quarry_meta.golden_queries`): the ones
//! nearest the question by embedding, among those the caller's role could run itself — the SQL
//! guard decides, with the caller's own policy, so an example never shows a table or column the
//! caller cannot read — and among those, only examples over the tables the prompt shows
//! (an example over a table the model cannot see teaches it a name it must not write).
//!
//! Rows are read on every question (a dozen rows, one indexed scan) so an edit shows at once;
//! their embeddings are computed once per question text and kept.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::sync::Mutex;

use quarry_shared::policy::RolePolicy;
use quarry_shared::sql::{self, GuardOptions};

use crate::sql_prompt::Example;

/// Examples shown at most: each costs the local model its tokens on every question.
pub const MAX_EXAMPLES: usize = 2;

/// Cosine similarity (unit vectors) below which an example is more noise than help.
pub const MIN_SIMILARITY: f32 = 0.5;

/// Rows read at most.
const MAX_ROWS: i64 = 1000;

/// Embeddings of golden questions, by question text.
#[derive(Debug, Default)]
pub struct GoldenEmbeddings {
    known: Mutex<HashMap<String, Vec<f32>>>,
}

impl GoldenEmbeddings {
    /// The examples for a question with embedding `question`, as `role` may see them, reading
    /// only tables of `shown` (`(schema, table)`, the tables in the prompt). Empty when the
    /// table cannot be read or the embedder is unavailable: examples help, they are not needed.
    pub async fn examples(
        &self,
        db: &deadpool_postgres::Pool,
        models_dir: &Path,
        role: &RolePolicy,
        question: &[f32],
        shown: &BTreeSet<(String, String)>,
    ) -> Vec<Example> {
        let rows = match read(db).await {
            Ok(rows) => rows,
            Err(e) => {
                tracing::warn!(error = %e, "golden queries unavailable");
                return Vec::new();
            }
        };
        let options = GuardOptions::default();
        let allowed: Vec<Example> = rows
            .into_iter()
            .filter(|e| {
                sql::check(&e.sql, role, &options)
                    .is_ok_and(|guarded| guarded.tables.iter().all(|t| shown.contains(t)))
            })
            .collect();
        let missing: Vec<String> = {
            let known = self.lock();
            allowed
                .iter()
                .filter(|e| !known.contains_key(&e.question))
                .map(|e| e.question.clone())
                .collect()
        };
        if !missing.is_empty() {
            let Some(vectors) = crate::engine::embed(models_dir, missing.clone()).await else {
                return Vec::new();
            };
            self.lock().extend(missing.into_iter().zip(vectors));
        }
        let known = self.lock();
        let candidates: Vec<(&Example, &[f32])> = allowed
            .iter()
            .filter_map(|e| known.get(&e.question).map(|v| (e, v.as_slice())))
            .collect();
        pick(&candidates, question, MAX_EXAMPLES, MIN_SIMILARITY)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, Vec<f32>>> {
        self.known
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

async fn read(db: &deadpool_postgres::Pool) -> Result<Vec<Example>, String> {
    let client = db.get().await.map_err(|e| e.to_string())?;
    let rows = client
        .query(
            "SELECT question, sql FROM quarry_meta.golden_queries ORDER BY golden_id LIMIT $1",
            &[&MAX_ROWS],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows
        .iter()
        .map(|r| Example {
            question: r.get(0),
            sql: r.get(1),
        })
        .collect())
}

/// The `k` candidates most similar to `question` (dot product of unit vectors) at or above
/// `min`, most similar last: the example nearest the question sits next to it in the prompt.
pub fn pick(
    candidates: &[(&Example, &[f32])],
    question: &[f32],
    k: usize,
    min: f32,
) -> Vec<Example> {
    let mut scored: Vec<(f32, &Example)> = candidates
        .iter()
        .map(|(e, v)| (v.iter().zip(question).map(|(a, b)| a * b).sum::<f32>(), *e))
        .filter(|(s, _)| *s >= min)
        .collect();
    scored.sort_by(|a, b| b.0.total_cmp(&a.0));
    scored.truncate(k);
    scored.reverse();
    scored.into_iter().map(|(_, e)| e.clone()).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(q: &str) -> Example {
        Example {
            question: q.into(),
            sql: format!("SELECT '{q}'"),
        }
    }

    #[test]
    fn picks_the_nearest_above_the_floor_nearest_last() {
        let (a, b, c) = (ex("a"), ex("b"), ex("c"));
        let va = [1.0, 0.0];
        let vb = [0.8, 0.6];
        let vc = [0.0, 1.0];
        let candidates = [(&a, &va[..]), (&b, &vb[..]), (&c, &vc[..])];
        let picked = pick(&candidates, &[1.0, 0.0], 2, 0.5);
        assert_eq!(picked, vec![b.clone(), a.clone()]);
        assert!(pick(&candidates, &[1.0, 0.0], 5, 0.9).len() == 1);
        assert!(pick(&candidates, &[-1.0, 0.0], 2, 0.5).is_empty());
    }
}
