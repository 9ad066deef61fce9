//! COM2 telemetry (JSON Lines): parsing records and checking their fields.
//!
//! Lines that do not start with `{` are human log lines and are ignored.

use serde_json::Value;

/// A COM2 transcript, split into records.
#[derive(Debug, Default)]
pub struct Records {
    /// The JSON records, in order.
    pub records: Vec<Value>,
    /// Lines starting with `{` that are not valid JSON objects: (line, error).
    pub malformed: Vec<(String, String)>,
}

impl Records {
    /// Parse `text` (only the lines in it; callers pass complete lines).
    pub fn parse(text: &str) -> Records {
        let mut r = Records::default();
        for line in text.lines().map(|l| l.trim_end_matches('\r')) {
            if !line.starts_with('{') {
                continue;
            }
            match serde_json::from_str::<Value>(line) {
                Ok(v) if v.is_object() => r.records.push(v),
                Ok(_) => r.malformed.push((line.to_string(), "not an object".into())),
                Err(e) => r.malformed.push((line.to_string(), e.to_string())),
            }
        }
        r
    }

    /// Records whose `event` is `event`.
    pub fn events<'a>(&'a self, event: &'a str) -> impl Iterator<Item = &'a Value> + 'a {
        self.records.iter().filter(move |r| r["event"] == event)
    }

    /// The first record whose `event` is `event`.
    pub fn first(&self, event: &str) -> Option<&Value> {
        self.records.iter().find(|r| r["event"] == event)
    }

    /// An error naming malformed lines, if there are any.
    pub fn check_well_formed(&self) -> Result<(), String> {
        match self.malformed.first() {
            None => Ok(()),
            Some((l, e)) => Err(format!("{} malformed JSON line(s) on COM2, first: `{l}` ({e})", self.malformed.len())),
        }
    }
}

/// Is `line` a JSON record with this `event`? (For waiting on COM2.)
pub fn is_event(line: &str, event: &str) -> bool {
    line.starts_with('{') && serde_json::from_str::<Value>(line).is_ok_and(|v| v["event"] == event)
}

