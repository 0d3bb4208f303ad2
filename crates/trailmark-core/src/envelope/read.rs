//! Stored leaf bytes read in one pass, accepting only the canonical form.
//!
//! The canonical form of an envelope is fixed down to the byte: the keys of
//! [`EnvelopeV1`] in that order, no white space, strings escaped the one way
//! RFC 8785 (and `serde_json`'s compact writer) escapes them, integers in
//! plain decimal. So instead of parsing the bytes as any JSON and writing
//! them out again to compare, the reader walks them once, expecting each
//! byte the canonical form has: anything else is refused where it stands.
//! What a field's value means (an id, a time, an enum word) is checked by
//! the caller, [`super::Envelope::from_leaf_bytes`].

use std::borrow::Cow;

use super::EnvelopeV1;

/// Reads `bytes` as the canonical JSON of a v1 envelope's fields, or says
/// where they depart from it.
pub(super) fn canonical_fields(bytes: &[u8]) -> Result<EnvelopeV1<'_>, String> {
    let text = std::str::from_utf8(bytes).map_err(|e| format!("not UTF-8: {e}"))?;
    let mut r = Reader { text, at: 0 };
    r.expect("{\"action\":")?;
    let action = r.string("action")?;
    r.expect(",\"actor_id\":")?;
    let actor_id = r.string("actor_id")?;
    r.expect(",\"actor_type\":")?;
    let actor_type = r.string("actor_type")?;
    r.expect(",\"id\":")?;
    let id = r.string("id")?;
    r.expect(",\"occurred_at\":")?;
    let occurred_at = r.string("occurred_at")?;
    r.expect(",\"outcome\":")?;
    let outcome = r.string("outcome")?;
    r.expect(",\"payload_digest\":")?;
    let payload_digest = r.string("payload_digest")?;
    r.expect(",\"received_at\":")?;
    let received_at = r.string("received_at")?;
    r.expect(",\"resource_id\":")?;
    let resource_id = r.string_or_null("resource_id")?;
    r.expect(",\"resource_type\":")?;
    let resource_type = r.string_or_null("resource_type")?;
    r.expect(",\"seq\":")?;
    let seq = r.integer("seq")?;
    r.expect(",\"tenant\":")?;
    let tenant = r.string("tenant")?;
    r.expect(",\"v\":")?;
    let v = r.integer("v")?;
    let v = u8::try_from(v).map_err(|_| format!("unknown version v={v}"))?;
    r.expect("}")?;
    if r.at != text.len() {
        return Err(format!("bytes after the envelope, from byte {}", r.at));
    }
    Ok(EnvelopeV1 {
        action,
        actor_id,
        actor_type,
        id,
        occurred_at,
        outcome,
        payload_digest,
        received_at,
        resource_id,
        resource_type,
        seq,
        tenant,
        v,
    })
}

struct Reader<'a> {
    text: &'a str,
    /// The next byte to read (always at a character boundary).
    at: usize,
}

impl<'a> Reader<'a> {
    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    /// The exact text the canonical form has here.
    fn expect(&mut self, literal: &str) -> Result<(), String> {
        if self.text.as_bytes()[self.at..].starts_with(literal.as_bytes()) {
            self.at += literal.len();
            Ok(())
        } else {
            Err(format!("expected {literal} at byte {}", self.at))
        }
    }

