//! RFC 8785 (JCS) canonical JSON.

use std::fmt;

use std::sync::OnceLock;

use serde::Serialize;
use serde_json::Value;

use crate::Error;

/// Largest integer whose double is exact: JCS writes it in plain decimal.
const EXACT: u64 = 1 << 53;

/// True when `serde_json`'s compact output of `value` is already its RFC 8785
/// form: every number an integer of magnitude at most 2^53 (JCS would print
/// the same digits) and every key below U+E000 (where UTF-8 byte order and
/// UTF-16 code unit order agree). String escaping is the same in both: `"`,
/// `\` and control characters only, `\b \t \n \f \r` short, others `\u00xx`.
pub(crate) fn compact_is_canonical(value: &Value) -> bool {
    match value {
        Value::Null | Value::Bool(_) | Value::String(_) => true,
        Value::Number(n) => n
            .as_u64()
            .map(|u| u <= EXACT)
            .or_else(|| n.as_i64().map(|i| i.unsigned_abs() <= EXACT))
            .unwrap_or(false),
        Value::Array(items) => items.iter().all(compact_is_canonical),
        Value::Object(map) => map_is_canonical(map),
    }
}

/// [`compact_is_canonical`] of an object's members: every key as
/// [`key_is_canonical`] requires, every value so.
pub(crate) fn map_is_canonical(map: &serde_json::Map<String, Value>) -> bool {
    map.iter()
        .all(|(k, v)| key_is_canonical(k) && compact_is_canonical(v))
}

/// Whether a key's place among sorted keys is the same in UTF-8 byte order
/// (`serde_json`'s maps) as in UTF-16 code unit order (RFC 8785): every
/// character below U+E000.
pub(crate) fn key_is_canonical(key: &str) -> bool {
    key.chars().all(|c| c < '\u{e000}')
}

/// Whether `serde_json::Map` iterates in sorted key order in this build (it
/// does unless some crate turned on `serde_json`'s `preserve_order`).
pub(crate) fn maps_are_sorted() -> bool {
    static SORTED: OnceLock<bool> = OnceLock::new();
    *SORTED.get_or_init(|| {
        let mut map = serde_json::Map::new();
        map.insert("b".into(), Value::Null);
        map.insert("a".into(), Value::Null);
        map.keys().next().is_some_and(|k| k == "a")
    })
}

/// Appends `text` as an RFC 8785 JSON string: quoted; `"` and `\`
/// escaped; `\b \t \n \f \r` short, the other control characters as
/// `\u00xx` (lowercase); everything else as it is (`/`, DEL and non-ASCII
/// too). The escapes are all ASCII, so text is only cut at ASCII bytes.
pub(crate) fn push_string(out: &mut Vec<u8>, text: &str) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let bytes = text.as_bytes();
    out.reserve(bytes.len() + 2);
    out.push(b'"');
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        if !matches!(b, b'"' | b'\\' | 0x00..=0x1f) {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        match b {
            b'"' => out.extend_from_slice(b"\\\""),
            b'\\' => out.extend_from_slice(b"\\\\"),
            0x08 => out.extend_from_slice(b"\\b"),
            b'\t' => out.extend_from_slice(b"\\t"),
            b'\n' => out.extend_from_slice(b"\\n"),
            0x0c => out.extend_from_slice(b"\\f"),
            b'\r' => out.extend_from_slice(b"\\r"),
            _ => {
                out.extend_from_slice(b"\\u00");
                out.push(HEX[usize::from(b >> 4)]);
                out.push(HEX[usize::from(b & 0x0f)]);
            }
        }
    }
    out.extend_from_slice(&bytes[start..]);
    out.push(b'"');
}

/// Bytes that are the RFC 8785 canonical form of some JSON value. Only
/// [`CanonicalJson::of`] makes one, so holding one proves canonical form.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct CanonicalJson(Vec<u8>);

impl CanonicalJson {
    /// Canonicalizes a value: keys sorted by UTF-16 code units, no
    /// insignificant white space, ECMAScript number and string forms.
    pub fn of<T: Serialize>(what: &'static str, value: &T) -> Result<Self, Error> {
        serde_json_canonicalizer::to_vec(value)
            .map(Self)
            .map_err(|source| Error::Canonical { what, source })
    }