/// One expectation about a record field.
#[derive(Clone, Debug)]
pub enum Expect {
    /// The field equals this value.
    Eq(&'static str, Value),
    /// The field, if present, equals this value.
    EqIfPresent(&'static str, Value),
    /// The field is one of these strings.
    OneOf(&'static str, &'static [&'static str]),
    /// The field is an integer > 0.
    Positive(&'static str),
    /// The field exists (any value).
    Present(&'static str),
}

/// Check `record` against every expectation; the error lists every mismatch and shows the record.
pub fn check(record: &Value, expects: &[Expect]) -> Result<(), String> {
    let mut bad = Vec::new();
    for e in expects {
        let (field, problem) = match e {
            Expect::Eq(f, want) => (f, (record.get(*f) != Some(want)).then(|| format!("want {want}"))),
            Expect::EqIfPresent(f, want) => {
                (f, record.get(*f).is_some_and(|v| v != want).then(|| format!("want {want} (or absent)")))
            }
            Expect::OneOf(f, opts) => (
                f,
                (!record.get(*f).and_then(Value::as_str).is_some_and(|s| opts.contains(&s)))
                    .then(|| format!("want one of {opts:?}")),
            ),
            Expect::Positive(f) => (
                f,
                record
                    .get(*f)
                    .and_then(Value::as_u64)
                    .is_none_or(|n| n == 0)
                    .then(|| "want an integer > 0".to_string()),
            ),
            Expect::Present(f) => (f, record.get(*f).is_none().then(|| "want the field to be present".to_string())),
        };
        if let Some(p) = problem {
            let got = record.get(*field).map_or("missing".to_string(), |v| v.to_string());
            bad.push(format!("`{field}`: {p}, got {got}"));
        }
    }
    if bad.is_empty() { Ok(()) } else { Err(format!("{} in record {record}", bad.join("; "))) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const COM2: &str = "hauki telemetry on COM2\n\
{\"event\":\"cpu\",\"schema\":1,\"apic_id\":1,\"state\":\"parked\"}\n\
{\"event\":\"boot\",\"schema\":1,\"apic\":\"x2apic\",\"timer\":\"lapic-oneshot\",\"tsc_hz\":1000000000,\"boot_ns\":1234567,\"cpus\":2}\r\n\
{broken\n";

    #[test]
    fn parses_and_finds() {
        let r = Records::parse(COM2);
        assert_eq!(r.records.len(), 2);
        assert_eq!(r.malformed.len(), 1);
        assert!(r.check_well_formed().unwrap_err().contains("{broken"));
        assert_eq!(r.first("boot").unwrap()["cpus"], 2);
        assert_eq!(r.events("cpu").count(), 1);
        assert!(r.first("fatal").is_none());
        assert!(is_event(COM2.lines().nth(2).unwrap(), "boot"));
        assert!(!is_event("boot", "boot"));
    }

    #[test]
    fn checks_fields() {
        let r = Records::parse(COM2);
        let boot = r.first("boot").unwrap();
        assert!(
            check(
                boot,
                &[
                    Expect::Eq("apic", json!("x2apic")),
                    Expect::Positive("tsc_hz"),
                    Expect::Positive("boot_ns"),
                    Expect::Eq("cpus", json!(2)),
                    Expect::OneOf("timer", &["lapic-oneshot", "lapic-tsc-deadline"]),
                    Expect::EqIfPresent("firmware", json!("bios")),
                ]
            )
            .is_ok()
        );
        let e =
            check(boot, &[Expect::Eq("apic", json!("xapic")), Expect::Present("firmware"), Expect::Positive("apic")])
                .unwrap_err();
        assert!(e.contains("`apic`: want \"xapic\", got \"x2apic\""), "{e}");
        assert!(e.contains("`firmware`: want the field to be present, got missing"), "{e}");
        assert!(check(&json!({"boot_ns": 0}), &[Expect::Positive("boot_ns")]).is_err());
        assert!(check(&json!({"boot_ns": -3}), &[Expect::Positive("boot_ns")]).is_err());
    }
}

/// One hardware-off window site from the `windows` record.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Window {
    /// Where the flag came back on (a kernel address), 1 for Linux user mode, or 2 for a timer
    /// interrupt that never came (a switch point found the deadline passed).
    pub site: u64,
    pub max_ns: u64,
    pub count: u64,
}

/// The last `windows` record's sites, worst first.
pub fn windows(recs: &Records) -> Vec<Window> {
    let Some(w) = recs.events("windows").last() else { return Vec::new() };
    let sites = w["sites"].as_array().cloned().unwrap_or_default();
    sites
        .iter()
        .enumerate()
        .filter_map(|(i, s)| {
            let site = u64::from_str_radix(s.as_str()?.trim_start_matches("0x"), 16).ok()?;
            Some(Window { site, max_ns: w["max_ns"][i].as_u64()?, count: w["count"][i].as_u64()? })
        })
        .collect()
}

/// `function+0xoff (linux|co-kernel)` for a window site, from the symbol tables of
/// `target/hauki/vmlinux` and `target/hauki/cokernel.elf` (binutils' `addr2line`).
pub fn symbolize(ws: &crate::util::Workspace, site: u64) -> String {
    if site == 1 {
        return "Linux user mode (its exit window: cli to SYSRET/IRET)".to_string();
    }
    if site == 2 {
        return "timer interrupt lost (the deadline was found passed at a switch point)".to_string();
    }
    let (elf, who) = if site >= 0xffff_ffff_8000_0000 {
        (ws.hauki_dir().join("vmlinux"), "linux")
    } else {
        (ws.hauki_dir().join("cokernel.elf"), "co-kernel")
    };
    let out =
        std::process::Command::new("addr2line").args(["-f", "-C", "-e"]).arg(&elf).arg(format!("{site:#x}")).output();
    let func = out
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.lines().next().map(str::to_string))
        .filter(|f| f != "??")
        .unwrap_or_else(|| "?".to_string());
    format!("{site:#x} {func} ({who})")
}

#[cfg(test)]
mod window_tests {
    use super::*;

    #[test]
    fn windows_record_is_read_worst_first() {
        let r = Records::parse(
            r#"{"event":"windows","sites":["0xffffffff81000010","0x0000000000000001"],"max_ns":[900,300],"count":[2,5],"dropped":0}"#,
        );
        let w = windows(&r);
        assert_eq!(
            w,
            vec![
                Window { site: 0xffff_ffff_8100_0010, max_ns: 900, count: 2 },
                Window { site: 1, max_ns: 300, count: 5 }
            ]
        );
    }
}
