//! Configuration problems: what is wrong, where (file, line, key path), and
//! how bad.
//!
//! Every problem found in a policy file is collected and reported together,
//! so an operator fixes them in one pass. A problem never carries a secret's
//! value: messages name keys and files, not what was in them.

use std::fmt;
use std::path::{Path, PathBuf};

/// How serious a problem is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The policy is insecure or surprising but can run. `rampart check`
    /// prints it and still exits 0.
    Warning,
    /// The policy cannot run.
    Error,
}

/// One problem with the policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigProblem {
    /// How serious it is.
    pub severity: Severity,
    /// Key path such as `routes[3].upstream`; empty for the whole file.
    pub path: String,
    /// 1-based line in the policy file, when known.
    pub line: Option<usize>,
    /// What is wrong, for an operator.
    pub message: String,
}

impl ConfigProblem {
    /// An error at a key path; the line is filled in later by the loader.
    pub fn error(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Error,
            path: path.into(),
            line: None,
            message: message.into(),
        }
    }

    /// A warning at a key path.
    pub fn warning(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            severity: Severity::Warning,
            ..Self::error(path, message)
        }
    }
}

/// Every problem found in one policy file.
#[derive(Debug, Clone)]
pub struct ConfigErrors {
    /// The file the problems are in.
    pub file: PathBuf,
    /// Errors and warnings, in file order.
    pub problems: Vec<ConfigProblem>,
}

impl ConfigErrors {
    /// Problems in `file`.
    pub fn new(file: &Path, problems: Vec<ConfigProblem>) -> Self {
        Self {
            file: file.to_path_buf(),
            problems,
        }
    }

    /// Whether any problem is an error (as opposed to a warning).
    pub fn has_errors(&self) -> bool {
        self.problems.iter().any(|p| p.severity == Severity::Error)
    }

    /// Only the errors.
    pub fn errors(&self) -> impl Iterator<Item = &ConfigProblem> {
        self.problems.iter().filter(|p| p.severity == Severity::Error)
    }

    /// Renders one problem as `file:line: error: path: message`.
    pub fn render(&self, p: &ConfigProblem) -> String {
        let level = match p.severity {
            Severity::Error => "error",
            Severity::Warning => "warning",
        };
        let mut out = format!("{}", self.file.display());
        if let Some(line) = p.line {
            out.push_str(&format!(":{line}"));
        }
        out.push_str(&format!(": {level}: "));
        if !p.path.is_empty() {
            out.push_str(&p.path);
            out.push_str(": ");
        }
        out.push_str(&p.message);
        out
    }
}

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        for p in &self.problems {
            if !first {
                writeln!(f)?;
            }
            first = false;
            f.write_str(&self.render(p))?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}
