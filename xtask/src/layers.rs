//! The co-kernel's layering, checked from its source: every module is placed in a layer, every
//! `crate::…` and `super::…` path a module names is an edge, and an edge may only point to the
//! same layer or a lower one. Modules of one layer must not form a cycle (a parent module and its
//! own children count as one unit). `cargo xtask layers` prints the graph (`--dot` for Graphviz);
//! `cargo xtask test` runs the check as the host step `layers`.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// The layers, lowest first. A module belongs to the first layer whose prefix matches it.
const LAYERS: &[(&str, &[&str])] = &[
    (
        "pure",
        &[
            "bootinfo",
            "cmdline",
            "mm",
            "phase",
            "rt",
            "telemetry",
            "guest::bootparams",
            "guest::calls",
            "guest::elf",
            "guest::lines",
            "guest::modules",
            "guest::ring",
            "guest::watchdog",
        ],
    ),
    ("arch", &["arch"]),
    ("guest", &["guest"]),
    ("kernel", &["kernel"]),
    ("tasks", &["tasks", "app"]),
    ("kmain", &["kmain"]),
];

/// Test code sits above everything and may use any layer; the crate root only declares modules.
const EXEMPT: &[&str] = &["ktest", "fuzz", ""];

/// One module of the crate: its path (`guest::vcpu`) and the file that holds it.
struct Module {
    path: String,
    file: PathBuf,
}

fn modules(src: &Path) -> Result<Vec<Module>, String> {
    let mut out = Vec::new();
    let mut stack = vec![src.to_path_buf()];
    while let Some(dir) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| format!("cannot list {}: {e}", dir.display()))?;
        for e in entries {
            let p = e.map_err(|e| e.to_string())?.path();
            if p.is_dir() {
                stack.push(p);
                continue;
            }
            if p.extension().is_none_or(|x| x != "rs") {
                continue;
            }
            let rel = p.strip_prefix(src).map_err(|e| e.to_string())?;
            let mut parts: Vec<String> =
                rel.with_extension("").components().map(|c| c.as_os_str().to_string_lossy().into_owned()).collect();
            if parts.last().is_some_and(|l| l == "mod") {
                parts.pop();
            }
            if parts == ["lib"] || parts == ["main"] {
                parts.clear();
            }
            // The x86_64 directory is re-exported as `arch` itself.
            if parts.len() >= 2 && parts[0] == "arch" && parts[1] == "x86_64" {
                parts.remove(1);
            }
            out.push(Module { path: parts.join("::"), file: p });
        }
    }
    out.sort_by(|a, b| a.path.cmp(&b.path));
    Ok(out)
}

/// The layer index of a module path, or None for exempt modules.
fn layer_of(path: &str) -> Option<usize> {
    if EXEMPT.iter().any(|e| path == *e || (!e.is_empty() && path.starts_with(&format!("{e}::")))) {
        return None;
    }
    LAYERS.iter().position(|(_, prefixes)| prefixes.iter().any(|p| path == *p || path.starts_with(&format!("{p}::"))))
}

/// Strips comments (line comments, doc comments, block comments) and string literals, so a path
/// in prose or a message is not an edge.
fn code_only(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let b = text.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'/' && b.get(i + 1) == Some(&b'/') {
            while i < b.len() && b[i] != b'\n' {
                i += 1;
            }
        } else if b[i] == b'/' && b.get(i + 1) == Some(&b'*') {
            i += 2;
            while i + 1 < b.len() && !(b[i] == b'*' && b[i + 1] == b'/') {
                i += 1;
            }
            i += 2;
        } else if b[i] == b'"' {
            i += 1;
            while i < b.len() && b[i] != b'"' {
                if b[i] == b'\\' {
                    i += 1;
                }
                i += 1;
            }
            i += 1;
            out.push_str("\"\"");
        } else {
            out.push(b[i] as char);
            i += 1;
        }
    }
    out
}

fn ident_at(s: &str) -> &str {
    let end = s.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_')).unwrap_or(s.len());
    &s[..end]
}

