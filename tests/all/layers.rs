//! The library's layers (ARCHITECTURE.md): every module of `runtime/src` belongs to one
//! layer and uses (`crate::module` anywhere in its code, comments aside) only modules of its
//! own layer or below, with no cycle inside a layer. A new module must be given a layer
//! here.

use std::collections::{BTreeMap, BTreeSet};

/// The layers, from the bottom, and their modules.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "codes, constants and names",
        &["kern", "names", "lock", "trace"],
    ),
    (
        "the page table, the raw mapping and what backs it",
        &["vm_map", "mapping", "backing", "views", "pool"],
    ),
    ("the address space", &["space"]),
    (
        "task state, port namespaces, the bootstrap registry",
        &["task_state", "port", "bootstrap", "segments"],
    ),
    ("the kernel", &["kernel"]),
    (
        "the doors: guest imports, bulk imports, components, the host API",
        &["abi", "bulk", "component", "task"],
    ),
    (
        "loading: module checks, the bulk rewrite, the memory creator",
        &["module", "rewrite", "creator"],
    ),
    ("the runtime", &["runtime"]),
    ("the crate root", &["lib"]),
];

/// The modules `source` uses: every `crate::name` and every name of a `use crate::{...}`
/// group, outside comments.
fn uses(source: &str) -> BTreeSet<String> {
    let code: String = source
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let mut found = BTreeSet::new();
    let mut rest = code.as_str();
    while let Some(at) = rest.find("crate::") {
        rest = &rest[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let end = group.find('}').expect("a closed use group");
            for item in group[..end].split(',') {
                let name: String = item
                    .trim()
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                    .collect();
                if !name.is_empty() {
                    found.insert(name);
                }
            }
        } else {
            let name: String = rest
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
                .collect();
            found.insert(name);
        }
    }
    found
}

/// The crate root's re-exports (`pub use module::{Item, ...}`): item -> module, so that
/// `crate::Item` counts as a use of the module that defines it.
fn reexports(lib: &str) -> BTreeMap<String, String> {
    let mut items = BTreeMap::new();
    for line in lib
        .lines()
        .filter_map(|l| l.trim().strip_prefix("pub use "))
    {
        let Some((module, rest)) = line.trim_end_matches(';').split_once("::") else {
            continue;
        };
        for item in rest.trim_matches(|c| c == '{' || c == '}').split(',') {
            items.insert(item.trim().to_owned(), module.to_owned());
        }
    }
    items
}

/// Module name -> the modules it uses, for every file of `runtime/src`.
fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/src");
    let items = reexports(&std::fs::read_to_string(format!("{dir}/lib.rs")).unwrap());
    let mut graph = BTreeMap::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|e| e == "rs") {
            let name = path.file_stem().unwrap().to_str().unwrap().to_owned();
            let source = std::fs::read_to_string(&path).unwrap();
            let mut used: BTreeSet<String> = uses(&source)
                .into_iter()
                .map(|used| items.get(&used).cloned().unwrap_or(used))
                .collect();
            used.remove(&name);
            graph.insert(name, used);
        }
    }
    graph
}

fn layer_of(module: &str) -> Option<usize> {
    LAYERS
        .iter()
        .position(|(_, modules)| modules.contains(&module))
}

#[test]
fn every_module_uses_only_its_own_layer_or_those_below() {
    let graph = graph();
    let mut wrong = Vec::new();
    for (module, used) in &graph {
        let Some(layer) = layer_of(module) else {
            wrong.push(format!("`{module}` has no layer in tests/all/layers.rs"));
            continue;
        };
        for dep in used {
            match layer_of(dep) {
                Some(l) if l <= layer => {}
                Some(l) => wrong.push(format!(
                    "`{module}` ({}) uses `{dep}`, above it ({})",
                    LAYERS[layer].0, LAYERS[l].0
                )),
                None if graph.contains_key(dep) => {}
                None => wrong.push(format!("`{module}` uses `crate::{dep}`, no module")),
            }
        }
    }
    assert!(wrong.is_empty(), "{}", wrong.join("\n"));
}

#[test]
fn no_module_cycle() {
    let graph = graph();
    // Depth-first search with colours: a grey module reached again closes a cycle.
    fn visit<'g>(
        module: &'g str,
        graph: &'g BTreeMap<String, BTreeSet<String>>,
        state: &mut BTreeMap<&'g str, bool>,
        path: &mut Vec<&'g str>,
    ) -> Result<(), String> {
        match state.get(module) {
            Some(true) => return Ok(()),
            Some(false) => {
                let start = path.iter().position(|m| *m == module).unwrap();
                return Err(format!("{} -> {module}", path[start..].join(" -> ")));
            }
            None => {}
        }
        state.insert(module, false);
        path.push(module);
        for dep in graph.get(module).into_iter().flatten() {
            if graph.contains_key(dep) {
                visit(dep, graph, state, path)?;
            }
        }
        path.pop();
        state.insert(module, true);
        Ok(())
    }
    let mut state = BTreeMap::new();
    for module in graph.keys() {
        if let Err(cycle) = visit(module, &graph, &mut state, &mut Vec::new()) {
            panic!("module cycle: {cycle}");
        }
    }
}

#[test]
fn the_checker_sees_uses_in_paths_and_groups_but_not_in_comments() {
    let source = "use crate::kern::X;\nuse crate::{space::A, port};\n// crate::runtime\nfn f() { crate::kernel::g() }";
    let found: Vec<String> = uses(source).into_iter().collect();
    assert_eq!(found, ["kern", "kernel", "port", "space"]);
}
