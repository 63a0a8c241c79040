//! Lossless JSON Schema → OpenAPI 3.1 normalisation.
//!
//! An OpenAPI 3.1 schema object *is* a JSON Schema 2020-12 schema, so a tool's schema can be
//! embedded as it is. Only references need work: inside the OpenAPI document a `$ref` resolves
//! against the document root, and Open WebUI only follows `#/components/schemas/…`. So every
//! place a reference points to (and every `$defs`/`definitions` entry) is cut out of the tool
//! schema into a component of its own, the cut is replaced by a reference to that component,
//! and every `$ref` is rewritten to the component name.
//!
//! Everything here walks schemas *schema-aware*: only keywords whose values are subschemas
//! are descended into, so data (`enum`, `const`, `default`, `examples`) is never mistaken for
//! a schema, even when it happens to contain a `$ref` key.

use std::borrow::Cow;
use std::collections::{HashMap, HashSet};

use percent_encoding::{AsciiSet, CONTROLS, percent_decode_str, utf8_percent_encode};
use serde_json::{Map, Value, json};

/// Where component schemas live; every `$ref` we emit starts with this.
pub(crate) const COMPONENTS: &str = "#/components/schemas/";

/// Separator between the parts of a component name (`{server}__{tool}__{Name}`).
pub(crate) const SEP: &str = "__";

/// Keywords that drop out of a schema once it becomes a component: `$schema` is meaningless
/// inside a document, and `$id`/`$anchor`s would change how references resolve (two tools
/// declaring the same anchor would even make the document invalid).
const DROPPED: &[&str] = &["$schema", "$id", "$anchor", "$dynamicAnchor"];

/// Keywords that hold references: `$ref`, plus the dynamic ones, which are plain references
/// once everything lives in one place.
const REFERENCES: &[&str] = &["$ref", "$dynamicRef", "$recursiveRef"];

/// How a keyword's value relates to subschemas.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// One subschema (`not`, `items` in its 2020-12 form, …).
    Single,
    /// An array of subschemas (`allOf`, `prefixItems`, draft-07 tuple `items`, …).
    List,
    /// An object whose values are subschemas (`properties`, `$defs`, …).
    Map,
    /// Anything else: data or an annotation, copied verbatim.
    Data,
}

fn kind(keyword: &str, value: &Value) -> Kind {
    match keyword {
        "items" if value.is_array() => Kind::List,
        "items"
        | "additionalProperties"
        | "additionalItems"
        | "contains"
        | "propertyNames"
        | "not"
        | "if"
        | "then"
        | "else"
        | "unevaluatedItems"
        | "unevaluatedProperties"
        | "contentSchema" => Kind::Single,
        "allOf" | "anyOf" | "oneOf" | "prefixItems" => Kind::List,
        "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas"
        | "dependencies" => Kind::Map,
        _ => Kind::Data,
    }
}

/// A value that can stand where a schema goes. Anything else under a schema keyword (e.g. the
/// string arrays of draft-07 `dependencies`) is data.
fn is_schema(value: &Value) -> bool {
    value.is_object() || value.is_boolean()
}

fn is_defs(keyword: &str) -> bool {
    keyword == "$defs" || keyword == "definitions"
}

/// Calls `f` on every subschema object, parents before children, so `f` may reshape a node
/// and the walk then follows the reshaped children.
pub(crate) fn visit_schemas_mut(value: &mut Value, f: &mut impl FnMut(&mut Map<String, Value>)) {
    let Value::Object(obj) = value else { return };
    f(obj);
    for (keyword, child) in obj.iter_mut() {
        match kind(keyword, child) {
            Kind::Single => visit_schemas_mut(child, f),
            Kind::List => {
                if let Value::Array(items) = child {
                    items.iter_mut().for_each(|c| visit_schemas_mut(c, f));
                }
            }
            Kind::Map => {
                if let Value::Object(map) = child {
                    map.values_mut().for_each(|c| visit_schemas_mut(c, f));
                }
            }
            Kind::Data => {}
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Names

/// Makes a string usable as a component name (`^[a-zA-Z0-9._-]+$`).
pub(crate) fn sanitize(name: &str) -> String {
    let out: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-') {
                c
            } else {
                '_'
            }
        })
        .collect();
    if out.is_empty() { "_".into() } else { out }
}

