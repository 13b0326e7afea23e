//! Shell-style patterns over parameter paths (`layer1.*`, `fc?.weight`), as freezing
//! (ember-layers), parameter groups (ember-optim) and fine-tuning take them.
//!
//! Not a kernel: it lives here because this is the one crate below every crate that matches
//! parameter names, so there is a single copy of the rules without a new dependency edge.

/// Whether `name` matches `pattern`, where `*` matches any (possibly empty) run of characters
/// (dots included) and `?` exactly one.
pub fn glob_match(pattern: &str, name: &str) -> bool {
    let (p, n): (Vec<char>, Vec<char>) = (pattern.chars().collect(), name.chars().collect());
    let (mut pi, mut ni) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ni < n.len() {
        if pi < p.len() && (p[pi] == n[ni] || p[pi] == '?') {
            pi += 1;
            ni += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ni;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ni = mark;
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

#[cfg(test)]
mod tests {
    use super::glob_match;

    #[test]
    fn glob_matches_like_a_shell() {
        assert!(glob_match("backbone.*", "backbone.layer1.0.conv1.weight"));
        assert!(!glob_match("backbone.*", "head.weight"));
        assert!(glob_match("*.bias", "fc.bias"));
        assert!(!glob_match("*.bias", "fc.bias_extra"));
        assert!(glob_match("*bn*", "layer1.bn2.running_mean"));
        assert!(glob_match("*", ""));
        assert!(glob_match("fc?.weight", "fc1.weight"));
        assert!(!glob_match("fc?.weight", "fc12.weight"));
    }
}
