//! Trailmark's connections to PostgreSQL, encrypted as libpq's `sslmode`
//! asks: the shared store's pools, the capture drainers' connections and the
//! `capture pg` commands all connect through a [`Source`], so that they
//! encrypt and check certificates alike, and alike with WAL mode's
//! replication connection (the `pg_walstream` crate, which follows the same
//! rules).
//!
//! `tokio-postgres` reads libpq's connection strings but knows only three
//! of the six `sslmode`s and no `sslrootcert`. [`Source::parse`] takes those
//! two settings out of the string, hands it the rest, and makes the TLS
//! configuration they ask for (docs/OPERATIONS.md, "Connections to
//! PostgreSQL"):
//!
//! | `sslmode` | TLS | the server's certificate |
//! |---|---|---|
//! | `disable` | never | — |
//! | `allow`, `prefer` (the default) | when the server offers it | not checked |
//! | `require` | always | not checked |
//! | `verify-ca` | always | signed by a root of `sslrootcert` (default: the bundled Mozilla roots) |
//! | `verify-full` | always | as `verify-ca`, and naming the host connected to |
//!
//! An `sslrootcert` with a mode that checks nothing is refused rather than
//! ignored (libpq would check the authority then; the replication
//! connection would not), as are an unknown mode and a setting given twice.

use std::fmt;
use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use rustls::client::WebPkiServerVerifier;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, DigitallySignedStruct, RootCertStore, SignatureScheme};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio_postgres::tls::{ChannelBinding, MakeTlsConnect, TlsConnect};

mod passfile;

/// What `sslmode` asks of a connection (see the crate's table).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SslMode {
    Disable,
    Allow,
    Prefer,
    Require,
    VerifyCa,
    VerifyFull,
}

impl SslMode {
    const NAMES: [(&'static str, SslMode); 6] = [
        ("disable", SslMode::Disable),
        ("allow", SslMode::Allow),
        ("prefer", SslMode::Prefer),
        ("require", SslMode::Require),
        ("verify-ca", SslMode::VerifyCa),
        ("verify-full", SslMode::VerifyFull),
    ];

    fn named(value: &str) -> Result<Self, String> {
        Self::NAMES
            .iter()
            .find(|(name, _)| *name == value)
            .map(|&(_, mode)| mode)
            .ok_or_else(|| {
                let names: Vec<&str> = Self::NAMES.iter().map(|(name, _)| *name).collect();
                format!(
                    "sslmode: {value:?} is not one of {} (libpq's modes)",
                    names.join(", ")
                )
            })
    }

    /// Whether the server's certificate is checked at all.
    fn verifies(self) -> bool {
        matches!(self, SslMode::VerifyCa | SslMode::VerifyFull)
    }
}

/// A PostgreSQL connection string read for connecting: its settings for
/// `tokio-postgres` and the TLS its `sslmode` asks for.
#[derive(Clone)]
pub struct Source {
    config: tokio_postgres::Config,
    tls: Tls,
    mode: SslMode,
    /// `sslrootcert` as given.
    root_cert: Option<String>,
}

impl fmt::Debug for Source {
    // Never the string: it may hold a password.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Source")
            .field("sslmode", &self.mode)
            .finish_non_exhaustive()
    }
}

impl Source {
    /// Reads a libpq connection string (`key=value …` or a
    /// `postgresql://` URI). The error names the setting at fault and never
    /// repeats the string (it may hold a password). A string without a
    /// password takes the environment's `PGPASSWORD`, else the password
    /// file's (`passfile`, `PGPASSFILE`, `~/.pgpass`: [`passfile`]), as
    /// libpq does; WAL mode's replication connection is given the same
    /// ([`Self::replication_uri`]).
    pub fn parse(source: &str) -> Result<Self, String> {
        Self::parse_with(source, &passfile::Environment::of_process())
    }

