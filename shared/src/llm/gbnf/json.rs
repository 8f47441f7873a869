//! A GBNF grammar from a JSON Schema, for the subset [`crate::llm::JsonSchema`] documents:
//! `type` (one or a list), `properties`, `enum`, `const`, `items`. Every listed property is
//! emitted, in the order the schema map holds them (serde_json keeps keys sorted), which is valid
//! under `required` and `additionalProperties: false` alike; keywords the grammar cannot enforce
//! (`description`, `minimum`, `format`) are ignored rather than refused, as the remote providers do.

use std::fmt::Write as _;

use serde_json::Value;

use super::{literal, rule_name};

/// Why a schema has no grammar.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SchemaError {
    /// A construct outside the supported subset (`anyOf`, `$ref`, a type name GBNF cannot model).
    #[error(
        "the JSON Schema at {at} uses {what}, which the local model's grammar does not support"
    )]
    Unsupported {
        /// JSON-pointer-like path to the construct.
        at: String,
        /// What it is.
        what: String,
    },
}

/// The GBNF grammar (root rule `root`) of JSON documents that follow `schema`.
///
/// # Errors
/// [`SchemaError::Unsupported`] for constructs outside the subset.
pub fn grammar(schema: &Value) -> Result<String, SchemaError> {
    let mut builder = Builder::default();
    let value = builder.rule_for(schema, "value", "#")?;
    let mut out = format!("root ::= ws {value} ws\n");
    for (name, body) in &builder.rules {
        let _ = writeln!(out, "{name} ::= {body}");
    }
    out.push_str(PRIMITIVES);
    Ok(out)
}

/// The shared leaves: whitespace (bounded, so a small model cannot pad forever), strings with
/// JSON escapes, numbers.
const PRIMITIVES: &str = r#"ws ::= [ \t\n]{0,16}
string ::= "\"" char* "\""
char ::= [^"\\\x00-\x1F] | "\\" (["\\/bfnrt] | "u" [0-9a-fA-F]{4})
integer ::= "-"? ("0" | [1-9] [0-9]{0,17})
number ::= integer ("." [0-9]{1,17})? ([eE] [-+]? [0-9]{1,3})?
boolean ::= "true" | "false"
null ::= "null"
"#;

#[derive(Default)]
struct Builder {
    rules: Vec<(String, String)>,
}

impl Builder {
    /// A grammar expression for `schema`; composite schemas become named rules.
    fn rule_for(&mut self, schema: &Value, name: &str, at: &str) -> Result<String, SchemaError> {
        let Value::Object(map) = schema else {
            // `true` (anything) is not modelled; a schema must say what it allows.
            return Err(unsupported(at, "a non-object schema"));
        };
        for keyword in [
            "anyOf",
            "oneOf",
            "allOf",
            "$ref",
            "not",
            "patternProperties",
        ] {
            if map.contains_key(keyword) {
                return Err(unsupported(at, keyword));
            }
        }
        if let Some(value) = map.get("const") {
            return Ok(json_literal(value));
        }
        if let Some(values) = map.get("enum") {
            let Value::Array(values) = values else {
                return Err(unsupported(at, "an enum that is not a list"));
            };
            if values.is_empty() {
                return Err(unsupported(at, "an empty enum"));
            }
            let body = values
                .iter()
                .map(json_literal)
                .collect::<Vec<_>>()
                .join(" | ");
            return Ok(self.add(name, body));
        }
        let types: Vec<&str> = match map.get("type") {
            Some(Value::String(t)) => vec![t.as_str()],
            Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
            _ => return Err(unsupported(at, "no `type`")),
        };
        if types.is_empty() {
            return Err(unsupported(at, "an empty `type` list"));
        }
        let mut alternatives = Vec::with_capacity(types.len());
        for t in types {
            let alternative = match t {
                "string" => "string".to_owned(),
                "integer" => "integer".to_owned(),
                "number" => "number".to_owned(),
                "boolean" => "boolean".to_owned(),
                "null" => "null".to_owned(),
                "object" => self.object(map, name, at)?,
                "array" => self.array(map, name, at)?,
                other => return Err(unsupported(at, &format!("type `{other}`"))),
            };
            alternatives.push(alternative);
        }
        if alternatives.len() == 1 {
            Ok(alternatives.remove(0))
        } else {
            Ok(self.add(name, alternatives.join(" | ")))
        }
    }

