//! The library's layering, read from its source: no import cycle between
//! the top-level modules of `shared/src`, and the pure core (`event`,
//! `decide`, `report`, `resources`) imports no adapter.

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

use ballast_tests::workspace_root;

/// Top-level module → the top-level modules its non-test code names as
/// `crate::<module>`.
fn imports() -> BTreeMap<String, BTreeSet<String>> {
    let src = workspace_root().join("shared/src");
    let mut graph: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut files = vec![src.clone()];
    while let Some(path) = files.pop() {
        if path.is_dir() {
            files.extend(std::fs::read_dir(&path).unwrap().map(|e| e.unwrap().path()));
            continue;
        }
        if path.extension().and_then(|e| e.to_str()) != Some("rs") {
            continue;
        }
        let module = top_module(&src, &path);
        if module == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&path).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or_default();
        let named = graph.entry(module.clone()).or_default();
        for (at, _) in code.match_indices("crate::") {
            let name: String = code[at + "crate::".len()..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            if !name.is_empty() && name != module {
                named.insert(name);
            }
        }
    }
    graph
}

fn top_module(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap();
    let first = rel
        .components()
        .next()
        .unwrap()
        .as_os_str()
        .to_string_lossy();
    first.trim_end_matches(".rs").to_string()
}

#[test]
fn the_library_modules_import_each_other_without_a_cycle() {
    let graph = imports();
    assert!(graph.len() >= 10, "modules found: {graph:?}");
    // Depth-first, keeping the path: a module met again on its own path
    // closes a cycle.
    fn visit(
        m: &str,
        graph: &BTreeMap<String, BTreeSet<String>>,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) {
        if done.contains(m) {
            return;
        }
        assert!(
            !path.iter().any(|p| p == m),
            "import cycle: {} -> {m}",
            path.join(" -> ")
        );
        path.push(m.to_string());
        for next in graph.get(m).into_iter().flatten() {
            visit(next, graph, path, done);
        }
        path.pop();
        done.insert(m.to_string());
    }
    let mut done = BTreeSet::new();
    for m in graph.keys() {
        visit(m, &graph, &mut vec![], &mut done);
    }
}

#[test]
fn the_pure_core_imports_no_adapter_and_no_shell() {
    let graph = imports();
    for core in ["event", "decide", "report", "resources", "records", "proof"] {
        let named = &graph[core];
        for shell in [
            "aws",
            "context",
            "execute",
            "conclude",
            "reconcile",
            "lambda",
            "failure",
            "probe",
        ] {
            assert!(!named.contains(shell), "{core} imports {shell}: {named:?}");
        }
    }
}

/// The module map in the README, in order (the fenced block that starts
/// with `event/`): a module's name at the start of a line (an indented
/// line goes on describing the one above).
fn readme_order() -> Vec<String> {
    let readme = std::fs::read_to_string(workspace_root().join("README.md")).unwrap();
    let start = readme.find("```\nevent/").expect("the README's module map");
    readme[start + 4..]
        .lines()
        .take_while(|l| !l.starts_with("```"))
        .filter(|l| !l.starts_with(' '))
        .filter_map(|l| l.split_whitespace().next())
        .map(|m| m.trim_end_matches('/').to_string())
        .collect()
}

/// Every module imports only modules above it in the README's map (and the
/// tag keys of `lib.rs`), and every module is on the map.
#[test]
fn every_module_imports_only_the_ones_above_it_in_the_readme() {
    let order = readme_order();
    assert!(order.len() >= 12, "{order:?}");
    let graph = imports();
    for module in graph.keys() {
        assert!(
            order.contains(module),
            "module {module} is not on the README's map {order:?}"
        );
    }
    for (i, module) in order.iter().enumerate() {
        let above: BTreeSet<&str> = order[..i].iter().map(String::as_str).collect();
        for imported in graph.get(module).into_iter().flatten() {
            assert!(
                imported == "tags" || above.contains(imported.as_str()),
                "{module} imports {imported}, which the README's map puts below it: {order:?}"
            );
        }
    }
}
