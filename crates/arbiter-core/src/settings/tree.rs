//! Layered configuration as one tree: the committed `arbiter.yaml` (the defaults), a file laid
//! over it, then `ARBITER_*` variables, read into the typed configuration in one pass. The tree
//! remembers where a file wrote each value, so a value its key refuses is reported with its line.

use super::{env_value, leaf_path};
use serde::de::{self, DeserializeOwned, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::Value;
use serde_saphyr::{Location, MessageFormatter, Spanned};
use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

/// The committed `arbiter.yaml`: every key with its default and the comment that documents it.
pub const DEFAULTS: &str = include_str!("../../../../arbiter.yaml");

/// [`DEFAULTS`] read once. A unit test reads the file, so a broken one fails there first.
#[allow(clippy::expect_used)]
static DEFAULT_TREE: LazyLock<Tree> = LazyLock::new(|| {
    let mut tree = Tree::parse(DEFAULTS).expect("the committed arbiter.yaml is YAML");
    tree.forget_places();
    tree
});

/// The defaults of one section of the committed `arbiter.yaml` (a dotted path: `webhooks`,
/// `detector.local`), read as `T`: what a section's `Default` returns, so a default is written
/// once, in the file.
///
/// # Panics
/// When the file has no such section or `T` refuses it; a unit test of each section reads it.
#[allow(clippy::expect_used)]
pub fn defaults<T: DeserializeOwned>(section: &str) -> T {
    let tree = Tree::defaults()
        .get(section)
        .unwrap_or_else(|| panic!("arbiter.yaml has no section {section}"));
    tree.read()
        .unwrap_or_else(|err| panic!("arbiter.yaml, {section}: {err}"))
}

/// A section's defaults with the keys of `yaml` laid over them, as a file under the section
/// would set them; unknown keys are refused.
pub fn section_with<T: DeserializeOwned>(section: &str, yaml: &str) -> Result<T, String> {
    let mut tree = Tree::defaults()
        .get(section)
        .cloned()
        .ok_or_else(|| format!("arbiter.yaml has no section {section}"))?;
    tree.merge(Tree::parse(yaml)?, &[]);
    tree.read().map_err(|err| err.to_string())
}

/// Where a file wrote a value: its line and column, from 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Place {
    /// The line, from 1.
    pub line: u64,
    /// The column, from 1.
    pub column: u64,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "line {} column {}", self.line, self.column)
    }
}

impl From<&Location> for Place {
    fn from(location: &Location) -> Self {
        Self {
            line: location.line(),
            column: location.column(),
        }
    }
}

/// A configuration document (maps, lists and scalars), each node remembering where a file wrote
/// it. Layers are merged as trees; the typed configuration is read from the result once.
#[derive(Debug, Clone, PartialEq)]
pub struct Tree {
    node: Node,
    at: Option<Place>,
}

#[derive(Debug, Clone, PartialEq)]
enum Node {
    Map(BTreeMap<String, Tree>),
    List(Vec<Tree>),
    /// A scalar as YAML resolved it; one that is not a string keeps its text as written (`off`,
    /// `0x10`), so a key that takes a string reads that text, as it would from the file.
    Scalar {
        value: Value,
        text: Option<String>,
    },
}

/// A value refused when the tree is read: its dotted key, where a file wrote it, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{key}: {message}", place.map(|p| format!("{p}: ")).unwrap_or_default())]
pub struct ReadError {
    /// The dotted key (`outbound.allow_cidrs[1]`).
    pub key: String,
    /// The key's path, one map key or list index per step.
    pub path: Vec<String>,
    /// Where a file wrote the nearest node of the path, when one did.
    pub place: Option<Place>,
    /// What is wrong.
    pub message: String,
}

/// An environment variable whose value is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{var}: {message}")]
pub struct VarError {
    /// The variable.
    pub var: String,
    /// What is wrong.
    pub message: String,
}