    /// Canonicalizes a JSON value, taking the fast path of `serde_json`'s
    /// compact writer when that output is provably canonical already.
    pub fn of_value(what: &'static str, value: &Value) -> Result<Self, Error> {
        if maps_are_sorted() && compact_is_canonical(value) {
            return Self::of_compact(what, value);
        }
        Self::of(what, value)
    }

    /// Canonicalizes a map (a payload), as [`CanonicalJson::of_value`].
    pub fn of_map(what: &'static str, map: &serde_json::Map<String, Value>) -> Result<Self, Error> {
        if maps_are_sorted() && map_is_canonical(map) {
            return Self::of_compact(what, map);
        }
        Self::of(what, map)
    }

    /// `serde_json`'s compact output of a value the caller has shown to be
    /// canonical that way (maps sorted, every number and key as
    /// [`compact_is_canonical`] requires); crate-internal.
    pub(crate) fn of_compact<T: Serialize>(what: &'static str, value: &T) -> Result<Self, Error> {
        serde_json::to_vec(value)
            .map(Self)
            .map_err(|source| Error::Canonical { what, source })
    }

    /// Wraps bytes that the caller has just produced in canonical form by
    /// construction (the envelope's fixed, sorted fields); crate-internal.
    pub(crate) fn from_canonical_bytes(bytes: Vec<u8>) -> Self {
        Self(bytes)
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    pub fn into_bytes(self) -> Vec<u8> {
        self.0
    }

    /// The canonical text (canonical JSON is always UTF-8).
    pub fn as_str(&self) -> &str {
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl fmt::Debug for CanonicalJson {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "CanonicalJson({})", self.as_str())
    }
}

impl AsRef<[u8]> for CanonicalJson {
    fn as_ref(&self) -> &[u8] {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn canon(v: &serde_json::Value) -> String {
        CanonicalJson::of("test", v).unwrap().as_str().to_owned()
    }

    // Examples from RFC 8785 §3.2.2 and Appendix B.
    #[test]
    fn numbers_take_their_ecmascript_form() {
        let input: serde_json::Value = serde_json::from_str(
            "[333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001, -0, 1e21, 1e-7, 9007199254740991]",
        )
        .unwrap();
        assert_eq!(
            canon(&input),
            "[333333333.3333333,1e+30,4.5,0.002,1e-27,0,1e+21,1e-7,9007199254740991]"
        );
    }

    #[test]
    fn strings_escape_only_what_they_must() {
        let input = json!(["\u{20ac}$\u{000F}\u{000a}A'\u{0042}\u{0022}\u{005c}\\\"/"]);
        assert_eq!(canon(&input), "[\"€$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"]");
    }

    #[test]
    fn keys_sort_by_utf16_code_units() {
        // RFC 8785 §3.2.3: "\r" < "1" < "\u0080" < "ö" < "€" < "😀" < "ﬂ".
        let input: serde_json::Value = serde_json::from_str(
            r#"{"\u20ac":"Euro Sign","\r":"Carriage Return","\ufb33":"Hebrew Letter Dalet With Dagesh","1":"One","\ud83d\ude00":"Emoji: Grinning Face","\u0080":"Control","\u00f6":"Latin Small Letter O With Diaeresis"}"#,
        )
        .unwrap();
        let out = canon(&input);
        let order: Vec<_> = ["\\r", "1", "\u{80}", "ö", "€", "😀", "\u{fb33}"]
            .iter()
            .map(|k| out.find(&format!("\"{k}\":")).unwrap())
            .collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "{out}");
    }

    #[test]
    fn canonicalizing_canonical_bytes_changes_nothing() {
        let v = json!({"b": [1, 2.5, {"z": null, "a": true}], "a": "x"});
        let once = canon(&v);
        let again = canon(&serde_json::from_str(&once).unwrap());
        assert_eq!(once, again);
        assert_eq!(once, r#"{"a":"x","b":[1,2.5,{"a":true,"z":null}]}"#);
    }
}