/// Hands out unique, sanitised local component names for one tool (input and output share
/// one namespace, since both end up under the tool's prefix).
#[derive(Default)]
pub(crate) struct Names {
    used: HashSet<String>,
}

impl Names {
    pub(crate) fn take(&mut self, preferred: &str) -> String {
        let base = sanitize(preferred);
        if self.used.insert(base.clone()) {
            return base;
        }
        let mut n = 2usize;
        loop {
            let candidate = format!("{base}_{n}");
            if self.used.insert(candidate.clone()) {
                return candidate;
            }
            n += 1;
        }
    }
}

// ---------------------------------------------------------------------------------------------
// JSON pointers

fn escape_token(token: &str) -> Cow<'_, str> {
    if token.contains(['~', '/']) {
        Cow::Owned(token.replace('~', "~0").replace('/', "~1"))
    } else {
        Cow::Borrowed(token)
    }
}

fn unescape_token(token: &str) -> String {
    token.replace("~1", "/").replace("~0", "~")
}

fn child_pointer(parent: &str, token: &str) -> String {
    let token = escape_token(token);
    let mut out = String::with_capacity(parent.len() + token.len() + 1);
    out.push_str(parent);
    out.push('/');
    out.push_str(&token);
    out
}

/// Decodes `%XX` escapes (URI fragments may percent-encode pointer characters); a `%` not
/// followed by two hex digits stays as it is. `None` when the bytes are not UTF-8.
fn percent_decode(s: &str) -> Option<Cow<'_, str>> {
    percent_decode_str(s).decode_utf8().ok()
}

/// Re-escapes a decoded pointer token by token, so equal locations compare equal as strings.
fn canonical_pointer(pointer: &str) -> String {
    pointer.split('/').skip(1).fold(String::new(), |acc, t| {
        child_pointer(&acc, &unescape_token(t))
    })
}

// ---------------------------------------------------------------------------------------------
// Scanning: where the schemas, identifiers and references are

/// Everything known about one tool schema before it is rewritten. Pointers are canonical
/// escaped JSON pointers into the original schema (`""` is the root).
#[derive(Default)]
struct Scan {
    /// Schema positions reachable from the root through schema keywords, each with the
    /// pointer of the resource (nearest `$id`) it lives in.
    positions: HashMap<String, String>,
    /// `$id` value → pointer of the schema that declares it.
    ids: HashMap<String, String>,
    /// `$anchor`, `$dynamicAnchor` and draft-07 `"$id": "#name"` → pointer.
    anchors: HashMap<String, String>,
    /// Every reference met, with the resource pointer it resolves against.
    refs: Vec<(String, String)>,
    /// `$defs`/`definitions` entries in document order: pointer and key.
    defs: Vec<(String, String)>,
}

impl Scan {
    /// Records `value` (at `pointer`, inside resource `base`) and everything below it.
    /// `record` is false for copies of non-schema locations (see [`Normalizer::plan`]): their
    /// references still count, but nothing inside them is cut out in place.
    fn walk(&mut self, value: &Value, pointer: &str, base: &str, record: bool) {
        if record {
            self.positions.insert(pointer.to_owned(), base.to_owned());
        }
        let Value::Object(obj) = value else { return };
        let base = self.note_identifiers(obj, pointer, base);
        for keyword in REFERENCES {
            if let Some(Value::String(r)) = obj.get(*keyword) {
                self.refs.push((r.clone(), base.clone()));
            }
        }
        for r in discriminator_refs(obj) {
            self.refs.push((r.to_owned(), base.clone()));
        }
        for (keyword, child) in obj {
            let here = child_pointer(pointer, keyword);
            match (kind(keyword, child), child) {
                (Kind::Single, _) if is_schema(child) => self.walk(child, &here, &base, record),
                (Kind::List, Value::Array(items)) => {
                    for (i, item) in items.iter().enumerate().filter(|(_, v)| is_schema(v)) {
                        self.walk(item, &child_pointer(&here, &i.to_string()), &base, record);
                    }
                }
                (Kind::Map, Value::Object(map)) => {
                    for (name, item) in map.iter().filter(|(_, v)| is_schema(v)) {
                        let at = child_pointer(&here, name);
                        if record && is_defs(keyword) {
                            self.defs.push((at.clone(), name.clone()));
                        }
                        self.walk(item, &at, &base, record);
                    }
                }
                _ => {}
            }
        }
    }