    /// [`Self::parse`], in the environment given.
    fn parse_with(source: &str, env: &passfile::Environment) -> Result<Self, String> {
        let (rest, own) = take_own_settings(source)?;
        let mode = own
            .mode
            .as_deref()
            .map_or(Ok(SslMode::Prefer), SslMode::named)?;
        if own.root_cert.is_some() && !mode.verifies() {
            return Err(
                "sslrootcert: only sslmode=verify-ca or verify-full check the server's certificate; set one of them (or leave sslrootcert out)"
                    .into(),
            );
        }
        let mut config: tokio_postgres::Config = rest
            .parse()
            .map_err(|e| format!("the connection string: {e}"))?;
        own.libpq_units(&mut config)?;
        if config.get_hosts().is_empty() {
            // Addresses alone (`hostaddr`): each is also the name the TLS
            // handshake gives and a certificate is held to, as libpq does;
            // `tokio-postgres` would refuse to start TLS without a name.
            for address in config.get_hostaddrs().to_vec() {
                config.host(address.to_string());
            }
        }
        config.ssl_mode(match mode {
            SslMode::Disable => tokio_postgres::config::SslMode::Disable,
            SslMode::Allow | SslMode::Prefer => tokio_postgres::config::SslMode::Prefer,
            SslMode::Require | SslMode::VerifyCa | SslMode::VerifyFull => {
                tokio_postgres::config::SslMode::Require
            }
        });
        if config.get_password().is_none() {
            let password = match &env.password {
                Some(password) => Some(password.clone()),
                None => passfile::password(
                    own.passfile.as_deref(),
                    env,
                    &passfile_targets(&config, &user_of(&config)?),
                )?,
            };
            if let Some(password) = password {
                config.password(password);
            }
        }
        let tls = Tls::new(mode, own.root_cert.as_deref())?;
        Ok(Self {
            config,
            tls,
            mode,
            root_cert: own.root_cert,
        })
    }

    /// The connection's `sslmode`.
    pub fn ssl_mode(&self) -> SslMode {
        self.mode
    }

    /// The settings `tokio-postgres` connects with (`sslmode` and
    /// `sslrootcert` taken out, the mode set as it understands it).
    pub fn config(&self) -> &tokio_postgres::Config {
        &self.config
    }

    /// [`Self::config`], to change (a pool's session options).
    pub fn config_mut(&mut self) -> &mut tokio_postgres::Config {
        &mut self.config
    }

    /// The TLS connector, for a pool that connects by itself.
    pub fn tls(&self) -> Tls {
        self.tls.clone()
    }

    /// One connection; its driver (the returned [`Connection`]) must be
    /// polled, or spawned, for the client to work.
    pub async fn connect(
        &self,
    ) -> Result<(tokio_postgres::Client, Connection), tokio_postgres::Error> {
        self.config.connect(self.tls.clone()).await
    }

    /// The string WAL mode's replication connection (`pg_walstream`'s own
    /// client) connects with: this source's one host, its port, user,
    /// password, database, `sslmode`, `sslrootcert` and TCP settings, each
    /// value percent-encoded in a URI's query, and `replication=database`.
    /// Made from what [`Self::parse`] read, not from the string as given,
    /// so that both connections are one: that client reads quoted values
    /// in a `key=value` string its own way (no backslash escapes), takes a
    /// user left out as `postgres` (not the user running the process, as
    /// libpq and `tokio-postgres` do) and knows no password file.
    /// `tcp_user_timeout` is passed in milliseconds, as libpq and that
    /// client read it.
    ///
    /// An error when the source names no host, several, or a Unix-domain
    /// socket: that client connects to one host over TCP.
    pub fn replication_uri(&self) -> Result<String, String> {
        use tokio_postgres::config::Host;
        let config = &self.config;
        let host = match config.get_hosts() {
            [Host::Tcp(host)] => host,
            [] => return Err("the connection string names no host".into()),
            [_] => return Err("the connection string names a Unix-domain socket".into()),
            _ => return Err("the connection string names several hosts".into()),
        };
        let mut settings: Vec<(&str, String)> = vec![
            ("host", host.clone()),
            (
                "port",
                config.get_ports().first().unwrap_or(&5432).to_string(),
            ),
        ];
        let user = user_of(config)?;
        if let Some(password) = config.get_password() {
            let password = String::from_utf8(password.to_vec())
                .map_err(|_| "password: not UTF-8".to_owned())?;
            settings.push(("password", password));
        }
        settings.push(("dbname", config.get_dbname().unwrap_or(&user).to_owned()));
        settings.push(("user", user));
        let mode = SslMode::NAMES
            .iter()
            .find(|(_, mode)| *mode == self.mode)
            .map_or("prefer", |(name, _)| name);
        settings.push(("sslmode", mode.to_owned()));
        if let Some(root_cert) = &self.root_cert {
            settings.push(("sslrootcert", root_cert.clone()));
        }
        if config.get_ssl_negotiation() == tokio_postgres::config::SslNegotiation::Direct {
            settings.push(("sslnegotiation", "direct".into()));
        }
        if let Some(timeout) = config.get_connect_timeout() {
            settings.push(("connect_timeout", timeout.as_secs().to_string()));
        }
        if !config.get_keepalives() {
            settings.push(("keepalives", "0".into()));
        }
        // `tokio-postgres`'s own default (2 hours) is left to the client's.
        let idle = config.get_keepalives_idle();
        if idle != std::time::Duration::from_secs(2 * 60 * 60) {
            settings.push(("keepalives_idle", idle.as_secs().to_string()));
        }
        if let Some(interval) = config.get_keepalives_interval() {
            settings.push(("keepalives_interval", interval.as_secs().to_string()));
        }
        if let Some(retries) = config.get_keepalives_retries() {
            settings.push(("keepalives_count", retries.to_string()));
        }
        if let Some(timeout) = config.get_tcp_user_timeout() {
            settings.push(("tcp_user_timeout", timeout.as_millis().to_string()));
        }
        settings.push(("replication", "database".into()));
        let query: Vec<String> = settings
            .iter()
            .map(|(key, value)| format!("{key}={}", percent_encoded(value)))
            .collect();
        Ok(format!("postgresql://?{}", query.join("&")))
    }
}

