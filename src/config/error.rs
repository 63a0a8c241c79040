//! What can go wrong while reading configuration, worded for the person who has to fix it:
//! every message names its file (or "command line"), the server and the field.

use std::fmt;
use std::path::PathBuf;

/// The `source` of problems and warnings that come from flags rather than a file.
pub const COMMAND_LINE: &str = "command line";

/// Configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file or `--env-path` file could not be read.
    #[error("{}: cannot read the file: {source}", path.display())]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// The file is not JSON (with comments); `line` and `column` point into the original text.
    #[error("{source_name}:{line}:{column}: {message}")]
    Syntax {
        source_name: String,
        line: usize,
        column: usize,
        message: String,
    },
    /// The file parsed but says something unusable; every problem found, one per line.
    #[error("{}", ProblemList(problems))]
    Invalid { problems: Vec<Problem> },
    /// A line of the `--env-path` dotenv file could not be understood.
    #[error("{}:{line}: {message}", path.display())]
    EnvFile {
        path: PathBuf,
        line: usize,
        message: String,
    },
}

impl ConfigError {
    /// The problems of an [`ConfigError::Invalid`], or none for the other kinds.
    pub fn problems(&self) -> &[Problem] {
        match self {
            ConfigError::Invalid { problems } => problems,
            _ => &[],
        }
    }
}

/// One thing wrong with one field of one server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// The file it came from as the user named it, or [`COMMAND_LINE`].
    pub source: String,
    pub server: Option<String>,
    /// A config field (`args`, `env.TOKEN`, `oauth.callback_port`) or a flag (`--ssl-keyfile`).
    pub field: Option<String>,
    /// What is wrong and what to do, completing the sentence that starts with the field.
    pub message: String,
}

/// Something odd but usable (an unknown key, an ignored flag); mcpo carries on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigWarning {
    /// The file it came from as the user named it, or [`COMMAND_LINE`].
    pub source: String,
    pub server: Option<String>,
    pub field: Option<String>,
    pub message: String,
}

impl Problem {
    pub(crate) fn new(
        source: &str,
        server: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        Problem {
            source: source.to_owned(),
            server: server.map(str::to_owned),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

impl ConfigWarning {
    pub(crate) fn new(
        source: &str,
        server: Option<&str>,
        field: Option<&str>,
        message: impl Into<String>,
    ) -> Self {
        ConfigWarning {
            source: source.to_owned(),
            server: server.map(str::to_owned),
            field: field.map(str::to_owned),
            message: message.into(),
        }
    }
}

/// `config.json: server 'time': field 'args' must be a list of strings`; a field that starts
/// with `-` is a flag and reads `option '--header' ...`.
fn write_located(
    f: &mut fmt::Formatter<'_>,
    source: &str,
    server: Option<&str>,
    field: Option<&str>,
    message: &str,
) -> fmt::Result {
    write!(f, "{source}: ")?;
    if let Some(server) = server {
        write!(f, "server '{server}': ")?;
    }
    match field {
        Some(flag) if flag.starts_with('-') => write!(f, "option '{flag}' {message}"),
        Some(field) => write!(f, "field '{field}' {message}"),
        None => f.write_str(message),
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.source,
            self.server.as_deref(),
            self.field.as_deref(),
            &self.message,
        )
    }
}

impl fmt::Display for ConfigWarning {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write_located(
            f,
            &self.source,
            self.server.as_deref(),
            self.field.as_deref(),
            &self.message,
        )
    }
}

struct ProblemList<'a>(&'a [Problem]);

impl fmt::Display for ProblemList<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}
