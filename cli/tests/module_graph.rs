//! The source tree keeps its shape. bfctl's modules form no cycle, nor do
//! kube-apply's: the top-level modules
//! of `cli/src` (`plan`, `cluster`, `local`, …) and of
//! `crates/kube-apply/src`, and the `crate::` paths each uses
//! outside comments and tests make a graph that must have no strongly
//! connected component larger than one module. A cycle fails with the
//! modules in it and the lines that make each edge.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

/// module → module it uses → where (file:line).
type Graph = BTreeMap<String, BTreeMap<String, Vec<String>>>;

/// Every `.rs` file under `src`: its path relative to `src`, and its text.
fn rust_files(src: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut files = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                stack.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).unwrap();
                files.push((path.strip_prefix(src).unwrap().to_path_buf(), text));
            }
        }
    }
    files.sort();
    files
}

fn graph(src: &Path) -> Graph {
    let mut graph = Graph::new();
    for (relative, text) in rust_files(src) {
        {
            let relative = relative.as_path();
            let module = relative
                .components()
                .next()
                .unwrap()
                .as_os_str()
                .to_string_lossy()
                .trim_end_matches(".rs")
                .to_string();
            if module == "main" || module == "lib" {
                continue;
            }
            let code = text.split("#[cfg(test)]").next().unwrap_or("");
            for (number, line) in code.lines().enumerate() {
                if line.trim_start().starts_with("//") {
                    continue;
                }
                for (index, _) in line.match_indices("crate::") {
                    let rest = &line[index + "crate::".len()..];
                    let used: String = rest
                        .chars()
                        .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                        .collect();
                    // Functions and macros at the crate root are no module.
                    let after = rest[used.len()..].chars().next();
                    if used.is_empty()
                        || used == module
                        || used == "ensure_tls_provider"
                        || after == Some('!')
                    {
                        continue;
                    }
                    graph
                        .entry(module.clone())
                        .or_default()
                        .entry(used)
                        .or_default()
                        .push(format!("{}:{}", relative.display(), number + 1));
                }
            }
            graph.entry(module).or_default();
        }
    }
    graph
}

/// Strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<BTreeSet<String>> {
    struct State<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on_stack: BTreeSet<&'a str>,
        found: Vec<BTreeSet<String>>,
    }
    fn visit<'a>(state: &mut State<'a>, node: &'a str) {
        let next = state.index.len();
        state.index.insert(node, next);
        state.low.insert(node, next);
        state.stack.push(node);
        state.on_stack.insert(node);
        let edges: Vec<&'a str> = state
            .graph
            .get(node)
            .map(|e| e.keys().map(String::as_str).collect())
            .unwrap_or_default();
        for other in edges {
            if !state.index.contains_key(other) {
                visit(state, other);
                let low = state.low[node].min(state.low[other]);
                state.low.insert(node, low);
            } else if state.on_stack.contains(other) {
                let low = state.low[node].min(state.index[other]);
                state.low.insert(node, low);
            }
        }
        if state.low[node] == state.index[node] {
            let mut component = BTreeSet::new();
            while let Some(member) = state.stack.pop() {
                state.on_stack.remove(member);
                component.insert(member.to_string());
                if member == node {
                    break;
                }
            }
            if component.len() > 1 {
                state.found.push(component);
            }
        }
    }
    let mut state = State {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on_stack: BTreeSet::new(),
        found: Vec::new(),
    };
    for node in graph.keys() {
        if !state.index.contains_key(node.as_str()) {
            visit(&mut state, node);
        }
    }
    state.found
}

fn assert_no_cycle(graph: &Graph) {
    let found = cycles(graph);
    let mut report = String::new();
    for component in &found {
        report.push_str(&format!("cycle among {component:?}:\n"));
        for from in component {
            for (to, lines) in &graph[from] {
                if component.contains(to) {
                    report.push_str(&format!("  {from} -> {to} ({})\n", lines.join(", ")));
                }
            }
        }
    }
    assert!(found.is_empty(), "{report}");
}

/// Only `output.rs` and `progress.rs` print: everything else returns what
/// it found, and the commands hand it to them.
#[test]
fn only_output_and_progress_print() {
    let mut offenders = Vec::new();
    for (relative, text) in rust_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src")) {
        let name = relative.to_string_lossy().to_string();
        if name == "output.rs" || name == "progress.rs" {
            continue;
        }
        for (number, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            if ["println!", "eprintln!", "print!(", "eprint!("]
                .iter()
                .any(|m| code.contains(m))
            {
                offenders.push(format!("{name}:{}: {}", number + 1, line.trim()));
            }
        }
    }
    assert!(
        offenders.is_empty(),
        "print through output.rs instead:\n{}",
        offenders.join("\n")
    );
}

#[test]
fn bfctls_modules_form_no_cycle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("src"));
    assert!(graph.contains_key("plan") && graph.contains_key("commands"));
    assert_no_cycle(&graph);
}

#[test]
fn kube_applys_modules_form_no_cycle() {
    let graph = graph(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../crates/kube-apply/src"));
    assert!(graph.contains_key("apply") && graph.contains_key("inventory"));
    assert_no_cycle(&graph);
}

#[test]
fn a_cycle_is_found_when_there_is_one() {
    let mut graph = Graph::new();
    for (from, to) in [("a", "b"), ("b", "c"), ("c", "a"), ("c", "d")] {
        graph
            .entry(from.into())
            .or_default()
            .insert(to.into(), vec![]);
    }
    graph.entry("d".into()).or_default();
    let found = cycles(&graph);
    assert_eq!(found.len(), 1);
    assert_eq!(
        found[0],
        ["a", "b", "c"].iter().map(|s| s.to_string()).collect()
    );
}