    /// Notes `$id`s and anchors; returns the resource pointer the node's own references
    /// resolve against (the node itself when it declares a non-fragment `$id`).
    fn note_identifiers(&mut self, obj: &Map<String, Value>, pointer: &str, base: &str) -> String {
        let mut base = base.to_owned();
        if let Some(Value::String(id)) = obj.get("$id") {
            match id.strip_prefix('#') {
                Some(anchor) if !anchor.is_empty() => {
                    self.anchors.insert(anchor.to_owned(), pointer.to_owned());
                }
                Some(_) => {}
                None => {
                    self.ids.insert(id.clone(), pointer.to_owned());
                    base = pointer.to_owned();
                }
            }
        }
        for keyword in ["$anchor", "$dynamicAnchor"] {
            if let Some(Value::String(a)) = obj.get(keyword) {
                self.anchors.insert(a.clone(), pointer.to_owned());
            }
        }
        base
    }

    /// The canonical pointer a reference names, if it stays inside this schema. Remote
    /// references (another document) give `None`.
    fn resolve(&self, reference: &str, base: &str) -> Option<String> {
        let (uri, fragment) = reference.split_once('#').unwrap_or((reference, ""));
        let base = if uri.is_empty() {
            base
        } else {
            self.ids.get(uri)?.as_str()
        };
        let fragment = percent_decode(fragment)?;
        if fragment.is_empty() {
            Some(base.to_owned())
        } else if fragment.starts_with('/') {
            Some(format!("{base}{}", canonical_pointer(&fragment)))
        } else {
            self.anchors.get(fragment.as_ref()).cloned()
        }
    }
}

/// The reference strings inside an OpenAPI-style `discriminator.mapping` (pydantic emits
/// these next to `oneOf`), which must be rewritten along with `$ref`.
fn discriminator_refs(obj: &Map<String, Value>) -> impl Iterator<Item = &str> {
    obj.get("discriminator")
        .and_then(|d| d.get("mapping"))
        .and_then(Value::as_object)
        .into_iter()
        .flat_map(|m| m.values())
        .filter_map(Value::as_str)
        .filter(|s| s.starts_with('#'))
}

// ---------------------------------------------------------------------------------------------
// Rewriting

/// The result of normalising one schema: the schema to embed where the tool's schema goes,
/// and the components cut out of it (local names, to be prefixed by the caller's prefix).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Normalized {
    pub schema: Value,
    pub components: Vec<(String, Value)>,
}

/// Normalises one schema (`root`) whose components are named `{prefix}__{local}`; `root_name`
/// is the local name the root gets if something refers to it (`#`).
pub(crate) fn normalize(
    root: &Value,
    prefix: &str,
    root_name: &str,
    names: &mut Names,
) -> Normalized {
    let mut scan = Scan::default();
    scan.walk(root, "", "", true);
    let mut n = Normalizer {
        root,
        prefix,
        scan,
        cut: HashMap::new(),
        order: Vec::new(),
    };
    n.plan(root_name, names);
    let schema = n.emit(root, "", "", false);
    let components = n
        .order
        .iter()
        .filter_map(|(pointer, base)| {
            let value = root.pointer(pointer)?;
            let local = n.cut.get(pointer)?;
            Some((local.clone(), n.emit(value, pointer, base, true)))
        })
        .collect();
    Normalized { schema, components }
}