    fn object(
        &mut self,
        map: &serde_json::Map<String, Value>,
        name: &str,
        at: &str,
    ) -> Result<String, SchemaError> {
        let empty = serde_json::Map::new();
        let properties = match map.get("properties") {
            Some(Value::Object(p)) => p,
            None => &empty,
            Some(_) => return Err(unsupported(at, "`properties` that is not an object")),
        };
        let mut members = Vec::with_capacity(properties.len());
        for (key, schema) in properties {
            let child = self.rule_for(
                schema,
                &format!("{name}-{}", rule_name(key)),
                &format!("{at}/properties/{key}"),
            )?;
            let key_json = serde_json::to_string(key).unwrap_or_default();
            members.push(format!("{} ws \":\" ws {child}", literal(&key_json)));
        }
        let body = if members.is_empty() {
            "\"{\" ws \"}\"".to_owned()
        } else {
            format!("\"{{\" ws {} ws \"}}\"", members.join(" ws \",\" ws "))
        };
        Ok(self.add(name, body))
    }

    fn array(
        &mut self,
        map: &serde_json::Map<String, Value>,
        name: &str,
        at: &str,
    ) -> Result<String, SchemaError> {
        let Some(items) = map.get("items") else {
            return Err(unsupported(at, "an array without `items`"));
        };
        let item = self.rule_for(items, &format!("{name}-item"), &format!("{at}/items"))?;
        Ok(self.add(
            name,
            format!("\"[\" ws ({item} (ws \",\" ws {item})*)? ws \"]\""),
        ))
    }

    /// Adds a rule under a unique name and returns the name.
    fn add(&mut self, name: &str, body: String) -> String {
        let base = rule_name(name);
        let mut unique = base.clone();
        let mut n = 2;
        while self.rules.iter().any(|(r, _)| *r == unique) || is_reserved(&unique) {
            unique = format!("{base}-{n}");
            n += 1;
        }
        self.rules.push((unique.clone(), body));
        unique
    }
}

fn is_reserved(name: &str) -> bool {
    matches!(
        name,
        "root" | "ws" | "string" | "char" | "integer" | "number" | "boolean" | "null"
    )
}

/// A JSON value as a GBNF literal of its compact serialisation.
fn json_literal(value: &Value) -> String {
    literal(&value.to_string())
}

fn unsupported(at: &str, what: &str) -> SchemaError {
    SchemaError::Unsupported {
        at: at.to_owned(),
        what: what.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn an_object_lists_its_properties_with_their_types() {
        let g = grammar(&json!({
            "type": "object",
            "properties": {
                "route": {"type": "string", "enum": ["sql", "docs"]},
                "why": {"type": "string"}
            },
            "required": ["route", "why"],
            "additionalProperties": false
        }))
        .unwrap();
        assert!(g.starts_with("root ::= ws value ws\n"), "{g}");
        assert!(
            g.contains(r#"value-route ::= "\"sql\"" | "\"docs\"""#),
            "{g}"
        );
        assert!(
            g.contains(r#"value ::= "{" ws "\"route\"" ws ":" ws value-route ws "," ws "\"why\"" ws ":" ws string ws "}""#),
            "{g}"
        );
    }

    #[test]
    fn arrays_nullable_types_and_consts() {
        let g = grammar(&json!({
            "type": "object",
            "properties": {
                "ids": {"type": "array", "items": {"type": "integer"}},
                "note": {"type": ["string", "null"]},
                "v": {"const": 1}
            }
        }))
        .unwrap();
        assert!(
            g.contains(r#"value-ids ::= "[" ws (integer (ws "," ws integer)*)? ws "]""#),
            "{g}"
        );
        assert!(g.contains("value-note ::= string | null"), "{g}");
        assert!(g.contains(r#""\"v\"" ws ":" ws "1""#), "{g}");
    }

    #[test]
    fn rule_names_never_collide_with_the_primitives() {
        let g = grammar(&json!({"type": "array", "items": {"enum": ["a"]}})).unwrap();
        // The outer rule is `value`; its item enum gets its own rule, not `string`.
        assert!(g.contains(r#"value-item ::= "\"a\"""#), "{g}");
    }

    #[test]
    fn unsupported_constructs_say_where_they_are() {
        let err = grammar(&json!({
            "type": "object",
            "properties": {"x": {"anyOf": [{"type": "string"}]}}
        }))
        .unwrap_err();
        assert_eq!(
            err,
            SchemaError::Unsupported {
                at: "#/properties/x".into(),
                what: "anyOf".into()
            }
        );
        assert!(grammar(&json!({"type": "array"})).is_err());
        assert!(grammar(&json!({"type": "date"})).is_err());
        assert!(grammar(&json!(true)).is_err());
    }
}