    /// `null`, or a string.
    fn string_or_null(&mut self, field: &str) -> Result<Option<Cow<'a, str>>, String> {
        if self.text.as_bytes()[self.at..].starts_with(b"null") {
            self.at += 4;
            return Ok(None);
        }
        self.string(field).map(Some)
    }

    /// A string written as RFC 8785 writes it: `"` and `\` escaped as `\"`
    /// and `\\`; U+0008, U+0009, U+000A, U+000C and U+000D as `\b`, `\t`,
    /// `\n`, `\f` and `\r`; every other character below U+0020 as `\u00xx`
    /// in lowercase hex; every other character as itself. Borrowed when
    /// nothing is escaped.
    fn string(&mut self, field: &str) -> Result<Cow<'a, str>, String> {
        let bad = |at: usize, what: &str| format!("{field}: {what} at byte {at}");
        if self.peek() != Some(b'"') {
            return Err(bad(self.at, "expected a string"));
        }
        self.at += 1;
        let start = self.at;
        let mut owned: Option<String> = None;
        // The start of the run of plain characters being read.
        let mut run = start;
        loop {
            let Some(b) = self.peek() else {
                return Err(bad(self.at, "unterminated string"));
            };
            match b {
                b'"' => {
                    let tail = &self.text[run..self.at];
                    self.at += 1;
                    return Ok(match owned {
                        None => Cow::Borrowed(tail),
                        Some(mut s) => {
                            s.push_str(tail);
                            Cow::Owned(s)
                        }
                    });
                }
                b'\\' => {
                    let s = owned.get_or_insert_with(String::new);
                    s.push_str(&self.text[run..self.at]);
                    let escaped = self.escape().ok_or_else(|| {
                        bad(
                            self.at,
                            "an escape RFC 8785 does not write (or a broken one)",
                        )
                    })?;
                    s.push(escaped);
                    run = self.at;
                }
                0..=0x1f => return Err(bad(self.at, "a control character not escaped")),
                _ => self.at += 1,
            }
        }
    }

    /// The character of the escape at `self.at` (its `\`), if RFC 8785
    /// writes that character so; moves past it.
    fn escape(&mut self) -> Option<char> {
        let bytes = &self.text.as_bytes()[self.at..];
        let (c, len) = match *bytes.get(1)? {
            b'"' => ('"', 2),
            b'\\' => ('\\', 2),
            b'b' => ('\u{8}', 2),
            b't' => ('\t', 2),
            b'n' => ('\n', 2),
            b'f' => ('\u{c}', 2),
            b'r' => ('\r', 2),
            b'u' => {
                let hex = bytes.get(2..6)?;
                let lower = |d: u8| match d {
                    b'0'..=b'9' => Some(d - b'0'),
                    b'a'..=b'f' => Some(d - b'a' + 10),
                    _ => None,
                };
                if hex[..2] != *b"00" {
                    return None;
                }
                let value = (lower(hex[2])? << 4) | lower(hex[3])?;
                // Only control characters without a short escape are
                // written as `\u00xx`.
                if value >= 0x20 || matches!(value, 0x08 | 0x09 | 0x0a | 0x0c | 0x0d) {
                    return None;
                }
                (char::from(value), 6)
            }
            _ => return None,
        };
        self.at += len;
        Some(c)
    }

    /// A non-negative integer in plain decimal, without leading zeros.
    fn integer(&mut self, field: &str) -> Result<u64, String> {
        let digits = self.text.as_bytes()[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        let text = &self.text[self.at..self.at + digits];
        if digits == 0 || (digits > 1 && text.starts_with('0')) {
            return Err(format!(
                "{field}: expected an integer without leading zeros at byte {}",
                self.at
            ));
        }
        let value = text
            .parse()
            .map_err(|_| format!("{field}: {text} is too large"))?;
        self.at += digits;
        Ok(value)
    }
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;

    use proptest::prelude::*;

    use super::{EnvelopeV1, canonical_fields};

    /// The second opinion: parse as any JSON with `serde_json`, write the
    /// fields out again and accept only bytes that come back the same (how
    /// envelopes were read before this reader).
    fn by_serde(bytes: &[u8]) -> Option<EnvelopeV1<'_>> {
        let wire: EnvelopeV1<'_> = serde_json::from_slice(bytes).ok()?;
        (serde_json::to_vec(&wire).ok()? == bytes).then_some(wire)
    }

    /// Characters that stress escaping: every control character, the two
    /// that are always escaped, `/` and DEL (never escaped), and any other.
    fn tricky_char() -> impl Strategy<Value = char> {
        prop_oneof![
            (0u8..0x20).prop_map(char::from),
            Just('"'),
            Just('\\'),
            Just('/'),
            Just('\u{7f}'),
            Just('é'),
            Just('\u{2028}'),
            any::<char>(),
            "[a-z0-9-]".prop_map(|s| s.chars().next().unwrap_or('a')),
        ]
    }

    fn text() -> impl Strategy<Value = String> {
        prop::collection::vec(tricky_char(), 0..6).prop_map(|c| c.into_iter().collect())
    }

    fn fields() -> impl Strategy<Value = EnvelopeV1<'static>> {
        (
            prop::collection::vec(text(), 8),
            prop::option::of(text()),
            prop::option::of(text()),
            text(),
            any::<u64>(),
            any::<u8>(),
        )
            .prop_map(|(mut t, resource_id, resource_type, tenant, seq, v)| {
                let mut next = || Cow::Owned(t.pop().unwrap_or_default());
                EnvelopeV1 {
                    action: next(),
                    actor_id: next(),
                    actor_type: next(),
                    id: next(),
                    occurred_at: next(),
                    outcome: next(),
                    payload_digest: next(),
                    received_at: next(),
                    resource_id: resource_id.map(Cow::Owned),
                    resource_type: resource_type.map(Cow::Owned),
                    seq,
                    tenant: Cow::Owned(tenant),
                    v,
                }
            })
    }

    /// One edit of the bytes: replace, insert or remove a byte, or insert
    /// a piece of text (an escape, say) anywhere or at the start of the
    /// n-th string value.
    #[derive(Clone, Debug)]
    enum Edit {
        Replace(usize, u8),
        Insert(usize, u8),
        Remove(usize),
        InsertText(usize, &'static str),
        InsertInString(usize, &'static str),
    }

    fn edit() -> impl Strategy<Value = Edit> {
        let byte = prop_oneof![
            any::<u8>(),
            prop::sample::select(b"\"\\{}:,0123456789 nul\x1fuabf".to_vec()),
        ];
        let escape = prop::sample::select(vec![
            "\\u0041", "\\u001f", "\\u001F", "\\u0008", "\\b", "\\/", "\\u00e9", "\\ud83d", "\\n",
            "\\\"", "\\\\", "\\x", "\\u00", "null", "\"\"", " ", "01", "-1",
        ]);
        prop_oneof![
            (any::<usize>(), byte.clone()).prop_map(|(i, b)| Edit::Replace(i, b)),
            (any::<usize>(), byte).prop_map(|(i, b)| Edit::Insert(i, b)),
            any::<usize>().prop_map(Edit::Remove),
            (any::<usize>(), escape.clone()).prop_map(|(i, s)| Edit::InsertText(i, s)),
            (any::<usize>(), escape).prop_map(|(i, s)| Edit::InsertInString(i, s)),
        ]
    }

    fn apply(bytes: &mut Vec<u8>, edit: &Edit) {
        let at = |i: usize, len: usize| i % (len + 1);
        match *edit {
            Edit::Replace(i, b) if !bytes.is_empty() => {
                let i = i % bytes.len();
                bytes[i] = b;
            }
            Edit::Insert(i, b) => bytes.insert(at(i, bytes.len()), b),
            Edit::Remove(i) if !bytes.is_empty() => {
                bytes.remove(i % bytes.len());
            }
            Edit::InsertText(i, s) => {
                let i = at(i, bytes.len());
                bytes.splice(i..i, s.bytes());
            }
            Edit::InsertInString(n, s) => {
                let starts: Vec<usize> = bytes
                    .windows(2)
                    .enumerate()
                    .filter(|(_, w)| *w == b":\"")
                    .map(|(i, _)| i + 2)
                    .collect();
                if !starts.is_empty() {
                    let i = starts[n % starts.len()];
                    bytes.splice(i..i, s.bytes());
                }
            }
            _ => {}
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        #[test]
        fn the_canonical_bytes_of_any_fields_read_back_to_them(wire in fields()) {
            let bytes = serde_json::to_vec(&wire).unwrap();
            prop_assert_eq!(canonical_fields(&bytes), Ok(wire));
        }

        #[test]
        fn edited_bytes_are_read_exactly_when_serde_reads_and_writes_them_back_unchanged(
            wire in fields(),
            edits in prop::collection::vec(edit(), 1..4),
        ) {
            let mut bytes = serde_json::to_vec(&wire).unwrap();
            for e in &edits {
                apply(&mut bytes, e);
            }
            prop_assert_eq!(canonical_fields(&bytes).ok(), by_serde(&bytes));
        }
    }

    #[test]
    fn each_kind_of_departure_from_the_canonical_form_is_refused_where_it_stands() {
        let good = r#"{"action":"a","actor_id":"b","actor_type":"c","id":"d","occurred_at":"e","outcome":"f","payload_digest":"g","received_at":"h","resource_id":null,"resource_type":"i","seq":7,"tenant":"t","v":1}"#;
        assert!(canonical_fields(good.as_bytes()).is_ok());
        let cases = [
            (
                "a space",
                good.replacen(",\"", ", \"", 1),
                "expected ,\"actor_id\":",
            ),
            (
                "an escaped slash",
                good.replacen("\"a\"", "\"\\/\"", 1),
                "action: an escape",
            ),
            (
                "uppercase hex",
                good.replacen("\"b\"", "\"\\u001F\"", 1),
                "actor_id: an escape",
            ),
            (
                "a needless escape",
                good.replacen("\"c\"", "\"\\u0041\"", 1),
                "actor_type: an escape",
            ),
            (
                "\\u for a short escape",
                good.replacen("\"d\"", "\"\\u000a\"", 1),
                "id: an escape",
            ),
            (
                "a raw control",
                good.replacen("\"e\"", "\"\u{1}\"", 1),
                "occurred_at: a control",
            ),
            (
                "a leading zero",
                good.replacen(":7,", ":07,", 1),
                "seq: expected an integer",
            ),
            (
                "bytes after",
                format!("{good} "),
                "bytes after the envelope",
            ),
            (
                "unterminated",
                good[..good.len() - 30].to_owned(),
                "unterminated",
            ),
            (
                "a huge seq",
                good.replacen(":7,", ":99999999999999999999,", 1),
                "too large",
            ),
            (
                "a version past u8",
                good.replacen("\"v\":1", "\"v\":256", 1),
                "unknown version v=256",
            ),
        ];
        for (what, bytes, said) in cases {
            let e = canonical_fields(bytes.as_bytes()).expect_err(what);
            assert!(e.contains(said), "{what}: {e}");
        }
    }
}