/// The user a connection logs in as: the string's, else the user running
/// the process (as `tokio-postgres` and libpq have it).
fn user_of(config: &tokio_postgres::Config) -> Result<String, String> {
    match config.get_user() {
        Some(user) => Ok(user.to_owned()),
        None => whoami::username().map_err(|e| {
            format!(
                "user: not given, and the user running this process is unknown ({e}); give user="
            )
        }),
    }
}

/// What the password file is searched for: each host of the string, with
/// its port, the database and `user`. A Unix-domain socket in a default
/// directory is `localhost` there, as libpq has it.
fn passfile_targets(config: &tokio_postgres::Config, user: &str) -> Vec<passfile::Target> {
    use tokio_postgres::config::Host;
    let ports = config.get_ports();
    config
        .get_hosts()
        .iter()
        .enumerate()
        .map(|(i, host)| passfile::Target {
            host: match host {
                Host::Tcp(name) => name.clone(),
                #[cfg(unix)]
                Host::Unix(path) => {
                    if ["/var/run/postgresql", "/run/postgresql", "/tmp"]
                        .iter()
                        .any(|default| path == std::path::Path::new(default))
                    {
                        "localhost".to_owned()
                    } else {
                        path.display().to_string()
                    }
                }
            },
            port: ports
                .get(i)
                .or(ports.first())
                .copied()
                .unwrap_or(5432)
                .to_string(),
            database: config.get_dbname().unwrap_or(user).to_owned(),
            user: user.to_owned(),
        })
        .collect()
}

/// `text` with every byte but unreserved ones (`A-Z a-z 0-9 - . _ ~`)
/// written `%XX`.
fn percent_encoded(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for &b in text.as_bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            const HEX: &[u8; 16] = b"0123456789ABCDEF";
            out.push('%');
            out.push(char::from(HEX[usize::from(b >> 4)]));
            out.push(char::from(HEX[usize::from(b & 15)]));
        }
    }
    out
}

/// A `tokio-postgres` error told whole: its own text says only its kind
/// ("db error", "invalid configuration"), the cause says what happened
/// ("password authentication failed for user …", "password missing").
pub fn described(error: &tokio_postgres::Error) -> String {
    let mut text = error.to_string();
    let mut cause = std::error::Error::source(error);
    while let Some(e) = cause {
        text.push_str(": ");
        text.push_str(&e.to_string());
        cause = e.source();
    }
    text
}

/// A connection's driver, as [`Source::connect`] makes it.
pub type Connection = tokio_postgres::Connection<tokio_postgres::Socket, TlsStream>;

/// The settings `tokio-postgres` does not know (`sslmode` as libpq reads
/// it, `sslrootcert`, `passfile`) or reads otherwise than libpq
/// (`tcp_user_timeout`, `keepalives_count`), as the string gave them.
#[derive(Debug, Default, PartialEq, Eq)]
struct Settings {
    mode: Option<String>,
    root_cert: Option<String>,
    passfile: Option<String>,
    /// libpq's `tcp_user_timeout`, in milliseconds (`tokio-postgres` would
    /// read the same number as seconds: 9000 would be two and a half hours).
    tcp_user_timeout: Option<String>,
    /// libpq's name for what `tokio-postgres` calls `keepalives_retries`
    /// (which it refuses to read under libpq's name).
    keepalives_count: Option<String>,
}