/// A variable applied to a tree, and the path of the leaf it set.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Applied {
    /// The variable.
    pub var: String,
    /// The path of its leaf.
    pub path: Vec<String>,
}

impl Tree {
    /// The committed `arbiter.yaml`, read once; its nodes carry no places.
    pub fn defaults() -> &'static Tree {
        &DEFAULT_TREE
    }

    /// Reads a YAML document; an empty one is an empty map. The error names its line and column.
    pub fn parse(text: &str) -> Result<Self, String> {
        let raw: Spanned<Raw> = serde_saphyr::from_str(text).map_err(|err| err.to_string())?;
        let at = Place::from(&raw.referenced);
        let mut tree = Self::from_raw(raw, text, at);
        if let Node::Scalar {
            value: Value::Null, ..
        } = tree.node
        {
            tree.node = Node::Map(BTreeMap::new());
        }
        Ok(tree)
    }

    /// A tree of a JSON value, written by no file.
    pub fn from_json(value: Value) -> Self {
        let node = match value {
            Value::Object(map) => Node::Map(
                map.into_iter()
                    .map(|(key, value)| (key, Self::from_json(value)))
                    .collect(),
            ),
            Value::Array(items) => Node::List(items.into_iter().map(Self::from_json).collect()),
            value => Node::Scalar { value, text: None },
        };
        Self { node, at: None }
    }

    /// The tree as a JSON value (scalars as YAML resolved them).
    pub fn to_json(&self) -> Value {
        match &self.node {
            Node::Map(map) => Value::Object(
                map.iter()
                    .map(|(key, child)| (key.clone(), child.to_json()))
                    .collect(),
            ),
            Node::List(items) => Value::Array(items.iter().map(Self::to_json).collect()),
            Node::Scalar { value, .. } => value.clone(),
        }
    }

    /// The node at a dotted path of map keys.
    pub fn get(&self, path: &str) -> Option<&Tree> {
        path.split('.').try_fold(self, |tree, key| tree.child(key))
    }

    /// Puts `value` at a dotted path of map keys, making the maps on the way.
    pub fn set(&mut self, path: &str, value: Tree) {
        let keys: Vec<String> = path.split('.').map(str::to_owned).collect();
        self.set_path(&keys, value);
    }

    fn child(&self, key: &str) -> Option<&Tree> {
        match &self.node {
            Node::Map(map) => map.get(key),
            _ => None,
        }
    }

    fn set_path(&mut self, path: &[String], value: Tree) {
        let Some((first, rest)) = path.split_first() else {
            *self = value;
            return;
        };
        if !matches!(self.node, Node::Map(_)) {
            self.node = Node::Map(BTreeMap::new());
        }
        if let Node::Map(map) = &mut self.node {
            map.entry(first.clone())
                .or_insert_with(|| Self::from_json(Value::Object(Default::default())))
                .set_path(rest, value);
        }
    }

    /// Lays `over` on this tree: maps merge key by key, except at the dotted paths in `whole`
    /// (maps keyed by names a file chooses, such as `rate_limits.plans`), which `over` replaces
    /// whole, as it replaces lists and scalars.
    pub fn merge(&mut self, over: Tree, whole: &[&str]) {
        self.merge_at(over, whole, "");
    }

    fn merge_at(&mut self, over: Tree, whole: &[&str], path: &str) {
        let both_maps = matches!((&self.node, &over.node), (Node::Map(_), Node::Map(_)));
        if !both_maps || whole.contains(&path) {
            *self = over;
            return;
        }
        self.at = over.at.or(self.at);
        let (Node::Map(mine), Node::Map(theirs)) = (&mut self.node, over.node) else {
            return;
        };
        for (key, child) in theirs {
            let child_path = if path.is_empty() {
                key.clone()
            } else {
                format!("{path}.{key}")
            };
            match mine.get_mut(&key) {
                Some(existing) => existing.merge_at(child, whole, &child_path),
                None => {
                    mine.insert(key, child);
                }
            }
        }
    }

    /// Sets the leaf each variable names: `prefix` and the leaf's path upper-cased, with `_` for
    /// `.` (`ARBITER_OUTBOUND_ALLOW_CIDRS`; a list comma-separated). A value is typed as the leaf
    /// at the same path of `typed_by` (the defaults) when it has one, else as the leaf it
    /// replaces. Other variables are ignored. Returns the variables applied.
    pub fn apply_env(
        &mut self,
        vars: impl IntoIterator<Item = (String, String)>,
        prefix: &str,
        typed_by: &Tree,
    ) -> Result<Vec<Applied>, VarError> {
        let view = self.to_json();
        let typed = typed_by.to_json();
        let mut applied = Vec::new();
        for (var, raw) in vars {
            let Some(name) = var.strip_prefix(prefix) else {
                continue;
            };
            let Some(path) = leaf_path(&view, &name.to_ascii_lowercase()) else {
                continue;
            };
            let current = json_at(&typed, &path)
                .filter(|leaf| !leaf.is_object())
                .or_else(|| json_at(&view, &path))
                .unwrap_or(&Value::Null);
            let value = env_value(current, &raw).map_err(|message| VarError {
                var: var.clone(),
                message,
            })?;
            self.set_path(&path, Self::from_json(value));
            applied.push(Applied { var, path });
        }
        Ok(applied)
    }

    /// Reads the tree as `T` in one pass. A refused value is reported with its dotted key and,
    /// when a file wrote it, its place.
    pub fn read<T: DeserializeOwned>(&self) -> Result<T, ReadError> {
        let mut text = String::new();
        self.emit(&mut text);
        let mut track = serde_path_to_error::Track::new();
        serde_saphyr::with_deserializer_from_str(&text, |de| {
            T::deserialize(serde_path_to_error::Deserializer::new(de, &mut track))
        })
        .map_err(|err| {
            let message = serde_saphyr::DefaultMessageFormatter
                .format_message(err.without_snippet())
                .into_owned();
            let tracked = track.path();
            let path: Vec<String> = tracked
                .iter()
                .filter_map(|segment| match segment {
                    serde_path_to_error::Segment::Map { key } => Some(key.clone()),
                    serde_path_to_error::Segment::Seq { index } => Some(index.to_string()),
                    _ => None,
                })
                .collect();
            ReadError {
                key: tracked.to_string(),
                place: self.place_of(&path),
                path,
                message,
            }
        })
    }

    /// Where a file wrote the deepest node along `path` that a file wrote.
    fn place_of(&self, path: &[String]) -> Option<Place> {
        let mut tree = self;
        let mut place = None;
        for step in path {
            let next = match &tree.node {
                Node::Map(map) => map.get(step),
                Node::List(items) => step.parse::<usize>().ok().and_then(|i| items.get(i)),
                Node::Scalar { .. } => None,
            };
            let Some(next) = next else { break };
            tree = next;
            place = next.at.or(place);
        }
        place
    }

    /// Writes the tree as one line of flow YAML for the typed read: keys and strings quoted,
    /// other scalars as a file wrote them when that text is a plain word.
    fn emit(&self, out: &mut String) {
        match &self.node {
            Node::Map(map) => {
                out.push('{');
                for (i, (key, child)) in map.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push_str(": ");
                    child.emit(out);
                }
                out.push('}');
            }
            Node::List(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    item.emit(out);
                }
                out.push(']');
            }
            Node::Scalar {
                text: Some(text), ..
            } if is_plain_word(text) => out.push_str(text),
            Node::Scalar { value, .. } => out.push_str(&value.to_string()),
        }
    }

    fn forget_places(&mut self) {
        self.at = None;
        match &mut self.node {
            Node::Map(map) => map.values_mut().for_each(Self::forget_places),
            Node::List(items) => items.iter_mut().for_each(Self::forget_places),
            Node::Scalar { .. } => {}
        }
    }

    fn from_raw(raw: Spanned<Raw>, source: &str, at: Place) -> Self {
        let node = match raw.value {
            Raw::Map(entries) => Node::Map(
                entries
                    .into_iter()
                    .map(|(key, value)| {
                        let at = Place::from(&key.referenced);
                        (key.value, Self::from_raw(value, source, at))
                    })
                    .collect(),
            ),
            Raw::List(items) => Node::List(
                items
                    .into_iter()
                    .map(|item| {
                        let at = Place::from(&item.referenced);
                        Self::from_raw(item, source, at)
                    })
                    .collect(),
            ),
            Raw::Scalar(value) => {
                let text = if value.is_string() {
                    None
                } else {
                    written(source, &raw.defined)
                };
                Node::Scalar { value, text }
            }
        };
        Self { node, at: Some(at) }
    }
}