struct Normalizer<'a> {
    root: &'a Value,
    prefix: &'a str,
    scan: Scan,
    /// Pointer → local component name, for everything that becomes a component.
    cut: HashMap<String, String>,
    /// Components in the order they are emitted, with the resource pointer they resolve in.
    order: Vec<(String, String)>,
}

impl Normalizer<'_> {
    /// Decides what becomes a component: every `$defs`/`definitions` entry, then every
    /// reference target. A target at a schema position is cut out in place; a target elsewhere
    /// (inside an unknown keyword, say) is copied, since replacing it would change data.
    /// Targets that are keyword containers (`#/properties`) or not schemas stay unresolved.
    fn plan(&mut self, root_name: &str, names: &mut Names) {
        for (pointer, key) in std::mem::take(&mut self.scan.defs) {
            let base = self
                .scan
                .positions
                .get(&pointer)
                .cloned()
                .unwrap_or_default();
            self.add(pointer, names.take(key.as_str()), base);
        }
        let mut i = 0;
        while let Some((reference, base)) = self.scan.refs.get(i).cloned() {
            i += 1;
            let Some(target) = self.scan.resolve(&reference, &base) else {
                continue;
            };
            if self.cut.contains_key(&target) {
                continue;
            }
            let Some(value) = self.root.pointer(&target).filter(|v| is_schema(v)) else {
                continue;
            };
            let name = names.take(&local_name(&target, root_name));
            if let Some(own_base) = self.scan.positions.get(&target).cloned() {
                self.add(target, name, own_base);
            } else if !self.is_container(&target) {
                self.add(target.clone(), name, base.clone());
                self.scan.walk(value, &target, &base, false);
            }
        }
    }

    fn add(&mut self, pointer: String, name: String, base: String) {
        self.cut.insert(pointer.clone(), name);
        self.order.push((pointer, base));
    }

    /// Whether a non-schema location holds schemas below it (`#/properties`, `#/allOf`).
    fn is_container(&self, pointer: &str) -> bool {
        let prefix = format!("{pointer}/");
        self.scan.positions.keys().any(|p| p.starts_with(&prefix))
    }

    fn component_ref(&self, local: &str) -> String {
        format!("{COMPONENTS}{}{SEP}{local}", self.prefix)
    }

    /// The rewritten form of a reference, or `None` when it cannot be resolved here.
    fn rewrite(&self, reference: &str, base: &str) -> Option<String> {
        let target = self.scan.resolve(reference, base)?;
        self.cut.get(&target).map(|local| self.component_ref(local))
    }

    /// Emits the schema at `pointer`. A planned cut becomes a `$ref` unless it is the
    /// component being emitted (`own`).
    fn emit(&self, value: &Value, pointer: &str, base: &str, own: bool) -> Value {
        if !own && let Some(local) = self.cut.get(pointer) {
            return json!({ "$ref": self.component_ref(local) });
        }
        match value {
            Value::Object(obj) => Value::Object(self.emit_object(obj, pointer, base)),
            other => other.clone(),
        }
    }

    fn emit_object(
        &self,
        obj: &Map<String, Value>,
        pointer: &str,
        base: &str,
    ) -> Map<String, Value> {
        let own_base;
        let base = match obj.get("$id").and_then(Value::as_str) {
            Some(id) if !pointer.is_empty() && !id.starts_with('#') => {
                own_base = pointer.to_owned();
                own_base.as_str()
            }
            _ => base,
        };
        let mut out = Map::with_capacity(obj.len());
        for (keyword, value) in obj {
            let here = || child_pointer(pointer, keyword);
            match keyword.as_str() {
                k if DROPPED.contains(&k) => {}
                "$ref" => self.emit_ref(&mut out, value, base),
                "$dynamicRef" | "$recursiveRef" if !obj.contains_key("$ref") => {
                    self.emit_ref(&mut out, value, base)
                }
                "$dynamicRef" | "$recursiveRef" => {
                    out.insert("x-mcpo-unresolved-ref".into(), value.clone());
                }
                "discriminator" => {
                    out.insert(keyword.clone(), self.emit_discriminator(value, base));
                }
                _ => {
                    if let Some(v) = self.emit_keyword(keyword, value, &here(), base) {
                        out.insert(keyword.clone(), v);
                    }
                }
            }
        }
        upgrade_keywords(&mut out);
        out
    }

    /// A keyword's value: subschemas are emitted recursively, data is copied. `$defs` loses
    /// the entries that became components and disappears once empty.
    fn emit_keyword(&self, keyword: &str, value: &Value, here: &str, base: &str) -> Option<Value> {
        let sub = |v: &Value, at: &str| {
            if is_schema(v) {
                self.emit(v, at, base, false)
            } else {
                v.clone()
            }
        };
        match (kind(keyword, value), value) {
            (Kind::Single, _) => Some(sub(value, here)),
            (Kind::List, Value::Array(items)) => Some(Value::Array(
                items
                    .iter()
                    .enumerate()
                    .map(|(i, v)| sub(v, &child_pointer(here, &i.to_string())))
                    .collect(),
            )),
            (Kind::Map, Value::Object(map)) => {
                let kept: Map<String, Value> = map
                    .iter()
                    .map(|(name, v)| (name, child_pointer(here, name), v))
                    .filter(|(_, at, _)| !(is_defs(keyword) && self.cut.contains_key(at)))
                    .map(|(name, at, v)| (name.clone(), sub(v, &at)))
                    .collect();
                (!(is_defs(keyword) && kept.is_empty())).then_some(Value::Object(kept))
            }
            _ => Some(value.clone()),
        }
    }

    /// Writes `$ref` pointing at a component, or, when the target cannot be found, the
    /// original reference as `x-mcpo-unresolved-ref` (the schema then accepts anything,
    /// which is what the upstream's own validation will sort out).
    fn emit_ref(&self, out: &mut Map<String, Value>, value: &Value, base: &str) {
        match value.as_str().and_then(|r| self.rewrite(r, base)) {
            Some(r) => {
                out.insert("$ref".into(), Value::String(r));
            }
            None => {
                out.insert("x-mcpo-unresolved-ref".into(), value.clone());
            }
        }
    }

    fn emit_discriminator(&self, value: &Value, base: &str) -> Value {
        let mut value = value.clone();
        if let Some(Value::Object(mapping)) = value.get_mut("mapping") {
            for target in mapping.values_mut() {
                if let Some(r) = target.as_str().and_then(|r| self.rewrite(r, base)) {
                    *target = Value::String(r);
                }
            }
        }
        value
    }
}

