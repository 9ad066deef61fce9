//! A minimal JSON object writer over `core::fmt::Write`, for one-line telemetry records.
//!
//! Invariant: whatever the caller passes, the output is one syntactically valid JSON object on one
//! line (strings are escaped, control characters included), so a reader can parse every line that
//! starts with `{`.

use core::fmt::{self, Write};

/// Builds one JSON object: `{"event":"…",…}` followed by `\n` on [`Record::finish`].
pub struct Record<'w, W: Write> {
    w: &'w mut W,
    result: fmt::Result,
}

impl<'w, W: Write> Record<'w, W> {
    /// Starts a record with its `event` field (and the schema version).
    pub fn new(w: &'w mut W, event: &str) -> Self {
        let mut r = Record { w, result: Ok(()) };
        r.put("{\"event\":");
        r.string_value(event);
        r.u64("schema", u64::from(hauki_abi::telemetry::SCHEMA_VERSION));
        r
    }

    fn put(&mut self, s: &str) {
        if self.result.is_ok() {
            self.result = self.w.write_str(s);
        }
    }

    fn put_fmt(&mut self, args: fmt::Arguments<'_>) {
        if self.result.is_ok() {
            self.result = self.w.write_fmt(args);
        }
    }

    fn key(&mut self, key: &str) {
        self.put(",");
        self.string_value(key);
        self.put(":");
    }

