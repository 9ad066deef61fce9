//! A parser for KTAP version 1 (the kernel test output format) as printed by the co-kernel on COM1.
//!
//! Only the top level is interpreted; indented subtest blocks are summarized by their parent's result
//! line. Lines before `KTAP version 1` (boot log) and unknown lines are ignored.

/// One test's outcome.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// `ok`.
    Pass,
    /// `not ok` (including `# TODO`: a known failure is still a failure here).
    Fail,
    /// `# SKIP reason`.
    Skip(String),
}

/// One top-level result line.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TestResult {
    /// The test number.
    pub number: u32,
    /// The test's name (directive removed).
    pub name: String,
    /// Its outcome.
    pub outcome: Outcome,
    /// `#` diagnostic lines printed before this result (since the previous one).
    pub diagnostics: Vec<String>,
}

/// A parsed KTAP document.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Report {
    /// `KTAP version N` was seen, with this N.
    pub version: Option<u32>,
    /// The plan `1..N`.
    pub plan: Option<u32>,
    /// Top-level results in order.
    pub results: Vec<TestResult>,
    /// `Bail out!` reason, if any.
    pub bail_out: Option<String>,
    /// Problems with the document itself (numbering, plan, version).
    pub problems: Vec<String>,
}

impl Report {
    /// Is the document well formed and complete: version 1, a plan matching the results, numbered
    /// 1..=N, no bail-out? (Says nothing about individual failures.)
    pub fn complete(&self) -> Result<(), String> {
        let mut p = self.problems.clone();
        match self.version {
            None => p.push("no `KTAP version 1` line".into()),
            Some(1) => {}
            Some(v) => p.push(format!("KTAP version {v}, expected 1")),
        }
        match self.plan {
            None => p.push("no plan line `1..N`".into()),
            Some(n) if n as usize != self.results.len() => {
                p.push(format!("plan says {n} tests but {} results were printed", self.results.len()))
            }
            Some(_) => {}
        }
        if let Some(r) = &self.bail_out {
            p.push(format!("Bail out! {r}"));
        }
        if p.is_empty() { Ok(()) } else { Err(p.join("; ")) }
    }

    /// Results that failed.
    pub fn failures(&self) -> impl Iterator<Item = &TestResult> {
        self.results.iter().filter(|r| r.outcome == Outcome::Fail)
    }
}

/// Parse `ok 3 name # SKIP why` / `not ok 3 name`.
fn parse_result(line: &str) -> Option<(bool, u32, String, Option<String>)> {
    let (ok, rest) = if let Some(r) = line.strip_prefix("not ok ") {
        (false, r)
    } else if let Some(r) = line.strip_prefix("ok ") {
        (true, r)
    } else {
        return None;
    };
    let rest = rest.trim_start();
    let num_end = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
    let number: u32 = rest[..num_end].parse().ok()?;
    let rest = rest[num_end..].trim();
    let rest = rest.strip_prefix("- ").unwrap_or(rest);
    let (name, directive) = match rest.find(" # ").or_else(|| rest.starts_with("# ").then_some(0)) {
        Some(i) => (rest[..i].trim().to_string(), Some(rest[i..].trim().trim_start_matches('#').trim().to_string())),
        None => (rest.to_string(), None),
    };
    Some((ok, number, name, directive))
}

