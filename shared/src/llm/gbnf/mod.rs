//! GBNF, llama.cpp's grammar format, for constrained decoding on the local model: the sampler
//! only lets through tokens that keep the output inside the grammar, so a small model cannot
//! emit malformed JSON or a name the grammar does not list.
//!
//! - [`json`]: a grammar from the JSON Schema subset the remote providers accept, so one
//!   [`super::JsonSchema`] drives structured output everywhere.
//! - [`sql`]: a token-level SQL grammar whose bare identifiers are only the linked schema's.

pub mod json;
pub mod sql;

/// `text` as a GBNF string literal (`"..."`, with `"`, `\` and control characters escaped).
pub fn literal(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\x{:02X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// A rule name made from `text`: GBNF names are `[a-zA-Z0-9-]+`.
pub fn rule_name(text: &str) -> String {
    let name: String = text
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let name = name.trim_matches('-');
    if name.is_empty() {
        "r".to_owned()
    } else {
        name.to_owned()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn literals_escape_what_gbnf_treats_specially() {
        assert_eq!(literal(r#"a"b\c"#), r#""a\"b\\c""#);
        assert_eq!(literal("x\ny"), r#""x\ny""#);
        assert_eq!(literal("\u{1}"), r#""\x01""#);
    }

    #[test]
    fn rule_names_keep_to_the_allowed_characters() {
        assert_eq!(rule_name("invoice_line.Total"), "invoice-line-total");
        assert_eq!(rule_name("__"), "r");
    }
}
