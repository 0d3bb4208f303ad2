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
    /// Parses `schema.table` (a bare `table` means `public.table`).
    pub fn parse(text: &str) -> Result<Self, Error> {
        let text = text.trim();
        let (schema, table) = text.split_once('.').unwrap_or(("public", text));
        let ok = |s: &str| !s.is_empty() && !s.contains('.') && !s.chars().any(char::is_whitespace);
        if !ok(schema) || !ok(table) {
            return Err(Error::BadTableName(text.to_owned()));
        }
        Ok(Self {
            schema: schema.to_owned(),
            table: table.to_owned(),
            exclude: Vec::new(),
            soft_delete: None,
            resource_type: None,
            name_column: None,
            replica_identity: None,
        })
    }

    /// The table's name quoted for SQL.
    pub(crate) fn quoted(&self) -> String {
        format!("{}.{}", ident(&self.schema), ident(&self.table))
    }
}

impl fmt::Display for TableSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}.{}", self.schema, self.table)
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
}