impl Settings {
    /// Keeps `value` when `key` is one of ours: a setting given twice, or
    /// empty, is an error (never the last one silently winning).
    fn take(&mut self, key: &str, value: String) -> Result<bool, String> {
        let slot = match key {
            "sslmode" => &mut self.mode,
            "sslrootcert" => &mut self.root_cert,
            "passfile" => &mut self.passfile,
            "tcp_user_timeout" => &mut self.tcp_user_timeout,
            "keepalives_count" => &mut self.keepalives_count,
            _ => return Ok(false),
        };
        if value.is_empty() {
            return Err(format!("{key}: empty; give a value or leave it out"));
        }
        if slot.replace(value).is_some() {
            return Err(format!("{key}: given twice; give it once"));
        }
        Ok(true)
    }

    /// Gives `config` the settings libpq reads otherwise than
    /// `tokio-postgres`, as libpq reads them: a string that works with
    /// `psql` means the same here.
    fn libpq_units(&self, config: &mut tokio_postgres::Config) -> Result<(), String> {
        if let Some(value) = &self.tcp_user_timeout {
            let millis: u64 = value.parse().map_err(|_| {
                format!(
                    "tcp_user_timeout: {value:?} is not a whole number of milliseconds (libpq's unit; 0 for the system's default)"
                )
            })?;
            if millis > 0 {
                config.tcp_user_timeout(std::time::Duration::from_millis(millis));
            }
        }
        if let Some(value) = &self.keepalives_count {
            if config.get_keepalives_retries().is_some() {
                return Err(
                    "keepalives_count and keepalives_retries: the same setting given twice (libpq's name and tokio-postgres's); give one".into(),
                );
            }
            let count: u32 = value.parse().map_err(|_| {
                format!("keepalives_count: {value:?} is not a whole number of probes")
            })?;
            config.keepalives_retries(count);
        }
        Ok(())
    }
}

/// Splits [`Settings`] off a connection string: the string without them
/// (the other settings as written), and their values.
fn take_own_settings(source: &str) -> Result<(String, Settings), String> {
    let mut ssl = Settings::default();
    if ["postgresql://", "postgres://"]
        .iter()
        .any(|scheme| source.starts_with(scheme))
    {
        let Some((base, query)) = source.split_once('?') else {
            return Ok((source.to_owned(), ssl));
        };
        let mut kept = Vec::new();
        for param in query.split('&').filter(|p| !p.is_empty()) {
            let (key, value) = param.split_once('=').unwrap_or((param, ""));
            if !ssl.take(&percent_decoded(key)?, percent_decoded(value)?)? {
                kept.push(param);
            }
        }
        let rest = if kept.is_empty() {
            base.to_owned()
        } else {
            format!("{base}?{}", kept.join("&"))
        };
        return Ok((rest, ssl));
    }
    let mut kept = Vec::new();
    for (key, value, text) in key_values(source)? {
        if !ssl.take(key, value)? {
            kept.push(text);
        }
    }
    Ok((kept.join(" "), ssl))
}

/// The settings of a `key=value …` string, as libpq reads them (a value in
/// single quotes may hold spaces; a backslash escapes the next character):
/// each key, its value, and its text as written.
fn key_values(source: &str) -> Result<Vec<(&str, String, &str)>, String> {
    let bytes = source.as_bytes();
    let mut out = Vec::new();
    let mut i = 0;
    let skip_space = |mut i: usize| {
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        i
    };
    loop {
        i = skip_space(i);
        if i == bytes.len() {
            return Ok(out);
        }
        let start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &source[start..i];
        i = skip_space(i);
        if bytes.get(i) != Some(&b'=') {
            return Err(format!(
                "the connection string: {key:?} has no \"=\" (write key=value)"
            ));
        }
        i = skip_space(i + 1);
        let mut value = Vec::new();
        let quoted = bytes.get(i) == Some(&b'\'');
        if quoted {
            i += 1;
        }
        loop {
            match bytes.get(i) {
                None if quoted => {
                    return Err(format!(
                        "the connection string: the value of {key:?} has no closing quote"
                    ));
                }
                None => break,
                Some(b'\'') if quoted => {
                    i += 1;
                    break;
                }
                Some(c) if !quoted && c.is_ascii_whitespace() => break,
                Some(b'\\') if i + 1 < bytes.len() => {
                    value.push(bytes[i + 1]);
                    i += 2;
                }
                Some(&c) => {
                    value.push(c);
                    i += 1;
                }
            }
        }
        let value = String::from_utf8(value)
            .map_err(|_| format!("the connection string: the value of {key:?} is not UTF-8"))?;
        out.push((key, value, &source[start..i]));
    }
}

