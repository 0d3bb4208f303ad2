//! Which tables are covered, and how to write their names in SQL.

use std::fmt;

use crate::Error;

/// A covered table and its options.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TableSpec {
    pub schema: String,
    pub table: String,
    /// Columns that never leave the database (passwords, tokens).
    pub exclude: Vec<String>,
    /// A flag or timestamp column: setting it turns an UPDATE into
    /// `soft_delete`, clearing it into `restore`.
    pub soft_delete: Option<String>,
    /// The `resource.type` its events carry instead of `schema.table`.
    pub resource_type: Option<String>,
    /// The column whose value names a record (`resource.name`, e.g. a
    /// customer's name). Never an excluded column.
    pub name_column: Option<String>,
    /// In WAL mode: which old values PostgreSQL logs for updates and
    /// deletes (`None`: full, the default).
    pub replica_identity: Option<ReplicaIdentity>,
}

/// The old values PostgreSQL writes to the WAL for an UPDATE or DELETE of a
/// table published in WAL mode (`REPLICA IDENTITY`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplicaIdentity {
    /// Every column (`REPLICA IDENTITY FULL`): updates show old and new.
    Full,
    /// The primary key only (`REPLICA IDENTITY DEFAULT`): updates show the
    /// new values, the old ones only of the key. The one choice for a table
    /// with excluded columns (PostgreSQL refuses the application's UPDATE
    /// when a publication's column list leaves out a column of a FULL
    /// identity).
    Key,
}

impl ReplicaIdentity {
    /// The name stored in `trailmark.tables` and given on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Key => "key",
        }
    }

    /// Parses `full` or `key`.
    pub fn parse(text: &str) -> Result<Self, Error> {
        match text {
            "full" => Ok(Self::Full),
            "key" => Ok(Self::Key),
            other => Err(Error::BadOption(format!(
                "replica identity {other:?}: give full (old values of every column) or key (of the primary key only)"
            ))),
        }
    }
}

/// What the drainer needs to know about a covered table (from
/// `trailmark.tables`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TableConfig {
    /// Primary key columns in key order (empty: none).
    pub key: Vec<String>,
    pub soft_delete: Option<String>,
    pub resource_type: Option<String>,
    pub name_column: Option<String>,
}

impl TableSpec {
    /// A table named by the catalog (any name PostgreSQL allows), without
    /// options.
    pub fn named(schema: impl Into<String>, table: impl Into<String>) -> Self {
        Self {
            schema: schema.into(),
            table: table.into(),
            exclude: Vec::new(),
            soft_delete: None,
            resource_type: None,
            name_column: None,
            replica_identity: None,
        }
    }

    /// Parses `schema.table` (a bare `table` means `public.table`). A part
    /// in double quotes may hold what a bare one may not (dots, spaces,
    /// `""` for a quote): `shop."Order Items"`. Names are taken as written
    /// (no case folding).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let bad = || Error::BadTableName(text.trim().to_owned());
        let mut parts = name_parts(text).ok_or_else(bad)?;
        let table = parts.pop().ok_or_else(bad)?;
        let schema = match (parts.pop(), parts.is_empty()) {
            (None, _) => "public".to_owned(),
            (Some(schema), true) => schema,
            (Some(_), false) => return Err(bad()),
        };
        Ok(Self::named(schema, table))
    }

    /// Parses `schema.table.column` (a bare `table.column` means
    /// `public.table.column`; parts quoted as in [`TableSpec::parse`]): the
    /// table and the column. None when it is not such a name.
    pub fn parse_column(text: &str) -> Option<(Self, String)> {
        let mut parts = name_parts(text)?;
        let column = parts.pop()?;
        let table = parts.pop()?;
        let schema = match (parts.pop(), parts.is_empty()) {
            (None, _) => "public".to_owned(),
            (Some(schema), true) => schema,
            (Some(_), false) => return None,
        };
        Some((Self::named(schema, table), column))
    }

    /// Whether `other` names the same table (whatever either's options).
    pub fn is_table(&self, other: &TableSpec) -> bool {
        self.schema == other.schema && self.table == other.table
    }

    /// One of its columns as `schema.table.column`, as
    /// [`TableSpec::parse_column`] reads it back.
    pub fn column(&self, column: &str) -> String {
        format!("{self}.{}", written(column))
    }

    /// The table's name quoted for SQL.
    pub(crate) fn quoted(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.table))
    }
}

