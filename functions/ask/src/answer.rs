//! The final answer: prompts that give the model the question with the query and its rows
//! and/or numbered passages, and the citation check that keeps an answer from citing anything
//! that was not retrieved.

use std::fmt::Write as _;

use quarry_shared::llm::ChatRequest;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use uuid::Uuid;

use crate::peers::{Passage, SqlResult};

/// Most characters of one cell shown to the model.
const CELL_CHARS: usize = 80;
/// Most characters of one passage shown to the model.
const PASSAGE_CHARS: usize = 1500;

/// What the answer is written from.
pub struct Evidence<'a> {
    /// The query and its result, for SQL routes.
    pub sql: Option<(&'a str, &'a SqlResult)>,
    /// Rows of the result the model may see (0 = none: it answers from the shape alone and the
    /// caller reads the table).
    pub rows_to_model: usize,
    /// Retrieved passages, numbered from 1 in this order.
    pub passages: &'a [Passage],
}

/// A citation of a retrieved passage.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Citation {
    /// The number used in the answer text (`[n]`).
    pub n: usize,
    /// The chunk cited.
    pub chunk_id: Uuid,
    /// Its document's URI.
    pub source: String,
    /// Its page, if paged.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub page: Option<i32>,
}

const SYSTEM: &str = "You answer questions for employees of a company, using only the evidence \
given: a SQL query with its result, and/or numbered passages from documents.\n\
- Be concise: one or two sentences. The user also sees the result table, so summarise it (a \
total, the top rows) instead of repeating every row. State numbers exactly as they appear.\n\
- Never invent facts, rows or numbers that are not in the evidence.\n\
- When you use a passage, cite it with its number in brackets, like [1] or [2][3].\n\
- If the evidence does not answer the question, say so plainly.";

/// The request for the answer to `question` from `evidence`.
pub fn request(question: &str, evidence: &Evidence<'_>) -> ChatRequest {
    let mut user = String::new();
    if let Some((sql, result)) = evidence.sql {
        let _ = writeln!(user, "SQL query:\n{sql}\n");
        let shown = evidence.rows_to_model.min(result.rows.len());
        let total = if result.truncated {
            format!("at least {}", result.rows.len())
        } else {
            result.rows.len().to_string()
        };
        if shown == 0 {
            let _ = writeln!(
                user,
                "Result: {total} rows with columns {}. The rows are shown to the user as a table; describe what it contains.\n",
                column_list(result)
            );
        } else {
            let _ = writeln!(user, "Result ({total} rows, first {shown} shown):");
            user.push_str(&table(result, shown));
            user.push('\n');
        }
    }
    if !evidence.passages.is_empty() {
        user.push_str("Passages:\n");
        for (i, p) in evidence.passages.iter().enumerate() {
            let heading = if p.heading.is_empty() {
                String::new()
            } else {
                format!(", {}", p.heading)
            };
            let text: String = p.text.chars().take(PASSAGE_CHARS).collect();
            let _ = writeln!(
                user,
                "[{}] ({}{heading})\n{}\n",
                i + 1,
                p.source,
                text.trim()
            );
        }
    }
    let _ = write!(user, "Question: {question}");
    let mut request = ChatRequest::new(SYSTEM, user);
    request.max_tokens = 300;
    request
}

