//! Kernel command-line lookup.
//!
//! The command line is a list of words separated by ASCII whitespace; each word is `key=value`
//! (split at the first `=`) or a bare `key`, which has the empty value. Keys match exactly
//! (case-sensitive). When a key occurs more than once, the last occurrence wins, so a boot loader
//! entry can override a built-in default by appending. There is no quoting. The functions only
//! borrow the input and never allocate; numbers are parsed and scaled with checked arithmetic,
//! and a value that is not a number in range is refused with a [`BadValue`] naming it.
#![forbid(unsafe_code)]

use core::fmt;
use core::ops::RangeInclusive;

/// The value of the last `key=value` or bare `key` on `cmdline` (`Some("")` for a bare key).
pub fn get<'a>(cmdline: &'a str, key: &str) -> Option<&'a str> {
    last(cmdline, key).map(|v| v.unwrap_or(""))
}

/// The last occurrence of `key`: `Some(None)` when bare, `Some(Some(value))` with `=`.
fn last<'a>(cmdline: &'a str, key: &str) -> Option<Option<&'a str>> {
    cmdline
        .split_ascii_whitespace()
        .filter_map(|word| match word.split_once('=') {
            Some((k, v)) => (k == key).then_some(Some(v)),
            None => (word == key).then_some(None),
        })
        .next_back()
}

/// True when the last occurrence of `key` is bare or has a value of `1`, `y`, `yes`, `on` or
/// `true` (ASCII case-insensitive); false when absent or any other value, including the
/// explicitly empty `key=`.
pub fn flag(cmdline: &str, key: &str) -> bool {
    match last(cmdline, key) {
        None => false,
        Some(None) => true,
        Some(Some(v)) => ["1", "y", "yes", "on", "true"].iter().any(|t| v.eq_ignore_ascii_case(t)),
    }
}

/// A value that is not what its key takes: the key, the value as given and the range allowed.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BadValue<'a> {
    /// The key.
    pub key: &'a str,
    /// The value as given.
    pub value: &'a str,
    /// What the key takes, in its unit.
    pub range: RangeInclusive<u64>,
}

impl fmt::Display for BadValue<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}={} is not a number in {}..={}", self.key, self.value, self.range.start(), self.range.end())
    }
}

/// The value of `key` as a decimal number in `range`: `Ok(None)` when absent.
pub fn number<'a>(cmdline: &'a str, key: &'a str, range: RangeInclusive<u64>) -> Result<Option<u64>, BadValue<'a>> {
    let Some(value) = get(cmdline, key) else {
        return Ok(None);
    };
    match value.parse::<u64>() {
        Ok(n) if range.contains(&n) => Ok(Some(n)),
        _ => Err(BadValue { key, value, range }),
    }
}

/// The value of `key` as a number in `range`, or `default` when absent. A bad value is refused
/// with a warning that names it and the default kept (`unit` follows the default in the
/// message), so a typo never stops the boot.
pub fn number_or(cmdline: &str, key: &str, range: RangeInclusive<u64>, default: u64, unit: &str) -> u64 {
    match number(cmdline, key, range) {
        Ok(n) => n.unwrap_or(default),
        Err(e) => {
            log::warn!("{e}; keeping the default {default}{unit}");
            default
        }
    }
}

/// Bytes in a MiB.
const MIB: u64 = 1 << 20;

/// The value of `key` as a size in MiB, converted to bytes: `Ok(None)` when absent. Refused when
/// it is not a number, is zero, or is so many MiB that the byte count does not fit in 64 bits
/// (checked, never `n << 20` silently dropping the high bits).
pub fn mib<'a>(cmdline: &'a str, key: &'a str) -> Result<Option<u64>, BadValue<'a>> {
    Ok(number(cmdline, key, 1..=u64::MAX / MIB)?.map(|n| n * MIB))
}

