//! Key renaming rules applied to a checkpoint's tensor names before loading.

use std::collections::{BTreeMap, HashMap};

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
    /// Numbers nested indices consecutively: every distinct tuple of the pattern's capture
    /// groups, among all the names the rule sees, gets its rank in numeric order, and the first
    /// match becomes `replacement` with `{n}` replaced by that rank (then `$1`-style groups).
    /// timm's `blocks.{stage}.{block}.` becomes ember's `_blocks.{n}.`: the flat index depends on
    /// how many blocks every earlier stage has, which no per-name rule can know.
    Flatten {
        /// The compiled pattern; its groups hold the indices (decimal integers).
        pattern: Regex,
        /// The replacement, with `{n}` for the rank.
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
        Ok(Self::Regex { pattern: compile(pattern)?, replacement: replacement.into() })
    }

    /// Numbers the index tuples captured by `pattern` consecutively ([`RenameRule::Flatten`]);
    /// fails naming the pattern when it does not compile or has no capture group.
    pub fn flatten(pattern: &str, replacement: impl Into<String>) -> Result<Self> {
        let compiled = compile(pattern)?;
        if compiled.captures_len() < 2 {
            return Err(Error::BadRule {
                pattern: pattern.to_string(),
                detail: "a flatten rule needs at least one capture group holding an index".into(),
            });
        }
        Ok(Self::Flatten { pattern: compiled, replacement: replacement.into() })
    }

    /// Parses `strip:PREFIX`, `add:PREFIX`, `regex:PATTERN=REPLACEMENT` or
    /// `flatten:PATTERN=REPLACEMENT` (the CLI's form; [`parse_rules`] also takes preset names).
    pub fn parse(text: &str) -> Result<Self> {
        let bad = |detail: &str| Error::BadRule { pattern: text.to_string(), detail: detail.to_string() };
        let (kind, rest) = text
            .split_once(':')
            .ok_or_else(|| bad("expected strip:P, add:P, regex:PATTERN=REPL or flatten:PATTERN=REPL"))?;
        match kind {
            "strip" => Ok(Self::strip_prefix(rest)),
            "add" => Ok(Self::add_prefix(rest)),
            "regex" | "flatten" => {
                let (pattern, replacement) =
                    rest.split_once('=').ok_or_else(|| bad(&format!("expected {kind}:PATTERN=REPL")))?;
                if kind == "regex" {
                    Self::regex(pattern, replacement)
                } else {
                    Self::flatten(pattern, replacement)
                }
            }
            _ => Err(bad("unknown rule kind; expected strip, add, regex or flatten")),
        }
    }

    /// The name after this rule, for rules that look at one name at a time. A
    /// [`RenameRule::Flatten`] numbers among the names it sees, so here `name` alone: use
    /// [`rename_all`] for a checkpoint.
    pub fn apply(&self, name: &str) -> String {
        self.apply_all(&[name.to_string()]).pop().unwrap_or_default()
    }

    fn apply_all(&self, names: &[String]) -> Vec<String> {
        match self {
            Self::StripPrefix(p) => names.iter().map(|n| n.strip_prefix(p.as_str()).unwrap_or(n).to_string()).collect(),
            Self::AddPrefix(p) => names.iter().map(|n| format!("{p}{n}")).collect(),
            Self::Regex { pattern, replacement } => {
                names.iter().map(|n| pattern.replace_all(n, replacement.as_str()).into_owned()).collect()
            }
            Self::Flatten { pattern, replacement } => flatten(pattern, replacement, names),
        }
    }
}

fn compile(pattern: &str) -> Result<Regex> {
    Regex::new(pattern).map_err(|e| Error::BadRule { pattern: pattern.to_string(), detail: e.to_string() })
}

/// A capture group as a sort key that orders decimal integers numerically (fewer digits first,
/// leading zeros ignored) and anything else deterministically, with no overflow to handle.
fn index_key(group: Option<regex::Match<'_>>) -> (usize, String) {
    let text = group.map_or("", |m| m.as_str()).trim_start_matches('0');
    (text.len(), text.to_string())
}

