//! The text-to-SQL conversation: the system prompt (rules + schema, identical for every question
//! of a role and schema version, so a local model evaluates it once), few-shot examples, the
//! question, the repair turns after a failure, and pulling the SQL out of the model's answer.

use quarry_shared::llm::{ChatRequest, Message};

/// A question with the SQL that answers it (a curated golden query), shown as an example turn.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// The question.
    pub question: String,
    /// Its SQL.
    pub sql: String,
}

/// Most tokens a generated query may take.
const SQL_MAX_TOKENS: u32 = 400;

/// The system prompt for `schema_ddl` (from [`crate::schema_context::render`]) whose tables and
/// columns are `identifiers`.
pub fn system_prompt<S: AsRef<str>>(schema_ddl: &str, identifiers: &[S]) -> String {
    let names = name_rule(identifiers).unwrap_or_default();
    format!(
        "You write PostgreSQL queries that answer questions about this database.\n\
         Rules:\n\
         - Write exactly one read-only query: SELECT or WITH ... SELECT. Never modify data.\n\
         - Use only the tables and columns below; join on the REFERENCES shown.\n\
         {names}\
         - Match text values exactly as in the examples given after 'e.g.'. A value that is missing or not listed is NULL: test it with IS NULL.\n\
         - Give columns readable aliases; round money to 2 decimals; add ORDER BY when the question ranks or sorts, and LIMIT when it asks for a top N.\n\
         - Answer with the SQL only, no explanation, no Markdown.\n\
         \n\
         Database:\n{schema_ddl}"
    )
}

/// A rule naming the schema's spelling when every name is lower case and some have underscores:
/// well-known sample databases (Chinook's `FirstName`) are spelled differently elsewhere, and a
/// model that writes the spelling it learned either fails or, under the SQL grammar, is steered
/// to some other real column. The example is a column of this schema.
fn name_rule<S: AsRef<str>>(identifiers: &[S]) -> Option<String> {
    let names = || identifiers.iter().flat_map(|i| i.as_ref().split('.'));
    let lower = |n: &str| {
        n.chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
    };
    if !names().all(lower) {
        return None;
    }
    let example = names().find(|n| n.contains('_') && n.split('_').all(|w| !w.is_empty()))?;
    Some(format!(
        "- Write names exactly as below: lower case, words joined by underscores \
         ({example}, never {}).\n",
        camel_case(example)
    ))
}

/// `first_name` → `FirstName`.
fn camel_case(name: &str) -> String {
    name.split('_')
        .map(|word| {
            let mut chars = word.chars();
            chars.next().map_or_else(String::new, |first| {
                first.to_ascii_uppercase().to_string() + chars.as_str()
            })
        })
        .collect()
}

/// The request that asks for SQL: `history` (earlier questions and their SQL in this session,
/// oldest first, so follow-ups like "and in 2010?" resolve), the examples, then the question.
pub fn generation_request(
    system: &str,
    examples: &[Example],
    history: &[Example],
    question: &str,
) -> ChatRequest {
    let mut request = ChatRequest::new(system, question);
    let mut turns = Vec::with_capacity(2 * (examples.len() + history.len()) + 1);
    for example in examples.iter().chain(history) {
        turns.push(Message::user(example.question.clone()));
        turns.push(Message::assistant(example.sql.clone()));
    }
    turns.push(Message::user(question));
    request.messages = turns;
    request.max_tokens = SQL_MAX_TOKENS;
    request
}

/// Extends `request` after `sql` failed with `error`, asking for a corrected query.
pub fn add_repair(request: &mut ChatRequest, sql: &str, error: &str) {
    request.messages.push(Message::assistant(sql));
    request.messages.push(Message::user(format!(
        "That query failed: {error}\nWrite a corrected query. Answer with the SQL only."
    )));
}

/// Extends `request` after `sql` found nothing (no rows, or a zero count), asking the model to
/// check it once; `grounding` says what the data holds for its filters ([`crate::ground`]).
pub fn add_empty_recheck(request: &mut ChatRequest, sql: &str, grounding: Option<&str>) {
    request.messages.push(Message::assistant(sql));
    // Told where a value really is, the 1.5B model still took "repeat it unchanged" as leave
    // to repeat the query (c15, c30 of the eval); a grounded turn asks for the rewrite.
    let ask = match grounding {
        Some(found) => format!(
            "That query found nothing. {found} Write the query again, filtering the column \
             that holds the value the question means. Answer with the SQL only."
        ),
        None => "That query found nothing. Check the filters against the example values and \
                 the joins. If the query is right, repeat it unchanged; otherwise write the \
                 corrected query. Answer with the SQL only."
            .to_owned(),
    };
    request.messages.push(Message::user(ask));
}

/// The SQL in a model's answer: the content of the first fenced code block if there is one,
/// else the text from the first `SELECT`/`WITH`; trailing semicolons and prose after the first
/// statement dropped. `None` when there is no query in it.
pub fn extract_sql(answer: &str) -> Option<String> {
    let body = fenced(answer).unwrap_or(answer);
    let start = find_keyword_start(body)?;
    let mut sql = &body[start..];
    if let Some(end) = statement_end(sql) {
        sql = &sql[..end];
    }
    let sql = sql.trim().trim_end_matches(';').trim();
    (!sql.is_empty()).then(|| sql.to_owned())
}

fn fenced(text: &str) -> Option<&str> {
    let open = text.find("```")?;
    let after = &text[open + 3..];
    // Skip the info string (`sql`, `postgresql`) up to the end of the line.
    let body_start = after.find('\n').map_or(0, |i| i + 1);
    let body = &after[body_start..];
    let close = body.find("```").unwrap_or(body.len());
    Some(&body[..close])
}

