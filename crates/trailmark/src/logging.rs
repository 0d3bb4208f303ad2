//! The process's log: tracing events written to stderr, one line each,
//! human-readable or JSON (for a log shipper), at a chosen level. Every
//! line of a request carries its id (`request` span, `X-Request-Id`).

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Format {
    #[default]
    Human,
    Json,
}

/// The least severe lines written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    Error,
    Warn,
    #[default]
    Info,
    /// Also one line per answered request.
    Debug,
}

/// Installs the process's logger (the first call wins).
pub fn init(format: Format, level: Level) {
    use tracing::level_filters::LevelFilter;
    let level = match level {
        Level::Error => LevelFilter::ERROR,
        Level::Warn => LevelFilter::WARN,
        Level::Info => LevelFilter::INFO,
        Level::Debug => LevelFilter::DEBUG,
    };
    let builder = tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_max_level(level);
    let _ = match format {
        Format::Human => builder.try_init(),
        Format::Json => builder.json().with_current_span(true).try_init(),
    };
}
