//! From a file or YAML text to a [`Policy`]: parse (shape), then check meaning and compile.
//!
//! Parsing stops at the first YAML or shape error (serde cannot go on); the meaning checks
//! collect every problem they find, so an admin sees them all at once.

use crate::condition::{Condition, FactPath, Leaf, ModelField, Quantifier, Span};
use crate::diagnostic::{Diagnostic, DiagnosticKind, Diagnostics, PolicyError, Position};
use crate::operator::{Op, OperatorSpec, operator_names};
use crate::policy::{ChangelogEntry, Expect, Outcome, Policy, PolicyAction, PolicyTest, Rule};
use crate::settings::RuleMode;
use crate::shape::{self, Node};
use crate::suggest::did_you_mean;
use crate::syntax::{
    RawActions, RawCondition, RawExpect, RawHeader, RawModels, RawOutcome, RawPolicy, RawRule,
    RawTest,
};
use crate::template::Template;
use crate::value::kind_of;
use arbiter_core::{Facts, ModelKind, PolicyRef};
use serde::de::DeserializeOwned;
use serde_json::Value;
use serde_saphyr::{Location, MessageFormatter, Spanned};
use sha2::{Digest, Sha256};
use std::path::Path;

/// The `apiVersion` this crate reads.
pub const API_VERSION: &str = "arbiter/v1";
/// The `kind` of a policy file.
pub const KIND: &str = "Policy";

/// The largest policy file Arbiter reads: 1 MiB.
pub const MAX_POLICY_BYTES: usize = 1024 * 1024;

impl Policy {
    /// Compiles a policy from its YAML text. `origin` names the file in diagnostics.
    ///
    /// Fails with every problem found, each at `origin:line:column` where the position is known.
    pub fn from_yaml(source: &str, origin: &str) -> Result<Policy, PolicyError> {
        compile(source, origin)
    }

    /// Reads and compiles a policy file. Files over 1 MiB and files that are not UTF-8 are
    /// rejected with a diagnostic.
    pub fn load(path: &Path) -> Result<Policy, PolicyError> {
        use std::io::Read;
        let read_error = |source| PolicyError::Read {
            path: path.to_owned(),
            source,
        };
        let origin = path.display().to_string();
        let file = std::fs::File::open(path).map_err(read_error)?;
        let mut bytes = Vec::new();
        // Read one byte past the limit to tell "at the limit" from "over it".
        let limit = u64::try_from(MAX_POLICY_BYTES)
            .unwrap_or(u64::MAX)
            .saturating_add(1);
        file.take(limit)
            .read_to_end(&mut bytes)
            .map_err(read_error)?;
        if bytes.len() > MAX_POLICY_BYTES {
            return Err(too_large(&origin));
        }
        let source = std::str::from_utf8(&bytes).map_err(|error| {
            let position = Position::of_byte_offset(&bytes, error.valid_up_to());
            PolicyError::invalid(vec![Diagnostic::new(
                &origin,
                Some(position),
                DiagnosticKind::File,
                "the file is not UTF-8 text (policies are UTF-8 YAML)",
            )])
        })?;
        Self::from_yaml(source, &origin)
    }
}

fn too_large(origin: &str) -> PolicyError {
    PolicyError::invalid(vec![Diagnostic::new(
        origin,
        None,
        DiagnosticKind::File,
        format!("the file is larger than {MAX_POLICY_BYTES} bytes (1 MiB), the limit for a policy"),
    )])
}

fn compile(source: &str, origin: &str) -> Result<Policy, PolicyError> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(too_large(origin));
    }
    let blank = |line: &str| line.trim().is_empty() || line.trim_start().starts_with('#');
    if source.lines().all(blank) {
        let message = "the file is empty; a policy starts with `apiVersion: arbiter/v1`";
        return Err(PolicyError::invalid(vec![Diagnostic::new(
            origin,
            None,
            DiagnosticKind::File,
            message,
        )]));
    }
    // Read the whole tree first: a hostile file (alias bomb, deep nesting) fails here, once.
    let tree = parse::<Node>(source, origin)?;
    check_header(parse::<RawHeader>(source, origin)?, origin)?;
    // Stage 1: shape, against the JSON Schema. Every problem is positioned; if the typed
    // reading below fails too, these are the full story.
    let shape = shape::check(&tree, origin);
    let raw = match parse::<RawPolicy>(source, origin) {
        Ok(raw) => raw,
        Err(_) if !shape.is_empty() => {
            return Err(PolicyError::invalid(
                shape.into_iter().map(|(d, _)| d).collect(),
            ));
        }
        Err(error) => return Err(error),
    };
    // Stage 2 (the part that needs no flow): meaning. Where both stages flag the same line,
    // the compiler's message is the more precise one, and a condition of no known shape is
    // always explained by the compiler.
    let mut compiler = Compiler {
        diags: Diagnostics::new(origin),
        actions: Vec::new(),
    };
    let policy = compiler.policy(raw, source, origin);
    let mut diagnostics = compiler.diags.into_list();
    let flagged_lines: Vec<u32> = diagnostics
        .iter()
        .filter_map(|d| d.position.map(|p| p.line))
        .collect();
    let compiler_found_any = !diagnostics.is_empty();
    diagnostics.extend(
        shape
            .into_iter()
            .filter(|(_, condition_shape)| !(*condition_shape && compiler_found_any))
            .map(|(d, _)| d)
            .filter(|d| d.position.is_none_or(|p| !flagged_lines.contains(&p.line))),
    );
    match policy {
        Some(policy) if diagnostics.is_empty() => Ok(policy),
        _ => Err(PolicyError::invalid(diagnostics)),
    }
}

/// Reads a set of facts from YAML or JSON text (JSON is YAML): a mapping like
/// `{ verdict: { label: AI_GENERATED }, claim: { amount: 12000 } }`. Read with the same limits
/// and YAML 1.2 rules as policies.
pub fn facts_from_text(source: &str, origin: &str) -> Result<Facts, PolicyError> {
    if source.len() > MAX_POLICY_BYTES {
        return Err(too_large(origin));
    }
    match parse::<Spanned<Value>>(source, origin)? {
        Spanned {
            value: Value::Object(map),
            ..
        } => Ok(Facts::from_map(map)),
        other => Err(PolicyError::invalid(vec![Diagnostic::new(
            origin,
            Position::from_location(other.referenced),
            DiagnosticKind::Syntax,
            format!(
                "facts must be a mapping like {{ verdict: {{ label: AUTHENTIC }} }}, found {}",
                kind_of(&other.value)
            ),
        )])),
    }
}