fn find_keyword_start(text: &str) -> Option<usize> {
    let upper = text.to_ascii_uppercase();
    let mut best: Option<usize> = None;
    for keyword in ["SELECT", "WITH"] {
        let mut from = 0;
        while let Some(pos) = upper[from..].find(keyword) {
            let at = from + pos;
            let before_ok = at == 0 || !is_word(upper.as_bytes()[at - 1]);
            let after = at + keyword.len();
            let after_ok = upper.as_bytes().get(after).is_none_or(|&b| !is_word(b));
            if before_ok && after_ok {
                best = Some(best.map_or(at, |b| b.min(at)));
                break;
            }
            from = after;
        }
    }
    best
}

fn is_word(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

/// The end of the first statement: the first `;` outside quotes, or a blank line followed by
/// prose (models like to explain after the query).
fn statement_end(sql: &str) -> Option<usize> {
    let bytes = sql.as_bytes();
    let mut quote: Option<u8> = None;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        match quote {
            Some(q) if b == q => quote = None,
            Some(_) => {}
            None if b == b'\'' || b == b'"' => quote = Some(b),
            None if b == b';' => return Some(i),
            None if b == b'\n' && sql[i..].starts_with("\n\n") => {
                let rest = sql[i..].trim_start();
                let first = rest.split_whitespace().next().unwrap_or("");
                if !first.is_empty() && !looks_like_sql(first) {
                    return Some(i);
                }
            }
            None => {}
        }
        i += 1;
    }
    None
}

fn looks_like_sql(word: &str) -> bool {
    const CLAUSES: [&str; 14] = [
        "SELECT", "FROM", "WHERE", "GROUP", "ORDER", "LIMIT", "HAVING", "JOIN", "LEFT", "INNER",
        "UNION", "WITH", "AND", "OR",
    ];
    let upper = word.to_ascii_uppercase();
    CLAUSES.contains(&upper.as_str()) || word.starts_with('(') || word.starts_with(')')
}

#[cfg(test)]
mod tests {
    use super::*;
    use quarry_shared::llm::Role;

    #[test]
    fn the_system_prompt_does_not_depend_on_the_question() {
        let names = ["t", "x"];
        let a = generation_request(
            &system_prompt("CREATE TABLE t (x int);", &names),
            &[],
            &[],
            "q1",
        );
        let b = generation_request(
            &system_prompt("CREATE TABLE t (x int);", &names),
            &[],
            &[],
            "q2",
        );
        assert_eq!(a.system, b.system);
        assert!(a.system.ends_with("CREATE TABLE t (x int);"));
        assert_eq!(a.temperature, 0.0);
    }

    #[test]
    fn the_spelling_rule_shows_a_column_of_the_schema() {
        let names = [
            "customer",
            "customer_id",
            "first_name",
            "public.invoice_line",
        ];
        let rule = name_rule(&names).unwrap();
        assert!(rule.contains("(customer_id, never CustomerId)"), "{rule}");
        assert!(system_prompt("DDL", &names).contains(&rule));
    }

    #[test]
    fn no_spelling_rule_for_mixed_case_or_single_word_names() {
        assert_eq!(name_rule(&["Customer", "first_name"]), None);
        assert_eq!(name_rule(&["customer", "total"]), None);
        assert_eq!(name_rule(&["_x", "y__z", "a_"]), None);
        assert_eq!(camel_case("invoice_line_id"), "InvoiceLineId");
    }

    #[test]
    fn examples_and_history_come_before_the_question() {
        let ex = Example {
            question: "How many tracks?".into(),
            sql: "SELECT count(*) FROM track".into(),
        };
        let prior = Example {
            question: "Sales in 2009?".into(),
            sql: "SELECT sum(total) FROM invoice WHERE extract(year FROM invoice_date) = 2009"
                .into(),
        };
        let mut req = generation_request("s", &[ex], &[prior], "and in 2010?");
        let roles: Vec<Role> = req.messages.iter().map(|m| m.role).collect();
        assert_eq!(
            roles,
            [
                Role::User,
                Role::Assistant,
                Role::User,
                Role::Assistant,
                Role::User
            ]
        );
        assert_eq!(req.messages[4].content, "and in 2010?");
        add_repair(&mut req, "SELECT nope", "column \"nope\" does not exist");
        assert_eq!(req.messages[5].content, "SELECT nope");
        assert!(req.messages[6]
            .content
            .contains("column \"nope\" does not exist"));
    }

    #[test]
    fn extracts_sql_from_the_usual_answer_shapes() {
        let cases = [
            ("SELECT 1", "SELECT 1"),
            ("select count(*) from track;", "select count(*) from track"),
            (
                "```sql\nSELECT a\nFROM t;\n```\nThis counts.",
                "SELECT a\nFROM t",
            ),
            (
                "Here is the query:\n```\nWITH x AS (SELECT 1) SELECT * FROM x\n```",
                "WITH x AS (SELECT 1) SELECT * FROM x",
            ),
            (
                "Sure! SELECT name FROM artist WHERE name = 'AC;DC'; -- done",
                "SELECT name FROM artist WHERE name = 'AC;DC'",
            ),
            (
                "SELECT a\nFROM t\n\nWHERE a > 1",
                "SELECT a\nFROM t\n\nWHERE a > 1",
            ),
            ("SELECT a FROM t\n\nThis query lists a.", "SELECT a FROM t"),
        ];
        for (answer, sql) in cases {
            assert_eq!(extract_sql(answer).as_deref(), Some(sql), "{answer:?}");
        }
    }

    #[test]
    fn no_query_no_sql() {
        for answer in [
            "",
            "I cannot answer that.",
            "```\n```",
            "selection of tracks",
        ] {
            assert_eq!(extract_sql(answer), None, "{answer:?}");
        }
    }
}