/// Rewrites older-draft keywords whose form is invalid in 2020-12 (the dialect of OpenAPI
/// 3.1) into their 2020-12 equivalents, so document readers see the same constraints the
/// validator (which reads the original draft) enforces:
/// - draft-04 boolean `exclusiveMinimum`/`exclusiveMaximum` → the numeric form;
/// - draft-07 tuple `items: [..]` → `prefixItems`, and its `additionalItems` → `items`;
/// - draft-07 `dependencies` → `dependentRequired` (arrays) / `dependentSchemas` (schemas).
///
/// Done on the emitted copy, after cuts were decided on the original layout.
fn upgrade_keywords(obj: &mut Map<String, Value>) {
    for (exclusive, bound) in [
        ("exclusiveMinimum", "minimum"),
        ("exclusiveMaximum", "maximum"),
    ] {
        if let Some(Value::Bool(flag)) = obj.get(exclusive) {
            let flag = *flag;
            obj.remove(exclusive);
            if flag && let Some(limit) = obj.remove(bound) {
                obj.insert(exclusive.into(), limit);
            }
        }
    }
    if matches!(obj.get("items"), Some(Value::Array(_))) && !obj.contains_key("prefixItems") {
        if let Some(tuple) = obj.remove("items") {
            obj.insert("prefixItems".into(), tuple);
        }
        if let Some(rest) = obj.remove("additionalItems") {
            obj.insert("items".into(), rest);
        }
    }
    if let Some(Value::Object(deps)) = obj.get("dependencies")
        && !obj.contains_key("dependentRequired")
        && !obj.contains_key("dependentSchemas")
    {
        let (required, schemas): (Map<String, Value>, Map<String, Value>) = deps
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .partition(|(_, v)| v.is_array());
        obj.remove("dependencies");
        if !required.is_empty() {
            obj.insert("dependentRequired".into(), Value::Object(required));
        }
        if !schemas.is_empty() {
            obj.insert("dependentSchemas".into(), Value::Object(schemas));
        }
    }
}