/// The YAML reader's limits: generous for any real policy, small enough that a hostile file
/// (an alias bomb, thousands of nested levels, millions of nodes) is refused in milliseconds.
fn yaml_options() -> serde_saphyr::Options {
    serde_saphyr::options! {
        strict_booleans: true,
        leading_zero_numbers_as_strings: true,
        budget: serde_saphyr::budget! {
            max_depth: MAX_DEPTH,
            max_nodes: 200_000,
            max_events: 500_000,
            max_aliases: 1_000,
            max_anchors: 1_000,
            max_documents: 1,
        },
        alias_limits: serde_saphyr::alias_limits! {
            max_total_replayed_events: 50_000,
            max_replay_stack_depth: 16,
        },
    }
}

/// How deeply YAML collections may nest in a policy file.
pub const MAX_DEPTH: usize = 48;

/// Parses YAML 1.2 style: only `true`/`false` are booleans (`no`, `on`, `y` stay strings), and
/// numbers with leading zeros (`007`) stay strings.
fn parse<T: DeserializeOwned>(source: &str, origin: &str) -> Result<T, PolicyError> {
    serde_saphyr::from_str_with_options(source, yaml_options()).map_err(|error| {
        let error = error.without_snippet();
        let message = serde_saphyr::DefaultMessageFormatter.format_message(error);
        // The parser's hint is meant for Rust developers, not policy authors.
        let message = message
            .trim_end_matches(", set DuplicateKeyPolicy in Options if acceptable")
            .replace('\n', " ");
        let message = if message.contains("recursion limit exceeded")
            || message.contains("budget breached: Depth")
        {
            format!("the YAML nests deeper than {MAX_DEPTH} levels, the limit for a policy")
        } else if message.contains("alias replay limit")
            || message.contains("budget breached: Alias")
        {
            format!("the YAML expands aliases too often for a policy (an alias bomb?): {message}")
        } else if message.contains("budget breached") {
            format!("the YAML is too large or complex for a policy: {message}")
        } else {
            message
        };
        let position = error.location().and_then(Position::from_location);
        PolicyError::invalid(vec![Diagnostic::new(
            origin,
            position,
            DiagnosticKind::Syntax,
            message,
        )])
    })
}

fn check_header(header: RawHeader, origin: &str) -> Result<(), PolicyError> {
    let mut diags = Diagnostics::new(origin);
    match header.api_version {
        None => diags.at_position(
            None,
            DiagnosticKind::Header,
            format!("missing `apiVersion: {API_VERSION}`"),
        ),
        Some(v) if v.value != API_VERSION => diags.at(
            v.referenced,
            DiagnosticKind::Header,
            format!(
                "apiVersion is `{}`; this version of Arbiter reads `{API_VERSION}`",
                v.value
            ),
        ),
        Some(_) => {}
    }
    match header.kind {
        None => diags.at_position(
            None,
            DiagnosticKind::Header,
            format!("missing `kind: {KIND}`"),
        ),
        Some(k) if k.value != KIND => diags.at(
            k.referenced,
            DiagnosticKind::Header,
            format!(
                "kind is `{}`, not `{KIND}`: this file is not a policy",
                k.value
            ),
        ),
        Some(_) => {}
    }
    if diags.is_empty() {
        Ok(())
    } else {
        Err(diags.into_error())
    }
}

/// Whether `id` is a usable identifier: non-empty, letters, digits and `_ . -` only.
fn is_identifier(id: &str) -> bool {
    !id.is_empty()
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Whether `name` is snake_case (`siu_escalation`).
fn is_snake_case(name: &str) -> bool {
    name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_')
}

struct Compiler<'a> {
    diags: Diagnostics<'a>,
    /// Declared actions: name and severity, in file order.
    actions: Vec<(String, u8)>,
}

