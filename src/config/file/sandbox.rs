//! The `sandbox` key of a server entry: `true` (the defaults), `false`, or an object with the
//! knobs `writable` (absolute paths the server may write to) and `network` (`false`: no
//! network). A security setting, so an unknown key inside it is an error, not a warning: a
//! misspelt `"netwrok": false` must not leave the network open unnoticed.

use std::path::PathBuf;

use serde_json::Value;

use super::fields::{Fields, Report, kind_of, must_be_bool};
use crate::config::{Sandbox, TransportConfig};

const KEYS: &[&str] = &["writable", "network"];

/// The sandbox the entry asks for, or `None` (absent, `false`, or reported as a problem).
/// Only stdio servers run a process to sandbox; whether the server is multi-user is checked
/// with the other multi-user keys.
pub(super) fn read_sandbox(
    report: &mut Report<'_>,
    fields: &mut Fields,
    transport: Option<&TransportConfig>,
) -> Option<Sandbox> {
    let sandbox = match fields.take("sandbox")? {
        Value::Bool(false) => return None,
        Value::Bool(true) => Sandbox {
            writable: Vec::new(),
            network: true,
        },
        Value::Object(map) => read_knobs(report, map)?,
        other => {
            report.problem(
                Some("sandbox"),
                format!(
                    "must be true, false or an object like {{\"writable\": [\"/srv/data\"], \"network\": false}}, not {}",
                    kind_of(&other)
                ),
            );
            return None;
        }
    };
    match transport {
        Some(TransportConfig::Stdio { .. }) => Some(sandbox),
        Some(_) => {
            report.problem(
                Some("sandbox"),
                "applies only to stdio servers (it runs the server's command under bubblewrap); remove it",
            );
            None
        }
        None => None,
    }
}

fn read_knobs(report: &mut Report<'_>, map: serde_json::Map<String, Value>) -> Option<Sandbox> {
    let mut ok = true;
    let mut sandbox = Sandbox {
        writable: Vec::new(),
        network: true,
    };
    for (key, value) in map {
        match (key.as_str(), value) {
            (_, Value::Null) => {}
            ("network", Value::Bool(b)) => sandbox.network = b,
            ("network", other) => {
                report.problem(Some("sandbox.network"), must_be_bool(&other));
                ok = false;
            }
            ("writable", Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    match writable_path(&item) {
                        Ok(path) => sandbox.writable.push(path),
                        Err(why) => {
                            report
                                .problem(Some("sandbox.writable"), format!("item {} {why}", i + 1));
                            ok = false;
                        }
                    }
                }
            }
            ("writable", other) => {
                report.problem(
                    Some("sandbox.writable"),
                    format!("must be a list of absolute paths, not {}", kind_of(&other)),
                );
                ok = false;
            }
            (unknown, _) => {
                report.problem(
                    Some(&format!("sandbox.{unknown}")),
                    format!(
                        "is not a sandbox setting; the settings are {}",
                        KEYS.join(", ")
                    ),
                );
                ok = false;
            }
        }
    }
    ok.then_some(sandbox)
}

/// An absolute path without `..` (bubblewrap binds it as written; `..` would make what is
/// writable hard to read off the config).
fn writable_path(item: &Value) -> Result<PathBuf, String> {
    let Value::String(text) = item else {
        return Err(format!("is {}, not a path", kind_of(item)));
    };
    let path = PathBuf::from(text);
    if !path.is_absolute() {
        return Err(format!(
            "('{text}') must be an absolute path (use ${{HOME}}/… for the home folder)"
        ));
    }
    if path
        .components()
        .any(|c| matches!(c, std::path::Component::ParentDir))
    {
        return Err(format!("('{text}') must not contain '..'"));
    }
    if text.contains('\0') {
        return Err("has a NUL character".to_owned());
    }
    Ok(path)
}
