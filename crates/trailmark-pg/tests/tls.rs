//! Against a real PostgreSQL offering TLS (Debian's default: `ssl = on`
//! with the machine's own self-signed "snakeoil" certificate, which names
//! the machine and never an IP address): each `sslmode` encrypts, or
//! refuses a server it cannot vouch for, as docs/OPERATIONS.md says.

#![allow(clippy::unwrap_used)]

use trailmark_pg::Source;

/// The test server (`TRAILMARK_TEST_PG`, as every PostgreSQL test),
/// reached by IP address.
fn base() -> String {
    let server = std::env::var("TRAILMARK_TEST_PG")
        .unwrap_or_else(|_| "host=127.0.0.1 port=5432 user=postgres".into());
    format!("{server} dbname=postgres")
}

/// Whether a session opened with `source` is encrypted, as the server sees
/// it; the connection's error otherwise.
async fn encrypted(source: &str) -> Result<bool, String> {
    let source = Source::parse(source)?;
    let (client, connection) = source.connect().await.map_err(|e| format!("{e:?}"))?;
    tokio::spawn(connection);
    let row = client
        .query_one(
            "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()",
            &[],
        )
        .await
        .map_err(|e| e.to_string())?;
    Ok(row.get(0))
}

/// The server's certificate file, and that the server offers TLS at all.
async fn server_certificate() -> String {
    let source = Source::parse(&format!("{} sslmode=disable", base())).unwrap();
    let (client, connection) = source.connect().await.unwrap();
    tokio::spawn(connection);
    let ssl: String = client.query_one("SHOW ssl", &[]).await.unwrap().get(0);
    assert_eq!(
        ssl, "on",
        "the test server must offer TLS (ssl = on, as Debian's packages set it)"
    );
    client
        .query_one("SHOW ssl_cert_file", &[])
        .await
        .unwrap()
        .get(0)
}

#[tokio::test]
async fn require_and_the_default_encrypt_and_disable_does_not() {
    server_certificate().await;
    let base = base();
    assert!(encrypted(&format!("{base} sslmode=require")).await.unwrap());
    assert!(
        encrypted(&base).await.unwrap(),
        "prefer, the default, encrypts when the server offers TLS"
    );
    assert!(
        encrypted(&format!(
            "postgresql://postgres@127.0.0.1:{}/postgres?sslmode=require",
            port()
        ))
        .await
        .unwrap(),
        "the same from a URI"
    );
    assert!(
        encrypted(&format!(
            "hostaddr=127.0.0.1 port={} user=postgres dbname=postgres sslmode=require",
            port()
        ))
        .await
        .unwrap(),
        "an address without a host name"
    );
    assert!(!encrypted(&format!("{base} sslmode=disable")).await.unwrap());
}

#[tokio::test]
async fn verify_full_refuses_a_certificate_no_trusted_root_signed() {
    server_certificate().await;
    for mode in ["verify-full", "verify-ca"] {
        let refused = encrypted(&format!("{} sslmode={mode}", base()))
            .await
            .unwrap_err();
        assert!(refused.contains("UnknownIssuer"), "{mode}: {refused}");
    }
}

/// With the server's own certificate as the root: `verify-ca` accepts it
/// whatever the host is called; `verify-full` also wants the host named in
/// it, and the address connected to is not.
#[tokio::test]
async fn a_root_that_signed_the_certificate_passes_verify_ca_and_verify_full_checks_the_name() {
    let cert = server_certificate().await;
    let source = Source::parse(&base()).unwrap();
    let hosts = source.config().get_hosts();
    assert!(
        matches!(hosts, [tokio_postgres::config::Host::Tcp(h)] if h.parse::<std::net::IpAddr>().is_ok()),
        "TRAILMARK_TEST_PG must name one server by IP address for this test: {hosts:?}"
    );
    let base = base();
    assert!(
        encrypted(&format!("{base} sslmode=verify-ca sslrootcert={cert}"))
            .await
            .unwrap()
    );
    let refused = encrypted(&format!("{base} sslmode=verify-full sslrootcert={cert}"))
        .await
        .unwrap_err();
    assert!(refused.contains("NotValidForName"), "{refused}");
}

fn port() -> u16 {
    let source = Source::parse(&base()).unwrap();
    source.config().get_ports().first().copied().unwrap_or(5432)
}
