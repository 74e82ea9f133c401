//! The layers of `../shared/DESIGN.md` §2 as the code's imports draw them.
//!
//! Reads every production source file of the root crate (`#[cfg(test)]` items, `tests.rs` files
//! and comments excluded), collects each `crate::<module>` path, and fails on any edge the
//! graph below forbids, naming the file and line. It also checks that the files of `src/http`
//! and of the storage crate import each other without cycles, and that production files stay
//! small enough to read.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

/// Which top-level modules each module may import (imports inside a module are free).
/// Mirrors the overview in `src/lib.rs`.
const ALLOWED: &[(&str, &[&str])] = &[
    ("util", &[]),
    ("secret", &[]),
    ("process", &[]),
    // A leaf every layer may record into.
    ("metrics", &["util"]),
    ("policy", &["util", "metrics"]),
    ("audit", &["util", "secret", "metrics"]),
    ("config", &["util", "secret", "audit", "metrics"]),
    ("core", &["util", "secret", "policy", "audit", "metrics"]),
    ("engines", &["util", "secret", "policy", "audit", "core", "metrics"]),
    ("auth", &["util", "secret", "policy", "audit", "core", "metrics"]),
    ("builtin", &["util", "secret", "policy", "audit", "core", "engines", "auth", "metrics"]),
    ("cluster", &["util", "secret", "policy", "audit", "core", "metrics"]),
    ("http", &["util", "secret", "policy", "audit", "core", "cluster", "metrics"]),
    ("client", &["util", "secret"]),
    ("resolve", &["util", "secret", "client"]),
    (
        "cli",
        &[
            "util", "secret", "process", "policy", "audit", "config", "core", "engines", "auth", "builtin",
            "cluster", "http", "client", "resolve", "metrics",
        ],
    ),
];

/// Largest production file, in lines (tests and `#[cfg(test)]` items not counted).
const MAX_PRODUCTION_LINES: usize = 600;

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Production `.rs` files below `dir`: not `tests.rs`, not under a `tests/` directory, and not a
/// module declared behind `#[cfg(test)]` (`#[cfg(test)] mod fixtures;`).
fn rust_files(dir: &Path) -> Vec<PathBuf> {
    let all = all_rust_files(dir);
    let mut test_only = BTreeSet::new();
    for f in &all {
        let text = std::fs::read_to_string(f).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        for w in lines.windows(2) {
            let Some(name) = w[1].trim().strip_prefix("mod ").and_then(|r| r.strip_suffix(';')) else {
                continue;
            };
            if w[0].trim() != "#[cfg(test)]" {
                continue;
            }
            let stem = f.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
            let base = if matches!(stem, "mod" | "lib" | "main") {
                f.parent().unwrap().to_path_buf()
            } else {
                f.with_extension("")
            };
            test_only.insert(base.join(format!("{name}.rs")));
            test_only.insert(base.join(name).join("mod.rs"));
        }
    }
    all.into_iter().filter(|f| !test_only.contains(f)).collect()
}

fn all_rust_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).unwrap() {
            let p = e.unwrap().path();
            if p.is_dir() {
                if p.file_name().is_some_and(|n| n == "tests") {
                    continue;
                }
                stack.push(p);
            } else if p.extension().is_some_and(|x| x == "rs")
                && p.file_name().is_some_and(|n| n != "tests.rs")
            {
                out.push(p);
            }
        }
    }
    out.sort();
    out
}

/// The file's lines with comments and string literals removed, keeping line numbers; `None`
/// for the lines of `#[cfg(test)]` items.
fn production_lines(text: &str) -> Vec<Option<String>> {
    let lines: Vec<&str> = text.lines().collect();
    let mut out = vec![None; lines.len()];
    let mut i = 0;
    while i < lines.len() {
        if lines[i].trim() == "#[cfg(test)]" {
            // Skip the attribute and the item after it: a balanced `{...}` block or up to `;`.
            let (mut depth, mut started, mut j) = (0i32, false, i + 1);
            while j < lines.len() {
                let l = lines[j];
                depth += l.matches('{').count() as i32 - l.matches('}').count() as i32;
                started |= l.contains('{');
                if (started && depth <= 0) || (!started && l.trim_end().ends_with(';')) {
                    break;
                }
                j += 1;
            }
            i = j + 1;
            continue;
        }
        out[i] = Some(strip_comment_and_strings(lines[i]));
        i += 1;
    }
    out
}

