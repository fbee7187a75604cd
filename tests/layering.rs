//! The source tree's dependencies point one way: every `crate::` path in a top-level module's
//! code (tests left out) names a module of a lower layer, and within a top-level module no two
//! files depend on each other in a circle. `cargo modules dependencies --lib --acyclic` (from
//! crates.io) draws the same graph; this test keeps it so in CI without installing anything.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use regex::Regex;

/// Top to bottom: a module may use the modules of the layers below its own, never one of its
/// own layer or above. The README's layout table says the same.
const LAYERS: &[&[&str]] = &[
    &["cli"],
    &["daemon"],
    &["config"],
    &["alert", "server"],
    &["telemetry"],
    &["rotation", "sim"],
    &["netsuite", "store", "schedule"],
    &["secret", "value_format", "plural", "outcome"],
];

/// A source file of the library and its module path (`store::aws::steps`), with its test code
/// cut off: test modules at the end of a file, and files that only tests compile.
struct SourceFile {
    module: Vec<String>,
    code: String,
}

fn library_files() -> Vec<SourceFile> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    let mut pending = vec![root.clone()];
    while let Some(dir) = pending.pop() {
        for entry in std::fs::read_dir(&dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                if path != root.join("bin") {
                    pending.push(path);
                }
                continue;
            }
            let name = path.file_name().unwrap().to_string_lossy().to_string();
            let test_only = name == "tests.rs" || name.ends_with("_tests.rs");
            if !name.ends_with(".rs") || test_only || path == root.join("main.rs") {
                continue;
            }
            files.push(SourceFile {
                module: module_path(&root, &path),
                code: without_tests(&std::fs::read_to_string(&path).unwrap()),
            });
        }
    }
    assert!(
        files.len() > 50,
        "the scan found only {} files",
        files.len()
    );
    files
}

fn module_path(root: &Path, path: &Path) -> Vec<String> {
    let relative: PathBuf = path.strip_prefix(root).unwrap().with_extension("");
    let mut parts: Vec<String> = relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy().to_string())
        .collect();
    if parts.last().is_some_and(|p| p == "mod" || p == "lib") {
        parts.pop();
    }
    parts
}

