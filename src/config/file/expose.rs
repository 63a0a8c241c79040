//! The `expose` key of a server entry: which of `tools`, `resources` and `prompts` its OpenAPI
//! documents offer as operations (a model sees each operation as a tool). Default `["tools"]`.

use serde_json::Value;

use super::fields::{Fields, Report, string_list};
use crate::config::Expose;

/// The entry's `expose`, or the default when it is absent or reported as a problem.
pub(super) fn read_expose(report: &mut Report<'_>, fields: &mut Fields) -> Expose {
    if matches!(fields.map.get("expose"), Some(Value::String(_))) {
        report.problem(
            Some("expose"),
            r#"must be a list like ["tools", "resources", "prompts"], not a string"#,
        );
        fields.take("expose");
        return Expose::default();
    }
    let Some(words) = string_list(report, fields, "expose") else {
        return Expose::default();
    };
    match Expose::from_words(words.iter().map(String::as_str)) {
        Ok(expose) => expose,
        Err(word) => {
            report.problem(
                Some("expose"),
                format!(
                    "'{word}' is not one of {}",
                    Expose::WORDS
                        .iter()
                        .map(|w| format!("\"{w}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            );
            Expose::default()
        }
    }
}