/// [`production_lines`] with test lines as empty strings.
fn production_code(text: &str) -> Vec<String> {
    production_lines(text).into_iter().map(Option::unwrap_or_default).collect()
}

fn strip_comment_and_strings(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    let mut in_str = false;
    while let Some(c) = chars.next() {
        if in_str {
            match c {
                '\\' => {
                    chars.next();
                }
                '"' => in_str = false,
                _ => {}
            }
            continue;
        }
        match c {
            '"' => in_str = true,
            '/' if chars.peek() == Some(&'/') => break,
            _ => out.push(c),
        }
    }
    out
}

/// `crate::<name>` occurrences in a line of code.
fn crate_refs(line: &str) -> Vec<String> {
    let mut refs = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("crate::") {
        let before = rest[..i].chars().last();
        let after = &rest[i + "crate::".len()..];
        let name: String = after.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
        if !before.is_some_and(|c| c.is_alphanumeric() || c == '_') && !name.is_empty() {
            refs.push(name);
        }
        rest = after;
    }
    refs
}

fn top_module(src: &Path, file: &Path) -> Option<String> {
    let rel = file.strip_prefix(src).ok()?;
    let first = rel.components().next()?.as_os_str().to_str()?;
    let name = first.trim_end_matches(".rs");
    (name != "lib" && name != "main").then(|| name.to_owned())
}

#[test]
fn imports_follow_the_layer_graph() {
    let src = root().join("src");
    let allowed: BTreeMap<&str, BTreeSet<&str>> =
        ALLOWED.iter().map(|(m, deps)| (*m, deps.iter().copied().collect())).collect();
    let mut violations = Vec::new();
    let mut seen_modules = BTreeSet::new();
    for file in rust_files(&src) {
        let Some(module) = top_module(&src, &file) else { continue };
        seen_modules.insert(module.clone());
        let Some(ok) = allowed.get(module.as_str()) else {
            violations.push(format!("{}: module `{module}` is not in the layer graph", file.display()));
            continue;
        };
        let text = std::fs::read_to_string(&file).unwrap();
        for (n, line) in production_code(&text).iter().enumerate() {
            for target in crate_refs(line) {
                if target != module && !ok.contains(target.as_str()) {
                    violations.push(format!(
                        "{}:{}: `{module}` may not import `crate::{target}`",
                        file.strip_prefix(root()).unwrap().display(),
                        n + 1
                    ));
                }
            }
        }
    }
    assert!(violations.is_empty(), "imports against the layer graph:\n{}", violations.join("\n"));
    // Every module of the graph exists (a rename must update the graph, not escape it).
    for (m, _) in ALLOWED {
        assert!(seen_modules.contains(*m), "module `{m}` of the graph has no files");
    }
}

/// Resolves `crate::a::b::Item` / `super::x` / `self::x` paths of one file to the files they
/// name, within one crate's `src`.
fn file_edges(src: &Path, file: &Path, code: &[String], files: &BTreeSet<PathBuf>) -> BTreeSet<PathBuf> {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut me: Vec<String> =
        rel.components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
    let is_mod_file = matches!(me.last().map(String::as_str), Some("mod" | "lib" | "main"));
    if is_mod_file {
        me.pop();
    }
    let module_file = |parts: &[String]| -> Option<PathBuf> {
        for n in (1..=parts.len()).rev() {
            let base = src.join(parts[..n].join("/"));
            for cand in [base.with_extension("rs"), base.join("mod.rs")] {
                if files.contains(&cand) {
                    return Some(cand);
                }
            }
        }
        None
    };
    let mut out = BTreeSet::new();
    for line in code {
        for (kw, start) in [("crate::", 0usize), ("super::", 1), ("self::", 2)] {
            let mut rest = line.as_str();
            while let Some(i) = rest.find(kw) {
                let before = rest[..i].chars().last();
                let after = &rest[i + kw.len()..];
                rest = after;
                if before.is_some_and(|c| c.is_alphanumeric() || c == '_' || c == ':') {
                    continue;
                }
                let path: Vec<String> = after
                    .split("::")
                    .map(|s| s.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect::<String>())
                    .take_while(|s| !s.is_empty())
                    .collect();
                let mut base: Vec<String> = match start {
                    0 => Vec::new(),
                    1 => me[..me.len().saturating_sub(1)].to_vec(),
                    _ => me.clone(),
                };
                base.extend(path);
                if let Some(target) = module_file(&base) {
                    if target != file {
                        out.insert(target);
                    }
                }
            }
        }
    }
    out
}

