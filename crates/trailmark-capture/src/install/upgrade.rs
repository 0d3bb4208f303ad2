//! What an earlier install left: its version and the tables it covered with their options (version 1 kept them only in its function sources).

use tokio_postgres::GenericClient;

use crate::table::{ReplicaIdentity, TableSpec};
use crate::{Error, pg};

use super::catalog::covered_tables;

/// The capture schema version this build installs (`trailmark.meta`).
pub const VERSION: u32 = 18;

pub(super) async fn stored_specs(client: &impl GenericClient) -> Result<Vec<TableSpec>, Error> {
    let rows = client
        .query(
            "SELECT schema_name, table_name, exclude, soft_delete, resource_type, name_column,
                    replica_identity
             FROM trailmark.tables ORDER BY 1, 2",
            &[],
        )
        .await
        .map_err(pg("reading trailmark.tables"))?;
    Ok(rows
        .iter()
        .map(|r| TableSpec {
            schema: r.get(0),
            table: r.get(1),
            exclude: r.get(2),
            soft_delete: r.get(3),
            resource_type: r.get(4),
            name_column: r.get(5),
            replica_identity: r
                .get::<_, Option<String>>(6)
                .and_then(|t| ReplicaIdentity::parse(&t).ok()),
        })
        .collect())
}

/// Refuses a capture installed by a newer Trailmark than this one
/// ([`Error::NewerVersion`]): what it writes (an operation, a message) this
/// build may not know. The one rule for install and the drainer.
pub async fn refuse_newer(client: &impl GenericClient) -> Result<Option<u32>, Error> {
    let installed = installed_version(client).await?;
    match installed {
        Some(v) if v > VERSION => Err(Error::NewerVersion(v)),
        _ => Ok(installed),
    }
}

/// The installed version, if any.
pub(super) async fn installed_version(client: &impl GenericClient) -> Result<Option<u32>, Error> {
    if !crate::has_table(client, "meta", "looking for an earlier install").await? {
        return Ok(None);
    }
    let version = client
        .query_opt(
            "SELECT value FROM trailmark.meta WHERE key = 'version'",
            &[],
        )
        .await
        .map_err(pg("reading the installed version"))?
        .map(|r| r.get::<_, String>(0));
    Ok(version.and_then(|v| v.parse().ok()))
}

/// Version 1 kept no table list: each covered table's exclusions are read
/// back from the array literal its generated function was written with.
pub(super) async fn version_1_specs(client: &impl GenericClient) -> Result<Vec<TableSpec>, Error> {
    let mut specs = Vec::new();
    for mut spec in covered_tables(client).await? {
        let source: Option<String> = client
            .query_opt(
                "SELECT p.prosrc FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid
                 WHERE t.tgrelid = $1::text::regclass AND t.tgname = 'trailmark_insert'",
                &[&spec.quoted()],
            )
            .await
            .map_err(pg(format!("reading the version 1 function of {spec}")))?
            .map(|r| r.get(0));
        spec.exclude = source
            .as_deref()
            .map(excluded_in_source)
            .unwrap_or_default();
        specs.push(spec);
    }
    Ok(specs)
}

/// The names in `excluded constant text[] := ARRAY['a', 'b']::text[]`.
pub(super) fn excluded_in_source(source: &str) -> Vec<String> {
    let Some(start) = source.find("excluded constant text[] := ARRAY[") else {
        return Vec::new();
    };
    let rest = &source[start + "excluded constant text[] := ARRAY[".len()..];
    let Some(end) = rest.find("]::text[]") else {
        return Vec::new();
    };
    let mut names = Vec::new();
    let mut chars = rest[..end].chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\'' {
            continue;
        }
        let mut name = String::new();
        while let Some(c) = chars.next() {
            if c == '\'' {
                if chars.peek() == Some(&'\'') {
                    chars.next();
                    name.push('\'');
                } else {
                    break;
                }
            } else {
                name.push(c);
            }
        }
        names.push(name);
    }
    names
}
