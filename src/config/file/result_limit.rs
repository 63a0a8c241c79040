//! The `max_result_bytes` key of a server entry: the most bytes of one tool result mcpo passes
//! on. A number (a larger result is refused with 413), or an object `{"bytes": N, "mode":
//! "truncate"}` (its text is cut to fit, with a marker saying so). Off when absent.

use serde_json::Value;

use super::fields::{Fields, Report, kind_of, show};
use crate::config::{ResultLimit, ResultLimitMode};

const KEY: &str = "max_result_bytes";
const KEYS: &[&str] = &["bytes", "mode"];

/// The limit the entry asks for, or `None` (absent, or reported as a problem).
pub(super) fn read_result_limit(
    report: &mut Report<'_>,
    fields: &mut Fields,
) -> Option<ResultLimit> {
    let (bytes, mode) = match fields.take(KEY)? {
        Value::Object(mut map) => {
            for key in map.keys().filter(|k| !KEYS.contains(&k.as_str())) {
                report.problem(
                    Some(&format!("{KEY}.{key}")),
                    "is not a key of max_result_bytes (bytes, mode)",
                );
            }
            let mode = match map.remove("mode") {
                None => Some(ResultLimitMode::Refuse),
                Some(Value::String(m)) if m == "refuse" => Some(ResultLimitMode::Refuse),
                Some(Value::String(m)) if m == "truncate" => Some(ResultLimitMode::Truncate),
                Some(other) => {
                    report.problem(
                        Some(&format!("{KEY}.mode")),
                        format!("must be \"refuse\" or \"truncate\", not {}", show(&other)),
                    );
                    None
                }
            };
            let bytes = match map.remove("bytes") {
                Some(v) => positive_bytes(report, &format!("{KEY}.bytes"), &v),
                None => {
                    report.problem(Some(KEY), "needs \"bytes\": the most bytes of one result");
                    None
                }
            };
            (bytes, mode)
        }
        number @ Value::Number(_) => (
            positive_bytes(report, KEY, &number),
            Some(ResultLimitMode::Refuse),
        ),
        other => {
            report.problem(
                Some(KEY),
                format!(
                    "must be a number of bytes or an object like {{\"bytes\": 1048576, \"mode\": \"truncate\"}}, not {}",
                    kind_of(&other)
                ),
            );
            return None;
        }
    };
    Some(ResultLimit {
        bytes: bytes?,
        mode: mode?,
    })
}

fn positive_bytes(report: &mut Report<'_>, path: &str, value: &Value) -> Option<usize> {
    match value.as_u64().filter(|n| *n > 0) {
        Some(n) => Some(usize::try_from(n).unwrap_or(usize::MAX)),
        None => {
            report.problem(
                Some(path),
                format!(
                    "must be a positive whole number of bytes, not {}",
                    show(value)
                ),
            );
            None
        }
    }
}