/// Files of `src` below `dir` that take part in an import cycle among themselves.
fn cycles(src: &Path, dir: &Path) -> Vec<Vec<String>> {
    let all: BTreeSet<PathBuf> = rust_files(src).into_iter().collect();
    let mine: Vec<PathBuf> = all.iter().filter(|f| f.starts_with(dir)).cloned().collect();
    let mut graph: BTreeMap<PathBuf, BTreeSet<PathBuf>> = BTreeMap::new();
    for f in &mine {
        let code = production_code(&std::fs::read_to_string(f).unwrap());
        let edges = file_edges(src, f, &code, &all).into_iter().filter(|t| t.starts_with(dir)).collect();
        graph.insert(f.clone(), edges);
    }
    // A file is on a cycle when it can reach itself; group files by the set they reach.
    let reach = |from: &PathBuf| -> BTreeSet<PathBuf> {
        let mut seen = BTreeSet::new();
        let mut stack: Vec<PathBuf> = graph[from].iter().cloned().collect();
        while let Some(n) = stack.pop() {
            if seen.insert(n.clone()) {
                stack.extend(graph.get(&n).into_iter().flatten().cloned());
            }
        }
        seen
    };
    let mut groups: BTreeSet<Vec<String>> = BTreeSet::new();
    for f in &mine {
        let r = reach(f);
        if r.contains(f) {
            let mut group: Vec<String> = r
                .iter()
                .filter(|g| reach(g).contains(f))
                .map(|g| g.strip_prefix(src).unwrap().display().to_string())
                .collect();
            group.sort();
            groups.insert(group);
        }
    }
    groups.into_iter().collect()
}

#[test]
fn http_files_and_the_barrier_import_without_cycles() {
    let src = root().join("src");
    let http = cycles(&src, &src.join("http"));
    assert!(http.is_empty(), "import cycles among src/http files: {http:?}");
    let storage = root().join("storage/src");
    let store = cycles(&storage, &storage);
    assert!(store.is_empty(), "import cycles among storage/src files: {store:?}");
}

#[test]
fn production_files_stay_small() {
    let mut big = Vec::new();
    for dir in ["src", "storage/src", "raft/src"] {
        for file in rust_files(&root().join(dir)) {
            let text = std::fs::read_to_string(&file).unwrap();
            let n = production_lines(&text).iter().filter(|l| l.is_some()).count();
            if n > MAX_PRODUCTION_LINES {
                big.push(format!("{} ({n} lines)", file.strip_prefix(root()).unwrap().display()));
            }
        }
    }
    assert!(big.is_empty(), "production files over {MAX_PRODUCTION_LINES} lines: {big:?}");
}

#[test]
fn the_checker_sees_what_it_must() {
    // The checks above must be able to fail: a forbidden import, test code and comments.
    let code = production_code(
        "use crate::http::x;\n// use crate::cli::y;\nlet s = \"crate::cli\";\n#[cfg(test)]\nmod tests {\n    use crate::cli::z;\n}\nuse crate::core::w;\n",
    );
    let refs: Vec<String> = code.iter().flat_map(|l| crate_refs(l)).collect();
    assert_eq!(refs, vec!["http".to_owned(), "core".to_owned()]);
}
