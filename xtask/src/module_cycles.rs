//! The module graph of one crate and its cycles: what `cargo xtask tidy` uses to keep each
//! crate's modules layered (a module never depends, directly or through others, on a module that
//! depends on it).
//!
//! Nodes are the crate root's child modules (`src/conv.rs` or `src/conv/...` is `conv`). Module A
//! depends on B when A's files name `crate::B` (also inside `use crate::{...}` groups), name an
//! item the crate root re-exports from B (`crate::Error` when `lib.rs` has
//! `pub use error::{Error, ...}`), or, in a top-level file, name `super::B`. The scan is textual
//! (comments and strings are skipped line by line), which is enough for code written in this
//! workspace's style.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use anyhow::Context;

/// Every dependency cycle between the top-level modules of the crate whose sources are in
/// `src`, each as a path `a -> b -> ... -> a`; empty when the modules are layered.
pub fn cycles(src: &Path) -> anyhow::Result<Vec<Vec<String>>> {
    let graph = module_graph(src)?;
    Ok(find_cycles(&graph))
}

/// Module name → the modules it depends on.
type Graph = BTreeMap<String, BTreeSet<String>>;

fn module_graph(src: &Path) -> anyhow::Result<Graph> {
    let root = ["lib.rs", "main.rs"].iter().map(|f| src.join(f)).find(|p| p.is_file());
    let Some(root) = root else { return Ok(Graph::new()) };
    let root_text = std::fs::read_to_string(&root).with_context(|| root.display().to_string())?;
    let modules = declared_modules(&root_text);
    let reexports = root_reexports(&root_text, &modules);
    let mut graph = Graph::new();
    for module in &modules {
        let mut deps = BTreeSet::new();
        for (file, top_level) in module_files(src, module) {
            let text = std::fs::read_to_string(&file).with_context(|| file.display().to_string())?;
            for path in crate_paths(&code_only(&text), top_level) {
                let first = path.split("::").next().unwrap_or_default();
                let target =
                    if modules.contains(first) { Some(first) } else { reexports.get(first).map(String::as_str) };
                if let Some(target) = target.filter(|t| *t != module) {
                    deps.insert(target.to_string());
                }
            }
        }
        graph.insert(module.clone(), deps);
    }
    Ok(graph)
}

/// `mod x;` / `pub mod x;` / `pub(crate) mod x;` declarations of a crate root.
fn declared_modules(root: &str) -> BTreeSet<String> {
    code_only(root)
        .lines()
        .filter_map(|l| {
            let l = l.trim();
            let rest = l.strip_prefix("pub(crate) ").or_else(|| l.strip_prefix("pub ")).unwrap_or(l);
            rest.strip_prefix("mod ").and_then(|m| m.strip_suffix(';')).map(|m| m.trim().to_string())
        })
        .collect()
}

/// Items the crate root re-exports (`pub use module::{A, B as C};`) → the module they come from.
fn root_reexports(root: &str, modules: &BTreeSet<String>) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    let code = code_only(root);
    let mut rest = code.as_str();
    while let Some(at) = rest.find("pub use ") {
        rest = &rest[at + "pub use ".len()..];
        let end = rest.find(';').unwrap_or(rest.len());
        let statement: String = rest[..end].split_whitespace().collect::<Vec<_>>().join(" ");
        rest = &rest[end..];
        let Some((module, items)) = statement.split_once("::") else { continue };
        if !modules.contains(module) {
            continue;
        }
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name = item.split(" as ").last().unwrap_or(item).trim();
            let name = name.rsplit("::").next().unwrap_or(name);
            if !name.is_empty() && name != "*" && name != "self" {
                out.insert(name.to_string(), module.to_string());
            }
        }
    }
    out
}

/// The files of `module`: `src/module.rs` (top level) and everything under `src/module/`.
fn module_files(src: &Path, module: &str) -> Vec<(std::path::PathBuf, bool)> {
    let mut files = Vec::new();
    let file = src.join(format!("{module}.rs"));
    if file.is_file() {
        files.push((file, true));
    }
    let dir = src.join(module);
    if dir.is_dir() {
        let mut stack = vec![dir.clone()];
        while let Some(d) = stack.pop() {
            let Ok(entries) = std::fs::read_dir(&d) else { continue };
            for entry in entries.flatten() {
                let path = entry.path();
                if path.is_dir() {
                    stack.push(path);
                } else if path.extension().is_some_and(|e| e == "rs") {
                    // `module/mod.rs` is the module's own top-level file.
                    let top = path.parent() == Some(dir.as_path()) && path.file_name().is_some_and(|n| n == "mod.rs");
                    files.push((path, top));
                }
            }
        }
    }
    files
}