impl Compiler<'_> {
    fn error(&mut self, location: Location, kind: DiagnosticKind, message: impl Into<String>) {
        self.diags.at(location, kind, message);
    }

    /// Compiles the whole policy; `None` when a part could not be compiled (diagnostics say why).
    /// Even then every part is checked, so all problems are reported at once.
    fn policy(&mut self, raw: RawPolicy, source: &str, origin: &str) -> Option<Policy> {
        let meta = raw.metadata;
        if !is_identifier(&meta.id.value) {
            self.error(
                meta.id.referenced,
                DiagnosticKind::Metadata,
                format!(
                    "policy id `{}` must be non-empty and use only letters, digits, `_`, `.` and `-`",
                    meta.id.value
                ),
            );
        }
        if !is_identifier(&meta.flow.value) {
            self.error(
                meta.flow.referenced,
                DiagnosticKind::Metadata,
                format!(
                    "flow `{}` is not a flow name like `insurance`",
                    meta.flow.value
                ),
            );
        }
        if meta.version.value == 0 {
            self.error(
                meta.version.referenced,
                DiagnosticKind::Metadata,
                "version must be 1 or more (bump it on every change)",
            );
        }

        let actions = self.actions(raw.actions);
        let on_error = raw
            .evaluation
            .on_error
            .as_ref()
            .and_then(|name| self.on_error(name));
        let default = self.outcome(&raw.default);
        let rules = self.rules(&raw.rules);
        let tests = self.tests(&raw.tests, &raw.rules);

        let policy_ref = PolicyRef {
            id: meta.id.value,
            version: meta.version.value,
            sha256: hex::encode(Sha256::digest(source.as_bytes())),
        };
        Some(Policy {
            origin: origin.to_owned(),
            source: source.into(),
            policy_ref,
            flow: meta.flow.value,
            title: meta.title,
            owner: meta.owner,
            description: meta.description,
            changelog: meta
                .changelog
                .into_iter()
                .map(|e| ChangelogEntry {
                    version: e.version,
                    date: e.date,
                    author: e.author,
                    summary: e.summary,
                })
                .collect(),
            strategy: raw.evaluation.strategy,
            on_missing_fact: raw.evaluation.on_missing_fact,
            on_error,
            actions,
            default: default?,
            rules: rules?,
            tests,
        })
    }

    fn actions(&mut self, raw: Spanned<RawActions>) -> Vec<PolicyAction> {
        if raw.value.0.is_empty() {
            self.error(
                raw.referenced,
                DiagnosticKind::Action,
                "declare at least one action, e.g. `proceed: { severity: 0 }`",
            );
        }
        let mut actions = Vec::with_capacity(raw.value.0.len());
        for (name, spec) in raw.value.0 {
            if !is_snake_case(&name.value) {
                self.error(
                    name.referenced,
                    DiagnosticKind::Action,
                    format!(
                        "action name `{}` must be snake_case, like `adjuster_review`",
                        name.value
                    ),
                );
            }
            let mut metadata = spec.value;
            let severity = match metadata.remove("severity") {
                Some(Value::Number(n)) => n.as_u64().and_then(|n| u8::try_from(n).ok()),
                _ => None,
            };
            let Some(severity) = severity else {
                self.error(
                    name.referenced,
                    DiagnosticKind::Action,
                    format!(
                        "action `{}` needs `severity:` as a whole number from 0 (most permissive) to 255",
                        name.value
                    ),
                );
                continue;
            };
            self.actions.push((name.value.clone(), severity));
            actions.push(PolicyAction {
                name: name.value,
                severity,
                metadata,
                position: Position::from_location(name.referenced),
            });
        }
        actions
    }

    /// Resolves an action name to its index, reporting unknown names.
    fn action(&mut self, name: &Spanned<String>) -> Option<usize> {
        let found = self.actions.iter().position(|(n, _)| *n == name.value);
        if found.is_none() {
            let declared: Vec<&str> = self.actions.iter().map(|(n, _)| n.as_str()).collect();
            let message = format!(
                "unknown action `{}`; the policy declares: {}",
                name.value,
                declared.join(", ")
            );
            self.error(name.referenced, DiagnosticKind::Action, message);
        }
        found
    }

    fn on_error(&mut self, name: &Spanned<String>) -> Option<usize> {
        let index = self.action(name)?;
        let severity = self.actions[index].1;
        let least = self.actions.iter().map(|(_, s)| *s).min().unwrap_or(0);
        if severity <= least {
            self.error(
                name.referenced,
                DiagnosticKind::Action,
                format!(
                    "on_error action `{}` is the most permissive action (severity {severity}); \
                     an evaluation error must not let an image through, choose a stricter action",
                    name.value
                ),
            );
        }
        Some(index)
    }

    fn outcome(&mut self, raw: &Spanned<RawOutcome>) -> Option<Outcome> {
        let action = self.action(&raw.value.action);
        let reason = &raw.value.reason;
        if reason.value.trim().is_empty() {
            self.error(
                reason.referenced,
                DiagnosticKind::Rule,
                "`reason` must not be empty",
            );
        }
        Some(Outcome {
            action: action?,
            reason: reason.value.clone(),
            tags: raw.value.tags.clone(),
        })
    }

    fn rules(&mut self, raw: &[Spanned<RawRule>]) -> Option<Vec<Rule>> {
        let mut rules = Vec::with_capacity(raw.len());
        let mut ok = true;
        for (i, rule) in raw.iter().enumerate() {
            let id = &rule.value.id;
            if !is_identifier(&id.value) {
                self.error(
                    id.referenced,
                    DiagnosticKind::Rule,
                    format!(
                        "rule id `{}` must be non-empty and use only letters, digits, `_`, `.` and `-`",
                        id.value
                    ),
                );
            }
            if let Some(first) = raw[..i].iter().find(|r| r.value.id.value == id.value) {
                let line = first.value.id.referenced.line();
                self.error(
                    id.referenced,
                    DiagnosticKind::Duplicate,
                    format!(
                        "duplicate rule id `{}` (first used on line {line})",
                        id.value
                    ),
                );
            }
            match self.rule(rule) {
                Some(rule) => rules.push(rule),
                None => ok = false,
            }
        }
        ok.then_some(rules)
    }

    fn rule(&mut self, raw: &Spanned<RawRule>) -> Option<Rule> {
        let rule = &raw.value;
        let description = rule
            .description
            .as_ref()
            .and_then(|d| match Template::parse(&d.value) {
                Ok(template) => Some((d.value.clone(), template)),
                Err(message) => {
                    self.error(d.referenced, DiagnosticKind::Template, message);
                    None
                }
            });
        let when = self.condition(&rule.when);
        let then = self.outcome(&rule.then);
        if rule.description.is_some() && description.is_none() {
            return None;
        }
        Some(Rule {
            id: rule.id.value.clone(),
            description,
            mode: rule.mode,
            when: when?,
            then: then?,
            position: Position::from_location(raw.referenced),
            description_at: Span(
                rule.description
                    .as_ref()
                    .and_then(|d| Position::from_location(d.referenced)),
            ),
        })
    }

    fn condition(&mut self, node: &Spanned<RawCondition>) -> Option<Condition> {
        let raw = &node.value;
        let at = node.referenced;
        let combinators: Vec<&str> = [
            ("all", raw.all.is_some()),
            ("any", raw.any.is_some()),
            ("not", raw.not.is_some()),
            ("models", raw.models.is_some()),
        ]
        .into_iter()
        .filter_map(|(name, present)| present.then_some(name))
        .collect();
        let ops = raw.operators();

        let condition_error = |this: &mut Self, message: String| {
            this.error(at, DiagnosticKind::Condition, message);
            None
        };
        match (combinators.as_slice(), &raw.fact) {
            ([], None) if ops.is_empty() => condition_error(
                self,
                "empty condition: use `all`, `any`, `not`, `models`, or `fact` with one operator"
                    .into(),
            ),
            ([], None) => condition_error(
                self,
                format!("operator `{}` needs a `fact` to compare", ops[0].0.name),
            ),
            ([], Some(fact)) => self.leaf(at, fact, &ops),
            ([combinator], fact) if fact.is_none() && ops.is_empty() => match *combinator {
                "not" => {
                    let inner = raw.not.as_deref()?;
                    Some(Condition::Not(Box::new(self.condition(inner)?)))
                }
                "models" => self.models(raw.models.as_ref()?),
                name => {
                    let list = if name == "all" {
                        raw.all.as_ref()
                    } else {
                        raw.any.as_ref()
                    }?;
                    if list.value.is_empty() {
                        self.error(
                            list.referenced,
                            DiagnosticKind::Condition,
                            format!("`{name}` needs at least one condition"),
                        );
                        return None;
                    }
                    let mut nodes = Vec::with_capacity(list.value.len());
                    let mut ok = true;
                    for item in &list.value {
                        match self.condition(item) {
                            Some(node) => nodes.push(node),
                            None => ok = false,
                        }
                    }
                    let nodes = nodes.into_boxed_slice();
                    ok.then(|| {
                        if name == "all" {
                            Condition::All(nodes)
                        } else {
                            Condition::Any(nodes)
                        }
                    })
                }
            },
            ([combinator], _) => condition_error(
                self,
                format!(
                    "`{combinator}` cannot share a node with `fact` or an operator; \
                     put the comparison in its own list item"
                ),
            ),
            (several, _) => condition_error(
                self,
                format!(
                    "a condition node holds one of `all`, `any`, `not` or `models`, found {}; nest them instead",
                    several
                        .iter()
                        .map(|c| format!("`{c}`"))
                        .collect::<Vec<_>>()
                        .join(" and ")
                ),
            ),
        }
    }

    fn leaf(
        &mut self,
        at: Location,
        fact: &Spanned<String>,
        ops: &[(&'static OperatorSpec, &Spanned<Value>)],
    ) -> Option<Condition> {
        let path = FactPath::parse(&fact.value);
        if path.is_none() {
            self.error(
                fact.referenced,
                DiagnosticKind::Condition,
                format!("`{}` is not a fact path like `claim.amount`", fact.value),
            );
        }
        let (spec, value) = match ops {
            [] => {
                self.error(
                    at,
                    DiagnosticKind::Condition,
                    format!(
                        "condition on `{}` has no operator; add one of {}",
                        fact.value,
                        operator_names()
                    ),
                );
                return None;
            }
            [op] => *op,
            several => {
                let names: Vec<&str> = several.iter().map(|(spec, _)| spec.name).collect();
                self.error(
                    at,
                    DiagnosticKind::Condition,
                    format!(
                        "condition on `{}` has several operators ({}); use one per condition \
                         and combine conditions with `all`",
                        fact.value,
                        names.join(", ")
                    ),
                );
                return None;
            }
        };
        let op = self.operator(spec, value);
        Some(Condition::Leaf(Leaf {
            fact: path?,
            op: op?,
            fact_at: Span(Position::from_location(fact.referenced)),
            value_at: Span(Position::from_location(value.referenced)),
        }))
    }

    /// `models: { where: ..., among: ..., at_least: N, at_most: N }`.
    fn models(&mut self, raw: &Spanned<RawModels>) -> Option<Condition> {
        let q = &raw.value;
        let mut ok = true;
        let mut tests = Vec::new();
        let fields = [
            (ModelField::Score, q.where_.value.score.as_ref()),
            (ModelField::Label, q.where_.value.label.as_ref()),
        ];
        for (field, ops) in fields {
            let Some(ops) = ops else { continue };
            let op = match ops.value.operators().as_slice() {
                [] => {
                    self.error(
                        ops.referenced,
                        DiagnosticKind::Condition,
                        format!(
                            "`{}` needs one operator: {}",
                            field.name(),
                            operator_names()
                        ),
                    );
                    None
                }
                [(spec, value)] => self.operator(spec, value),
                several => {
                    let names: Vec<&str> = several.iter().map(|(spec, _)| spec.name).collect();
                    self.error(
                        ops.referenced,
                        DiagnosticKind::Condition,
                        format!(
                            "`{}` has several operators ({}); a model field takes one",
                            field.name(),
                            names.join(", ")
                        ),
                    );
                    None
                }
            };
            match op {
                Some(op) => tests.push((field, op)),
                None => ok = false,
            }
        }
        if q.where_.value.score.is_none() && q.where_.value.label.is_none() {
            self.error(
                q.where_.referenced,
                DiagnosticKind::Condition,
                "`where` needs `score`, `label` or both, like { score: { gte: 0.9 } }",
            );
            ok = false;
        }
        let among = q.among.as_ref().map(|names| {
            for name in names {
                if ModelKind::from_short_name(&name.value).is_none() {
                    let known: Vec<&str> = ModelKind::ALL.iter().map(|m| m.short_name()).collect();
                    self.error(
                        name.referenced,
                        DiagnosticKind::Condition,
                        format!(
                            "unknown model `{}`{}; the models are {}",
                            name.value,
                            did_you_mean(&name.value, known.iter().copied()),
                            known.join(", ")
                        ),
                    );
                    ok = false;
                }
            }
            names
                .iter()
                .map(|n| Box::from(n.value.as_str()))
                .collect::<Box<[Box<str>]>>()
        });
        let at_most = q.at_most.as_ref().map(|n| n.value);
        // `at_least` defaults to 1, or to 0 when only `at_most` is given.
        let at_least = q
            .at_least
            .as_ref()
            .map_or(u32::from(at_most.is_none()), |n| n.value);
        if let (Some(most), Some(least)) = (&q.at_most, &q.at_least)
            && most.value < least.value
        {
            self.error(
                most.referenced,
                DiagnosticKind::Condition,
                format!(
                    "`at_most: {}` is below `at_least: {}`: no count satisfies both",
                    most.value, least.value
                ),
            );
            ok = false;
        }
        let available = among
            .as_ref()
            .map_or(ModelKind::ALL.len(), |names| names.len());
        if let Some(least) = &q.at_least
            && usize::try_from(least.value).unwrap_or(usize::MAX) > available
        {
            self.error(
                least.referenced,
                DiagnosticKind::Condition,
                format!(
                    "`at_least: {}` can never hold: only {available} models are counted",
                    least.value
                ),
            );
            ok = false;
        }
        ok.then(|| {
            Condition::Models(Box::new(Quantifier {
                among,
                tests: tests.into_boxed_slice(),
                at_least,
                at_most,
                at: Span(Position::from_location(raw.referenced)),
            }))
        })
    }

    /// Compiles one operator's value, reporting a value that does not fit it.
    fn operator(&mut self, spec: &OperatorSpec, value: &Spanned<Value>) -> Option<Op> {
        spec.compile(&value.value)
            .map_err(|message| self.error(value.referenced, DiagnosticKind::Condition, message))
            .ok()
    }

    fn tests(&mut self, raw: &[Spanned<RawTest>], rules: &[Spanned<RawRule>]) -> Vec<PolicyTest> {
        let mut tests = Vec::with_capacity(raw.len());
        for (i, test) in raw.iter().enumerate() {
            let name = &test.value.name;
            if name.value.trim().is_empty() {
                self.error(
                    name.referenced,
                    DiagnosticKind::Test,
                    "a test needs a `name`",
                );
            }
            if let Some(first) = raw[..i].iter().find(|t| t.value.name.value == name.value) {
                let line = first.value.name.referenced.line();
                self.error(
                    name.referenced,
                    DiagnosticKind::Duplicate,
                    format!(
                        "duplicate test name `{}` (first used on line {line})",
                        name.value
                    ),
                );
            }
            let input = match &test.value.input.value {
                Value::Object(map) => Some(Facts::from_map(map.clone())),
                other => {
                    self.error(
                        test.value.input.referenced,
                        DiagnosticKind::Test,
                        format!(
                            "`input` must be a mapping of facts like {{ verdict: {{ label: AUTHENTIC }} }}, found {}",
                            kind_of(other)
                        ),
                    );
                    None
                }
            };
            let expect = self.expect(&test.value.expect, rules);
            if let Some(input) = input {
                tests.push(PolicyTest {
                    name: name.value.clone(),
                    position: Position::from_location(test.referenced),
                    input,
                    expect,
                });
            }
        }
        tests
    }

    fn expect(&mut self, raw: &Spanned<RawExpect>, rules: &[Spanned<RawRule>]) -> Expect {
        let e = &raw.value;
        if e.action.is_none()
            && e.reason.is_none()
            && e.fired.is_none()
            && e.not_fired.is_none()
            && e.shadow.is_none()
            && e.description.is_none()
        {
            self.error(
                raw.referenced,
                DiagnosticKind::Test,
                "`expect` checks nothing; set at least one of action, reason, fired, not_fired, \
                 shadow, description",
            );
        }
        if let Some(action) = &e.action
            && !self.actions.iter().any(|(n, _)| *n == action.value)
        {
            let declared: Vec<&str> = self.actions.iter().map(|(n, _)| n.as_str()).collect();
            let message = format!(
                "test expects unknown action `{}`; the policy declares: {}",
                action.value,
                declared.join(", ")
            );
            self.error(action.referenced, DiagnosticKind::Test, message);
        }
        // Which rule ids each list may name: `fired` only enforced rules, `shadow` only shadow
        // rules, `not_fired` any.
        let mut ids = |list: &Option<Vec<Spanned<String>>>, field: &str, mode: Option<RuleMode>| {
            let Some(list) = list else { return None };
            for id in list {
                let rule = rules.iter().find(|r| r.value.id.value == id.value);
                let message = match (rule, mode) {
                    (None, _) => format!("test names unknown rule `{}` in `{field}`", id.value),
                    (Some(r), Some(mode)) if r.value.mode != mode => match mode {
                        RuleMode::Enforce => format!(
                            "rule `{}` is a shadow rule and never fires; list it under `shadow`",
                            id.value
                        ),
                        RuleMode::Shadow => format!(
                            "rule `{}` is not a shadow rule; list it under `fired`",
                            id.value
                        ),
                    },
                    (Some(_), _) => continue,
                };
                self.error(id.referenced, DiagnosticKind::Test, message);
            }
            Some(list.iter().map(|id| id.value.clone()).collect::<Vec<_>>())
        };
        Expect {
            fired: ids(&e.fired, "fired", Some(RuleMode::Enforce)),
            not_fired: ids(&e.not_fired, "not_fired", None).unwrap_or_default(),
            shadow: ids(&e.shadow, "shadow", Some(RuleMode::Shadow)),
            action: e.action.as_ref().map(|a| a.value.clone()),
            reason: e.reason.as_ref().map(|r| r.value.clone()),
            description: e.description.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The header and vocabulary every example below starts with (lines 1-8).
    const HEAD: &str = "apiVersion: arbiter/v1
kind: Policy
metadata: { id: t, flow: insurance, version: 1 }
actions:
  siu_escalation: { severity: 3 }
  adjuster_review: { severity: 2 }
  proceed: { severity: 0 }
default: { action: proceed, reason: NO_RULE_MATCHED }
";

    fn error(source: &str) -> PolicyError {
        match Policy::from_yaml(source, "p.yaml") {
            Ok(_) => panic!("expected an error for:\n{source}"),
            Err(error) => error,
        }
    }

    /// The single diagnostic of a policy that has exactly one problem.
    fn only(source: &str) -> Diagnostic {
        let error = error(source);
        match error.diagnostics() {
            [one] => one.clone(),
            many => panic!("expected one diagnostic, got:\n{error}\n{many:?}"),
        }
    }

    /// `line:column: message` of the single diagnostic, and its kind.
    fn at(source: &str) -> (String, DiagnosticKind) {
        let d = only(source);
        let position = d.position.expect("a position");
        (format!("{position}: {}", d.message), d.kind)
    }

    fn with_rules(rules: &str) -> String {
        format!("{HEAD}rules:\n{rules}")
    }

    /// A rule (lines 10-12) whose `when` is `condition`.
    fn with_condition(condition: &str) -> String {
        with_rules(&format!(
            "  - id: r\n    when: {condition}\n    then: {{ action: proceed, reason: X }}\n"
        ))
    }

    #[test]
    fn a_minimal_policy_compiles() {
        let policy = Policy::from_yaml(HEAD, "p.yaml").unwrap();
        assert_eq!(policy.rules().count(), 0);
        assert_eq!(policy.strategy(), crate::settings::Strategy::FirstMatch);
        assert_eq!(
            policy.on_missing_fact(),
            crate::settings::MissingFact::NoMatch
        );
    }

    #[test]
    fn unknown_keys_are_syntax_errors_at_their_position() {
        let source = HEAD.replace(
            "default:",
            "evaluation: { strategy: first_match, on_mising_fact: error }\ndefault:",
        );
        let d = only(&source);
        assert_eq!(d.kind, DiagnosticKind::Syntax);
        insta::assert_snapshot!(d.to_string(), @"p.yaml:8:38: unknown key `on_mising_fact` (did you mean `on_missing_fact`?); expected one of strategy, on_missing_fact, on_error");
    }

    #[test]
    fn yaml_errors_and_wrong_types_carry_line_and_column() {
        let (message, kind) = at(&format!("{HEAD}rules: [\n"));
        assert_eq!(kind, DiagnosticKind::Syntax);
        assert!(message.starts_with("9:8: "), "{message}");
        let (message, _) = at(&HEAD.replace("version: 1", "version: -1"));
        assert_eq!(message, "3:46: `-1` is less than the minimum of 1");
        let (message, _) = at(&HEAD.replace(
            "proceed: { severity: 0 }",
            "proceed: { severity: 0 }\n  proceed: { severity: 1 }",
        ));
        assert_eq!(message, "8:3: duplicate mapping key: proceed");
        let (message, _) = at(&format!("{HEAD}evaluation: {{ strategy: best_match }}\n"));
        assert!(
            message
                == "9:25: `best_match` is not one of first_match, collect_all (did you mean `first_match`?)",
            "{message}"
        );
    }

    #[test]
    fn yes_and_no_are_strings_not_booleans() {
        let policy =
            Policy::from_yaml(&with_condition("{ fact: answer, eq: no }"), "p.yaml").unwrap();
        let mut facts = Facts::new();
        facts.set_path("answer", Value::String("no".into()));
        assert_eq!(policy.decide(&facts).fired, ["r"]);
    }

    #[test]
    fn hostile_input_gets_a_clear_error_quickly() {
        // An alias bomb: each level references the previous one ten times.
        let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
        for i in 1..10 {
            let refs = vec![format!("*a{}", i - 1); 10].join(", ");
            bomb.push_str(&format!("a{i}: &a{i} [{refs}]\n"));
        }
        let started = std::time::Instant::now();
        let d = only(&format!("{HEAD}{bomb}"));
        assert_eq!(d.kind, DiagnosticKind::Syntax);
        assert!(d.message.contains("alias"), "{d}");
        // Deep nesting, block and flow style.
        let deep = format!("{HEAD}rules: {}{}\n", "[".repeat(5000), "]".repeat(5000));
        let d = only(&deep);
        assert_eq!(d.kind, DiagnosticKind::Syntax);
        assert_eq!(
            d.message,
            format!("the YAML nests deeper than {MAX_DEPTH} levels, the limit for a policy")
        );
        let mut nested = String::from("x:\n");
        for level in 1..200 {
            nested.push_str(&format!("{}- \n", "  ".repeat(level)));
        }
        assert_eq!(
            only(&format!("{HEAD}{nested}")).kind,
            DiagnosticKind::Syntax
        );
        // A huge file.
        let huge = format!("{HEAD}# {}\n", "x".repeat(crate::MAX_POLICY_BYTES));
        let d = only(&huge);
        assert_eq!(d.kind, DiagnosticKind::File);
        assert!(d.message.contains("larger than"), "{d}");
        // Fast, with a wide margin for slow machines: this is not a benchmark.
        assert!(started.elapsed() < std::time::Duration::from_secs(5));
    }

    #[test]
    fn files_that_are_not_utf8_are_named_at_the_first_bad_byte() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("latin1.yaml");
        let mut bytes = HEAD.as_bytes().to_vec();
        bytes.extend_from_slice(b"# caf\xe9\n");
        std::fs::write(&path, bytes).unwrap();
        let error = Policy::load(&path).unwrap_err();
        let d = &error.diagnostics()[0];
        assert_eq!(d.kind, DiagnosticKind::File);
        assert_eq!(d.position, Some(Position { line: 9, column: 6 }));
        assert!(d.message.contains("not UTF-8"), "{d}");
    }

    #[test]
    fn empty_files_are_rejected() {
        let d = only(" \n\n");
        assert_eq!(d.kind, DiagnosticKind::File);
        let d = only("  \n# only a comment\n");
        assert_eq!(d.kind, DiagnosticKind::File);
        assert_eq!(
            d.to_string(),
            "p.yaml: the file is empty; a policy starts with `apiVersion: arbiter/v1`"
        );
    }

    #[test]
    fn a_document_that_is_not_a_mapping_is_a_syntax_error() {
        for source in ["- apiVersion: arbiter/v1\n", "just text\n"] {
            let d = only(source);
            assert_eq!(d.kind, DiagnosticKind::Syntax, "{d}");
            assert_eq!(d.position, Some(Position { line: 1, column: 1 }), "{d}");
        }
    }

    #[test]
    fn wrong_api_version_and_kind_are_both_reported() {
        let source = HEAD
            .replace("arbiter/v1", "arbiter/v2")
            .replace("kind: Policy", "kind: Flow");
        let error = error(&source);
        assert!(
            error
                .diagnostics()
                .iter()
                .all(|d| d.kind == DiagnosticKind::Header)
        );
        insta::assert_snapshot!(error.to_string(), @r"
        p.yaml:1:13: apiVersion is `arbiter/v2`; this version of Arbiter reads `arbiter/v1`
        p.yaml:2:7: kind is `Flow`, not `Policy`: this file is not a policy
        ");
        let d = only(&HEAD.replace("apiVersion: arbiter/v1\n", ""));
        assert_eq!(d.to_string(), "p.yaml: missing `apiVersion: arbiter/v1`");
    }

    #[test]
    fn version_zero_and_malformed_ids_are_rejected() {
        let (message, kind) = at(&HEAD.replace("version: 1", "version: 0"));
        assert_eq!(kind, DiagnosticKind::Metadata);
        assert_eq!(
            message,
            "3:46: version must be 1 or more (bump it on every change)"
        );
        let (message, kind) = at(&HEAD.replace("id: t,", "id: 'my policy',"));
        assert_eq!(kind, DiagnosticKind::Metadata);
        assert_eq!(
            message,
            "3:17: policy id `my policy` must be non-empty and use only letters, digits, `_`, `.` and `-`"
        );
        let rule =
            "  - id: ''\n    when: { fact: a, eq: 1 }\n    then: { action: proceed, reason: X }\n";
        let (message, kind) = at(&with_rules(rule));
        assert_eq!(kind, DiagnosticKind::Rule);
        assert!(
            message.starts_with("10:9: rule id `` must be non-empty"),
            "{message}"
        );
    }

    #[test]
    fn unknown_actions_are_rejected_wherever_they_are_named() {
        let (message, kind) = at(&with_rules(
            "  - id: r\n    when: { fact: a, eq: 1 }\n    then: { action: escalate, reason: X }\n",
        ));
        assert_eq!(kind, DiagnosticKind::Action);
        assert_eq!(
            message,
            "12:21: unknown action `escalate`; the policy declares: siu_escalation, adjuster_review, proceed"
        );
        let (message, _) = at(&HEAD.replace("action: proceed", "action: procede"));
        assert!(
            message.starts_with("8:20: unknown action `procede`"),
            "{message}"
        );
        let (message, _) = at(&format!("{HEAD}evaluation: {{ on_error: review }}\n"));
        assert!(
            message.starts_with("9:25: unknown action `review`"),
            "{message}"
        );
    }

    #[test]
    fn on_error_must_not_be_the_most_permissive_action() {
        let (message, kind) = at(&format!("{HEAD}evaluation: {{ on_error: proceed }}\n"));
        assert_eq!(kind, DiagnosticKind::Action);
        assert_eq!(
            message,
            "9:25: on_error action `proceed` is the most permissive action (severity 0); an \
             evaluation error must not let an image through, choose a stricter action"
        );
        assert!(
            Policy::from_yaml(
                &format!("{HEAD}evaluation: {{ on_error: adjuster_review }}\n"),
                "p"
            )
            .is_ok()
        );
    }

    #[test]
    fn actions_need_a_severity_and_a_snake_case_name() {
        let (message, kind) = at(&HEAD.replace("{ severity: 2 }", "{ queue: adjusters }"));
        assert_eq!(kind, DiagnosticKind::Action);
        assert_eq!(
            message,
            "6:3: action `adjuster_review` needs `severity:` as a whole number from 0 (most permissive) to 255"
        );
        let (message, _) = at(&HEAD.replace("{ severity: 2 }", "{ severity: 300 }"));
        assert!(
            message.starts_with("6:3: action `adjuster_review` needs `severity:`"),
            "{message}"
        );
        let source = HEAD.replace("adjuster_review", "Adjuster-Review");
        let (message, _) = at(&source);
        assert_eq!(
            message,
            "6:3: action name `Adjuster-Review` must be snake_case, like `adjuster_review`"
        );
    }

    #[test]
    fn duplicate_rule_ids_are_rejected() {
        let rule = "  - id: same\n    when: { fact: a, eq: 1 }\n    then: { action: proceed, reason: X }\n";
        let (message, kind) = at(&with_rules(&format!("{rule}{rule}")));
        assert_eq!(kind, DiagnosticKind::Duplicate);
        assert_eq!(
            message,
            "13:9: duplicate rule id `same` (first used on line 10)"
        );
    }

    #[test]
    fn a_leaf_needs_exactly_one_operator() {
        let (message, kind) = at(&with_condition("{ fact: verdict.label }"));
        assert_eq!(kind, DiagnosticKind::Condition);
        assert_eq!(
            message,
            "11:11: condition on `verdict.label` has no operator; add one of eq, ne, in, not_in, \
             gt, gte, lt, lte, between, exists"
        );
        let d = only(&with_condition("{ fact: claim.amount, gt: 1, lt: 5 }"));
        insta::assert_snapshot!(d.to_string(), @"p.yaml:11:11: condition on `claim.amount` has several operators (gt, lt); use one per condition and combine conditions with `all`");
    }

    #[test]
    fn between_needs_two_numbers_in_order() {
        for bad in [
            "[1]",
            "[1, 2, 3]",
            "[a, 2]",
            "5",
            "[2024-01-01, 2024-02-01]",
        ] {
            let (message, kind) = at(&with_condition(&format!(
                "{{ fact: claim.amount, between: {bad} }}"
            )));
            assert_eq!(kind, DiagnosticKind::Condition);
            assert!(
                message.starts_with("11:42: `between` needs a list of two numbers [low, high]"),
                "{bad}: {message}"
            );
        }
        let (message, _) = at(&with_condition(
            "{ fact: claim.amount, between: [10, 1.5] }",
        ));
        assert_eq!(
            message,
            "11:42: `between` range [10, 1.5] is empty: the low bound is above the high one"
        );
        assert!(Policy::from_yaml(&with_condition("{ fact: a, between: [0, 0.5] }"), "p").is_ok());
    }

    #[test]
    fn operator_values_must_fit_their_operator() {
        let cases = [
            (
                "{ fact: a, eq: [X, Y] }",
                "11:26: `eq` compares with one value; use `in` for a list",
            ),
            (
                "{ fact: a, ne: [X] }",
                "11:26: `ne` compares with one value; use `not_in` for a list",
            ),
            (
                "{ fact: a, eq: null }",
                "11:26: `eq: null` never matches (a null fact counts as missing); use `exists: false`",
            ),
            (
                "{ fact: a, eq: { x: 1 } }",
                "11:26: `eq` compares with strings, numbers or booleans, found a mapping",
            ),
            (
                "{ fact: a, in: X }",
                "11:26: `in` needs a list like [A, B], found a string",
            ),
            (
                "{ fact: a, not_in: [] }",
                "11:30: `not_in` needs at least one value",
            ),
            (
                "{ fact: a, in: [X, [Y]] }",
                "11:26: `in` compares with strings, numbers or booleans, found a list",
            ),
            (
                "{ fact: a, gt: HIGH }",
                "11:26: `gt` needs a number or an RFC 3339 date (2024-05-01, 2024-05-01T10:00:00Z), found `HIGH`",
            ),
            (
                "{ fact: a, lte: true }",
                "11:27: `lte` needs a number or an RFC 3339 date (2024-05-01, 2024-05-01T10:00:00Z), found a boolean",
            ),
            (
                "{ fact: a, exists: yes }",
                "11:30: `exists` needs true or false, found `yes`",
            ),
        ];
        for (condition, expected) in cases {
            let (message, kind) = at(&with_condition(condition));
            assert_eq!(kind, DiagnosticKind::Condition);
            assert_eq!(message, expected, "{condition}");
        }
        // Dates are fine bounds for ordering operators.
        assert!(
            Policy::from_yaml(
                &with_condition("{ fact: claim.incident_date, gte: 2024-05-01 }"),
                "p"
            )
            .is_ok()
        );
    }

    #[test]
    fn condition_nodes_have_one_shape() {
        let cases = [
            (
                "{}",
                "11:11: empty condition: use `all`, `any`, `not`, `models`, or `fact` with one operator",
            ),
            (
                "{ eq: 1 }",
                "11:11: operator `eq` needs a `fact` to compare",
            ),
            (
                "{ fact: a.b, eq: 1, all: [ { fact: c, eq: 2 } ] }",
                "11:11: `all` cannot share a node with `fact` or an operator; put the comparison in its own list item",
            ),
            (
                "{ all: [ { fact: c, eq: 2 } ], any: [ { fact: c, eq: 2 } ] }",
                "11:11: a condition node holds one of `all`, `any`, `not` or `models`, found `all` and `any`; nest them instead",
            ),
            ("{ any: [] }", "11:18: `any` needs at least one condition"),
            (
                "{ fact: a..b, eq: 1 }",
                "11:19: `a..b` is not a fact path like `claim.amount`",
            ),
            (
                "{ not: { all: [ { fact: x } ] } }",
                "11:27: condition on `x` has no operator; add one of eq, ne, in, not_in, gt, gte, lt, lte, between, exists",
            ),
        ];
        for (condition, expected) in cases {
            let (message, kind) = at(&with_condition(condition));
            assert_eq!(kind, DiagnosticKind::Condition);
            assert_eq!(message, expected, "{condition}");
        }
    }

    #[test]
    fn description_templates_are_checked() {
        let (message, kind) = at(&with_rules(
            "  - id: r\n    description: \"{verdict.label at {verdict.confidence}\"\n    when: { fact: a, eq: 1 }\n    then: { action: proceed, reason: X }\n",
        ));
        assert_eq!(kind, DiagnosticKind::Template);
        assert_eq!(
            message,
            "11:18: `{verdict.label at {verdict.confidence}` is not a fact path like `{verdict.label}`"
        );
    }

    const TWO_RULES: &str = "  - id: high
    when: { fact: verdict.risk_level, eq: HIGH }
    then: { action: siu_escalation, reason: HIGH }
  - id: trial
    mode: shadow
    when: { fact: verdict.risk_level, eq: MEDIUM }
    then: { action: adjuster_review, reason: TRIAL }
";

    /// A test (starting at line 18) with the given expectation.
    fn with_test(expect: &str) -> String {
        format!(
            "{}tests:\n  - name: t\n    input: {{ verdict: {{ risk_level: HIGH }} }}\n    expect: {expect}\n",
            with_rules(TWO_RULES)
        )
    }

    #[test]
    fn tests_must_name_known_actions_and_rules() {
        assert!(
            Policy::from_yaml(
                &with_test(
                    "{ action: siu_escalation, fired: [high], not_fired: [trial], shadow: [] }"
                ),
                "p"
            )
            .is_ok()
        );
        let cases = [
            (
                "{ action: escalate }",
                "20:23: test expects unknown action `escalate`; the policy declares: siu_escalation, adjuster_review, proceed",
            ),
            (
                "{ fired: [hihg] }",
                "20:23: test names unknown rule `hihg` in `fired`",
            ),
            (
                "{ not_fired: [nope] }",
                "20:27: test names unknown rule `nope` in `not_fired`",
            ),
            (
                "{ fired: [trial] }",
                "20:23: rule `trial` is a shadow rule and never fires; list it under `shadow`",
            ),
            (
                "{ shadow: [high] }",
                "20:24: rule `high` is not a shadow rule; list it under `fired`",
            ),
            (
                "{}",
                "20:13: `expect` checks nothing; set at least one of action, reason, fired, not_fired, shadow, description",
            ),
        ];
        for (expect, expected) in cases {
            let (message, kind) = at(&with_test(expect));
            assert_eq!(kind, DiagnosticKind::Test);
            assert_eq!(message, expected, "{expect}");
        }
    }

    #[test]
    fn test_inputs_are_mappings_and_names_unique() {
        let source = with_test("{ action: proceed }")
            .replace("input: { verdict: { risk_level: HIGH } }", "input: [1]");
        let (message, kind) = at(&source);
        assert_eq!(kind, DiagnosticKind::Test);
        assert_eq!(
            message,
            "19:12: `input` must be a mapping of facts like { verdict: { label: AUTHENTIC } }, found a list"
        );
        let one = "  - name: same\n    input: {}\n    expect: { action: proceed }\n";
        let source = format!("{}tests:\n{one}{one}", with_rules(TWO_RULES));
        let (message, kind) = at(&source);
        assert_eq!(kind, DiagnosticKind::Duplicate);
        assert_eq!(
            message,
            "21:11: duplicate test name `same` (first used on line 18)"
        );
    }

    #[test]
    fn every_problem_is_reported_at_once_in_file_order() {
        let source = format!(
            "{}tests:\n  - name: t\n    input: {{}}\n    expect: {{ action: nope }}\n",
            with_rules(
                "  - id: a
    description: 'open {brace'
    when: { fact: x, gt: 1, lt: 2 }
    then: { action: escalate, reason: X }
  - id: a
    when: { fact: x, between: [3] }
    then: { action: proceed, reason: '' }
"
            )
            .replace("version: 1", "version: 0")
        );
        insta::assert_snapshot!(error(&source).to_string());
    }
}