/// The code before `#[cfg(test)] mod tests`, comments removed.
fn without_tests(code: &str) -> String {
    let code = match code.find("#[cfg(test)]\nmod tests") {
        Some(at) => &code[..at],
        None => code,
    };
    code.lines()
        .map(|line| line.split("//").next().unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// The modules a file's `crate::`, `super::` and `self::` paths name (grouped imports
/// expanded), each resolved to the deepest module that exists as a file or folder.
fn dependencies(root: &Path, file: &SourceFile) -> BTreeSet<Vec<String>> {
    let path = Regex::new(r"\b(crate|super|self)((?:::[A-Za-z_][A-Za-z0-9_]*)*)(::\{([^{}]*)\})?")
        .unwrap();
    let mut found = BTreeSet::new();
    for m in path.captures_iter(&file.code) {
        let segments = |text: &str| -> Vec<String> {
            text.split("::")
                .map(|s| s.split(" as ").next().unwrap().trim().to_string())
                .filter(|s| !s.is_empty() && s != "self")
                .collect()
        };
        let head = segments(&m[2]);
        let mut paths = vec![head.clone()];
        if let Some(group) = m.get(4) {
            paths = group
                .as_str()
                .split(',')
                .map(|item| [head.clone(), segments(item)].concat())
                .collect();
        }
        for mut rest in paths {
            let mut base = match &m[1] {
                "crate" => Vec::new(),
                "super" => file.module[..file.module.len().saturating_sub(1)].to_vec(),
                _ => file.module.clone(),
            };
            while rest.first().is_some_and(|s| s == "super") {
                base.pop();
                rest.remove(0);
            }
            for segment in rest {
                let candidate: PathBuf = base.iter().chain([&segment]).collect();
                let candidate = root.join(candidate);
                if candidate.with_extension("rs").exists() || candidate.is_dir() {
                    base.push(segment);
                } else {
                    break;
                }
            }
            if !base.is_empty() && base != file.module {
                found.insert(base);
            }
        }
    }
    found
}

fn layer_of(module: &str) -> usize {
    LAYERS
        .iter()
        .position(|layer| layer.contains(&module))
        .unwrap_or_else(|| panic!("src/{module} is in no layer of LAYERS: add it where it belongs"))
}

#[test]
fn every_top_level_module_uses_only_lower_layers() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut upward = Vec::new();
    let mut seen = BTreeSet::new();
    for file in library_files() {
        let Some(top) = file.module.first() else {
            continue; // lib.rs
        };
        for dependency in dependencies(&root, &file) {
            let target = &dependency[0];
            seen.insert((top.clone(), target.clone()));
            if target != top && layer_of(target) <= layer_of(top) {
                upward.push(format!(
                    "{} uses {}",
                    file.module.join("::"),
                    dependency.join("::")
                ));
            }
        }
    }
    // The scan sees real edges, so an empty result is not a broken scan.
    for (from, to) in [
        ("cli", "daemon"),
        ("rotation", "store"),
        ("store", "secret"),
    ] {
        assert!(
            seen.contains(&(from.to_string(), to.to_string())),
            "the scan missed {from} -> {to}"
        );
    }
    assert!(
        upward.is_empty(),
        "dependencies that point up or sideways (LAYERS, top to bottom: {LAYERS:?}):\n{}",
        upward.join("\n")
    );
}

#[test]
fn no_files_of_one_module_depend_on_each_other_in_a_circle() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
    for file in library_files() {
        for dependency in dependencies(&root, &file) {
            // A parent naming its children (declaring, re-exporting) and a child using what its
            // parent holds for all its children is how a Rust module is put together; the
            // circles that matter are between files neither of which contains the other.
            let nested =
                dependency.starts_with(&file.module) || file.module.starts_with(&dependency);
            if !nested {
                edges
                    .entry(file.module.clone())
                    .or_default()
                    .insert(dependency);
            }
        }
    }
    let circles = circles(&edges);
    assert!(
        circles.is_empty(),
        "modules that depend on each other in a circle: {circles:?}"
    );
    // The scan sees real edges, so an empty result is not a broken scan.
    let aws = vec!["store".to_string(), "aws".to_string()];
    assert!(
        edges
            .get(&aws)
            .is_some_and(|e| e.contains(&vec!["secret".to_string()])),
        "the scan missed store::aws -> secret: {:?}",
        edges.get(&aws)
    );
}

/// Every set of modules that reach each other (Tarjan's strongly connected components of more
/// than one module).
fn circles(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Vec<Vec<String>> {
    struct Walk<'a> {
        edges: &'a BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        index: BTreeMap<&'a Vec<String>, usize>,
        low: BTreeMap<&'a Vec<String>, usize>,
        stack: Vec<&'a Vec<String>>,
        found: Vec<Vec<String>>,
    }
    impl<'a> Walk<'a> {
        fn visit(&mut self, v: &'a Vec<String>) {
            let i = self.index.len();
            self.index.insert(v, i);
            self.low.insert(v, i);
            self.stack.push(v);
            for w in self.edges.get(v).into_iter().flatten() {
                if !self.index.contains_key(w) {
                    self.visit(w);
                    let low = self.low[v].min(self.low[w]);
                    self.low.insert(v, low);
                } else if self.stack.contains(&w) {
                    let low = self.low[v].min(self.index[w]);
                    self.low.insert(v, low);
                }
            }
            if self.low[v] == self.index[v] {
                let mut component = Vec::new();
                while let Some(w) = self.stack.pop() {
                    component.push(w.join("::"));
                    if w == v {
                        break;
                    }
                }
                if component.len() > 1 {
                    self.found.push(component);
                }
            }
        }
    }
    let mut walk = Walk {
        edges,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in edges.keys() {
        if !walk.index.contains_key(v) {
            walk.visit(v);
        }
    }
    walk.found
}
