//! Diagnostics: what is wrong with a policy file, and where.

use std::fmt;
use std::path::PathBuf;

/// A 1-based line and column in a policy file (columns count characters).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Position {
    /// The line, from 1.
    pub line: u32,
    /// The column, from 1, in characters.
    pub column: u32,
}

impl Position {
    /// The position of a YAML node as serde-saphyr reports it; `None` when it is unknown.
    pub(crate) fn from_location(location: serde_saphyr::Location) -> Option<Self> {
        let line = u32::try_from(location.line()).unwrap_or(u32::MAX);
        let column = u32::try_from(location.column()).unwrap_or(u32::MAX);
        (line > 0).then_some(Self {
            line,
            column: column.max(1),
        })
    }

    /// The position of the byte at `offset` in `text`.
    pub(crate) fn of_byte_offset(text: &[u8], offset: usize) -> Self {
        let before = &text[..offset.min(text.len())];
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |i| i + 1);
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        // Count characters, not bytes: continuation bytes do not start a character.
        let column = before[line_start..]
            .iter()
            .filter(|&&b| (b & 0xC0) != 0x80)
            .count()
            + 1;
        Self {
            line: u32::try_from(line).unwrap_or(u32::MAX),
            column: u32::try_from(column).unwrap_or(u32::MAX),
        }
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// What kind of problem a [`Diagnostic`] reports. Stable names (see [`DiagnosticKind::as_str`])
/// are meant for tools and the API.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum DiagnosticKind {
    /// The file cannot be a policy at all: too large, not UTF-8, empty.
    File,
    /// Not YAML, or YAML of the wrong shape: an unknown or missing key, a value of the wrong type.
    Syntax,
    /// `apiVersion` is not `arbiter/v1` or `kind` is not `Policy`.
    Header,
    /// A bad `metadata` value: version 0, an empty or malformed id.
    Metadata,
    /// An action that is not declared in `actions:`, a bad action declaration, or an
    /// `on_error` action that is the most permissive one.
    Action,
    /// A malformed rule or outcome: an empty or badly formed rule id, an empty reason.
    Rule,
    /// Two rules with the same id, or two tests with the same name.
    Duplicate,
    /// A malformed condition: no operator or several, a value that does not fit its operator.
    Condition,
    /// A malformed description template.
    Template,
    /// An embedded test that expects an unknown action or names an unknown rule.
    Test,
    /// The policy declares an action the flow does not know.
    Vocabulary,
    /// A fact the flow does not have, a value it can never hold, or an operator that does not
    /// fit its type.
    Fact,
    /// (warning) A rule that can never fire: after a catch-all, or shadowed by an earlier rule.
    Unreachable,
    /// (warning) A condition that can never be true.
    Impossible,
    /// (warning) A rule no embedded test makes fire.
    Untested,
    /// (warning) An action nothing produces.
    UnusedAction,
}

impl DiagnosticKind {
    /// A stable, lowercase, one-word name for the kind (`condition`, `test`).
    pub fn as_str(self) -> &'static str {
        match self {
            DiagnosticKind::File => "file",
            DiagnosticKind::Syntax => "syntax",
            DiagnosticKind::Header => "header",
            DiagnosticKind::Metadata => "metadata",
            DiagnosticKind::Action => "action",
            DiagnosticKind::Rule => "rule",
            DiagnosticKind::Duplicate => "duplicate",
            DiagnosticKind::Condition => "condition",
            DiagnosticKind::Template => "template",
            DiagnosticKind::Test => "test",
            DiagnosticKind::Vocabulary => "vocabulary",
            DiagnosticKind::Fact => "fact",
            DiagnosticKind::Unreachable => "unreachable",
            DiagnosticKind::Impossible => "impossible",
            DiagnosticKind::Untested => "untested",
            DiagnosticKind::UnusedAction => "unused_action",
        }
    }
}

impl fmt::Display for DiagnosticKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Whether a diagnostic stops the policy from loading.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// The policy cannot be used.
    #[default]
    Error,
    /// Legal, but probably a mistake (a lint).
    Warning,
}

/// One problem in a policy file. Displays as `file:line:column: message`, or `file: message`
/// when no position is known; a warning says `warning:` before its message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The file the problem is in, as given to [`Policy::from_yaml`](crate::Policy::from_yaml)
    /// or [`Policy::load`](crate::Policy::load).
    pub file: String,
    /// Where in the file, when known.
    pub position: Option<Position>,
    /// What kind of problem it is.
    pub kind: DiagnosticKind,
    /// What is wrong, for a human.
    pub message: String,
    /// Error or warning.
    pub severity: Severity,
}

