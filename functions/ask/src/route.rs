//! Where an answer lives: in the tables (`sql`), in documents (`docs`), in both, or nowhere
//! the caller can reach (`none`). A fast keyword heuristic settles the clear cases; the rest go
//! to the model with a structured-output schema, so its answer is one of the four words.

use std::collections::BTreeSet;

use quarry_shared::llm::{ChatRequest, JsonSchema};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// A route.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Route {
    /// Query the tables.
    Sql,
    /// Search the documents.
    Docs,
    /// Both.
    Both,
    /// Neither: the question is not about the company's data or documents.
    None,
}

/// Words that point at documents: policies, procedures, explanations.
const DOC_WORDS: [&str; 24] = [
    "policy",
    "policies",
    "procedure",
    "procedures",
    "guideline",
    "guidelines",
    "handbook",
    "manual",
    "documentation",
    "document",
    "documents",
    "explain",
    "explains",
    "describe",
    "according",
    "retention",
    "allowed",
    "rule",
    "rules",
    "process",
    "configure",
    "setting",
    "settings",
    "why",
];

/// Phrases that point at documents.
const DOC_PHRASES: [&str; 5] = [
    "how do i",
    "how to ",
    "what is our",
    "what are our",
    "what does",
];

/// Words that point at aggregates over rows.
const DATA_WORDS: [&str; 22] = [
    "total", "sum", "average", "avg", "count", "number", "top", "most", "least", "highest",
    "lowest", "revenue", "sales", "spent", "spend", "per", "each", "list", "rank", "median",
    "busiest", "biggest",
];

/// Phrases that point at aggregates.
const DATA_PHRASES: [&str; 3] = ["how many", "how much", "which "];

/// The route the question's words make clear, or `None` when they do not (the model decides).
/// `schema_words` are the caller's table and column names, split at `_`, singular and plural.
pub fn heuristic(question: &str, schema_words: &BTreeSet<String>) -> Option<Route> {
    let lower = question.to_lowercase();
    let words: Vec<&str> = lower
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect();
    let has_year = words.iter().any(|w| {
        w.len() == 4
            && (w.starts_with("19") || w.starts_with("20"))
            && w.chars().all(|c| c.is_ascii_digit())
    });
    let data = DATA_PHRASES.iter().any(|p| lower.contains(p))
        || words.iter().any(|w| DATA_WORDS.contains(w))
        || has_year;
    let schema = words.iter().any(|w| schema_words.contains(*w));
    let docs = DOC_PHRASES.iter().any(|p| lower.contains(p))
        || words.iter().any(|w| DOC_WORDS.contains(w));
    match (data && schema, docs) {
        (true, false) => Some(Route::Sql),
        (false, true) if !schema => Some(Route::Docs),
        _ => None,
    }
}

/// The words of a schema for [`heuristic`]: every table and column name, whole and split at
/// `_`, with a naive plural and singular.
pub fn schema_words<'a>(names: impl IntoIterator<Item = &'a str>) -> BTreeSet<String> {
    let mut words = BTreeSet::new();
    for name in names {
        let name = name.to_lowercase();
        for part in std::iter::once(name.as_str()).chain(name.split('_')) {
            if part.len() < 3 || part == "id" {
                continue;
            }
            words.insert(part.to_owned());
            words.insert(format!("{part}s"));
            if let Some(stem) = part.strip_suffix('s') {
                words.insert(stem.to_owned());
            }
        }
    }
    words
}

/// The request that asks the model for a route, given the caller's table names.
pub fn request(question: &str, tables: &[String]) -> ChatRequest {
    let system = format!(
        "Decide where the answer to a question lives.\n\
         - sql: numbers, lists or facts stored in these database tables: {}.\n\
         - docs: policies, procedures, explanations, manuals and other documents.\n\
         - both: it needs table data and document text together.\n\
         - none: small talk, or nothing the company's data or documents could answer.\n\
         Answer with JSON: {{\"route\": \"sql\" | \"docs\" | \"both\" | \"none\"}}.",
        tables.join(", ")
    );
    let mut request = ChatRequest::new(system, question);
    request.max_tokens = 20;
    request.json_schema = Some(JsonSchema {
        name: "route".to_owned(),
        schema: json!({
            "type": "object",
            "properties": {"route": {"type": "string", "enum": ["sql", "docs", "both", "none"]}},
            "required": ["route"],
            "additionalProperties": false,
        }),
    });
    request
}

/// The route in the model's answer: the JSON asked for, or failing that the first route word.
pub fn parse(answer: &str) -> Option<Route> {
    #[derive(Deserialize)]
    struct Answer {
        route: Route,
    }
    let trimmed = answer.trim();
    if let Ok(parsed) = serde_json::from_str::<Answer>(trimmed) {
        return Some(parsed.route);
    }
    let lower = trimmed.to_lowercase();
    lower
        .split(|c: char| !c.is_alphanumeric())
        .find_map(|w| match w {
            "sql" => Some(Route::Sql),
            "docs" => Some(Route::Docs),
            "both" => Some(Route::Both),
            "none" => Some(Route::None),
            _ => None,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chinook() -> BTreeSet<String> {
        schema_words([
            "customer",
            "invoice",
            "invoice_line",
            "track",
            "genre",
            "country",
            "total",
            "billing_country",
        ])
    }

    #[test]
    fn clear_questions_are_routed_without_the_model() {
        let words = chinook();
        for q in [
            "How many customers do we have in each country?",
            "What did our EMEA customers spend on Jazz in 2010?",
            "Top 5 genres by number of tracks",
            "list invoices from 2009",
        ] {
            assert_eq!(heuristic(q, &words), Some(Route::Sql), "{q}");
        }
        for q in [
            "What is our data-retention policy?",
            "How do I request a laptop?",
            "Explain the expense reimbursement procedure",
        ] {
            assert_eq!(heuristic(q, &words), Some(Route::Docs), "{q}");
        }
    }

    #[test]
    fn unclear_questions_go_to_the_model() {
        let words = chinook();
        for q in [
            "hello",
            "What is our policy on customer invoices and how many were late?",
            "Tell me about Jazz",
        ] {
            assert_eq!(heuristic(q, &words), None, "{q}");
        }
    }

    #[test]
    fn schema_words_cover_parts_and_plurals() {
        let words = schema_words(["invoice_line", "customers"]);
        for w in [
            "invoice",
            "invoices",
            "line",
            "lines",
            "invoice_line",
            "customers",
            "customer",
        ] {
            assert!(words.contains(w), "{w}");
        }
        assert!(!words.contains("id"));
    }

    #[test]
    fn parses_json_or_a_bare_word() {
        assert_eq!(parse("{\"route\": \"both\"}"), Some(Route::Both));
        assert_eq!(parse(" Route: DOCS."), Some(Route::Docs));
        assert_eq!(parse("{\"route\": \"sideways\"}"), None);
        assert_eq!(parse(""), None);
    }

    #[test]
    fn the_request_constrains_the_answer() {
        let r = request("q", &["customer".into()]);
        let schema = &r.json_schema.as_ref().unwrap().schema;
        assert_eq!(schema["properties"]["route"]["enum"][3], "none");
        assert!(r.system.contains("customer"));
    }
}