/// Parse a COM1 transcript.
pub fn parse(text: &str) -> Report {
    let mut r = Report::default();
    let mut diags = Vec::new();
    let mut started = false;
    for raw in text.lines() {
        let line = raw.trim_end_matches('\r');
        if !started {
            if let Some(v) =
                line.trim().strip_prefix("KTAP version ").or_else(|| line.trim().strip_prefix("TAP version "))
            {
                if line.starts_with(char::is_whitespace) {
                    continue; // a nested header without a parent: ignore
                }
                started = true;
                r.version = v.trim().parse().ok();
            }
            continue;
        }
        if line.starts_with(char::is_whitespace) || line.is_empty() {
            continue; // subtests and blank lines
        }
        if let Some(n) = line.strip_prefix("1..") {
            match n.trim().parse::<u32>() {
                Ok(n) if r.plan.is_none() => r.plan = Some(n),
                Ok(_) => r.problems.push("more than one plan line".into()),
                Err(_) => r.problems.push(format!("malformed plan line `{line}`")),
            }
        } else if let Some(reason) = line.strip_prefix("Bail out!") {
            r.bail_out = Some(reason.trim().to_string());
        } else if let Some(d) = line.strip_prefix('#') {
            diags.push(d.trim().to_string());
        } else if let Some((ok, number, name, directive)) = parse_result(line) {
            let expected = r.results.len() as u32 + 1;
            if number != expected {
                r.problems.push(format!("result `{line}` has number {number}, expected {expected}"));
            }
            let outcome = match directive {
                Some(d) if d.to_ascii_uppercase().starts_with("SKIP") => Outcome::Skip(d[4..].trim().to_string()),
                _ if ok => Outcome::Pass,
                _ => Outcome::Fail,
            };
            r.results.push(TestResult { number, name, outcome, diagnostics: std::mem::take(&mut diags) });
        } else if line.starts_with("KTAP version") {
            r.problems.push("a second top-level `KTAP version` line".into());
        }
        // Anything else is kernel log output; ignore it.
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "\
hauki: booting\r
KTAP version 1\r
1..4\r
# starting frame allocator tests\r
ok 1 frame_alloc\r
ok 2 - paging_map # SKIP needs 5-level paging\r
    KTAP version 1\r
    1..2\r
    ok 1 inner_a\r
    not ok 2 inner_b\r
not ok 3 timer_oneshot\r
ok 4 cmdline # comment\r
";

    #[test]
    fn parses_results_directives_and_diagnostics() {
        let r = parse(GOOD);
        assert_eq!(r.version, Some(1));
        assert_eq!(r.plan, Some(4));
        assert_eq!(r.results.len(), 4);
        assert_eq!(r.results[0].name, "frame_alloc");
        assert_eq!(r.results[0].outcome, Outcome::Pass);
        assert_eq!(r.results[0].diagnostics, vec!["starting frame allocator tests"]);
        assert_eq!(r.results[1].name, "paging_map");
        assert_eq!(r.results[1].outcome, Outcome::Skip("needs 5-level paging".into()));
        assert_eq!(r.results[2].outcome, Outcome::Fail);
        assert_eq!(r.results[3].name, "cmdline");
        assert_eq!(r.results[3].outcome, Outcome::Pass);
        assert!(r.complete().is_ok());
        assert_eq!(r.failures().count(), 1);
    }

    #[test]
    fn plan_mismatch_and_truncation() {
        let r = parse("KTAP version 1\n1..3\nok 1 a\nok 2 b\n");
        assert!(r.complete().unwrap_err().contains("plan says 3 tests but 2"));
        let r = parse("boot log only\n");
        let e = r.complete().unwrap_err();
        assert!(e.contains("KTAP version") && e.contains("plan"));
    }

    #[test]
    fn plan_at_end_is_accepted() {
        let r = parse("KTAP version 1\nok 1 a\nok 2 b\n1..2\n");
        assert!(r.complete().is_ok());
    }

    #[test]
    fn numbering_and_bail_out() {
        let r = parse("KTAP version 1\n1..2\nok 1 a\nok 3 b\n");
        assert!(r.complete().unwrap_err().contains("expected 2"));
        let r = parse("KTAP version 1\n1..2\nok 1 a\nBail out! heap corrupt\n");
        let e = r.complete().unwrap_err();
        assert!(e.contains("heap corrupt") && e.contains("plan says 2"));
    }

    #[test]
    fn wrong_version_and_todo() {
        assert!(parse("KTAP version 2\n1..0\n").complete().unwrap_err().contains("expected 1"));
        let r = parse("KTAP version 1\n1..1\nnot ok 1 flaky # TODO fix me\n");
        assert_eq!(r.results[0].outcome, Outcome::Fail);
        assert_eq!(r.results[0].name, "flaky");
        let r = parse("KTAP version 1\n1..1\nok 1 # SKIP\n");
        assert_eq!(r.results[0].outcome, Outcome::Skip(String::new()));
    }

    #[test]
    fn log_lines_between_results_are_ignored() {
        let r = parse("KTAP version 1\n1..1\n[0.001] hauki: timer armed\nok 1 a\n");
        assert!(r.complete().is_ok());
        assert_eq!(r.results[0].outcome, Outcome::Pass);
    }
}
