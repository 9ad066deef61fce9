//! The fuzz targets on the stable toolchain, deterministically: every target over its committed
//! seed corpus (`fuzz/corpus/<target>/`) and a few thousand pseudo-random mutations of it.
//! `cargo xtask test` runs this (step `fuzz-smoke`); `cargo xtask fuzz` runs the same targets
//! coverage-guided under libFuzzer. A failing input is written to `target/hauki/fuzz-smoke/` and
//! shown in hex; `cargo xtask fuzz TARGET --input FILE` replays it.
//!
//! `HAUKI_FUZZ_SMOKE_MUTATIONS` sets the mutations per target (default 3000).
#![cfg(feature = "fuzz")]

use std::fmt::Write as _;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};

use cokernel::fuzz::{TARGETS, Target, seeds};

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The committed corpus of `target`, in file-name order.
fn corpus(target: &str) -> Vec<(String, Vec<u8>)> {
    let dir = repo().join("fuzz/corpus").join(target);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .filter_map(|e| e.ok())
        .filter(|e| e.path().is_file())
        .map(|e| (e.file_name().to_string_lossy().into_owned(), std::fs::read(e.path()).unwrap()))
        .collect();
    files.sort();
    files
}

/// xorshift64*: the same mutations on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        if n == 0 { 0 } else { (self.next() % n as u64) as usize }
    }
}

/// Values parsers tend to compare against.
const INTERESTING: [u64; 12] = [
    0,
    1,
    0x7f,
    0x80,
    0xff,
    0xffff,
    0x8000_0000,
    0xffff_ffff,
    0x1_0000_0000,
    0x8000_0000_0000_0000,
    0xffff_ffff_8000_0000,
    u64::MAX,
];

/// One to four random edits of `input` (bits, bytes, interesting integers, inserts, deletions,
/// truncation, copies within, and splices with `other`).
fn mutate(rng: &mut Rng, input: &[u8], other: &[u8]) -> Vec<u8> {
    let mut v = input.to_vec();
    for _ in 0..1 + rng.below(4) {
        let at = rng.below(v.len().max(1));
        match rng.below(9) {
            0 if !v.is_empty() => v[at] ^= 1 << rng.below(8),
            1 if !v.is_empty() => v[at] = rng.next() as u8,
            2 | 3 => {
                let width = [1, 2, 4, 8][rng.below(4)];
                let x = INTERESTING[rng.below(INTERESTING.len())].wrapping_add(rng.below(3) as u64).wrapping_sub(1);
                for (i, b) in x.to_le_bytes()[..width].iter().enumerate() {
                    if let Some(slot) = v.get_mut(at + i) {
                        *slot = *b;
                    }
                }
            }
            4 => {
                let n = 1 + rng.below(16);
                let bytes: Vec<u8> = (0..n).map(|_| rng.next() as u8).collect();
                v.splice(at.min(v.len())..at.min(v.len()), bytes);
            }
            5 if !v.is_empty() => {
                let end = (at + 1 + rng.below(64)).min(v.len());
                v.drain(at..end);
            }
            6 => v.truncate(rng.below(v.len() + 1)),
            7 if !v.is_empty() => {
                let from = rng.below(v.len());
                let n = (1 + rng.below(64)).min(v.len() - from);
                let chunk = v[from..from + n].to_vec();
                v.splice(at.min(v.len())..at.min(v.len()), chunk);
            }
            _ if !other.is_empty() => {
                let cut = rng.below(other.len());
                v.truncate(at);
                v.extend_from_slice(&other[cut..]);
            }
            _ => {}
        }
    }
    v
}

fn hex(b: &[u8]) -> String {
    let mut s = String::new();
    for (i, x) in b.iter().take(256).enumerate() {
        let _ = write!(s, "{x:02x}{}", if i % 32 == 31 { "\n" } else { "" });
    }
    if b.len() > 256 {
        let _ = write!(s, "… ({} bytes)", b.len());
    }
    s
}

/// Runs `t` on its corpus and `mutations` mutants; returns the number of inputs run, or the
/// first failing input's description.
fn smoke(t: &Target, mutations: usize) -> Result<usize, String> {
    let corpus = corpus(t.name);
    if corpus.is_empty() {
        return Err(format!("{}: no seed corpus in fuzz/corpus/{}", t.name, t.name));
    }
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15 ^ t.name.bytes().fold(0, |h, b| h * 31 + u64::from(b)));
    let fail = |what: &str, input: &[u8]| {
        let dir = repo().join("target/hauki/fuzz-smoke");
        let _ = std::fs::create_dir_all(&dir);
        let file = dir.join(format!("{}-{what}", t.name));
        let _ = std::fs::write(&file, input);
        format!(
            "{} panicked on {what} ({} bytes), kept in {}; replay: cargo xtask fuzz {} --input {}\n{}",
            t.name,
            input.len(),
            file.display(),
            t.name,
            file.display(),
            hex(input)
        )
    };
    for (name, bytes) in &corpus {
        catch_unwind(AssertUnwindSafe(|| (t.run)(bytes))).map_err(|_| fail(&format!("seed-{name}"), bytes))?;
    }
    for i in 0..mutations {
        let base = &corpus[rng.below(corpus.len())].1;
        let other = &corpus[rng.below(corpus.len())].1;
        let input = mutate(&mut rng, base, other);
        catch_unwind(AssertUnwindSafe(|| (t.run)(&input))).map_err(|_| fail(&format!("mutation-{i}"), &input))?;
    }
    Ok(corpus.len() + mutations)
}

#[test]
fn every_target_survives_its_corpus_and_mutations() {
    let mutations = std::env::var("HAUKI_FUZZ_SMOKE_MUTATIONS").ok().and_then(|v| v.parse().ok()).unwrap_or(3000);
    let results: Vec<(&str, Result<usize, String>, std::time::Duration)> = std::thread::scope(|s| {
        let runs: Vec<_> = TARGETS
            .iter()
            .map(|t| {
                s.spawn(move || {
                    let start = std::time::Instant::now();
                    (t.name, smoke(t, mutations), start.elapsed())
                })
            })
            .collect();
        runs.into_iter().map(|h| h.join().unwrap()).collect()
    });
    let mut failures = Vec::new();
    for (name, r, took) in results {
        match r {
            Ok(n) => println!("fuzz-smoke {name}: {n} inputs in {:.1} s, no finding", took.as_secs_f64()),
            Err(e) => failures.push(e),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// `fuzz/corpus/` holds what `cokernel::fuzz::seeds` makes (extra files are allowed: inputs
/// libFuzzer found and someone chose to keep).
#[test]
fn committed_seeds_are_current() {
    for s in seeds() {
        let path = repo().join("fuzz/corpus").join(s.target).join(s.name);
        let ok = std::fs::read(&path).is_ok_and(|b| b == s.bytes);
        assert!(
            ok,
            "{} is missing or stale: run `cargo run -p cokernel --features fuzz --example fuzz_seeds` and commit fuzz/corpus",
            path.display()
        );
    }
    for t in TARGETS {
        assert!(
            repo().join("fuzz/fuzz_targets").join(format!("{}.rs", t.name)).is_file(),
            "no fuzz/fuzz_targets/{}.rs",
            t.name
        );
    }
}