/// A URI part with its `%XX` escapes decoded.
fn percent_decoded(part: &str) -> Result<String, String> {
    let bytes = part.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = part
                .get(i + 1..i + 3)
                .and_then(|h| u8::from_str_radix(h, 16).ok())
                .ok_or_else(|| {
                    "the connection string: a % in the URI is not followed by two hex digits"
                        .to_owned()
                })?;
            out.push(hex);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).map_err(|_| "the connection string: the URI is not UTF-8".to_owned())
}

/// The TLS `tokio-postgres` connects with, as a [`Source`]'s `sslmode`
/// asks ([`Source::tls`]).
#[derive(Clone)]
pub struct Tls {
    /// `None` for `sslmode=disable`, which never starts TLS.
    config: Option<Arc<rustls::ClientConfig>>,
}

impl fmt::Debug for Tls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tls")
            .field("enabled", &self.config.is_some())
            .finish()
    }
}

impl Tls {
    fn new(mode: SslMode, root_cert: Option<&str>) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let builder = rustls::ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let config = match mode {
            SslMode::Disable => return Ok(Self { config: None }),
            SslMode::Allow | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(Unchecked(provider)))
                .with_no_client_auth(),
            SslMode::VerifyCa => {
                let verifier =
                    WebPkiServerVerifier::builder_with_provider(roots(root_cert)?, provider)
                        .build()
                        .map_err(|e| format!("sslrootcert: {e}"))?;
                builder
                    .dangerous()
                    .with_custom_certificate_verifier(Arc::new(AnyName(verifier)))
                    .with_no_client_auth()
            }
            SslMode::VerifyFull => builder
                .with_root_certificates(roots(root_cert)?)
                .with_no_client_auth(),
        };
        Ok(Self {
            config: Some(Arc::new(config)),
        })
    }
}

/// The roots a verifying mode trusts: the certificates of the
/// `sslrootcert` file (PEM) alone, or the bundled Mozilla roots when it is
/// absent or `system` (as the replication connection does).
fn roots(root_cert: Option<&str>) -> Result<Arc<RootCertStore>, String> {
    let Some(path) = root_cert.filter(|p| *p != "system") else {
        return Ok(Arc::new(RootCertStore {
            roots: webpki_roots::TLS_SERVER_ROOTS.to_vec(),
        }));
    };
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .map_err(|e| format!("sslrootcert: cannot read certificates from {path}: {e}"))?;
    let mut store = RootCertStore::empty();
    let (added, _) = store.add_parsable_certificates(certs);
    if added == 0 {
        return Err(format!(
            "sslrootcert: no usable certificate in {path} (give the PEM file of the authority that signed the server's certificate)"
        ));
    }
    Ok(Arc::new(store))
}

/// `allow`, `prefer` and `require`: the server's certificate is not
/// checked (the handshake's signatures are, so the session is with the
/// holder of that certificate's key, whoever it is).
#[derive(Debug)]
struct Unchecked(Arc<CryptoProvider>);

impl ServerCertVerifier for Unchecked {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// `verify-ca`: the chain is checked against the roots, the name is not.
/// (The name is checked last, after the chain: a name error means the
/// chain held.)
#[derive(Debug)]
struct AnyName(Arc<WebPkiServerVerifier>);

impl ServerCertVerifier for AnyName {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        match self
            .0
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
        {
            Err(rustls::Error::InvalidCertificate(
                CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
            )) => Ok(ServerCertVerified::assertion()),
            other => other,
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.0.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.supported_verify_schemes()
    }
}

impl<S> MakeTlsConnect<S> for Tls
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type TlsConnect = Connect;
    type Error = io::Error;

    /// Called for every connection, whatever the mode (`tokio-postgres`
    /// decides afterwards whether to start TLS): the host is checked as a
    /// name for the certificate only when a handshake begins.
    fn make_tls_connect(&mut self, host: &str) -> Result<Connect, io::Error> {
        Ok(Connect {
            config: self.config.clone(),
            host: host.to_owned(),
        })
    }
}

/// One TLS handshake that may come (see [`Tls`]).
#[derive(Debug)]
pub struct Connect {
    config: Option<Arc<rustls::ClientConfig>>,
    host: String,
}