/// The module paths `code` names from module `me`: `crate::a::b…` and `super::…` (also inside
/// `use crate::a::{b, c}` groups, which name `a::b` and `a::c`).
fn references(me: &str, code: &str, known: &BTreeSet<String>) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let me_parts: Vec<&str> = if me.is_empty() { vec![] } else { me.split("::").collect() };
    // `super` is the parent module, whether `me` is a file or a directory's `mod.rs`.
    let parent: Vec<&str> = me_parts.split_last().map(|(_, p)| p.to_vec()).unwrap_or_default();
    for (prefix, base) in [("crate::", Vec::<&str>::new()), ("super::", parent)] {
        let mut rest = code;
        while let Some(at) = rest.find(prefix) {
            let ok_before = at == 0 || {
                let c = rest.as_bytes()[at - 1] as char;
                !(c.is_ascii_alphanumeric() || c == '_' || c == ':')
            };
            let tail = &rest[at + prefix.len()..];
            rest = tail;
            if !ok_before {
                continue;
            }
            let mut parts: Vec<String> = base.iter().map(|s| s.to_string()).collect();
            let mut t = tail;
            let mut expanded = false;
            // Follow `a::b::c` as far as it names known modules; expand one `{…}` group.
            loop {
                if let Some(group) = t.strip_prefix('{') {
                    let end = group.find('}').unwrap_or(group.len());
                    for item in group[..end].split(',') {
                        let item = item.trim();
                        let name = ident_at(item);
                        if name == "self" {
                            continue;
                        }
                        let mut p = parts.clone();
                        p.push(name.to_string());
                        let path = p.join("::");
                        if known.contains(&path) {
                            out.insert(path);
                            expanded = true;
                        }
                    }
                    break;
                }
                let name = ident_at(t);
                if name.is_empty() {
                    break;
                }
                let mut p = parts.clone();
                p.push(name.to_string());
                if !known.contains(&p.join("::")) {
                    break;
                }
                parts = p;
                t = &t[name.len()..];
                match t.strip_prefix("::") {
                    Some(n) => t = n,
                    None => break,
                }
            }
            let path = parts.join("::");
            if !expanded && !parts.is_empty() && known.contains(&path) {
                out.insert(path);
            }
        }
    }
    out.remove(me);
    out
}

/// The module graph: module → the modules it names.
pub struct Graph {
    edges: BTreeMap<String, BTreeSet<String>>,
}

pub fn graph(root: &Path) -> Result<Graph, String> {
    let src = root.join("cokernel/src");
    let mods = modules(&src)?;
    let known: BTreeSet<String> = mods.iter().map(|m| m.path.clone()).collect();
    let mut edges = BTreeMap::new();
    for m in &mods {
        let text = std::fs::read_to_string(&m.file).map_err(|e| format!("cannot read {}: {e}", m.file.display()))?;
        edges.insert(m.path.clone(), references(&m.path, &code_only(&text), &known));
    }
    Ok(Graph { edges })
}

fn related(a: &str, b: &str) -> bool {
    a.is_empty() || b.is_empty() || a.starts_with(&format!("{b}::")) || b.starts_with(&format!("{a}::"))
}

