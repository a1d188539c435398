//! A strict, allocation-free check that a text is RFC 8785 (JCS) canonical JSON of the shapes
//! audit entries use (objects, arrays, strings, integers, booleans, null; no floats), reading the
//! top-level fields a chain check needs on the way.
//!
//! If a text passes, canonicalising it again would give the same bytes; so hashing the text
//! (without its `entry_hash` member) is hashing the canonical form, and a verifier does not need
//! to parse and re-serialise every entry.

use std::borrow::Cow;
use std::cmp::Ordering;
use std::ops::Range;

/// Nesting deeper than this is refused.
const MAX_DEPTH: usize = 32;

/// Integers beyond ±2^53 do not survive an IEEE double, so JCS cannot represent them exactly.
const MAX_SAFE: u64 = 1 << 53;

/// Why a text is not canonical.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("not canonical JSON at byte {offset}: {reason}")]
pub struct NotCanonical {
    /// Byte offset of the problem.
    pub offset: usize,
    /// What is wrong.
    pub reason: &'static str,
}

/// The top-level members of an entry that chain checks read.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TopLevel<'a> {
    /// `v`.
    pub v: Option<u64>,
    /// `seq`.
    pub seq: Option<u64>,
    /// `prev_hash` (raw; hashes never need escapes).
    pub prev_hash: Option<&'a str>,
    /// `entry_hash`, and the byte range of its member including one adjacent comma.
    pub entry_hash: Option<(&'a str, Range<usize>)>,
    /// `tenant`.
    pub tenant: Option<Cow<'a, str>>,
    /// Where the first top-level key that sorts after `entry_hash` starts (for inserting it).
    pub after_entry_hash_key: Option<usize>,
}

impl TopLevel<'_> {
    /// The bytes without the `entry_hash` member, as two slices.
    pub fn without_entry_hash<'t>(&self, text: &'t str) -> (&'t str, &'t str) {
        match &self.entry_hash {
            Some((_, range)) => (&text[..range.start], &text[range.end..]),
            None => (text, ""),
        }
    }
}

/// Compares two strings as JCS sorts keys: by UTF-16 code units.
///
/// UTF-8 bytes sort as code points, and code points sort as UTF-16 units except when one is in
/// U+E000..=U+FFFF and the other beyond U+FFFF (a surrogate pair sorts first). Both of those start
/// with a byte of 0xEE or more, so the bytes decide unless both differing bytes are that high.
pub fn utf16_cmp(a: &str, b: &str) -> Ordering {
    let (x, y) = (a.as_bytes(), b.as_bytes());
    match x.iter().zip(y).position(|(p, q)| p != q) {
        None => x.len().cmp(&y.len()),
        Some(at) if x[at] < 0xEE || y[at] < 0xEE => x[at].cmp(&y[at]),
        Some(_) => a.encode_utf16().cmp(b.encode_utf16()),
    }
}

/// Eight bytes at a time: whether any of them is `"`, `\` or a control character, the bytes
/// that end a run of plain string content.
fn any_special(word: u64) -> bool {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let zero_in = |x: u64| x.wrapping_sub(ONES) & !x & HIGH;
    let quote = zero_in(word ^ (ONES * u64::from(b'"')));
    let backslash = zero_in(word ^ (ONES * u64::from(b'\\')));
    let control = word.wrapping_sub(ONES * 0x20) & !word & HIGH;
    (quote | backslash | control) != 0
}

/// Whether a byte ends a run of plain string content.
fn is_special(byte: u8) -> bool {
    byte == b'"' || byte == b'\\' || byte < 0x20
}

/// Checks that `text` is one canonical JSON object and reads its top-level fields.
pub fn scan(text: &str) -> Result<TopLevel<'_>, NotCanonical> {
    let mut scanner = Scanner {
        text,
        bytes: text.as_bytes(),
        pos: 0,
    };
    if scanner.bytes.first() != Some(&b'{') {
        return Err(scanner.fail("an entry must be a JSON object"));
    }
    let mut top = TopLevel::default();
    scanner.object(0, Some(&mut top))?;
    if scanner.pos != scanner.bytes.len() {
        return Err(scanner.fail("trailing bytes after the object"));
    }
    Ok(top)
}

