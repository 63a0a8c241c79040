//! The shape rules of `docs/architecture.md`, checked on the source itself: data flows
//! config → upstream/oauth → servers → http, nothing imports back up, and no two files import
//! each other, directly or around a loop (a re-export is followed to the file that defines the
//! name, so a facade's `pub use` cannot hide a cycle).
//!
//! Only production code counts: a file is read up to its first `#[cfg(test)]`.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// One source file as a module: its path (`upstream::session`), its code, and the names its
/// `pub use` lines re-export (name → full module path of the item).
struct File {
    module: Vec<String>,
    code: String,
    reexports: BTreeMap<String, Vec<String>>,
}

fn module_of(src: &Path, file: &Path) -> Vec<String> {
    let rel = file.strip_prefix(src).unwrap();
    let mut parts: Vec<String> = rel
        .iter()
        .map(|p| p.to_string_lossy().trim_end_matches(".rs").to_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code without tests and comments (a `//` inside a string is rare in paths we look at).
fn production_code(text: &str) -> String {
    let end = text.find("#[cfg(test)]").unwrap_or(text.len());
    text[..end]
        .lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// `a::{b, c::{d, e}}` → `a::b`, `a::c::d`, `a::c::e` (a leading `self` is dropped).
fn expand(tree: &str) -> Vec<String> {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    let Some(open) = tree.find('{') else {
        return vec![tree];
    };
    let prefix = &tree[..open];
    let inner = &tree[open + 1..tree.rfind('}').unwrap_or(tree.len())];
    let mut items = Vec::new();
    let (mut depth, mut start) = (0, 0);
    for (i, c) in inner.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                items.push(&inner[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&inner[start..]);
    items
        .into_iter()
        .filter(|i| !i.is_empty())
        .flat_map(expand)
        .map(|i| match i.as_str() {
            "self" => prefix.trim_end_matches("::").to_owned(),
            _ => format!("{prefix}{i}"),
        })
        .collect()
}

/// Every `use` path of `code` (braces expanded) with whether it is a `pub use`, and every
/// inline `crate::…` / `super::…` path.
fn paths(code: &str) -> Vec<(bool, String)> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("use ") {
        let before = &rest[..i];
        let at_statement = before
            .chars()
            .last()
            .is_none_or(|c| c.is_whitespace() || c == ';' || c == '{' || c == '}');
        let after = &rest[i + 4..];
        let Some(end) = after.find(';') else { break };
        if at_statement && !after.starts_with(char::is_whitespace) {
            let public = before.trim_end().ends_with("pub") || before.trim_end().ends_with(')');
            for p in expand(&after[..end]) {
                let p = p.split(" as ").next().unwrap_or(&p).to_owned();
                out.push((public, p));
            }
        }
        rest = &after[end..];
    }
    for start in ["crate::", "super::"] {
        let mut from = 0;
        while let Some(i) = code[from..].find(start) {
            let at = from + i;
            let boundary = code[..at]
                .chars()
                .last()
                .is_none_or(|c| !(c.is_alphanumeric() || c == '_' || c == ':'));
            let len = code[at..]
                .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
                .unwrap_or(code.len() - at);
            // `super::{…}` is a `use` group, read above; only `super::name…` is a path here.
            let named =
                code[at + start.len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_');
            if boundary && named {
                out.push((false, code[at..at + len].trim_end_matches(':').to_owned()));
            }
            from = at + len.max(1);
        }
    }
    out
}

/// `path` (as written in `module`) as an absolute module path.
fn absolute(module: &[String], path: &str) -> Option<Vec<String>> {
    let mut parts: Vec<&str> = path.split("::").filter(|p| !p.is_empty()).collect();
    let mut base: Vec<String> = match parts.first()? {
        &"crate" => {
            parts.remove(0);
            Vec::new()
        }
        &"super" | &"self" => {
            let mut base = module.to_vec();
            while let Some(&first) = parts.first() {
                match first {
                    "super" => {
                        base.pop()?;
                    }
                    "self" => {}
                    _ => break,
                }
                parts.remove(0);
            }
            base
        }
        // A child module of this one (`use child::Item`); extern crates are not ours.
        _ => module.to_vec(),
    };
    base.extend(parts.iter().map(|p| (*p).to_owned()));
    Some(base)
}

struct Tree {
    files: BTreeMap<Vec<String>, File>,
}

impl Tree {
    fn load() -> Tree {
        let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
        let mut found = Vec::new();
        rust_files(&src, &mut found);
        let mut files = BTreeMap::new();
        for path in found {
            // The binary's root is not part of the library's graph.
            if path.file_name().is_some_and(|n| n == "main.rs") && path.parent() == Some(&src) {
                continue;
            }
            let module = module_of(&src, &path);
            let code = production_code(&std::fs::read_to_string(&path).unwrap());
            files.insert(
                module.clone(),
                File {
                    module,
                    code,
                    reexports: BTreeMap::new(),
                },
            );
        }
        let mut tree = Tree { files };
        let keys: Vec<Vec<String>> = tree.files.keys().cloned().collect();
        for key in keys {
            let file = &tree.files[&key];
            let reexports: BTreeMap<String, Vec<String>> = paths(&file.code)
                .into_iter()
                .filter(|(public, _)| *public)
                .filter_map(|(_, p)| {
                    let full = absolute(&file.module, &p)?;
                    Some((full.last()?.clone(), full))
                })
                .collect();
            tree.files.get_mut(&key).unwrap().reexports = reexports;
        }
        tree
    }

    /// The file that defines what `path` names: the longest module prefix that is a file,
    /// following that file's re-export of the next name.
    fn defining_file(&self, path: &[String], depth: usize) -> Option<Vec<String>> {
        let file = (0..=path.len())
            .rev()
            .map(|n| path[..n].to_vec())
            .find(|m| self.files.contains_key(m))?;
        if depth < 8
            && let Some(name) = path.get(file.len())
            && let Some(target) = self.files[&file].reexports.get(name)
            && target.as_slice() != path
        {
            let mut next = target.clone();
            next.extend_from_slice(&path[file.len() + 1..]);
            return self.defining_file(&next, depth + 1).or(Some(file));
        }
        Some(file)
    }

    /// File → the files it uses (a `pub use` of a facade is not a use).
    fn edges(&self) -> BTreeMap<Vec<String>, BTreeSet<Vec<String>>> {
        let mut edges = BTreeMap::new();
        for (key, file) in &self.files {
            let mut to = BTreeSet::new();
            for (public, p) in paths(&file.code) {
                if public {
                    continue;
                }
                let Some(full) = absolute(&file.module, &p) else {
                    continue;
                };
                if let Some(target) = self.defining_file(&full, 0)
                    && &target != key
                    && !target.is_empty()
                {
                    to.insert(target);
                }
            }
            edges.insert(key.clone(), to);
        }
        edges
    }
}

fn name(module: &[String]) -> String {
    if module.is_empty() {
        "lib".into()
    } else {
        module.join("/")
    }
}

/// Strongly connected components of more than one file (Tarjan).
fn cycles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct State<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        on_stack: BTreeSet<&'a Vec<String>>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(s: &mut State<'a>, v: &'a Vec<String>) {
        let i = s.index.len();
        s.index.insert(v, i);
        s.low.insert(v, i);
        s.stack.push(v);
        s.on_stack.insert(v);
        for w in s.edges.get(v).into_iter().flatten() {
            if !s.edges.contains_key(w) {
                continue;
            }
            if !s.index.contains_key(w) {
                visit(s, w);
                let low = s.low[v].min(s.low[w]);
                s.low.insert(v, low);
            } else if s.on_stack.contains(w) {
                let low = s.low[v].min(s.index[w]);
                s.low.insert(v, low);
            }
        }
        if s.low[v] == s.index[v] {
            let mut component = Vec::new();
            while let Some(w) = s.stack.pop() {
                s.on_stack.remove(w);
                component.push(name(w));
                if w == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                s.found.push(component);
            }
        }
    }
    let mut s = State {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !s.index.contains_key(v) {
            visit(&mut s, v);
        }
    }
    s.found
}

#[test]
fn no_file_imports_another_that_imports_it_back() {
    let tree = Tree::load();
    let edges = tree.edges();
    assert!(
        edges.len() > 40,
        "only {} files read: the check would prove little",
        edges.len()
    );
    let found = cycles(&edges);
    assert!(found.is_empty(), "file cycles: {found:#?}");
}

#[test]
fn data_flows_config_upstream_oauth_servers_http() {
    // What each layer may not import: nothing below `http` knows it, and nothing below
    // `servers` knows that.
    let forbidden: &[(&str, &[&str])] = &[
        (
            "config",
            &["upstream", "oauth", "servers", "http", "app", "reload"],
        ),
        (
            "openapi",
            &["config", "upstream", "oauth", "servers", "http"],
        ),
        ("upstream", &["servers", "http", "app", "reload"]),
        ("oauth", &["servers", "http", "app", "reload"]),
        (
            "store",
            &["upstream", "oauth", "servers", "http", "app", "reload"],
        ),
        ("servers", &["http", "app", "reload"]),
        (
            "support",
            &["config", "upstream", "oauth", "servers", "http"],
        ),
    ];
    let tree = Tree::load();
    let mut wrong = Vec::new();
    for (from, targets) in tree.edges() {
        let Some(layer) = from.first() else { continue };
        for (low, above) in forbidden {
            if layer != low {
                continue;
            }
            for to in &targets {
                if to.first().is_some_and(|t| above.contains(&t.as_str())) {
                    wrong.push(format!("{} imports {}", name(&from), name(to)));
                }
            }
        }
    }
    assert!(wrong.is_empty(), "imports pointing back up: {wrong:#?}");
}

#[test]
fn the_checker_sees_cycles_and_reexports() {
    // `b` reaches `a` through `m`'s re-export: a cycle a facade must not hide.
    assert_eq!(
        expand("super::{a, b::{C, d}, self}"),
        ["super::a", "super::b::C", "super::b::d", "super"]
    );
    let file = |m: &str, code: &str| {
        let module: Vec<String> = m.split('/').map(str::to_owned).collect();
        (
            module.clone(),
            File {
                module,
                code: code.to_owned(),
                reexports: BTreeMap::new(),
            },
        )
    };
    let mut tree = Tree {
        files: [
            file("m", "pub use a::Thing;\npub use b::Other;"),
            file("m/a", "use super::Other;\npub struct Thing;"),
            file("m/b", "use crate::m::a::Thing;\npub struct Other;"),
            file("m/c", "use super::Thing;"),
        ]
        .into_iter()
        .collect(),
    };
    for key in tree.files.keys().cloned().collect::<Vec<_>>() {
        let f = &tree.files[&key];
        let re = paths(&f.code)
            .into_iter()
            .filter(|(p, _)| *p)
            .filter_map(|(_, p)| absolute(&f.module, &p))
            .map(|full| (full.last().unwrap().clone(), full))
            .collect();
        tree.files.get_mut(&key).unwrap().reexports = re;
    }
    let edges = tree.edges();
    assert_eq!(cycles(&edges), [vec!["m/a".to_owned(), "m/b".to_owned()]]);
    assert!(
        edges[&vec!["m".to_owned(), "c".to_owned()]]
            .contains(&vec!["m".to_owned(), "a".to_owned()])
    );
}