impl Diagnostic {
    /// A diagnostic at an optional position.
    pub fn new(
        file: impl Into<String>,
        position: Option<Position>,
        kind: DiagnosticKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            file: file.into(),
            position,
            kind,
            message: message.into(),
            severity: Severity::Error,
        }
    }

    /// A warning (a lint) at an optional position.
    pub fn warning(
        file: impl Into<String>,
        position: Option<Position>,
        kind: DiagnosticKind,
        message: impl Into<String>,
    ) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::new(file, position, kind, message)
        }
    }

    /// Whether this is a warning rather than an error.
    pub fn is_warning(&self) -> bool {
        self.severity == Severity::Warning
    }
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.position {
            Some(position) => write!(f, "{}:{position}: ", self.file)?,
            None => write!(f, "{}: ", self.file)?,
        }
        if self.is_warning() {
            f.write_str("warning: ")?;
        }
        f.write_str(&self.message)
    }
}

/// Why a policy could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PolicyError {
    /// The file could not be read from disk.
    #[error("{}: cannot read the policy file: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file was read but is not a valid policy (or does not fit its flow). Displays one
    /// diagnostic per line.
    #[error("{}", DiagnosticLines(.diagnostics))]
    Invalid {
        /// Every problem found, in file order.
        diagnostics: Vec<Diagnostic>,
    },
}

impl PolicyError {
    /// The diagnostics of an invalid policy; empty for a read error.
    pub fn diagnostics(&self) -> &[Diagnostic] {
        match self {
            PolicyError::Read { .. } => &[],
            PolicyError::Invalid { diagnostics } => diagnostics,
        }
    }

    /// An invalid-policy error, its diagnostics sorted by position (stable, so diagnostics at
    /// the same place keep the order they were found in).
    pub(crate) fn invalid(mut diagnostics: Vec<Diagnostic>) -> Self {
        diagnostics.sort_by_key(|d| d.position);
        PolicyError::Invalid { diagnostics }
    }
}

/// Displays diagnostics one per line.
struct DiagnosticLines<'a>(&'a [Diagnostic]);

impl fmt::Display for DiagnosticLines<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, diagnostic) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{diagnostic}")?;
        }
        Ok(())
    }
}

/// Collects the diagnostics of one file.
pub(crate) struct Diagnostics<'a> {
    file: &'a str,
    list: Vec<Diagnostic>,
}

impl<'a> Diagnostics<'a> {
    pub(crate) fn new(file: &'a str) -> Self {
        Self {
            file,
            list: Vec::new(),
        }
    }

    /// Records a problem at a YAML node's location.
    pub(crate) fn at(
        &mut self,
        location: serde_saphyr::Location,
        kind: DiagnosticKind,
        message: impl Into<String>,
    ) {
        self.at_position(Position::from_location(location), kind, message);
    }

    /// Records a problem at an optional position.
    pub(crate) fn at_position(
        &mut self,
        position: Option<Position>,
        kind: DiagnosticKind,
        message: impl Into<String>,
    ) {
        self.list
            .push(Diagnostic::new(self.file, position, kind, message));
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.list.is_empty()
    }

    pub(crate) fn into_list(self) -> Vec<Diagnostic> {
        self.list
    }

    pub(crate) fn into_error(self) -> PolicyError {
        PolicyError::invalid(self.list)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_offsets_become_line_and_character_column() {
        let text = "a: 1\nb: é\u{fffd}x\n".as_bytes();
        assert_eq!(
            Position::of_byte_offset(text, 0),
            Position { line: 1, column: 1 }
        );
        assert_eq!(
            Position::of_byte_offset(text, 5),
            Position { line: 2, column: 1 }
        );
        // `é` is two bytes but one column.
        let x = text.iter().position(|&b| b == b'x').unwrap();
        assert_eq!(
            Position::of_byte_offset(text, x),
            Position { line: 2, column: 6 }
        );
    }

    #[test]
    fn diagnostics_display_with_and_without_position() {
        let with = Diagnostic::new(
            "p.yaml",
            Some(Position { line: 3, column: 7 }),
            DiagnosticKind::Syntax,
            "bad",
        );
        let without = Diagnostic::new("p.yaml", None, DiagnosticKind::File, "too large");
        assert_eq!(with.to_string(), "p.yaml:3:7: bad");
        assert_eq!(without.to_string(), "p.yaml: too large");
        let error = PolicyError::invalid(vec![with, without]);
        assert_eq!(error.to_string(), "p.yaml: too large\np.yaml:3:7: bad");
    }
}