/// Text YAML reads the same in a flow collection as where a file wrote it.
fn is_plain_word(text: &str) -> bool {
    !text.is_empty()
        && text != "-"
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'+' | b'-'))
}

/// The source text of a node.
fn written(source: &str, location: &Location) -> Option<String> {
    let span = location.span();
    let start = usize::try_from(span.byte_offset()?).ok()?;
    let len = usize::try_from(span.byte_len()?).ok()?;
    source
        .get(start..start.checked_add(len)?)
        .map(str::to_owned)
}

fn json_at<'a>(value: &'a Value, path: &[String]) -> Option<&'a Value> {
    path.iter().try_fold(value, |value, key| value.get(key))
}

/// A YAML node as read, with the places of its keys and items.
enum Raw {
    Map(Vec<(Spanned<String>, Spanned<Raw>)>),
    List(Vec<Spanned<Raw>>),
    Scalar(Value),
}

impl<'de> serde::Deserialize<'de> for Raw {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(RawVisitor)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = Raw;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a YAML value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.into()))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.into()))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.into()))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.into()))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Raw, E> {
        Ok(Raw::Scalar(v.into()))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }

    fn visit_none<E: de::Error>(self) -> Result<Raw, E> {
        Ok(Raw::Scalar(Value::Null))
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Raw, D::Error> {
        deserializer.deserialize_any(self)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Raw, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(Raw::List(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Raw, A::Error> {
        let mut entries = Vec::new();
        while let Some(entry) = map.next_entry()? {
            entries.push(entry);
        }
        Ok(Raw::Map(entries))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;
    use serde_json::json;

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Plan {
        per_minute: u32,
        per_day: u32,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Limits {
        level: String,
        ttl_secs: u64,
        ports: Vec<u16>,
        on: bool,
    }

    #[derive(Debug, Deserialize, PartialEq)]
    #[serde(deny_unknown_fields)]
    struct Doc {
        limits: Limits,
        plans: BTreeMap<String, Plan>,
    }

    const BASE: &str = "limits:\n  level: info\n  ttl_secs: 60\n  ports: [80, 443]\n  on: true\nplans:\n  starter: {per_minute: 1, per_day: 2}\n  growth: {per_minute: 3, per_day: 4}\n";

    fn layered(file: &str, vars: &[(&str, &str)]) -> Result<Doc, String> {
        let defaults = Tree::parse(BASE).unwrap();
        let mut tree = defaults.clone();
        tree.merge(Tree::parse(file)?, &["plans"]);
        let vars = vars.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned()));
        tree.apply_env(vars, "T_", &defaults)
            .map_err(|e| e.to_string())?;
        tree.read().map_err(|e| e.to_string())
    }

    #[test]
    fn nested_maps_merge_by_key_and_lists_and_named_maps_are_replaced_whole() {
        let doc = layered(
            "limits:\n  ttl_secs: 5\n  ports: [8080]\nplans:\n  gold: {per_minute: 9, per_day: 9}\n",
            &[],
        )
        .unwrap();
        assert_eq!(doc.limits.level, "info");
        assert_eq!(doc.limits.ttl_secs, 5);
        assert_eq!(doc.limits.ports, [8080]);
        assert_eq!(doc.plans.keys().collect::<Vec<_>>(), ["gold"]);
        // An empty file, or one of comments, is the defaults.
        assert_eq!(layered("", &[]).unwrap(), layered("# none\n", &[]).unwrap());
        assert_eq!(layered("", &[]).unwrap().plans.len(), 2);
    }

    #[test]
    fn variables_override_the_merged_leaves_typed_as_the_defaults() {
        let doc = layered(
            "limits:\n  level: off\nplans:\n  gold: {per_minute: 9, per_day: 9}\n",
            &[
                ("T_LIMITS_LEVEL", "debug"),
                ("T_LIMITS_PORTS", "1, 2"),
                ("T_PLANS_GOLD_PER_DAY", "10"),
                ("T_NOTHING", "x"),
                ("HOME", "/root"),
            ],
        )
        .unwrap();
        assert_eq!(doc.limits.level, "debug");
        assert_eq!(doc.limits.ports, [1, 2]);
        assert_eq!(doc.plans["gold"].per_day, 10);
        let err = layered("", &[("T_LIMITS_TTL_SECS", "soon")]).unwrap_err();
        assert_eq!(err, "T_LIMITS_TTL_SECS: \"soon\" is not a whole number");
    }

    #[test]
    fn a_scalar_is_read_as_the_file_wrote_it() {
        // `off` and `0x10` resolve to a boolean and a number, yet a string key reads the text.
        let doc = layered("limits:\n  level: off\n  on: yes\n  ttl_secs: 0x10\n", &[]).unwrap();
        assert_eq!(doc.limits.level, "off");
        assert!(doc.limits.on);
        assert_eq!(doc.limits.ttl_secs, 16);
        let doc = layered("limits:\n  level: 0x10\n", &[]).unwrap();
        assert_eq!(doc.limits.level, "0x10");
        let doc = layered("limits:\n  level: \"a, b: c # d\"\n", &[]).unwrap();
        assert_eq!(doc.limits.level, "a, b: c # d");
    }

    #[test]
    fn a_refused_value_names_its_key_and_the_line_the_file_wrote_it_on() {
        let err = layered("limits:\n  ttl_secs: 5\n  levle: x\n", &[]).unwrap_err();
        assert!(
            err.starts_with("line 3 column 3: limits.levle: unknown field `levle`"),
            "{err}"
        );
        let err = layered("\n\nlimits:\n  ports: [80, x]\n", &[]).unwrap_err();
        assert!(
            err.starts_with("line 4 column 15: limits.ports[1]: "),
            "{err}"
        );
        let err = layered("plans:\n  gold: {per_minute: 9}\n", &[]).unwrap_err();
        assert!(
            err.starts_with("line 2 column 3: plans.gold: missing field `per_day`"),
            "{err}"
        );
        let err = layered("limits: [1\n", &[]).unwrap_err();
        assert!(err.contains("line 1"), "{err}");
        // A value only the defaults or a variable wrote has no place.
        let err = layered("", &[("T_LIMITS_LEVEL", "x")]);
        assert!(err.is_ok());
        let mut tree = Tree::parse("a: 1\n").unwrap();
        tree.forget_places();
        let err = tree.read::<Plan>().unwrap_err();
        assert_eq!(err.place, None);
        assert!(err.to_string().starts_with("a: unknown field"), "{err}");
    }

    #[test]
    fn the_committed_file_reads_back_as_it_is_written() {
        let tree = Tree::defaults();
        let value: Value = tree.read().unwrap();
        assert_eq!(value, tree.to_json());
        assert_eq!(value["limits"]["max_image_bytes"], json!(20_971_520));
        assert_eq!(value["detector"]["routes"], json!({}));
        let listen: String = defaults("listen");
        assert_eq!(listen, "127.0.0.1:8080");
    }
}