fn flatten(pattern: &Regex, replacement: &str, names: &[String]) -> Vec<String> {
    let key = |caps: &regex::Captures<'_>| (1..caps.len()).map(|g| index_key(caps.get(g))).collect::<Vec<_>>();
    let mut ranks: BTreeMap<Vec<(usize, String)>, usize> =
        names.iter().filter_map(|n| pattern.captures(n)).map(|c| (key(&c), 0)).collect();
    for (rank, value) in ranks.values_mut().enumerate() {
        *value = rank;
    }
    names
        .iter()
        .map(|n| match pattern.captures(n) {
            Some(caps) => {
                let with_rank = replacement.replace("{n}", &ranks[&key(&caps)].to_string());
                pattern.replacen(n, 1, with_rank.as_str()).into_owned()
            }
            None => n.clone(),
        })
        .collect()
}

/// `name` after every rule in order, as if it were the checkpoint's only name (see
/// [`RenameRule::apply`]; [`rename_all`] is the form for a whole checkpoint).
pub fn rename(rules: &[RenameRule], name: &str) -> String {
    rules.iter().fold(name.to_string(), |n, r| r.apply(&n))
}

/// Every name of a checkpoint after every rule in order, in the input order.
pub fn rename_all(rules: &[RenameRule], names: &[String]) -> Vec<String> {
    rules.iter().fold(names.to_vec(), |ns, r| r.apply_all(&ns))
}

/// [`rename_all`], failing with [`Error::RenameCollision`] when two names of `source` end up the
/// same (the second would silently replace the first).
pub fn rename_unique(rules: &[RenameRule], names: &[String], source: &str) -> Result<Vec<String>> {
    let renamed = rename_all(rules, names);
    let mut first: HashMap<&str, &str> = HashMap::new();
    for (original, new) in names.iter().zip(&renamed) {
        if let Some(earlier) = first.insert(new, original) {
            return Err(Error::RenameCollision {
                source_name: source.to_string(),
                first: earlier.to_string(),
                second: original.clone(),
                renamed: new.clone(),
            });
        }
    }
    Ok(renamed)
}

/// Parses the CLI's `--rename` values in order: a rule ([`RenameRule::parse`]) or a preset's name
/// ([`RenameRule::preset`], e.g. `timm`), which stands for its rules. Errors name the text.
pub fn parse_rules(texts: &[String]) -> Result<Vec<RenameRule>> {
    let mut rules = Vec::new();
    for text in texts {
        if text.contains(':') {
            rules.push(RenameRule::parse(text)?);
        } else {
            rules.extend(RenameRule::preset(text)?);
        }
    }
    Ok(rules)
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

    #[test]
    fn flatten_numbers_nested_indices_in_numeric_order() {
        let rule = RenameRule::parse(r"flatten:^blocks\.(\d+)\.(\d+)\.=_blocks.{n}.").unwrap();
        let names: Vec<String> =
            ["blocks.10.0.w", "blocks.0.0.w", "blocks.2.1.w", "blocks.2.0.w", "blocks.2.1.b", "head.w"]
                .map(String::from)
                .to_vec();
        let renamed = rename_all(&[rule], &names);
        assert_eq!(renamed, ["_blocks.3.w", "_blocks.0.w", "_blocks.2.w", "_blocks.1.w", "_blocks.2.b", "head.w"]);
        assert!(matches!(RenameRule::parse(r"flatten:^blocks\.\d+=x"), Err(Error::BadRule { .. })));
    }

    #[test]
    fn collisions_and_unknown_presets_are_refused() {
        let names = vec!["module.a".to_string(), "a".to_string()];
        let err = rename_unique(&[RenameRule::strip_prefix("module.")], &names, "ckpt.pt").unwrap_err();
        let msg = err.to_string();
        for needle in ["ckpt.pt", "module.a", "`a`"] {
            assert!(msg.contains(needle), "{needle} not in {msg}");
        }
        let err = parse_rules(&["strip:x.".into(), "keras".into()]).unwrap_err().to_string();
        assert!(err.contains("keras") && err.contains("timm"), "{err}");
        assert_eq!(
            parse_rules(&["strip:x.".into(), "timm".into()]).unwrap().len(),
            1 + RenameRule::preset("timm").unwrap().len()
        );
    }
}