    fn string_value(&mut self, s: &str) {
        self.put("\"");
        for c in s.chars() {
            match c {
                '"' => self.put("\\\""),
                '\\' => self.put("\\\\"),
                '\n' => self.put("\\n"),
                '\r' => self.put("\\r"),
                '\t' => self.put("\\t"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => self.put_fmt(format_args!("\\u{:04x}", c as u32)),
                c => {
                    let mut buf = [0u8; 4];
                    self.put(c.encode_utf8(&mut buf));
                }
            }
        }
        self.put("\"");
    }

    /// An unsigned integer field.
    pub fn u64(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        self.put_fmt(format_args!("{v}"));
        self
    }

    /// A signed integer field.
    pub fn i64(&mut self, key: &str, v: i64) -> &mut Self {
        self.key(key);
        self.put_fmt(format_args!("{v}"));
        self
    }

    /// A boolean field.
    pub fn bool(&mut self, key: &str, v: bool) -> &mut Self {
        self.key(key);
        self.put(if v { "true" } else { "false" });
        self
    }

    /// A string field (escaped).
    pub fn str(&mut self, key: &str, v: &str) -> &mut Self {
        self.key(key);
        self.string_value(v);
        self
    }

    /// A string field built from format arguments (escaped).
    pub fn fmt(&mut self, key: &str, args: fmt::Arguments<'_>) -> &mut Self {
        self.key(key);
        self.put("\"");
        let mut esc = Escaper { rec: self };
        let r = esc.write_fmt(args);
        if r.is_err() && self.result.is_ok() {
            self.result = r;
        }
        self.put("\"");
        self
    }

    /// An address or register as a `"0x…"` string (JSON numbers lose precision above 2^53).
    pub fn hex(&mut self, key: &str, v: u64) -> &mut Self {
        self.key(key);
        self.put_fmt(format_args!("\"{v:#018x}\""));
        self
    }

    /// An array of unsigned integers.
    pub fn u64s(&mut self, key: &str, vs: &[u64]) -> &mut Self {
        self.list(key, vs, false)
    }

    /// An array of unsigned integers taken from an iterator (nothing is buffered).
    pub fn u64_iter(&mut self, key: &str, vs: impl IntoIterator<Item = u64>) -> &mut Self {
        self.numbers(key, vs)
    }

    /// An array of signed integers.
    pub fn i64s(&mut self, key: &str, vs: &[i64]) -> &mut Self {
        self.numbers(key, vs.iter().copied())
    }

    fn numbers<T: fmt::Display>(&mut self, key: &str, vs: impl IntoIterator<Item = T>) -> &mut Self {
        self.key(key);
        self.put("[");
        for (i, v) in vs.into_iter().enumerate() {
            if i > 0 {
                self.put(",");
            }
            self.put_fmt(format_args!("{v}"));
        }
        self.put("]");
        self
    }

    /// An array of addresses as `"0x…"` strings.
    pub fn hex_list(&mut self, key: &str, vs: &[u64]) -> &mut Self {
        self.list(key, vs, true)
    }

    fn list(&mut self, key: &str, vs: &[u64], hex: bool) -> &mut Self {
        self.key(key);
        self.put("[");
        for (i, v) in vs.iter().enumerate() {
            if i > 0 {
                self.put(",");
            }
            if hex {
                self.put_fmt(format_args!("\"{v:#018x}\""));
            } else {
                self.put_fmt(format_args!("{v}"));
            }
        }
        self.put("]");
        self
    }

    /// A nested object of `"name":"0x…"` pairs (register dumps).
    pub fn hex_map(&mut self, key: &str, pairs: &[(&str, u64)]) -> &mut Self {
        self.key(key);
        self.put("{");
        for (i, (k, v)) in pairs.iter().enumerate() {
            if i > 0 {
                self.put(",");
            }
            self.string_value(k);
            self.put_fmt(format_args!(":\"{v:#018x}\""));
        }
        self.put("}");
        self
    }

    /// Closes the object and ends the line.
    pub fn finish(mut self) -> fmt::Result {
        self.put("}\n");
        self.result
    }
}

/// Escapes formatted text into the surrounding string value.
struct Escaper<'r, 'w, W: Write> {
    rec: &'r mut Record<'w, W>,
}

impl<W: Write> Write for Escaper<'_, '_, W> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        // string_value adds quotes; write the escaped body only.
        for c in s.chars() {
            let mut buf = [0u8; 4];
            match c {
                '"' => self.rec.put("\\\""),
                '\\' => self.rec.put("\\\\"),
                c if (c as u32) < 0x20 || c == '\u{7f}' => self.rec.put_fmt(format_args!("\\u{:04x}", c as u32)),
                c => self.rec.put(c.encode_utf8(&mut buf)),
            }
        }
        self.rec.result
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn record(f: impl FnOnce(&mut Record<'_, String>)) -> String {
        let mut s = String::new();
        let mut r = Record::new(&mut s, "test");
        f(&mut r);
        r.finish().unwrap();
        s
    }

    #[test]
    fn fields_render_as_json() {
        let s = record(|r| {
            r.u64("n", 42).i64("neg", -7).bool("ok", true).str("s", "a\"b\\c\nd").hex("addr", 0xdead);
            r.u64s("h", &[1, 2, 3]).hex_list("bt", &[0xffff_8000_0000_1000]).hex_map("regs", &[("rax", 1), ("rbx", 2)]);
            r.fmt("f", format_args!("x={} \"q\"", 5));
        });
        assert_eq!(
            s,
            "{\"event\":\"test\",\"schema\":1,\"n\":42,\"neg\":-7,\"ok\":true,\"s\":\"a\\\"b\\\\c\\nd\",\
             \"addr\":\"0x000000000000dead\",\"h\":[1,2,3],\"bt\":[\"0xffff800000001000\"],\"regs\":{\"rax\":\"0x0000000000000001\",\
             \"rbx\":\"0x0000000000000002\"},\"f\":\"x=5 \\\"q\\\"\"}\n"
        );
    }

    proptest! {
        /// Any string, any key: one line, and it starts with `{` and ends with `}\n`.
        #[test]
        fn always_one_line(key in ".*", val in ".*") {
            let s = record(|r| { r.str(&key, &val); r.fmt("k", format_args!("{val}")); });
            prop_assert!(s.starts_with('{'), "record does not open an object: {:?}", s);
            prop_assert!(s.ends_with("}\n"), "record does not close the line: {:?}", s);
            prop_assert_eq!(s.matches('\n').count(), 1);
            prop_assert!(!s[..s.len() - 1].chars().any(|c| (c as u32) < 0x20));
        }
    }
}
