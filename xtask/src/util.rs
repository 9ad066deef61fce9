//! Small shared helpers: workspace paths, running commands, reading file tails.

use std::path::{Path, PathBuf};
use std::process::Command;

/// Paths of the cargo workspace xtask belongs to.
pub struct Workspace {
    /// The workspace root (the directory holding the top-level `Cargo.toml`).
    pub root: PathBuf,
}

impl Workspace {
    /// The workspace root is the parent of this crate's manifest directory.
    pub fn locate() -> Workspace {
        let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
        let root = manifest.parent().map(Path::to_path_buf).unwrap_or(manifest);
        Workspace { root }
    }

    /// `target/`.
    pub fn target_dir(&self) -> PathBuf {
        match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => self.root.join(dir),
            None => self.root.join("target"),
        }
    }

    /// `target/hauki/`: every artifact and log xtask produces.
    pub fn hauki_dir(&self) -> PathBuf {
        self.target_dir().join("hauki")
    }

    /// `path` relative to the workspace root when it is inside it (for messages).
    pub fn rel(&self, path: &Path) -> String {
        path.strip_prefix(&self.root).unwrap_or(path).display().to_string()
    }
}

/// The `cargo` that runs us (so the pinned toolchain is used), or `cargo` from `PATH`.
pub fn cargo() -> Command {
    Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()))
}

/// Run `cmd` with inherited stdio; an error says which command failed.
pub fn run_status(cmd: &mut Command) -> Result<(), String> {
    let status = cmd.status().map_err(|e| format!("cannot start {}: {e}", show(cmd)))?;
    if status.success() { Ok(()) } else { Err(format!("`{}` failed ({status})", show(cmd))) }
}

/// A command line as a user would type it (for messages).
pub fn show(cmd: &Command) -> String {
    let mut s = cmd.get_program().to_string_lossy().into_owned();
    for a in cmd.get_args() {
        s.push(' ');
        s.push_str(&shell_quote(&a.to_string_lossy()));
    }
    s
}

/// Quote `s` for a POSIX shell when needed.
pub fn shell_quote(s: &str) -> String {
    let plain = !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || "-_./=:,+@%".contains(c));
    if plain { s.to_string() } else { format!("'{}'", s.replace('\'', "'\\''")) }
}

/// Is `name` an executable in `PATH` (or an existing path)?
/// The paths in folder `dir`, sorted (a reproducible order for archives and hashes).
pub fn sorted_entries(dir: &Path) -> Result<Vec<PathBuf>, String> {
    let mut entries: Vec<PathBuf> = std::fs::read_dir(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .collect();
    entries.sort();
    Ok(entries)
}

pub fn find_program(name: &str) -> Option<PathBuf> {
    if name.contains('/') {
        return Path::new(name).is_file().then(|| PathBuf::from(name));
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain(["/usr/sbin", "/sbin"].map(PathBuf::from))
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// The last `n` lines of `text`.
pub fn last_lines(text: &str, n: usize) -> Vec<&str> {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..].to_vec()
}

/// Print the last `n` lines of the file at `path`, indented, under a header naming it.
pub fn print_tail(label: &str, path: &Path, n: usize) {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            println!("    --- {label}: {} (last {n} lines) ---", path.display());
            let tail = last_lines(&text, n);
            if tail.is_empty() {
                println!("    (empty)");
            }
            for l in tail {
                println!("    | {}", strip_ansi(l.trim_end_matches('\r')));
            }
        }
        Err(e) => println!("    --- {label}: {} (unreadable: {e}) ---", path.display()),
    }
}

/// `s` without ANSI escape sequences (GRUB's menu drawing on the serial console) and other control
/// characters, for readable log tails.
pub fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            if chars.peek() == Some(&'[') {
                chars.next();
                // CSI: parameters and intermediates, then one final byte in '@'..='~'.
                for d in chars.by_ref() {
                    if ('@'..='~').contains(&d) {
                        break;
                    }
                }
            } else {
                chars.next();
            }
        } else if !c.is_control() || c == '\t' || c == '\n' {
            out.push(c);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quoting() {
        assert_eq!(shell_quote("-cpu"), "-cpu");
        assert_eq!(shell_quote("hauki.debug_exit=1 x"), "'hauki.debug_exit=1 x'");
        assert_eq!(shell_quote("it's"), "'it'\\''s'");
        assert_eq!(shell_quote(""), "''");
    }

    #[test]
    fn ansi() {
        assert_eq!(strip_ansi("\x1b[H\x1b[J\x1b[1;1H  Booting `Hauki'\x1b[?25h"), "  Booting `Hauki'");
        assert_eq!(strip_ansi("plain {\"a\":1}"), "plain {\"a\":1}");
        assert_eq!(strip_ansi("a\x07b\x1b7c"), "abc");
        assert_eq!(strip_ansi("line 1\r\nline 2"), "line 1\nline 2");
    }

    #[test]
    fn tails() {
        assert_eq!(last_lines("a\nb\nc\n", 2), vec!["b", "c"]);
        assert_eq!(last_lines("a", 5), vec!["a"]);
        assert!(last_lines("", 3).is_empty());
    }
}
