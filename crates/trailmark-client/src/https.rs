//! The TLS of every outgoing HTTPS call Trailmark makes: the Rust client
//! (and `capture pg run --server`, `verify --url` through it), webhook
//! deliveries and witness submissions (docs/OPERATIONS.md, "Outgoing
//! HTTPS"). A server's certificate must name the host of the URL and be
//! signed by one of the Mozilla roots built into the binary, or, when the
//! operator names a file of authorities, by one of those alone (as
//! `sslrootcert` does for PostgreSQL).

use std::path::Path;

/// What [`tls_config`] makes: `ureq`'s TLS settings, which the server's
/// webhooks and witnesses take too.
pub use ureq::tls::TlsConfig;
use ureq::tls::{PemItem, RootCerts};

/// The environment variable naming a file of authorities (PEM) for the
/// callers that take no setting of their own: the Rust client and the
/// commands built on it. `serve` reads it too, as `--ca-file`.
pub const CA_FILE_VAR: &str = "TRAILMARK_CA_FILE";

/// The TLS of an outgoing call: the certificates of `ca_file` (PEM) as the
/// only authorities, or the built-in Mozilla roots when there is none. A
/// file that cannot be read or holds no certificate is an error.
pub fn tls_config(ca_file: Option<&Path>) -> Result<TlsConfig, String> {
    let Some(path) = ca_file else {
        return Ok(TlsConfig::default());
    };
    let pem = std::fs::read(path).map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let mut authorities = Vec::new();
    for item in ureq::tls::parse_pem(&pem) {
        if let PemItem::Certificate(cert) =
            item.map_err(|e| format!("{} is not PEM: {e}", path.display()))?
        {
            authorities.push(cert);
        }
    }
    if authorities.is_empty() {
        return Err(format!(
            "{} holds no certificate: give the PEM file of the authorities that sign your endpoints' certificates",
            path.display()
        ));
    }
    Ok(TlsConfig::builder()
        .root_certs(RootCerts::from(authorities))
        .build())
}

/// [`tls_config`] of the file [`CA_FILE_VAR`] names (unset: the built-in
/// roots; set but empty: an error, never the built-in roots by mistake).
pub fn tls_config_from_env() -> Result<TlsConfig, String> {
    match std::env::var_os(CA_FILE_VAR) {
        None => tls_config(None),
        Some(path) if path.is_empty() => Err(format!(
            "{CA_FILE_VAR}: empty; name a PEM file of certificate authorities, or unset it"
        )),
        Some(path) => tls_config(Some(Path::new(&path))).map_err(|e| format!("{CA_FILE_VAR}: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::tls_config;

    #[test]
    fn an_authorities_file_must_be_readable_and_hold_a_certificate() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("missing.pem");
        assert!(
            tls_config(Some(&missing))
                .unwrap_err()
                .contains("cannot read")
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "no certificate here\n").unwrap();
        assert!(
            tls_config(Some(&empty))
                .unwrap_err()
                .contains("holds no certificate")
        );
        assert!(tls_config(None).is_ok(), "the built-in roots");
    }
}