/// `text` without line comments, doc comments and string literals (a line at a time: enough for
/// `crate::` mentions, which never span lines).
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let mut in_string = false;
        let mut chars = line.chars().peekable();
        while let Some(c) = chars.next() {
            if in_string {
                if c == '\\' {
                    chars.next();
                } else if c == '"' {
                    in_string = false;
                }
                continue;
            }
            if c == '/' && chars.peek() == Some(&'/') {
                break;
            }
            if c == '"' {
                in_string = true;
                continue;
            }
            out.push(c);
        }
        out.push('\n');
    }
    out
}

/// Paths named after `crate::` (each member of a `crate::{a, b::C}` group separately), and, in a
/// top-level module file, after `super::`.
fn crate_paths(code: &str, top_level: bool) -> Vec<String> {
    let mut out = Vec::new();
    let mut prefixes = vec!["crate::"];
    if top_level {
        prefixes.push("super::");
    }
    for prefix in prefixes {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            // `foo_crate::` or `mysuper::` are other paths.
            let before = rest[..at].chars().next_back();
            rest = &rest[at + prefix.len()..];
            if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
                continue;
            }
            if let Some(group) = rest.strip_prefix('{') {
                let end = matching_brace(group);
                out.extend(group[..end].split(',').map(|p| p.trim().to_string()).filter(|p| !p.is_empty()));
            } else {
                let end = rest.find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':')).unwrap_or(rest.len());
                out.push(rest[..end].to_string());
            }
        }
    }
    out
}

/// The index of the `}` closing a group whose `{` was just consumed.
fn matching_brace(text: &str) -> usize {
    let mut depth = 0;
    for (i, c) in text.char_indices() {
        match c {
            '{' => depth += 1,
            '}' if depth == 0 => return i,
            '}' => depth -= 1,
            _ => {}
        }
    }
    text.len()
}

/// One cycle through each strongly connected component with more than one module.
fn find_cycles(graph: &Graph) -> Vec<Vec<String>> {
    let mut cycles = Vec::new();
    let mut reported: BTreeSet<String> = BTreeSet::new();
    for start in graph.keys() {
        if reported.contains(start) {
            continue;
        }
        if let Some(path) = path_back(graph, start) {
            reported.extend(path.iter().cloned());
            cycles.push(path);
        }
    }
    cycles
}

/// A shortest path `start -> ... -> start`, if any (breadth-first).
fn path_back(graph: &Graph, start: &str) -> Option<Vec<String>> {
    let mut parent: BTreeMap<&str, &str> = BTreeMap::new();
    let mut queue = std::collections::VecDeque::from([start]);
    while let Some(node) = queue.pop_front() {
        for next in graph.get(node).into_iter().flatten() {
            if next == start {
                let mut path = vec![start.to_string()];
                let mut at = node;
                while at != start {
                    path.push(at.to_string());
                    at = parent[at];
                }
                path.push(start.to_string());
                let last = path.len() - 1;
                path[1..last].reverse();
                return Some(path);
            }
            if !parent.contains_key(next.as_str()) && next != start {
                parent.insert(next, node);
                queue.push_back(next);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph(edges: &[(&str, &str)]) -> Graph {
        let mut g = Graph::new();
        for (a, b) in edges {
            g.entry(a.to_string()).or_default().insert(b.to_string());
            g.entry(b.to_string()).or_default();
        }
        g
    }

    #[test]
    fn finds_a_cycle_and_nothing_in_a_layered_graph() {
        assert!(find_cycles(&graph(&[("a", "b"), ("b", "c"), ("a", "c")])).is_empty());
        let cycles = find_cycles(&graph(&[("conv", "gemm"), ("gemm", "direct"), ("direct", "conv"), ("x", "conv")]));
        assert_eq!(cycles, vec![vec!["conv", "gemm", "direct", "conv"]]);
    }

    #[test]
    fn reads_crate_paths_groups_and_reexports_but_not_comments_or_strings() {
        let code = code_only(
            "use crate::{conv::Geometry, element::{A, B}};\nlet e = crate::Error::X; // crate::hidden\nlet s = \"crate::nope\";\nuse super::gemm;",
        );
        assert_eq!(crate_paths(&code, true), vec!["conv::Geometry", "element::{A", "B}", "Error::X", "gemm"]);
        assert_eq!(crate_paths(&code, false).len(), 4);
        let root = "mod conv;\npub mod error;\npub use error::{Error, Result};\npub use conv::conv2d as convolve;";
        let modules = declared_modules(root);
        assert_eq!(modules.iter().collect::<Vec<_>>(), vec!["conv", "error"]);
        let re = root_reexports(root, &modules);
        assert_eq!((re["Error"].as_str(), re["convolve"].as_str()), ("error", "conv"));
    }
}
