//! Kernel command-line lookup.
//!
//! The command line is a list of words separated by ASCII whitespace; each word is `key=value`
//! (split at the first `=`) or a bare `key`, which has the empty value. Keys match exactly
//! (case-sensitive). When a key occurs more than once, the last occurrence wins, so a boot loader
//! entry can override a built-in default by appending. There is no quoting. The functions only
//! borrow the input and never allocate.

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
        Some(Some(v)) => ["1", "y", "yes", "on", "true"]
            .iter()
            .any(|t| v.eq_ignore_ascii_case(t)),
    }
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

    #[test]
    fn flags() {
        for on in [
            "k", "k=1", "k=y", "k=yes", "k=on", "k=true", "k=TRUE", "k=Yes",
        ] {
            assert!(flag(on, "k"), "{on}");
        }
        for off in [
            "", "k=0", "k=no", "k=off", "k=false", "k=2", "kk", "x=k", "k= ",
        ] {
            assert!(!flag(off, "k"), "{off}");
        }
    }
}
