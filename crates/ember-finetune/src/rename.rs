//! Key renaming rules applied to a checkpoint's tensor names before loading.

use regex::Regex;

use crate::{Error, Result};

/// One renaming step. Rules run in order; each sees the previous one's output.
#[derive(Debug, Clone)]
pub enum RenameRule {
    /// Removes `prefix` from names that start with it (`module.` from `DataParallel` saves).
    StripPrefix(String),
    /// Puts `prefix` in front of every name (`backbone.`).
    AddPrefix(String),
    /// Replaces every match of a regular expression (`$1`-style groups in the replacement).
    Regex {
        /// The compiled pattern.
        pattern: Regex,
        /// The replacement.
        replacement: String,
    },
}

impl RenameRule {
    /// Strips `prefix`.
    pub fn strip_prefix(prefix: impl Into<String>) -> Self {
        Self::StripPrefix(prefix.into())
    }

    /// Adds `prefix`.
    pub fn add_prefix(prefix: impl Into<String>) -> Self {
        Self::AddPrefix(prefix.into())
    }

    /// Replaces matches of `pattern` by `replacement`; fails naming the pattern when it does not
    /// compile.
    pub fn regex(pattern: &str, replacement: impl Into<String>) -> Result<Self> {
        let compiled =
            Regex::new(pattern).map_err(|e| Error::BadRule { pattern: pattern.to_string(), detail: e.to_string() })?;
        Ok(Self::Regex { pattern: compiled, replacement: replacement.into() })
    }

    /// Parses `strip:PREFIX`, `add:PREFIX` or `regex:PATTERN=REPLACEMENT` (the CLI's form).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |detail: &str| Error::BadRule { pattern: text.to_string(), detail: detail.to_string() };
        let (kind, rest) = text.split_once(':').ok_or_else(|| bad("expected strip:P, add:P or regex:PATTERN=REPL"))?;
        match kind {
            "strip" => Ok(Self::strip_prefix(rest)),
            "add" => Ok(Self::add_prefix(rest)),
            "regex" => {
                let (pattern, replacement) = rest.split_once('=').ok_or_else(|| bad("expected regex:PATTERN=REPL"))?;
                Self::regex(pattern, replacement)
            }
            _ => Err(bad("unknown rule kind; expected strip, add or regex")),
        }
    }

    /// The name after this rule.
    pub fn apply(&self, name: &str) -> String {
        match self {
            Self::StripPrefix(p) => name.strip_prefix(p.as_str()).unwrap_or(name).to_string(),
            Self::AddPrefix(p) => format!("{p}{name}"),
            Self::Regex { pattern, replacement } => pattern.replace_all(name, replacement.as_str()).into_owned(),
        }
    }
}

/// `name` after every rule in order.
pub fn rename(rules: &[RenameRule], name: &str) -> String {
    rules.iter().fold(name.to_string(), |n, r| r.apply(&n))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rules_apply_in_order() {
        let rules = [
            RenameRule::parse("strip:module.").unwrap(),
            RenameRule::parse(r"regex:^blocks\.(\d+)=_blocks.$1").unwrap(),
            RenameRule::add_prefix("net."),
        ];
        assert_eq!(rename(&rules, "module.blocks.3.weight"), "net._blocks.3.weight");
        assert_eq!(rename(&rules, "fc.bias"), "net.fc.bias");
        assert!(matches!(RenameRule::parse("regex:(=x"), Err(Error::BadRule { .. })));
        assert!(matches!(RenameRule::parse("drop:x"), Err(Error::BadRule { .. })));
    }
}