/// The value of `key` as a set of numbers below 64 (a bit each): `1,3`, `1-3`, `0,2-4`, or empty
/// for none; `Ok(None)` when absent. A malformed value is refused with the key's [`BadValue`].
pub fn bit_list<'a>(cmdline: &'a str, key: &'a str) -> Result<Option<u64>, BadValue<'a>> {
    let Some(value) = get(cmdline, key) else {
        return Ok(None);
    };
    let bad = || BadValue { key, value, range: 0..=63 };
    let mut bits = 0u64;
    for part in value.split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        let a: u64 = a.parse().map_err(|_| bad())?;
        let b: u64 = b.parse().map_err(|_| bad())?;
        if a > b || b > 63 {
            return Err(bad());
        }
        for n in a..=b {
            bits |= 1 << n;
        }
    }
    Ok(Some(bits))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn get_values() {
        let c = "  console=ttyS0,115200 quiet  hauki.cpus=2-3 empty= a=b=c\tlast ";
        assert_eq!(get(c, "console"), Some("ttyS0,115200"));
        assert_eq!(get(c, "quiet"), Some(""));
        assert_eq!(get(c, "hauki.cpus"), Some("2-3"));
        assert_eq!(get(c, "empty"), Some(""));
        assert_eq!(get(c, "a"), Some("b=c"));
        assert_eq!(get(c, "last"), Some(""));
        assert_eq!(get(c, "hauki"), None);
        assert_eq!(get(c, "cons"), None);
        assert_eq!(get(c, ""), None);
        assert_eq!(get("", "x"), None);
    }

    #[test]
    fn last_occurrence_wins() {
        assert_eq!(get("x=1 y x=2", "x"), Some("2"));
        assert_eq!(get("x=1 x", "x"), Some(""));
        assert_eq!(get("x x=3", "x"), Some("3"));
        assert!(!flag("debug debug=off", "debug"));
        assert!(flag("debug=off debug", "debug"));
    }

    /// A fuzzing regression: `hauki.pool_mib` of 2^44 MiB must not wrap to a pool of 0 bytes (as
    /// `mib << 20` would). Sizes are checked: too large, zero or not a number is refused, by name.
    #[test]
    fn mib_sizes_are_checked_not_shifted() {
        assert_eq!(mib("hauki.pool_mib=64", "hauki.pool_mib"), Ok(Some(64 << 20)));
        assert_eq!(mib("", "hauki.pool_mib"), Ok(None));
        let max = u64::MAX >> 20;
        assert_eq!(mib(&std::format!("k={max}"), "k"), Ok(Some(max << 20)));
        for bad in ["k=17592186044416", "k=0", "k=-1", "k=64M", "k=", "k"] {
            let e = mib(bad, "k").unwrap_err();
            assert_eq!((e.key, e.range.clone()), ("k", 1..=max), "{bad}");
            let msg = std::format!("{e}");
            assert!(msg.starts_with("k=") && msg.contains("not a number"), "{msg}");
        }
        assert_eq!(number("n=7", "n", 1..=10), Ok(Some(7)));
        assert!(number("n=11", "n", 1..=10).is_err());
    }

    #[test]
    fn flags() {
        for on in ["k", "k=1", "k=y", "k=yes", "k=on", "k=true", "k=TRUE", "k=Yes"] {
            assert!(flag(on, "k"), "{on}");
        }
        for off in ["", "k=0", "k=no", "k=off", "k=false", "k=2", "kk", "x=k", "k= "] {
            assert!(!flag(off, "k"), "{off}");
        }
    }

    #[test]
    fn number_or_keeps_the_default_for_absent_and_bad_values() {
        assert_eq!(number_or("a=1 b=7", "b", 0..=10, 3, " ms"), 7);
        assert_eq!(number_or("a=1", "b", 0..=10, 3, " ms"), 3);
        assert_eq!(number_or("b=11", "b", 0..=10, 3, " ms"), 3);
        assert_eq!(number_or("b=x", "b", 0..=10, 3, ""), 3);
    }

    #[test]
    fn bit_lists() {
        assert_eq!(bit_list("a=1", "hauki.rt_cpus"), Ok(None));
        assert_eq!(bit_list("hauki.rt_cpus=1,3", "hauki.rt_cpus"), Ok(Some(0b1010)));
        assert_eq!(bit_list("hauki.rt_cpus=1-3", "hauki.rt_cpus"), Ok(Some(0b1110)));
        assert_eq!(bit_list("hauki.rt_cpus=0,2-3,63", "hauki.rt_cpus"), Ok(Some(0b1101 | 1 << 63)));
        assert_eq!(bit_list("hauki.rt_cpus=", "hauki.rt_cpus"), Ok(Some(0)));
        for bad in ["x", "3-1", "64", "1-64", "1,,x", "-1", "1-"] {
            let line = alloc::format!("hauki.rt_cpus={bad}");
            assert!(bit_list(&line, "hauki.rt_cpus").is_err(), "{bad} accepted");
        }
    }
}