impl Graph {
    /// Edges that point to a higher layer.
    pub fn upward(&self) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (from, tos) in &self.edges {
            let Some(lf) = layer_of(from) else { continue };
            for to in tos.iter().filter(|t| !related(from, t)) {
                if layer_of(to).is_some_and(|lt| lt > lf) {
                    out.push((from.clone(), to.clone()));
                }
            }
        }
        out
    }

    /// Cycles between modules (strongly connected components of more than one module), ignoring
    /// edges between a module and its own ancestors, and test code.
    pub fn cycles(&self) -> Vec<Vec<String>> {
        let nodes: Vec<&String> = self.edges.keys().filter(|n| layer_of(n).is_some()).collect();
        let index: BTreeMap<&str, usize> = nodes.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();
        let adj: Vec<Vec<usize>> = nodes
            .iter()
            .map(|n| {
                self.edges[*n]
                    .iter()
                    .filter(|t| !related(n, t))
                    .filter_map(|t| index.get(t.as_str()).copied())
                    .collect()
            })
            .collect();
        // Tarjan's algorithm, iteratively.
        let n = nodes.len();
        let (mut idx, mut low, mut on) = (vec![usize::MAX; n], vec![0; n], vec![false; n]);
        let (mut stack, mut next, mut sccs) = (Vec::new(), 0, Vec::new());
        for s in 0..n {
            if idx[s] != usize::MAX {
                continue;
            }
            let mut work = vec![(s, 0usize)];
            while let Some(&mut (v, ref mut i)) = work.last_mut() {
                if *i == 0 && idx[v] == usize::MAX {
                    idx[v] = next;
                    low[v] = next;
                    next += 1;
                    stack.push(v);
                    on[v] = true;
                }
                if let Some(&w) = adj[v].get(*i) {
                    *i += 1;
                    if idx[w] == usize::MAX {
                        work.push((w, 0));
                    } else if on[w] {
                        low[v] = low[v].min(idx[w]);
                    }
                    continue;
                }
                work.pop();
                if let Some(&(u, _)) = work.last() {
                    low[u] = low[u].min(low[v]);
                }
                if low[v] == idx[v] {
                    let mut scc = Vec::new();
                    while let Some(w) = stack.pop() {
                        on[w] = false;
                        scc.push(nodes[w].clone());
                        if w == v {
                            break;
                        }
                    }
                    if scc.len() > 1 {
                        scc.sort();
                        sccs.push(scc);
                    }
                }
            }
        }
        sccs
    }

    /// The graph by layer, as text (or Graphviz with `dot`).
    pub fn render(&self, dot: bool) -> String {
        let mut s = String::new();
        if dot {
            s.push_str("digraph cokernel {\n  rankdir=BT;\n  node [shape=box, fontname=monospace];\n");
            for (i, (name, _)) in LAYERS.iter().enumerate() {
                let _ = writeln!(s, "  subgraph cluster_{i} {{ label=\"{name}\";");
                for m in self.edges.keys().filter(|m| layer_of(m) == Some(i)) {
                    let _ = writeln!(s, "    \"{m}\";");
                }
                s.push_str("  }\n");
            }
            for (from, tos) in &self.edges {
                if layer_of(from).is_none() {
                    continue;
                }
                for to in tos.iter().filter(|t| !related(from, t)) {
                    let _ = writeln!(s, "  \"{from}\" -> \"{to}\";");
                }
            }
            s.push_str("}\n");
            return s;
        }
        for (i, (name, _)) in LAYERS.iter().enumerate().rev() {
            let _ = writeln!(s, "{name}:");
            for (m, tos) in self.edges.iter().filter(|(m, _)| layer_of(m) == Some(i)) {
                let uses: Vec<&str> = tos.iter().filter(|t| !related(m, t)).map(|t| t.as_str()).collect();
                let _ = writeln!(s, "  {m} -> {}", if uses.is_empty() { "(nothing)".into() } else { uses.join(", ") });
            }
        }
        s
    }
}

/// The check: no upward edge, no cycle. The error lists every violation.
pub fn check(root: &Path) -> Result<String, String> {
    let g = graph(root)?;
    let up = g.upward();
    let cycles = g.cycles();
    let modules = g.edges.keys().filter(|m| layer_of(m).is_some()).count();
    let edges: usize = g
        .edges
        .iter()
        .filter(|(m, _)| layer_of(m).is_some())
        .map(|(m, t)| t.iter().filter(|t| !related(m, t)).count())
        .sum();
    if up.is_empty() && cycles.is_empty() {
        return Ok(format!("{modules} modules, {edges} edges, {} layers: no upward edge, no cycle", LAYERS.len()));
    }
    let mut msg = String::new();
    for (f, t) in &up {
        let name = |m: &str| layer_of(m).map_or("exempt", |l| LAYERS[l].0);
        let _ = writeln!(msg, "upward edge: {f} ({}) uses {t} ({})", name(f), name(t));
    }
    for c in &cycles {
        let _ = writeln!(msg, "cycle: {}", c.join(" <-> "));
    }
    Err(msg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn known(paths: &[&str]) -> BTreeSet<String> {
        paths.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn paths_groups_and_super_are_edges_and_comments_are_not() {
        let k = known(&["arch", "arch::apic", "arch::idt", "guest", "guest::vcpu", "kernel", "kernel::sched"]);
        let code = code_only(
            "use crate::arch::{apic, idt};\n// crate::kernel::sched in a comment\nlet s = \"crate::kernel\";\nsuper::vcpu::x();",
        );
        let r = references("guest::loader", &code, &k);
        assert_eq!(r, known(&["arch::apic", "arch::idt", "guest::vcpu"]));
    }

    #[test]
    fn an_upward_edge_and_a_cycle_are_found() {
        let mut edges = BTreeMap::new();
        edges.insert("arch::timer".to_string(), known(&["guest::vcpu"]));
        edges.insert("guest::vcpu".to_string(), known(&["guest::loader"]));
        edges.insert("guest::loader".to_string(), known(&["guest::vcpu"]));
        let g = Graph { edges };
        assert_eq!(g.upward(), vec![("arch::timer".to_string(), "guest::vcpu".to_string())]);
        assert_eq!(g.cycles(), vec![vec!["guest::loader".to_string(), "guest::vcpu".to_string()]]);
    }

    #[test]
    fn the_co_kernel_is_layered() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("workspace root");
        if let Err(e) = check(root) {
            panic!("{e}");
        }
    }
}
