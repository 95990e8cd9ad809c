//! The import graph of `replication/src` runs one way: no module cycles, and no module
//! imports from a layer above its own. Layers, bottom to top: types, store, partition,
//! raft, node, api. Edges are read from `use crate::...` trees, `crate::x::` paths,
//! `super::` paths and a parent's `child::` paths outside `#[cfg(test)] mod` blocks; `lib.rs` (the crate root, which only
//! declares and re-exports) is not a node. Run: `cargo test -p phxq-replication --test layering`
//! (`-- --nocapture` prints the graph).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;

const LAYERS: [&str; 6] = ["types", "store", "partition", "raft", "node", "api"];

fn rank(module: &str) -> usize {
    let top = module.split("::").next().unwrap_or(module);
    LAYERS
        .iter()
        .position(|l| *l == top)
        .unwrap_or_else(|| panic!("module {module} is in no layer; add it to LAYERS"))
}

/// Module path of a source file: `raft/snapshot/mod.rs` -> `raft::snapshot`.
fn module_of(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap().with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().map(String::as_str) == Some("mod") {
        parts.pop();
    }
    parts.join("::")
}

fn sources(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for e in std::fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// The text without comments, string literals and `#[cfg(test)] mod` blocks.
fn strip(text: &str) -> String {
    let b = text.as_bytes();
    let mut out = String::with_capacity(text.len());
    let mut i = 0;
    while i < b.len() {
        if b[i..].starts_with(b"//") {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i..].starts_with(b"/*") {
            i += 2;
            while i < b.len() && !b[i..].starts_with(b"*/") {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
            out.push_str("\"\"");
        } else if b[i] == b'\'' && i + 2 < b.len() && (b[i + 2] == b'\'' || b[i + 1] == b'\\') {
            // A char literal ('x' or '\n'); lifetimes ('a) are left alone.
            i += 1;
            while i < b.len() && b[i] != b'\'' {
                i += if b[i] == b'\\' { 2 } else { 1 };
            }
            i += 1;
        } else {
            let c = text[i..].chars().next().unwrap();
            out.push(c);
            i += c.len_utf8();
        }
    }
    // Drop `#[cfg(test)] mod name { ... }` blocks.
    let mut res = String::with_capacity(out.len());
    let mut rest = out.as_str();
    while let Some(at) = rest.find("#[cfg(test)]") {
        let after = rest[at + "#[cfg(test)]".len()..].trim_start();
        let is_mod = after.starts_with("mod ") && {
            let name_end = after[4..].find(|c: char| !(c.is_alphanumeric() || c == '_'));
            name_end.is_some_and(|n| after[4 + n..].trim_start().starts_with('{'))
        };
        if !is_mod {
            res.push_str(&rest[..at + "#[cfg(test)]".len()]);
            rest = &rest[at + "#[cfg(test)]".len()..];
            continue;
        }
        res.push_str(&rest[..at]);
        let open = at + rest[at..].find('{').unwrap();
        let mut depth = 0;
        let mut end = rest.len();
        for (j, c) in rest[open..].char_indices() {
            match c {
                '{' => depth += 1,
                '}' => {
                    depth -= 1;
                    if depth == 0 {
                        end = open + j + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = &rest[end..];
    }
    res.push_str(rest);
    res
}

fn is_ident(c: char) -> bool {
    c.is_alphanumeric() || c == '_'
}

/// A path like `a::b::{c, d::e}` read up to where it stops: segments before any brace.
fn path_at(s: &str) -> Vec<String> {
    let mut segs = Vec::new();
    let mut rest = s;
    loop {
        let n = rest.find(|c: char| !is_ident(c)).unwrap_or(rest.len());
        if n == 0 {
            break;
        }
        segs.push(rest[..n].to_string());
        rest = &rest[n..];
        let trimmed = rest.trim_start();
        if let Some(r) = trimmed.strip_prefix("::") {
            rest = r.trim_start();
        } else {
            break;
        }
    }
    segs
}

/// Splits `a, b::{c, d}` at top-level commas.
fn split_top(s: &str) -> Vec<&str> {
    let (mut depth, mut start, mut out) = (0, 0, Vec::new());
    for (i, c) in s.char_indices() {
        match c {
            '{' => depth += 1,
            '}' => depth -= 1,
            ',' if depth == 0 => {
                out.push(&s[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&s[start..]);
    out
}

/// Every full path of a use tree: `a::{b, c::{d}}` -> `a::b`, `a::c::d`.
fn expand(prefix: &str, tree: &str, out: &mut Vec<String>) {
    let tree: String = tree.chars().filter(|c| !c.is_whitespace()).collect();
    match tree.find('{') {
        None => out.push(format!("{prefix}{tree}")),
        Some(b) => {
            let head = &tree[..b];
            let inner = &tree[b + 1..tree.len() - 1];
            for item in split_top(inner) {
                if !item.is_empty() {
                    expand(&format!("{prefix}{head}"), item, out);
                }
            }
        }
    }
}

fn edges(text: &str, me: &str, modules: &BTreeSet<String>) -> BTreeSet<String> {
    let mut found = BTreeSet::new();
    let mut add = |segs: &[String]| {
        for n in (1..=segs.len()).rev() {
            let c = segs[..n].join("::");
            if modules.contains(&c) {
                if c != me {
                    found.insert(c);
                }
                return;
            }
        }
    };
    let boundary = |at: usize| at == 0 || !text[..at].ends_with(|c: char| is_ident(c) || c == ':');
    // `use crate::<tree>;`
    let mut from = 0;
    while let Some(i) = text[from..].find("use crate::") {
        let at = from + i;
        from = at + 1;
        if !boundary(at) {
            continue;
        }
        let body_start = at + "use crate::".len();
        let end = body_start + text[body_start..].find(';').unwrap_or(0);
        let mut paths = Vec::new();
        expand("", &text[body_start..end], &mut paths);
        for p in paths {
            let segs: Vec<String> = p.split("::").map(str::to_string).collect();
            add(&segs);
        }
    }
    // `crate::a::b` anywhere.
    for (at, _) in text.match_indices("crate::") {
        if boundary(at) {
            add(&path_at(&text[at + "crate::".len()..]));
        }
    }
    // `child::x` from a parent module (`mod child;` in it).
    let prefix = if me.is_empty() {
        String::new()
    } else {
        format!("{me}::")
    };
    for m in modules {
        let Some(child) = m.strip_prefix(&prefix) else {
            continue;
        };
        if child.contains("::") {
            continue;
        }
        for (at, _) in text.match_indices(&format!("{child}::")) {
            if boundary(at) {
                add(&m.split("::").map(str::to_string).collect::<Vec<_>>());
            }
        }
    }
    // `super::a::b`, relative to the parent module.
    let parent: Vec<String> = match me.rsplit_once("::") {
        Some((p, _)) => p.split("::").map(str::to_string).collect(),
        None => Vec::new(),
    };
    for (at, _) in text.match_indices("super::") {
        if boundary(at) {
            let mut segs = parent.clone();
            segs.extend(path_at(&text[at + "super::".len()..]));
            add(&segs);
        }
    }
    found
}

/// Strongly connected components (Tarjan) with more than one module.
fn cycles(g: &BTreeMap<String, BTreeSet<String>>) -> Vec<Vec<String>> {
    struct T<'a> {
        g: &'a BTreeMap<String, BTreeSet<String>>,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        on: BTreeSet<&'a str>,
        out: Vec<Vec<String>>,
    }
    fn visit<'a>(t: &mut T<'a>, v: &'a str) {
        let n = t.index.len();
        t.index.insert(v, n);
        t.low.insert(v, n);
        t.stack.push(v);
        t.on.insert(v);
        for w in &t.g[v] {
            let w = w.as_str();
            if !t.index.contains_key(w) {
                visit(t, w);
                let lw = t.low[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(lw);
            } else if t.on.contains(w) {
                let iw = t.index[w];
                let lv = t.low.get_mut(v).unwrap();
                *lv = (*lv).min(iw);
            }
        }
        if t.low[v] == t.index[v] {
            let mut c = Vec::new();
            loop {
                let w = t.stack.pop().unwrap();
                t.on.remove(w);
                c.push(w.to_string());
                if w == v {
                    break;
                }
            }
            if c.len() > 1 {
                c.sort();
                t.out.push(c);
            }
        }
    }
    let mut t = T {
        g,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        on: BTreeSet::new(),
        out: Vec::new(),
    };
    for v in g.keys() {
        if !t.index.contains_key(v.as_str()) {
            visit(&mut t, v);
        }
    }
    t.out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    let texts: BTreeMap<String, String> = files
        .iter()
        .map(|f| (module_of(&src, f), std::fs::read_to_string(f).unwrap()))
        .filter(|(m, _)| m != "lib" && m != "main")
        .collect();
    let modules: BTreeSet<String> = texts.keys().cloned().collect();
    texts
        .iter()
        .map(|(m, t)| (m.clone(), edges(&strip(t), m, &modules)))
        .collect()
}

#[test]
fn imports_have_no_cycles_and_point_down() {
    let g = graph();
    for (m, to) in &g {
        let to: Vec<&str> = to.iter().map(String::as_str).collect();
        println!(
            "{m:28} -> {}",
            if to.is_empty() {
                "-".into()
            } else {
                to.join(", ")
            }
        );
    }
    assert!(g.len() > 10, "found only {} modules", g.len());
    let cycles = cycles(&g);
    assert!(cycles.is_empty(), "import cycles: {cycles:?}");
    let mut upward = Vec::new();
    for (m, to) in &g {
        for t in to {
            if rank(t) > rank(m) {
                upward.push(format!("{m} -> {t}"));
            }
        }
    }
    assert!(upward.is_empty(), "imports from a higher layer: {upward:?}");
}

#[test]
fn the_checker_sees_cycles_and_layers() {
    let modules: BTreeSet<String> = ["store::a", "store::b", "raft", "raft::x"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    let a = edges(
        &strip("use crate::store::b::{X, Y};\n// use crate::raft::x;\n"),
        "store::a",
        &modules,
    );
    assert_eq!(a, BTreeSet::from(["store::b".to_string()]));
    let b = edges(
        &strip("fn f() { super::a::g(); crate::raft::Raft::new(); }"),
        "store::b",
        &modules,
    );
    assert_eq!(
        b,
        BTreeSet::from(["store::a".to_string(), "raft".to_string()])
    );
    let t = edges(
        &strip("#[cfg(test)]\nmod tests {\n use crate::raft::x::Z;\n}\n"),
        "store::a",
        &modules,
    );
    assert!(t.is_empty());
    let g: BTreeMap<String, BTreeSet<String>> = [("store::a", a), ("store::b", b)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .chain([
            ("raft".to_string(), BTreeSet::new()),
            ("raft::x".to_string(), BTreeSet::new()),
        ])
        .collect();
    assert_eq!(
        cycles(&g),
        vec![vec!["store::a".to_string(), "store::b".to_string()]]
    );
    assert!(rank("raft::x") > rank("store::a"));
}
