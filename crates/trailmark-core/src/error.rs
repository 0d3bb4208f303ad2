use std::fmt;

/// An error's text followed by each cause's that adds something: a cause
/// whose text the text so far already holds is not said again (an error
/// that writes its source into its own message and also reports it as its
/// source; a database driver whose own text is only "db error"). The one
/// rule for every error an operator reads (the CLI's last line, the
/// server's log).
pub fn told(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        let said = e.to_string();
        if !text.contains(&said) {
            text.push_str(": ");
            text.push_str(&said);
        }
        cause = e.source();
    }
    text
}

/// One problem with an input, located by its field path (`actor.id`,
/// `changes.price.old`, `metadata.items[3]`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FieldError {
    pub path: String,
    pub message: String,
}

impl FieldError {
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            path: path.into(),
            message: message.into(),
        }
    }

    /// The path's steps, as keys and array indexes (an index as its
    /// digits): `metadata.items[3]` is `metadata`, `items`, `3`;
    /// `context["a.b/c"]` is `context`, `a.b/c`. The path is read by the
    /// grammar validation writes it in (plain words joined by `.`, other
    /// keys as JSON strings in brackets, indexes in brackets).
    pub fn segments(&self) -> Vec<String> {
        let mut out = Vec::new();
        let mut rest = self.path.as_str();
        while !rest.is_empty() {
            if let Some(after) = rest.strip_prefix('.') {
                rest = after;
            } else if let Some(after) = rest.strip_prefix("[\"") {
                // A JSON string: find its closing quote, skipping escapes.
                let mut end = None;
                let mut escaped = false;
                for (i, c) in after.char_indices() {
                    match c {
                        _ if escaped => escaped = false,
                        '\\' => escaped = true,
                        '"' => {
                            end = Some(i);
                            break;
                        }
                        _ => {}
                    }
                }
                let Some(end) = end else {
                    out.push(after.to_owned());
                    break;
                };
                let quoted = &rest[1..end + 3];
                out.push(
                    serde_json::from_str::<String>(quoted)
                        .unwrap_or_else(|_| after[..end].to_owned()),
                );
                rest = after[end + 1..]
                    .strip_prefix(']')
                    .unwrap_or(&after[end + 1..]);
            } else if let Some(after) = rest.strip_prefix('[') {
                let end = after.find(']').unwrap_or(after.len());
                out.push(after[..end].to_owned());
                rest = after.get(end + 1..).unwrap_or("");
            } else {
                let end = rest.find(['.', '[']).unwrap_or(rest.len());
                out.push(rest[..end].to_owned());
                rest = &rest[end..];
            }
        }
        out
    }

    /// The path as an RFC 6901 JSON pointer (`/metadata/items/3`,
    /// `/context/a.b~1c`), for `serde_json::Value::pointer`.
    pub fn pointer(&self) -> String {
        pointer_of(&self.segments())
    }
}

/// An RFC 6901 JSON pointer to the value at `segments`.
pub fn pointer_of(segments: &[String]) -> String {
    let mut out = String::new();
    for segment in segments {
        out.push('/');
        out.push_str(&segment.replace('~', "~0").replace('/', "~1"));
    }
    out
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.path.is_empty() {
            f.write_str(&self.message)
        } else {
            write!(f, "{}: {}", self.path, self.message)
        }
    }
}

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// An event failed validation; every problem is listed.
    #[error("invalid event: {}", join(.0))]
    Invalid(Vec<FieldError>),
    /// A value could not be canonicalized (RFC 8785).
    #[error("cannot canonicalize {what}: {source}")]
    Canonical {
        what: &'static str,
        #[source]
        source: serde_json::Error,
    },
    /// Stored envelope bytes are not a canonical Trailmark envelope.
    #[error("not a canonical v1 envelope: {reason}")]
    Envelope { reason: String },
    /// A payload does not match the digest its envelope commits to.
    #[error("payload does not match its digest")]
    PayloadMismatch,
}

fn join(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

#[cfg(test)]
mod tests {
    use super::FieldError;

    #[test]
    fn paths_become_json_pointers_whatever_their_keys() {
        for (path, pointer) in [
            ("actor.id", "/actor/id"),
            ("metadata.items[3]", "/metadata/items/3"),
            ("metadata.items[3].name", "/metadata/items/3/name"),
            (r#"context["a.b/c"]"#, "/context/a.b~1c"),
            (r#"metadata["say \"hi\"]"].x"#, r#"/metadata/say "hi"]/x"#),
            (r#"changes["~x"].old"#, "/changes/~0x/old"),
            ("", ""),
        ] {
            let error = FieldError::new(path, "bad");
            assert_eq!(error.pointer(), pointer, "{path}");
        }
        let v = serde_json::json!({"metadata": {"items": [0, 1, 2, {"name": "x"}]}});
        let e = FieldError::new("metadata.items[3].name", "bad");
        assert_eq!(v.pointer(&e.pointer()), Some(&serde_json::json!("x")));
    }

    /// A chain of errors, each with its text and its source.
    #[derive(Debug)]
    struct Link(&'static str, Option<Box<Link>>);
    impl std::fmt::Display for Link {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }
    impl std::error::Error for Link {
        fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
            self.1
                .as_deref()
                .map(|l| l as &(dyn std::error::Error + 'static))
        }
    }

    /// A cause an error already wrote into its own text is said once (the
    /// CLI printed "appending: db error: db error: ERROR: ..." for a store
    /// error); every cause that adds something is said, in order.
    #[test]
    fn each_cause_is_told_once() {
        let driver = Link("db error", Some(Box::new(Link("ERROR: disk full", None))));
        let store = Link("appending: db error", Some(Box::new(driver)));
        let cli = Link("opening the store", Some(Box::new(store)));
        assert_eq!(
            super::told(&cli),
            "opening the store: appending: db error: ERROR: disk full"
        );
        let plain = Link(
            "a",
            Some(Box::new(Link("b", Some(Box::new(Link("c", None)))))),
        );
        assert_eq!(super::told(&plain), "a: b: c");
    }
}