/// The schema a same-document reference (`#/…`) points to, if any. For quick looks at the
/// original schema, such as whether a `$ref`'d top level requires properties.
pub(crate) fn local_target<'a>(root: &'a Value, reference: &str) -> Option<&'a Value> {
    let fragment = percent_decode(reference.strip_prefix('#')?)?;
    if fragment.is_empty() {
        Some(root)
    } else {
        root.pointer(&canonical_pointer(&fragment))
    }
}

/// A readable local name for a cut-out location: the root gets `root_name`, anything else its
/// pointer without the `properties` steps (`/properties/user/properties/address` →
/// `user.address`).
fn local_name(pointer: &str, root_name: &str) -> String {
    let parts: Vec<String> = pointer
        .split('/')
        .skip(1)
        .filter(|t| *t != "properties")
        .map(unescape_token)
        .collect();
    if parts.is_empty() {
        root_name.to_owned()
    } else {
        parts.join(".")
    }
}

/// Rewrites every component reference from one prefix to another (`from`/`to` without the
/// trailing separator). Used when a document needs other names than the stored ones: the
/// combined document prefixes the server, and colliding tools get a numbered prefix.
pub(crate) fn rebase_refs(value: &mut Value, from: &str, to: &str) {
    let old = format!("{COMPONENTS}{from}{SEP}");
    let new = format!("{COMPONENTS}{to}{SEP}");
    let fix = |v: &mut Value| {
        if let Value::String(s) = v
            && let Some(rest) = s.strip_prefix(&old)
        {
            *s = format!("{new}{rest}");
        }
    };
    visit_schemas_mut(value, &mut |obj| {
        if let Some(r) = obj.get_mut("$ref") {
            fix(r);
        }
        if let Some(Value::Object(mapping)) = obj
            .get_mut("discriminator")
            .and_then(|d| d.get_mut("mapping"))
        {
            mapping.values_mut().for_each(fix);
        }
    });
}

/// Percent-encodes the characters a URI reference may not contain in every reference of a
/// schema, in place. Our own resolution decodes them again, so this only helps validators
/// that insist on valid URIs.
pub(crate) fn encode_refs(schema: &mut Value) {
    visit_schemas_mut(schema, &mut |obj| {
        for keyword in REFERENCES {
            if let Some(Value::String(r)) = obj.get_mut(*keyword)
                && let Some(encoded) = percent_encode_uri(r)
            {
                *r = encoded;
            }
        }
    });
}

/// The ASCII characters a URI reference may not contain: controls, space and `"<>\^`{|}`.
/// Everything else is kept, `%` included, so an already encoded reference stays as it is;
/// non-ASCII characters are always encoded (as UTF-8 bytes).
const NOT_IN_URIS: &AsciiSet = &CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'\\')
    .add(b'^')
    .add(b'`')
    .add(b'{')
    .add(b'|')
    .add(b'}');

/// `s` with [`NOT_IN_URIS`] and non-ASCII characters percent-encoded; `None` when it has none.
fn percent_encode_uri(s: &str) -> Option<String> {
    // A borrowed result is not always `s` itself: a one-character `s` comes back as the
    // crate's static "%XX".
    let encoded = Cow::from(utf8_percent_encode(s, NOT_IN_URIS));
    (encoded != s).then(|| encoded.into_owned())
}

// ---------------------------------------------------------------------------------------------
// OpenAPI 3.0 `nullable`