/// Adds `"entry_hash":"<hash>"` to a canonical entry at its sorted place.
pub fn insert_entry_hash(canonical: &str, hash: &str) -> Result<String, NotCanonical> {
    let top = scan(canonical)?;
    if top.entry_hash.is_some() {
        return Err(NotCanonical {
            offset: 0,
            reason: "the entry already has an entry_hash",
        });
    }
    let member = format!("\"entry_hash\":\"{hash}\"");
    let mut line = String::with_capacity(canonical.len() + member.len() + 1);
    match top.after_entry_hash_key {
        Some(at) => {
            line.push_str(&canonical[..at]);
            line.push_str(&member);
            line.push(',');
            line.push_str(&canonical[at..]);
        }
        None => {
            let close = canonical.len() - 1;
            line.push_str(&canonical[..close]);
            if close > 1 {
                line.push(',');
            }
            line.push_str(&member);
            line.push('}');
        }
    }
    Ok(line)
}

struct Scanner<'a> {
    text: &'a str,
    bytes: &'a [u8],
    pos: usize,
}

enum Scalar<'a> {
    Str(Cow<'a, str>),
    Int(u64),
    Other,
}

impl<'a> Scanner<'a> {
    fn fail(&self, reason: &'static str) -> NotCanonical {
        NotCanonical {
            offset: self.pos,
            reason,
        }
    }

    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.pos).copied()
    }

    fn expect(&mut self, byte: u8, reason: &'static str) -> Result<(), NotCanonical> {
        if self.peek() == Some(byte) {
            self.pos += 1;
            Ok(())
        } else {
            Err(self.fail(reason))
        }
    }

    fn value(&mut self, depth: usize) -> Result<Scalar<'a>, NotCanonical> {
        if depth > MAX_DEPTH {
            return Err(self.fail("nested too deeply"));
        }
        match self.peek() {
            Some(b'{') => self.object(depth + 1, None).map(|()| Scalar::Other),
            Some(b'[') => self.array(depth + 1).map(|()| Scalar::Other),
            Some(b'"') => self.string().map(Scalar::Str),
            Some(b'-' | b'0'..=b'9') => self.integer().map(Scalar::Int),
            Some(b't') => self.literal("true"),
            Some(b'f') => self.literal("false"),
            Some(b'n') => self.literal("null"),
            Some(b' ' | b'\t' | b'\n' | b'\r') => Err(self.fail("whitespace")),
            _ => Err(self.fail("expected a value")),
        }
    }

    fn literal(&mut self, word: &'static str) -> Result<Scalar<'a>, NotCanonical> {
        if self.bytes[self.pos..].starts_with(word.as_bytes()) {
            self.pos += word.len();
            Ok(Scalar::Other)
        } else {
            Err(self.fail("expected a value"))
        }
    }

    fn object(
        &mut self,
        depth: usize,
        mut top: Option<&mut TopLevel<'a>>,
    ) -> Result<(), NotCanonical> {
        self.expect(b'{', "expected an object")?;
        if self.peek() == Some(b'}') {
            self.pos += 1;
            return Ok(());
        }
        let mut previous: Option<Cow<'a, str>> = None;
        loop {
            let member_start = self.pos;
            if self.peek() != Some(b'"') {
                return Err(self.fail("expected a key"));
            }
            let key = self.string()?;
            if let Some(previous) = &previous
                && utf16_cmp(previous, &key) != Ordering::Less
            {
                return Err(NotCanonical {
                    offset: member_start,
                    reason: "keys are not sorted or repeat",
                });
            }
            self.expect(b':', "expected `:` without whitespace")?;
            let scalar = self.value(depth)?;
            if let Some(top) = top.as_deref_mut() {
                if top.after_entry_hash_key.is_none()
                    && utf16_cmp(&key, "entry_hash") == Ordering::Greater
                {
                    top.after_entry_hash_key = Some(member_start);
                }
                match (&*key, scalar) {
                    ("v", Scalar::Int(n)) => top.v = Some(n),
                    ("seq", Scalar::Int(n)) => top.seq = Some(n),
                    ("prev_hash", Scalar::Str(Cow::Borrowed(hash))) => top.prev_hash = Some(hash),
                    ("tenant", Scalar::Str(tenant)) => top.tenant = Some(tenant),
                    ("entry_hash", Scalar::Str(Cow::Borrowed(hash))) => {
                        // The member and one comma: the following one, else the preceding one.
                        let range = if self.peek() == Some(b',') {
                            member_start..self.pos + 1
                        } else if member_start > 1 {
                            member_start - 1..self.pos
                        } else {
                            member_start..self.pos
                        };
                        top.entry_hash = Some((hash, range));
                    }
                    _ => {}
                }
            }
            previous = Some(key);
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b'}') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("expected `,` or `}` without whitespace")),
            }
        }
    }

    fn array(&mut self, depth: usize) -> Result<(), NotCanonical> {
        self.expect(b'[', "expected an array")?;
        if self.peek() == Some(b']') {
            self.pos += 1;
            return Ok(());
        }
        loop {
            self.value(depth)?;
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b']') => {
                    self.pos += 1;
                    return Ok(());
                }
                _ => return Err(self.fail("expected `,` or `]` without whitespace")),
            }
        }
    }

    /// Moves past string content that needs no check: anything but `"`, `\` and control
    /// characters (the text is UTF-8 already).
    fn skip_plain(&mut self) {
        while let Some(word) = self.bytes.get(self.pos..self.pos + 8) {
            let Ok(word) = <[u8; 8]>::try_from(word) else {
                break;
            };
            if any_special(u64::from_le_bytes(word)) {
                break;
            }
            self.pos += 8;
        }
        while self.peek().is_some_and(|byte| !is_special(byte)) {
            self.pos += 1;
        }
    }

    /// A string exactly as JCS writes it: only `"`, `\` and control characters escaped, the
    /// short escapes where JSON has them, else `\u00xx` in lowercase hex.
    fn string(&mut self) -> Result<Cow<'a, str>, NotCanonical> {
        self.pos += 1; // the opening quote
        let start = self.pos;
        let mut escaped = false;
        loop {
            self.skip_plain();
            let Some(byte) = self.peek() else {
                return Err(self.fail("unterminated string"));
            };
            match byte {
                b'"' => break,
                b'\\' => {
                    escaped = true;
                    match self.bytes.get(self.pos + 1) {
                        Some(b'"' | b'\\' | b'b' | b'f' | b'n' | b'r' | b't') => self.pos += 2,
                        Some(b'u') => {
                            let hex = self.bytes.get(self.pos + 2..self.pos + 6);
                            let ok = match hex {
                                Some([b'0', b'0', high @ (b'0' | b'1'), low]) => {
                                    let low_ok =
                                        low.is_ascii_digit() || (b'a'..=b'f').contains(low);
                                    let short = *high == b'0'
                                        && matches!(low, b'8' | b'9' | b'a' | b'c' | b'd');
                                    low_ok && !short
                                }
                                _ => false,
                            };
                            if !ok {
                                return Err(self.fail("a \\u escape JCS would not write"));
                            }
                            self.pos += 6;
                        }
                        _ => return Err(self.fail("an escape JCS would not write")),
                    }
                }
                _ => return Err(self.fail("a raw control character in a string")),
            }
        }
        let raw = &self.text[start..self.pos];
        self.pos += 1; // the closing quote
        if !escaped {
            return Ok(Cow::Borrowed(raw));
        }
        serde_json::from_str::<String>(&self.text[start - 1..self.pos])
            .map(Cow::Owned)
            .map_err(|_| self.fail("a string that does not decode"))
    }

    /// An integer as JCS writes one: no `+`, no leading zeros, no `-0`, no fraction or exponent,
    /// within ±2^53.
    fn integer(&mut self) -> Result<u64, NotCanonical> {
        let negative = self.peek() == Some(b'-');
        if negative {
            self.pos += 1;
        }
        let start = self.pos;
        let mut value: u64 = 0;
        while let Some(digit @ b'0'..=b'9') = self.peek() {
            value = value
                .checked_mul(10)
                .and_then(|v| v.checked_add(u64::from(digit - b'0')))
                .filter(|&v| v <= MAX_SAFE)
                .ok_or_else(|| self.fail("an integer beyond ±2^53"))?;
            self.pos += 1;
        }
        let digits = self.pos - start;
        if digits == 0 {
            return Err(self.fail("expected digits"));
        }
        if digits > 1 && self.bytes[start] == b'0' {
            return Err(self.fail("a leading zero"));
        }
        if negative && value == 0 {
            return Err(self.fail("-0"));
        }
        if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
            return Err(self.fail("a float (entries have none)"));
        }
        // Negative numbers are checked but never needed by a chain check.
        Ok(if negative { u64::MAX } else { value })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn canonical_texts_pass_and_their_fields_are_read() {
        let text = r#"{"a":[1,-2,true,false,null,{}],"entry_hash":"ab","prev_hash":"cd","seq":7,"tenant":"t\u001fü","v":1,"z":"\"\\\n"}"#;
        let top = scan(text).unwrap();
        assert_eq!(top.seq, Some(7));
        assert_eq!(top.v, Some(1));
        assert_eq!(top.prev_hash, Some("cd"));
        assert_eq!(top.tenant.as_deref(), Some("t\u{1f}ü"));
        let (hash, _) = top.entry_hash.clone().unwrap();
        assert_eq!(hash, "ab");
        let (head, tail) = top.without_entry_hash(text);
        assert_eq!(
            format!("{head}{tail}"),
            r#"{"a":[1,-2,true,false,null,{}],"prev_hash":"cd","seq":7,"tenant":"t\u001fü","v":1,"z":"\"\\\n"}"#
        );
        // Whatever serde_jcs writes passes.
        let value = serde_json::json!({"b": "\u{2028}\u{7f}\u{8}\u{1}", "a": {"y": [], "x": -9007199254740992_i64}, "é": 1, "\u{10000}": 2, "\u{e000}": 3});
        assert!(scan(&serde_jcs::to_string(&value).unwrap()).is_ok());
    }

    #[test]
    fn anything_jcs_would_write_differently_is_refused() {
        for bad in [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":1}"#,
            r#"{"a": 1}"#,
            r#"{"a":1} "#,
            r#"{"a":01}"#,
            r#"{"a":-0}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":9007199254740993}"#,
            r#"{"a":"\/"}"#,
            r#"{"a":"\u0041"}"#,
            r#"{"a":"\u000a"}"#,
            r#"{"a":"\u001F"}"#,
            "{\"a\":\"\t\"}",
            r#"{"a":[1,]}"#,
            r#"{"\ue000":1,"\ud800\udc00":2}"#,
            r#"["a"]"#,
            r#"{"a":tru}"#,
        ] {
            assert!(scan(bad).is_err(), "{bad}");
        }
        // Keys sort by UTF-16 code units: U+10000 (D800 DC00) before U+E000.
        assert!(scan("{\"\u{10000}\":1,\"\u{e000}\":2}").is_ok());
    }

    #[test]
    fn keys_compare_as_utf16_code_units() {
        let words = [
            "",
            "a",
            "ab",
            "b",
            "entry_hash",
            "event",
            "z",
            "é",
            "ü",
            "\u{7ff}",
            "\u{800}",
            "\u{d7ff}",
            "\u{e000}",
            "\u{efff}",
            "\u{f000}",
            "\u{ffff}",
            "\u{10000}",
            "\u{1f600}",
            "\u{10ffff}",
            "a\u{e000}",
            "a\u{10000}",
            "\u{e000}a",
            "\u{10000}a",
        ];
        for a in words {
            for b in words {
                let expected = a.encode_utf16().cmp(b.encode_utf16());
                assert_eq!(utf16_cmp(a, b), expected, "{a:?} {b:?}");
            }
        }
    }

    #[test]
    fn plain_string_content_is_skipped_up_to_the_first_special_byte() {
        for len in 0..20 {
            for special in ["\"", "\\", "\u{0}", "\u{1f}", "\n"] {
                for filler in ["x", "é", " ", "\u{7f}", "~", "#", "[", "]", "\u{10000}"] {
                    let plain = filler.repeat(len);
                    let text = format!("{plain}{special}tail");
                    let mut scanner = Scanner {
                        text: &text,
                        bytes: text.as_bytes(),
                        pos: 0,
                    };
                    scanner.skip_plain();
                    assert_eq!(scanner.pos, plain.len(), "{text:?}");
                }
            }
            let plain = "ab".repeat(len);
            let mut scanner = Scanner {
                text: &plain,
                bytes: plain.as_bytes(),
                pos: 0,
            };
            scanner.skip_plain();
            assert_eq!(scanner.pos, plain.len());
        }
        // A control character is refused wherever it falls in a word.
        for at in 0..17 {
            let text = format!("{{\"a\":\"{}\u{1}\"}}", "y".repeat(at));
            let err = scan(&text).unwrap_err();
            assert_eq!(err.offset, 6 + at, "{text:?}");
        }
    }

    #[test]
    fn entry_hash_goes_in_at_its_sorted_place() {
        assert_eq!(
            insert_entry_hash(r#"{"attempts":6,"event":"x","v":1}"#, "h").unwrap(),
            r#"{"attempts":6,"entry_hash":"h","event":"x","v":1}"#
        );
        assert_eq!(
            insert_entry_hash(r#"{"a":1}"#, "h").unwrap(),
            r#"{"a":1,"entry_hash":"h"}"#
        );
        assert_eq!(
            insert_entry_hash("{}", "h").unwrap(),
            r#"{"entry_hash":"h"}"#
        );
        let line = insert_entry_hash(r#"{"a":1,"z":2}"#, "h").unwrap();
        let top = scan(&line).unwrap();
        let (head, tail) = top.without_entry_hash(&line);
        assert_eq!(format!("{head}{tail}"), r#"{"a":1,"z":2}"#);
        let last = r#"{"a":1,"entry_hash":"h"}"#;
        let (head, tail) = scan(last).unwrap().without_entry_hash(last);
        assert_eq!(format!("{head}{tail}"), r#"{"a":1}"#);
    }
}