/// The items of a comma-separated list of names, split at commas outside
/// double quotes (a quoted name may hold one): `a.b,s."x,y"`; each trimmed.
/// An empty item stays (and is refused where it is read: never a default).
pub fn split_list(text: &str) -> Vec<String> {
    let (mut items, mut quoted, mut start) = (Vec::new(), false, 0);
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            ',' if !quoted => {
                items.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    items.push(&text[start..]);
    items.into_iter().map(|s| s.trim().to_owned()).collect()
}

/// Splits `name=value` at the first `=` outside double quotes (a quoted
/// table name may hold one): `shop."a=b"=Thing`.
pub fn split_assignment(text: &str) -> Option<(&str, &str)> {
    let mut quoted = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '=' if !quoted => return Some((&text[..i], &text[i + 1..])),
            _ => {}
        }
    }
    None
}

/// Splits a dotted name into its parts, each bare (no dot, quote or
/// whitespace) or in double quotes (anything, `""` for a quote); None if
/// a part is empty or a quote is left open.
fn name_parts(text: &str) -> Option<Vec<String>> {
    let mut parts = Vec::new();
    let mut chars = text.trim().chars().peekable();
    loop {
        let mut part = String::new();
        if chars.peek() == Some(&'"') {
            chars.next();
            loop {
                match chars.next()? {
                    '"' if chars.peek() == Some(&'"') => {
                        chars.next();
                        part.push('"');
                    }
                    '"' => break,
                    c => part.push(c),
                }
            }
        } else {
            while let Some(&c) = chars.peek() {
                if c == '.' {
                    break;
                }
                if c == '"' || c.is_whitespace() {
                    return None;
                }
                part.push(c);
                chars.next();
            }
        }
        if part.is_empty() {
            return None;
        }
        parts.push(part);
        match chars.next() {
            None => return Some(parts),
            Some('.') => {}
            Some(_) => return None,
        }
    }
}

/// A name part as [`TableSpec::parse`] reads it back, in a list and in an
/// assignment too: bare, or in double quotes when it holds a dot, a quote,
/// a comma, `=` or whitespace.
fn written(part: &str) -> String {
    if part.contains(['.', '"', ',', '=']) || part.chars().any(char::is_whitespace) {
        ident(part)
    } else {
        part.to_owned()
    }
}

impl fmt::Display for TableSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", written(&self.schema), written(&self.table))
    }
}

/// An SQL identifier, double-quoted.
pub(crate) fn ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An SQL string literal, single-quoted.
pub(crate) fn literal(text: &str) -> String {
    format!("'{}'", text.replace('\'', "''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_and_quote() {
        let t = TableSpec::parse("crm.Customer").unwrap();
        assert_eq!(t.quoted(), "\"crm\".\"Customer\"");
        assert_eq!(
            TableSpec::parse("orders").unwrap().to_string(),
            "public.orders"
        );
        assert!(TableSpec::parse("a.b.c").is_err());
        assert!(TableSpec::parse("").is_err());
        assert_eq!(ident("we\"ird"), "\"we\"\"ird\"");
        assert_eq!(literal("it's"), "'it''s'");
    }

    #[test]
    fn quoted_names_hold_dots_spaces_and_quotes_and_print_as_they_parse() {
        let t = TableSpec::parse(r#"shop."Order Items""#).unwrap();
        assert_eq!(
            (t.schema.as_str(), t.table.as_str()),
            ("shop", "Order Items")
        );
        assert_eq!(t.to_string(), r#"shop."Order Items""#);
        let odd = TableSpec::named("a.b", r#"say "hi""#);
        assert_eq!(odd.to_string(), r#""a.b"."say ""hi""""#);
        assert_eq!(TableSpec::parse(&odd.to_string()).unwrap(), odd);
        assert_eq!(TableSpec::parse(r#""t.x""#).unwrap().schema, "public");
        for bad in [
            r#"shop."open"#,
            r#"shop."""#,
            "shop.",
            ".t",
            "a b",
            r#"a"b"#,
            r#""a"b"#,
        ] {
            assert!(TableSpec::parse(bad).is_err(), "{bad}");
        }
        let (t, c) = TableSpec::parse_column(r#"shop."Order Items"."a.b""#).unwrap();
        assert_eq!(
            (t.to_string().as_str(), c.as_str()),
            (r#"shop."Order Items""#, "a.b")
        );
        let (t, c) = TableSpec::parse_column("t.c").unwrap();
        assert_eq!((t.to_string().as_str(), c.as_str()), ("public.t", "c"));
        assert!(TableSpec::parse_column("c").is_none());
        let (t, c) = TableSpec::parse_column(&odd.column("x.y")).unwrap();
        assert_eq!((t, c.as_str()), (odd.clone(), "x.y"));
        assert!(TableSpec::parse_column("a.b.c.d").is_none());
        assert_eq!(
            split_assignment(r#"s."a=b"=T=x"#),
            Some((r#"s."a=b""#, "T=x"))
        );
        assert_eq!(split_assignment("s.t"), None);
        assert_eq!(
            split_list(r#"a.b, s."x,y".c,"#),
            ["a.b", r#"s."x,y".c"#, ""]
        );
    }
}