/// Turns OpenAPI 3.0 `nullable: true` into its 3.1 / JSON Schema meaning everywhere in a
/// schema, in place. Applied to the tool schema before both the validator and the document
/// are built, so the two agree on whether `null` is accepted.
pub(crate) fn convert_nullable(schema: &mut Value) {
    visit_schemas_mut(schema, &mut |obj| {
        if let Some(flag) = obj.remove("nullable")
            && flag == Value::Bool(true)
        {
            allow_null(obj);
        }
    });
}

/// Makes one schema object accept `null` as well: `null` joins `type` and `enum`, and the
/// keywords that would still reject it (`$ref`, `allOf`, `oneOf`, `const`) move into an
/// `anyOf` branch next to `{"type": "null"}`.
fn allow_null(obj: &mut Map<String, Value>) {
    let null = Value::String("null".into());
    match obj.get_mut("type") {
        Some(Value::String(t)) if t != "null" => {
            let t = std::mem::take(t);
            obj.insert("type".into(), json!([t, "null"]));
        }
        Some(Value::Array(types)) if !types.contains(&null) => types.push(null),
        _ => {}
    }
    if let Some(Value::Array(values)) = obj.get_mut("enum")
        && !values.contains(&Value::Null)
    {
        values.push(Value::Null);
    }
    let mut guarded = Map::new();
    for keyword in ["$ref", "allOf", "oneOf", "const"] {
        if let Some(v) = obj.remove(keyword) {
            guarded.insert(keyword.into(), v);
        }
    }
    if guarded.is_empty() {
        let null_branch = json!({ "type": "null" });
        if let Some(Value::Array(branches)) = obj.get_mut("anyOf")
            && !branches.contains(&null_branch)
        {
            branches.push(null_branch);
        }
        return;
    }
    if let Some(any) = obj.remove("anyOf") {
        guarded.insert("anyOf".into(), any);
    }
    obj.insert(
        "anyOf".into(),
        json!([Value::Object(guarded), { "type": "null" }]),
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_decoding_keeps_what_is_not_an_escape() {
        let decoded = |s| percent_decode(s).map(Cow::into_owned);
        assert_eq!(decoded("Foo%20Bar%3CT%3E").unwrap(), "Foo Bar<T>");
        assert_eq!(decoded("%3c%3E").unwrap(), "<>");
        assert_eq!(decoded("caf%C3%A9").unwrap(), "café");
        for kept in [
            "", "plain", "%", "100%", "%2", "%zz", "%é", "a%%41", "%+1", "%-1",
        ] {
            let expected = kept.replace("%%41", "%A");
            assert_eq!(decoded(kept).unwrap(), expected, "{kept}");
        }
        assert!(matches!(
            percent_decode("no escapes"),
            Some(Cow::Borrowed(_))
        ));
        // Bytes that are not UTF-8 name no location.
        assert_eq!(decoded("%FF"), None);
        assert_eq!(decoded("%C3"), None);
    }

    #[test]
    fn percent_encoding_escapes_exactly_what_a_uri_may_not_contain() {
        // The characters a URI reference may contain (RFC 3986 unreserved, reserved, and `%`).
        let allowed = |c: char| c.is_ascii_alphanumeric() || "-._~:/?#[]@!$&'()*+,;=%".contains(c);
        for byte in 0..=0x7fu8 {
            let c = char::from(byte);
            let expected = if allowed(c) {
                None
            } else {
                Some(format!("%{byte:02X}"))
            };
            assert_eq!(percent_encode_uri(&c.to_string()), expected, "{c:?}");
        }
        assert_eq!(
            percent_encode_uri("#/$defs/Foo Bar<é>").unwrap(),
            "#/$defs/Foo%20Bar%3C%C3%A9%3E"
        );
        assert_eq!(percent_encode_uri("#/$defs/Foo%20Bar"), None);
        let odd = "#/$defs/a b\"c\"<>^`{|}\u{7f}ü€😀";
        let encoded = percent_encode_uri(odd).unwrap();
        assert_eq!(percent_decode(&encoded).unwrap(), odd);
    }
}
