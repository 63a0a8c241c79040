//! The documentation checked against the real binary, so it cannot drift from the code:
//!
//! - every ```json / ```jsonc block in README.md and docs/*.md that mentions `mcpServers` is a
//!   complete config that `mcpo validate` accepts, without warnings;
//! - every other ```json block is valid JSON;
//! - the flag table in docs/configuration.md is the one `mcpo --help` generates, and every flag,
//!   short flag, alias, `MCPO_*` variable and subcommand appears in that file;
//! - relative links between the documents point at files and headings that exist.
//!
//! A config example may be preceded by a directive comment, on the line right before its fence:
//! `<!-- validate: NAME=value allow-warnings -->` sets variables that mcpo reads outside
//! `${…}` (such as `WEBUI_SECRET_KEY`) and lets the example produce warnings. Variables the
//! example itself uses as `${NAME}` (no default) are set to a placeholder automatically.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;

/// Fewer config examples than this means the extraction is broken, not the docs.
const MIN_CONFIG_EXAMPLES: usize = 5;

const TABLE_START: &str = "<!-- flags-table:start -->";
const TABLE_END: &str = "<!-- flags-table:end -->";

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and docs/*.md, in a stable order.
fn markdown_files() -> Vec<PathBuf> {
    let mut files = vec![root().join("README.md")];
    let mut docs: Vec<PathBuf> = std::fs::read_dir(root().join("docs"))
        .expect("docs/ exists")
        .map(|entry| entry.expect("readable docs/ entry").path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "md"))
        .collect();
    docs.sort();
    files.extend(docs);
    files
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn display(path: &Path) -> String {
    path.strip_prefix(root())
        .unwrap_or(path)
        .display()
        .to_string()
}

/// One fenced code block of a Markdown file.
struct Block {
    /// `file:line` of the opening fence.
    place: String,
    /// The info string after the fence (`json`, `jsonc`, `sh`, …).
    info: String,
    body: String,
    /// The `<!-- validate: … -->` directive on the line before the fence.
    directive: Option<String>,
}

fn fenced_blocks(path: &Path) -> Vec<Block> {
    let text = read(path);
    let lines: Vec<&str> = text.lines().collect();
    let mut blocks = Vec::new();
    let mut i = 0;
    while i < lines.len() {
        let line = lines[i].trim_start();
        let fence = line.chars().take_while(|&c| c == '`').count();
        if fence < 3 {
            i += 1;
            continue;
        }
        let info = line[fence..].trim().to_owned();
        let directive = i
            .checked_sub(1)
            .map(|j| lines[j].trim())
            .and_then(|prev| prev.strip_prefix("<!-- validate:"))
            .and_then(|rest| rest.strip_suffix("-->"))
            .map(|inner| inner.trim().to_owned());
        let start = i;
        let mut body = String::new();
        i += 1;
        while i < lines.len() {
            let inner = lines[i].trim();
            if inner.len() >= fence && inner.chars().all(|c| c == '`') {
                break;
            }
            body.push_str(lines[i]);
            body.push('\n');
            i += 1;
        }
        assert!(
            i < lines.len(),
            "{}:{}: code block never closed",
            display(path),
            start + 1
        );
        blocks.push(Block {
            place: format!("{}:{}", display(path), start + 1),
            info,
            body,
            directive,
        });
        i += 1;
    }
    blocks
}

fn all_blocks() -> Vec<Block> {
    markdown_files()
        .iter()
        .flat_map(|path| fenced_blocks(path))
        .collect()
}

fn is_config_example(block: &Block) -> bool {
    matches!(block.info.as_str(), "json" | "jsonc") && block.body.contains("mcpServers")
}

/// The real binary, with nothing from this environment that could change its answers.
fn mcpo() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_mcpo"));
    for (name, _) in std::env::vars_os() {
        let Some(name) = name.to_str() else { continue };
        if name.starts_with("MCPO_") || matches!(name, "WEBUI_SECRET_KEY" | "WEBUI_URL") {
            cmd.env_remove(name);
        }
    }
    cmd.env("RUST_LOG", "off");
    cmd
}

/// What a `<!-- validate: … -->` directive asks for.
#[derive(Default)]
struct Directive {
    env: Vec<(String, String)>,
    allow_warnings: bool,
}

fn parse_directive(block: &Block) -> Result<Directive, String> {
    let mut directive = Directive::default();
    for word in block.directive.iter().flat_map(|d| d.split_whitespace()) {
        match word.split_once('=') {
            _ if word == "allow-warnings" => directive.allow_warnings = true,
            Some((name, value)) if !name.is_empty() => {
                directive.env.push((name.to_owned(), value.to_owned()));
            }
            _ => return Err(format!("unknown validate directive '{word}'")),
        }
    }
    Ok(directive)
}

/// Names used as `${NAME}` without a default: validation fails unless they are set.
fn required_variables(text: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    let mut rest = text;
    while let Some(start) = rest.find("${") {
        let after = &rest[start + 2..];
        let Some(end) = after.find('}') else { break };
        let reference = &after[..end];
        if !reference.contains(":-") {
            names.insert(reference.to_owned());
        }
        rest = &after[end + 1..];
    }
    names
}

#[test]
fn config_examples_validate() {
    let examples: Vec<Block> = all_blocks().into_iter().filter(is_config_example).collect();
    assert!(
        examples.len() >= MIN_CONFIG_EXAMPLES,
        "found only {} config examples in README.md and docs/*.md",
        examples.len()
    );
    let dir = tempfile::tempdir().expect("temp dir");
    let mut failures = Vec::new();
    for (i, example) in examples.iter().enumerate() {
        let directive = match parse_directive(example) {
            Ok(d) => d,
            Err(e) => {
                failures.push(format!("{}: {e}", example.place));
                continue;
            }
        };
        let ext = if example.info == "jsonc" {
            "jsonc"
        } else {
            "json"
        };
        let path = dir.path().join(format!("example-{i}.{ext}"));
        std::fs::write(&path, &example.body).expect("write example");
        let mut cmd = mcpo();
        cmd.arg("validate").arg("--config").arg(&path);
        for name in required_variables(&example.body) {
            cmd.env(&name, format!("example-value-of-{name}"));
        }
        for (name, value) in &directive.env {
            cmd.env(name, value);
        }
        let output = cmd.output().expect("run mcpo validate");
        let stdout = String::from_utf8_lossy(&output.stdout);
        let stderr = String::from_utf8_lossy(&output.stderr);
        let problem = if !output.status.success() {
            Some(format!("mcpo validate failed ({})", output.status))
        } else if !stdout.contains(": OK (") {
            Some("mcpo validate did not say OK".to_owned())
        } else if !directive.allow_warnings && stdout.contains("warning:") {
            Some(
                "mcpo validate warned (fix the example, or add `allow-warnings` to a \
                 `<!-- validate: -->` line before it)"
                    .to_owned(),
            )
        } else {
            None
        };
        if let Some(problem) = problem {
            failures.push(format!(
                "{}: {problem}\n{stdout}{stderr}--- the example ---\n{}",
                example.place, example.body
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} config examples are not valid:\n\n{}",
        failures.len(),
        examples.len(),
        failures.join("\n\n")
    );
}

#[test]
fn other_json_blocks_are_json() {
    let failures: Vec<String> = all_blocks()
        .iter()
        .filter(|b| b.info == "json" && !is_config_example(b))
        .filter_map(|b| {
            serde_json::from_str::<serde_json::Value>(&b.body)
                .err()
                .map(|e| format!("{}: {e}", b.place))
        })
        .collect();
    assert!(
        failures.is_empty(),
        "```json blocks that are not JSON (use ```jsonc for comments):\n{}",
        failures.join("\n")
    );
}

fn help() -> String {
    let output = mcpo().arg("--help").output().expect("run mcpo --help");
    assert!(output.status.success(), "mcpo --help failed");
    String::from_utf8(output.stdout).expect("UTF-8 help")
}

/// The indented lines of one section of `--help` (`Options:`, `Commands:`).
fn help_section<'a>(help: &'a str, title: &str) -> Vec<&'a str> {
    help.lines()
        .skip_while(|line| *line != title)
        .skip(1)
        .take_while(|line| line.is_empty() || line.starts_with(' '))
        .collect()
}

/// One option as `mcpo --help` describes it.
#[derive(Debug, Default)]
struct HelpOption {
    short: Option<String>,
    long: String,
    value: Option<String>,
    alias: Option<String>,
    env: Option<String>,
    default: Option<String>,
    values: Vec<String>,
    description: Vec<String>,
}

fn help_options(help: &str) -> Vec<HelpOption> {
    let mut options: Vec<HelpOption> = Vec::new();
    for line in help_section(help, "Options:") {
        let text = line.trim();
        let indent = line.len() - line.trim_start().len();
        if text.is_empty() {
            continue;
        }
        // Option lines are indented by 2 (`-p, --port`) or 6 (`--host`); their text by 10.
        if indent < 10 && text.starts_with('-') {
            let (short, rest) = match text.split_once(", ") {
                Some((short, rest)) if !short.starts_with("--") => (Some(short.to_owned()), rest),
                _ => (None, text),
            };
            let (long, value) = match rest.split_once(' ') {
                Some((long, value)) => (
                    long,
                    Some(value.trim_matches(|c| c == '<' || c == '>').to_owned()),
                ),
                None => (rest, None),
            };
            options.push(HelpOption {
                short,
                long: long.to_owned(),
                value,
                ..Default::default()
            });
            continue;
        }
        let option = options
            .last_mut()
            .unwrap_or_else(|| panic!("help text before the first option: {line}"));
        let bracket = |prefix: &str| {
            text.strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_owned)
        };
        if let Some(env) = bracket("[env: ") {
            option.env = Some(env.split('=').next().unwrap_or_default().to_owned());
        } else if let Some(default) = bracket("[default: ") {
            option.default = Some(default);
        } else if let Some(alias) = bracket("[alias: ") {
            option.alias = Some(alias);
        } else if let Some(values) = bracket("[possible values: ") {
            option.values = values.split(", ").map(str::to_owned).collect();
        } else if text == "Possible values:" {
        } else if let Some(value) = text.strip_prefix("- ") {
            let name = value.split(':').next().unwrap_or_default();
            option.values.push(name.to_owned());
        } else {
            option.description.push(text.to_owned());
        }
    }
    assert!(
        options.iter().any(|o| o.long == "--port"),
        "could not read the options of mcpo --help"
    );
    options
}

/// The Markdown table of docs/configuration.md, generated from `mcpo --help`.
fn flag_table(options: &[HelpOption]) -> String {
    let code = |s: &str| format!("`{s}`");
    let mut table = String::from(
        "| flag | environment variable | default | what it does |\n|---|---|---|---|\n",
    );
    for o in options {
        let mut flag = String::new();
        if let Some(short) = &o.short {
            flag.push_str(&format!("{}, ", code(short)));
        }
        flag.push_str(&code(&o.long));
        if let Some(value) = &o.value {
            flag.push_str(&format!(" {}", code(value)));
        }
        if let Some(alias) = &o.alias {
            flag.push_str(&format!(" (alias {})", code(alias)));
        }
        let mut description = o.description.join(" ");
        if !o.values.is_empty() {
            description.push_str(&format!(" Values: {}.", o.values.join(", ")));
        }
        table.push_str(&format!(
            "| {flag} | {} | {} | {} |\n",
            o.env.as_deref().map_or("—".to_owned(), code),
            o.default.as_deref().map_or("—".to_owned(), code),
            description.replace('|', "\\|"),
        ));
    }
    table
}

fn configuration_md() -> String {
    read(&root().join("docs/configuration.md"))
}

#[test]
fn flag_table_matches_help() {
    let expected = flag_table(&help_options(&help()));
    let doc = configuration_md();
    let start = doc
        .find(TABLE_START)
        .unwrap_or_else(|| panic!("docs/configuration.md has no {TABLE_START} line"));
    let end = doc
        .find(TABLE_END)
        .unwrap_or_else(|| panic!("docs/configuration.md has no {TABLE_END} line"));
    let actual = doc[start + TABLE_START.len()..end].trim();
    assert!(
        actual == expected.trim(),
        "the flag table in docs/configuration.md is not what `mcpo --help` says; replace the \
         lines between {TABLE_START} and {TABLE_END} with:\n\n{expected}"
    );
}

#[test]
fn every_flag_variable_and_subcommand_is_documented() {
    let help = help();
    let doc = configuration_md();
    let mut missing = Vec::new();
    for option in help_options(&help) {
        let names = [
            Some(option.long.clone()),
            option.short.clone(),
            option.alias.clone(),
            option.env.clone(),
        ];
        for name in names.into_iter().flatten() {
            if !doc.contains(&format!("`{name}`")) {
                missing.push(name);
            }
        }
    }
    let commands = help_section(&help, "Commands:");
    assert!(!commands.is_empty(), "mcpo --help lists no subcommands");
    for line in commands {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        if name != "help" && !doc.contains(&format!("`mcpo {name}")) {
            missing.push(format!("mcpo {name}"));
        }
    }
    assert!(
        missing.is_empty(),
        "docs/configuration.md does not mention (in `backticks`): {}",
        missing.join(", ")
    );
}

/// GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens.
fn slug(heading: &str) -> String {
    heading
        .trim()
        .to_lowercase()
        .chars()
        .filter(|c| c.is_alphanumeric() || matches!(c, '-' | '_' | ' '))
        .map(|c| if c == ' ' { '-' } else { c })
        .collect()
}

/// Every anchor a Markdown file's headings produce (outside code blocks).
fn anchors(path: &Path) -> BTreeSet<String> {
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    let mut anchors = BTreeSet::new();
    let mut in_code = false;
    for line in read(path).lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        let Some(heading) = line.strip_prefix('#') else {
            continue;
        };
        if in_code {
            continue;
        }
        let base = slug(heading.trim_start_matches('#'));
        let count = seen.entry(base.clone()).or_default();
        anchors.insert(match *count {
            0 => base.clone(),
            n => format!("{base}-{n}"),
        });
        *count += 1;
    }
    anchors
}

/// `[text](target)` targets outside code blocks and inline code.
fn link_targets(text: &str) -> Vec<String> {
    let mut targets = Vec::new();
    let mut in_code = false;
    for line in text.lines() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        // Drop inline code spans so `](…)` inside them is not a link.
        let prose: String = line.split('`').step_by(2).collect::<Vec<_>>().join(" ");
        let mut rest = prose.as_str();
        while let Some(start) = rest.find("](") {
            let after = &rest[start + 2..];
            let Some(end) = after.find(')') else { break };
            targets.push(after[..end].to_owned());
            rest = &after[end + 1..];
        }
    }
    targets
}

#[test]
fn relative_links_resolve() {
    let mut broken = Vec::new();
    for file in markdown_files() {
        for target in link_targets(&read(&file)) {
            if target.contains("://") || target.starts_with("mailto:") {
                continue;
            }
            let (path, anchor) = match target.split_once('#') {
                Some((path, anchor)) => (path, Some(anchor)),
                None => (target.as_str(), None),
            };
            let linked = if path.is_empty() {
                file.clone()
            } else {
                file.parent().expect("a directory").join(path)
            };
            if !linked.exists() {
                broken.push(format!("{}: {target} (no such file)", display(&file)));
                continue;
            }
            if let Some(anchor) = anchor
                && linked.extension().is_some_and(|ext| ext == "md")
                && !anchors(&linked).contains(anchor)
            {
                broken.push(format!("{}: {target} (no such heading)", display(&file)));
            }
        }
    }
    assert!(broken.is_empty(), "broken links:\n{}", broken.join("\n"));
}
