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

#[cfg(test)]
mod tests {
    use crate::config::{Expose, from_str_with_env};

    fn expose(value: &str) -> Result<Expose, String> {
        let text = format!(r#"{{"mcpServers": {{"s": {{"command": "x", "expose": {value}}}}}}}"#);
        from_str_with_env(&text, "c.json", &|_| None)
            .map(|(c, _)| c.servers[0].expose)
            .map_err(|e| e.to_string())
    }

    #[test]
    fn expose_is_a_list_of_known_words() {
        assert_eq!(expose("null"), Ok(Expose::default()));
        let all = expose(r#"["prompts", "tools", "resources"]"#).unwrap();
        assert!(all.tools && all.resources && all.prompts);
        let none = expose("[]").unwrap();
        assert!(!none.tools && !none.resources && !none.prompts);
        for bad in [r#"["tools", "files"]"#, r#""tools""#, "[1]", "true"] {
            let e = expose(bad).unwrap_err();
            assert!(
                e.contains("c.json") && e.contains("'s'") && e.contains("expose"),
                "{e}"
            );
        }
        assert!(
            expose(r#"["Tools"]"#)
                .unwrap_err()
                .contains("'Tools' is not one of")
        );
    }
}