impl<S> TlsConnect<S> for Connect
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    type Stream = TlsStream<S>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<TlsStream<S>>> + Send>>;

    fn connect(self, stream: S) -> Self::Future {
        Box::pin(async move {
            let config = self.config.ok_or_else(|| {
                io::Error::other("TLS asked for with sslmode=disable (a bug: it never should be)")
            })?;
            let host = self.host;
            let name = ServerName::try_from(host.clone()).map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("host {host:?} cannot be checked against a certificate: {e}"),
                )
            })?;
            tokio_rustls::TlsConnector::from(config)
                .connect(name, stream)
                .await
                .map(TlsStream)
        })
    }
}

/// An encrypted connection to PostgreSQL.
#[derive(Debug)]
pub struct TlsStream<S = tokio_postgres::Socket>(tokio_rustls::client::TlsStream<S>);

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsStream<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsStream<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

impl<S: AsyncRead + AsyncWrite + Unpin> tokio_postgres::tls::TlsStream for TlsStream<S> {
    /// None: SCRAM authenticates without channel binding (as libpq's
    /// default `channel_binding=prefer` does when it cannot bind).
    fn channel_binding(&self) -> ChannelBinding {
        ChannelBinding::none()
    }
}

#[cfg(test)]
mod tests {
    use super::{Settings, Source, SslMode, passfile::Environment, take_own_settings};

    fn taken(source: &str) -> (String, Settings) {
        take_own_settings(source).unwrap()
    }

    fn settings(mode: Option<&str>, root_cert: Option<&str>) -> Settings {
        Settings {
            mode: mode.map(str::to_owned),
            root_cert: root_cert.map(str::to_owned),
            ..Settings::default()
        }
    }