fn column_list(result: &SqlResult) -> String {
    result
        .columns
        .iter()
        .map(|c| c.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// The first `rows` rows as a Markdown table.
fn table(result: &SqlResult, rows: usize) -> String {
    let mut out = format!(
        "| {} |\n",
        result
            .columns
            .iter()
            .map(|c| c.name.as_str())
            .collect::<Vec<_>>()
            .join(" | ")
    );
    let _ = writeln!(out, "|{}", "---|".repeat(result.columns.len()));
    for row in result.rows.iter().take(rows) {
        let cells: Vec<String> = row.iter().map(cell).collect();
        let _ = writeln!(out, "| {} |", cells.join(" | "));
    }
    out
}

fn cell(value: &Value) -> String {
    let text = match value {
        Value::Null => "NULL".to_owned(),
        Value::String(s) => s.clone(),
        other => other.to_string(),
    };
    let text = text.replace(['\n', '|'], " ");
    if text.chars().count() > CELL_CHARS {
        let cut: String = text.chars().take(CELL_CHARS).collect();
        format!("{cut}…")
    } else {
        text
    }
}

/// The answer when no model may see rows: a one-value result is stated, anything else
/// summarised by its size (the rows travel in the response).
pub fn from_table_alone(result: &SqlResult) -> String {
    match (result.rows.as_slice(), result.columns.as_slice()) {
        ([], _) => "The query returned no rows.".to_owned(),
        ([row], [column]) => format!(
            "{}: {}",
            column.name,
            row.first().map(cell).unwrap_or_default()
        ),
        (rows, _) => {
            let more = if result.truncated { "+" } else { "" };
            format!("{}{more} rows; see the table.", rows.len())
        }
    }
}

/// Checks the citations of `answer` against `passages`: `[n]` markers that name a passage are
/// kept and listed once each in order of first use; markers naming anything else (`[9]` of 3
/// passages, `[0]`) are removed from the text, so an answer never points at something that
/// was not retrieved.
pub fn cite(answer: &str, passages: &[Passage]) -> (String, Vec<Citation>) {
    let mut text = String::with_capacity(answer.len());
    let mut citations: Vec<Citation> = Vec::new();
    let mut rest = answer;
    while let Some(open) = rest.find('[') {
        text.push_str(&rest[..open]);
        let after = &rest[open + 1..];
        let Some(close) = after.find(']') else {
            text.push_str(&rest[open..]);
            rest = "";
            break;
        };
        let inner = &after[..close];
        let numbers: Option<Vec<usize>> = inner
            .split(',')
            .map(|n| n.trim().parse::<usize>().ok())
            .collect();
        match numbers {
            Some(numbers) if !inner.trim().is_empty() => {
                let valid: Vec<usize> = numbers
                    .into_iter()
                    .filter(|&n| n >= 1 && n <= passages.len())
                    .collect();
                if !valid.is_empty() {
                    let _ = write!(
                        text,
                        "[{}]",
                        valid
                            .iter()
                            .map(ToString::to_string)
                            .collect::<Vec<_>>()
                            .join(", ")
                    );
                }
                for n in valid {
                    if !citations.iter().any(|c| c.n == n) {
                        let p = &passages[n - 1];
                        citations.push(Citation {
                            n,
                            chunk_id: p.chunk_id,
                            source: p.source.clone(),
                            page: p.page,
                        });
                    }
                }
            }
            // Not a citation (`[see below]`, an array in text): keep as written.
            _ => text.push_str(&rest[open..open + close + 2]),
        }
        rest = &after[close + 1..];
    }
    text.push_str(rest);
    (text.replace(" .", ".").trim().to_owned(), citations)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::peers::ResultColumn;
    use serde_json::json;

    fn passage(n: u128, source: &str) -> Passage {
        Passage {
            chunk_id: Uuid::from_u128(n),
            document_id: Uuid::from_u128(100 + n),
            source: source.into(),
            page: Some(2),
            heading: "Retention".into(),
            text: format!("passage {n}"),
        }
    }

    fn result(rows: Vec<Vec<Value>>, truncated: bool) -> SqlResult {
        SqlResult {
            columns: vec![
                ResultColumn {
                    name: "country".into(),
                    ty: "varchar".into(),
                },
                ResultColumn {
                    name: "customers".into(),
                    ty: "int8".into(),
                },
            ],
            rows,
            truncated,
        }
    }

    #[test]
    fn valid_citations_are_kept_and_listed_once() {
        let passages = [passage(1, "file:///a.md"), passage(2, "gs://b/c.pdf")];
        let (text, cites) = cite(
            "Keep logs 90 days [2]. Backups are kept [1, 2] [2].",
            &passages,
        );
        assert_eq!(text, "Keep logs 90 days [2]. Backups are kept [1, 2] [2].");
        assert_eq!(cites.iter().map(|c| c.n).collect::<Vec<_>>(), [2, 1]);
        assert_eq!(cites[0].source, "gs://b/c.pdf");
        assert_eq!(cites[1].chunk_id, Uuid::from_u128(1));
    }

    #[test]
    fn citations_of_passages_not_retrieved_are_removed() {
        let passages = [passage(1, "file:///a.md")];
        let (text, cites) = cite("Yes [3]. Also [0][1]. See [1, 7]. [note] and [", &passages);
        assert_eq!(text, "Yes. Also [1]. See [1]. [note] and [");
        assert_eq!(cites.len(), 1);
        let (text, cites) = cite("Nothing cited [2].", &[]);
        assert_eq!((text.as_str(), cites.len()), ("Nothing cited.", 0));
    }

    #[test]
    fn the_prompt_shows_rows_up_to_the_limit() {
        let r = result(
            vec![
                vec![json!("USA"), json!(13)],
                vec![json!("Canada"), json!(8)],
                vec![json!("Brazil"), json!(5)],
            ],
            true,
        );
        let evidence = Evidence {
            sql: Some(("SELECT …", &r)),
            rows_to_model: 2,
            passages: &[],
        };
        let req = request("Customers per country?", &evidence);
        let user = &req.messages[0].content;
        assert!(
            user.contains("Result (at least 3 rows, first 2 shown):"),
            "{user}"
        );
        assert!(user.contains("| USA | 13 |") && user.contains("| Canada | 8 |"));
        assert!(!user.contains("Brazil"));
        assert!(user.ends_with("Question: Customers per country?"));
    }

    #[test]
    fn no_rows_reach_the_model_in_table_only_mode() {
        let r = result(vec![vec![json!("USA"), json!(13)]], false);
        let evidence = Evidence {
            sql: Some(("SELECT …", &r)),
            rows_to_model: 0,
            passages: &[],
        };
        let user = request("q", &evidence).messages[0].content.clone();
        assert!(!user.contains("USA"), "{user}");
        assert!(user.contains("columns country, customers"));
    }

    #[test]
    fn table_alone_answers() {
        let one = SqlResult {
            columns: vec![ResultColumn {
                name: "customers".into(),
                ty: "int8".into(),
            }],
            rows: vec![vec![json!(59)]],
            truncated: false,
        };
        assert_eq!(from_table_alone(&one), "customers: 59");
        assert_eq!(
            from_table_alone(&result(vec![], false)),
            "The query returned no rows."
        );
        let many = result(
            vec![vec![json!("a"), json!(1)], vec![json!("b"), json!(2)]],
            true,
        );
        assert_eq!(from_table_alone(&many), "2+ rows; see the table.");
    }

    #[test]
    fn passages_are_numbered_with_their_source() {
        let passages = [passage(1, "file:///policy.md")];
        let evidence = Evidence {
            sql: None,
            rows_to_model: 0,
            passages: &passages,
        };
        let user = request("Retention?", &evidence).messages[0].content.clone();
        assert!(
            user.contains("[1] (file:///policy.md, Retention)\npassage 1"),
            "{user}"
        );
    }
}
