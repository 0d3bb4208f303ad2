//! Outgoing HTTPS (the Rust client, and through the same HTTP stack the
//! drainer, `verify --url`, webhooks and witnesses): against a local TLS
//! server (Debian's `openssl s_server`) whose certificate no root built into
//! the binary signed, a call fails on that certificate after the handshake
//! began: TLS is spoken and the certificate checked. A build without TLS
//! failed every `https://` call with "TLS required, but transport is
//! unsecured".

#![allow(clippy::unwrap_used)]

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use trailmark_client::{Client, Error};

#[test]
fn https_is_spoken_and_a_certificate_no_known_root_signed_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (dir.path().join("cert.pem"), dir.path().join("key.pem"));
    let made = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=localhost"])
        .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
        .args(["-addext", "basicConstraints=critical,CA:FALSE"])
        .arg("-keyout")
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .stderr(Stdio::null())
        .status()
        .expect("openssl (Debian's package) makes the test server's certificate");
    assert!(made.success());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut server = Command::new("openssl")
        .args(["s_server", "-quiet", "-www", "-accept"])
        .arg(format!("127.0.0.1:{port}"))
        .arg("-cert")
        .arg(&cert)
        .arg("-key")
        .arg(&key)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "openssl s_server never listened");
        std::thread::sleep(Duration::from_millis(20));
    }
    let client = Client::new(
        &format!("https://127.0.0.1:{port}"),
        "tm_key",
        Duration::from_secs(10),
    )
    .unwrap();
    let answer = client.get_text("/healthz", &[]);
    server.kill().unwrap();
    server.wait().unwrap();
    let Err(Error::Transport(refused)) = answer else {
        panic!("a certificate no root signed must be refused: {answer:?}");
    };
    assert!(refused.contains("UnknownIssuer"), "{refused}");
}