    /// A directory of the test's own, for password files, and an
    /// environment whose home it is (never the machine's `~/.pgpass`).
    fn home(name: &str) -> (std::path::PathBuf, Environment) {
        let dir = std::env::temp_dir().join(format!("tm-pg-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let env = Environment {
            home: Some(dir.clone()),
            ..Environment::default()
        };
        (dir, env)
    }

    fn private_file(path: &std::path::Path, text: &str) {
        super::passfile::tests::write(path, text, 0o600);
    }

    /// `PGPASSWORD` fills in a password the string leaves out, never one
    /// it gives (in either form of string); without it, the password file
    /// does, for the string's host, port, database and user (the database
    /// left out: the user's; the user left out: the process's).
    #[test]
    fn a_string_without_a_password_takes_pgpassword_then_the_password_file() {
        let (dir, mut env) = home("password");
        let password = |source: &str, env: &Environment| {
            Source::parse_with(source, env)
                .unwrap()
                .config()
                .get_password()
                .map(|p| String::from_utf8_lossy(p).into_owned())
        };
        let process_user = whoami::username().unwrap();
        private_file(
            &dir.join(".pgpass"),
            &format!(
                "db:5432:x:app:from-file\ndb:5433:app:app:own-db\ndb:5432:{process_user}:{process_user}:process\n"
            ),
        );
        env.password = Some("from-env".into());
        assert_eq!(
            password("host=db user=app dbname=x", &env).as_deref(),
            Some("from-env")
        );
        assert_eq!(
            password("postgresql://app@db/x", &env).as_deref(),
            Some("from-env")
        );
        assert_eq!(
            password("host=db user=app password=given", &env).as_deref(),
            Some("given")
        );
        assert_eq!(
            password("postgresql://app:given@db/x", &env).as_deref(),
            Some("given")
        );
        env.password = None;
        assert_eq!(
            password("host=db user=app dbname=x", &env).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            password("postgresql://app@db/x", &env).as_deref(),
            Some("from-file")
        );
        assert_eq!(
            password("host=db port=5433 user=app", &env).as_deref(),
            Some("own-db")
        );
        assert_eq!(password("host=db", &env).as_deref(), Some("process"));
        assert_eq!(password("host=db user=app dbname=y", &env), None);
        assert_eq!(password("host=other user=app dbname=x", &env), None);
        // The string's own `passfile`, taken out of what `tokio-postgres` reads.
        private_file(&dir.join("named"), "*:*:*:*:named\n");
        let named = format!(
            "host=db user=app dbname=x passfile='{}'",
            dir.join("named").display()
        );
        assert_eq!(password(&named, &env).as_deref(), Some("named"));
        let err =
            Source::parse_with("host=db user=app passfile=/nonexistent/pgpass", &env).unwrap_err();
        assert!(
            err.starts_with("passfile /nonexistent/pgpass: cannot be read"),
            "{err}"
        );
        std::fs::remove_dir_all(&dir).unwrap();
    }

    /// WAL mode's replication connection is given what the source was read
    /// as: the same host, port, user, password (from wherever it came),
    /// database, TLS and TCP settings, each value percent-encoded, so a
    /// password with quotes, backslashes, spaces or `&` arrives whole.
    #[test]
    fn the_replication_uri_carries_what_the_source_was_read_as() {
        let (dir, env) = home("replication");
        let hard = "p a's\\w&o=r%d@/:?";
        let source = |s: &str| Source::parse_with(s, &env).unwrap();
        let given = source(&format!(
            "host=db.example port=6543 user=app dbname='my db' sslmode=verify-full sslrootcert=system password='{}' connect_timeout=7 keepalives_idle=30 keepalives_interval=5 keepalives_count=4 tcp_user_timeout=9000",
            hard.replace('\\', "\\\\").replace('\'', "\\'")
        ));
        assert_eq!(given.config().get_password(), Some(hard.as_bytes()));
        let uri = given.replication_uri().unwrap();
        assert_eq!(
            uri,
            "postgresql://?host=db.example&port=6543&password=p%20a%27s%5Cw%26o%3Dr%25d%40%2F%3A%3F&dbname=my%20db&user=app&sslmode=verify-full&sslrootcert=system&connect_timeout=7&keepalives_idle=30&keepalives_interval=5&keepalives_count=4&tcp_user_timeout=9000&replication=database"
        );
        // Read back (less what `tokio-postgres` does not take), it is the
        // same connection.
        let again = source(&uri.replace("&replication=database", ""));
        assert_eq!(
            again.config().get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(9))
        );
        assert_eq!(again.config().get_keepalives_retries(), Some(4));
        assert_eq!(again.config().get_password(), Some(hard.as_bytes()));
        assert_eq!(again.config().get_dbname(), Some("my db"));
        assert_eq!(again.ssl_mode(), SslMode::VerifyFull);
        // A user left out is the process's, and so is the database; the
        // password file's password is given.
        private_file(&dir.join(".pgpass"), "*:*:*:*:from-file\n");
        let user = whoami::username().unwrap();
        assert_eq!(
            source("host=127.0.0.1 sslmode=disable")
                .replication_uri()
                .unwrap(),
            format!(
                "postgresql://?host=127.0.0.1&port=5432&password=from-file&dbname={user}&user={user}&sslmode=disable&replication=database"
            )
        );
        for (s, why) in [
            ("host=/var/run/postgresql", "Unix-domain socket"),
            ("host=a,b", "several hosts"),
            ("user=app", "no host"),
        ] {
            let err = source(s).replication_uri().unwrap_err();
            assert!(err.contains(why), "{s}: {err}");
        }
        std::fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn key_value_strings_lose_only_the_tls_settings() {
        assert_eq!(
            taken("host=db port=5433 sslmode=verify-full user=app sslrootcert=/etc/ca.pem"),
            (
                "host=db port=5433 user=app".into(),
                settings(Some("verify-full"), Some("/etc/ca.pem"))
            )
        );
        assert_eq!(
            taken("  host = db  sslmode = require  password='a b\\'c' "),
            (
                "host = db password='a b\\'c'".into(),
                settings(Some("require"), None)
            )
        );
        assert_eq!(
            taken("sslrootcert='/path with space/ca.pem' sslmode=verify-ca dbname=x"),
            (
                "dbname=x".into(),
                settings(Some("verify-ca"), Some("/path with space/ca.pem"))
            )
        );
        assert_eq!(taken("host=db"), ("host=db".into(), settings(None, None)));
    }

    #[test]
    fn uris_lose_only_the_tls_settings() {
        assert_eq!(
            taken(
                "postgresql://u:p@db:5432/app?sslmode=verify-full&connect_timeout=3&sslrootcert=%2Fetc%2Fca.pem"
            ),
            (
                "postgresql://u:p@db:5432/app?connect_timeout=3".into(),
                settings(Some("verify-full"), Some("/etc/ca.pem"))
            )
        );
        assert_eq!(
            taken("postgres://db/app?sslmode=disable"),
            ("postgres://db/app".into(), settings(Some("disable"), None))
        );
        assert_eq!(
            taken("postgres://db/app"),
            ("postgres://db/app".into(), settings(None, None))
        );
    }

    #[test]
    fn unknown_repeated_empty_or_unused_settings_are_refused_by_name() {
        let refused = |source: &str| Source::parse(source).unwrap_err();
        assert!(
            refused("host=db sslmode=verify").contains("sslmode: \"verify\" is not one of"),
            "{}",
            refused("host=db sslmode=verify")
        );
        assert!(
            refused("host=db sslmode=require sslmode=disable").contains("sslmode: given twice")
        );
        assert!(refused("postgres://db/x?sslmode=").contains("sslmode: empty"));
        assert!(
            refused("host=db sslmode=require sslrootcert=/etc/ca.pem")
                .contains("sslrootcert: only sslmode=verify-ca or verify-full")
        );
        assert!(refused("host=db sslrootcert=/etc/ca.pem").contains("sslrootcert:"));
        assert!(refused("host=db password='open").contains("no closing quote"));
        assert!(refused("host db").contains("has no \"=\""));
        assert!(
            refused("host=db sslmode=verify-ca sslrootcert=/no/such/file.pem")
                .contains("sslrootcert: cannot read certificates from /no/such/file.pem")
        );
        let secret = refused("host=db password=hunter2 sslmode=nope");
        assert!(!secret.contains("hunter2"), "{secret}");
    }

    /// A string that works with `psql` means the same here: libpq reads
    /// `tcp_user_timeout` in milliseconds and names the keepalive probes
    /// `keepalives_count`; `tokio-postgres` read the first in seconds (a
    /// thousand times as long) and refused the second.
    #[test]
    fn settings_libpq_reads_otherwise_are_read_as_libpq_reads_them() {
        let read = |source: &str| Source::parse(source).unwrap();
        let given = read("host=db tcp_user_timeout=9000 keepalives_count=3");
        assert_eq!(
            given.config().get_tcp_user_timeout(),
            Some(&std::time::Duration::from_secs(9))
        );
        assert_eq!(given.config().get_keepalives_retries(), Some(3));
        let uri = read("postgres://db/app?tcp_user_timeout=250&keepalives_count=2");
        assert_eq!(
            uri.config().get_tcp_user_timeout(),
            Some(&std::time::Duration::from_millis(250))
        );
        assert_eq!(uri.config().get_keepalives_retries(), Some(2));
        // 0 is the system's default, as in libpq; the other name still reads.
        assert_eq!(
            read("host=db tcp_user_timeout=0")
                .config()
                .get_tcp_user_timeout(),
            None
        );
        assert_eq!(
            read("host=db keepalives_retries=5")
                .config()
                .get_keepalives_retries(),
            Some(5)
        );
        let refused = |source: &str| Source::parse(source).unwrap_err();
        assert!(
            refused("host=db tcp_user_timeout=9s")
                .contains("tcp_user_timeout: \"9s\" is not a whole number of milliseconds")
        );
        assert!(refused("host=db tcp_user_timeout=1 tcp_user_timeout=2").contains("given twice"));
        assert!(
            refused("host=db keepalives_count=3 keepalives_retries=3")
                .contains("keepalives_count and keepalives_retries")
        );
        assert!(refused("host=db keepalives_count=-1").contains("keepalives_count:"));
    }

    #[test]
    fn each_mode_is_read_and_prefer_is_the_default() {
        for (mode, expected) in [
            ("disable", SslMode::Disable),
            ("allow", SslMode::Allow),
            ("prefer", SslMode::Prefer),
            ("require", SslMode::Require),
            ("verify-ca", SslMode::VerifyCa),
            ("verify-full", SslMode::VerifyFull),
        ] {
            let source = Source::parse(&format!("host=db sslmode={mode}")).unwrap();
            assert_eq!(source.ssl_mode(), expected);
        }
        assert_eq!(
            Source::parse("host=db").unwrap().ssl_mode(),
            SslMode::Prefer
        );
    }

    #[test]
    fn an_address_without_a_host_name_is_the_name_tls_checks() {
        let source = Source::parse("hostaddr=192.0.2.7 sslmode=require").unwrap();
        assert_eq!(
            source.config().get_hosts(),
            [tokio_postgres::config::Host::Tcp("192.0.2.7".into())]
        );
        let named = Source::parse("host=db.example hostaddr=192.0.2.7").unwrap();
        assert_eq!(
            named.config().get_hosts(),
            [tokio_postgres::config::Host::Tcp("db.example".into())]
        );
    }
}
