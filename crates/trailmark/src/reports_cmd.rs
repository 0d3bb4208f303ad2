//! `trailmark export` and `trailmark report`, against a running server.

use std::fs::File;
use std::io::{BufRead as _, BufReader, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use serde_json::Value;
use trailmark_store::Exact;

use crate::keys_cmd::admin_key;
use crate::source::Http;

/// The server and key, shared by the commands that talk to a server.
#[derive(Debug, Args)]
pub struct Remote {
    /// The server.
    #[arg(long, env = "TRAILMARK_URL", default_value = "http://127.0.0.1:7878")]
    url: String,
    /// A read key; defaults to the bootstrap key in --data-dir.
    #[arg(long, env = "TRAILMARK_KEY", hide_env_values = true)]
    key: Option<String>,
    /// Where to find bootstrap-admin.key when --key is not given.
    #[arg(long, env = "TRAILMARK_DATA_DIR", default_value = "trailmark-data")]
    data_dir: PathBuf,
}

impl Remote {
    fn http(&self) -> anyhow::Result<Http> {
        Http::new(&self.url, &admin_key(self.key.clone(), &self.data_dir)?)
    }
}

/// One flag per exact filter, made from the one list ([`Exact`]):
/// `--actor`, `--action`, `--resource-type`, `--resource-id`, `--outcome`,
/// `--ip`.
#[derive(Debug, Default)]
pub struct ExactFlags(Vec<(Exact, String)>);

impl ExactFlags {
    fn params(&self) -> impl Iterator<Item = (&'static str, String)> + '_ {
        self.0.iter().map(|(f, v)| (f.param(), v.clone()))
    }
}

impl clap::FromArgMatches for ExactFlags {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Ok(Self(
            Exact::ALL
                .iter()
                .filter_map(|f| {
                    matches
                        .get_one::<String>(f.param())
                        .map(|v| (*f, v.clone()))
                })
                .collect(),
        ))
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for ExactFlags {
    fn augment_args(cmd: clap::Command) -> clap::Command {
        Exact::ALL.iter().fold(cmd, |cmd, f| {
            cmd.arg(
                clap::Arg::new(f.param())
                    .long(f.flag())
                    .value_name("VALUE")
                    .help(f.describe()),
            )
        })
    }

    fn augment_args_for_update(cmd: clap::Command) -> clap::Command {
        Self::augment_args(cmd)
    }
}

/// The search filters of `GET /v1/events`.
#[derive(Debug, Args)]
pub struct Filters {
    #[arg(long)]
    tenant: Option<String>,
    #[command(flatten)]
    exact: ExactFlags,
    /// Words to find anywhere in the event.
    #[arg(long)]
    q: Option<String>,
    /// RFC 3339 time, inclusive.
    #[arg(long)]
    since: Option<String>,
    /// RFC 3339 time, exclusive.
    #[arg(long)]
    until: Option<String>,
    /// Only the last N days.
    #[arg(long)]
    days: Option<u32>,
}

impl Filters {
    fn params(&self) -> Vec<(&'static str, String)> {
        let mut out: Vec<(&'static str, String)> =
            self.tenant.iter().map(|t| ("tenant", t.clone())).collect();
        out.extend(self.exact.params());
        for (name, value) in [
            ("q", &self.q),
            ("since", &self.since),
            ("until", &self.until),
        ] {
            if let Some(v) = value {
                out.push((name, v.clone()));
            }
        }
        if let Some(days) = self.days {
            out.push(("days", days.to_string()));
        }
        out
    }
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ExportFormat {
    Csv,
    Ndjson,
    Json,
}

#[derive(Debug, Args)]
pub struct ExportArgs {
    #[command(flatten)]
    remote: Remote,
    #[command(flatten)]
    filters: Filters,
    /// csv, ndjson (one event per line) or json (one array).
    #[arg(long, value_enum, default_value = "ndjson")]
    format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long)]
    output: Option<PathBuf>,
}

pub fn export(args: &ExportArgs) -> anyhow::Result<ExitCode> {
    let http = args.remote.http()?;
    let mut params = args.filters.params();
    let wire = if matches!(args.format, ExportFormat::Csv) {
        "csv"
    } else {
        "ndjson"
    };
    params.push(("format", wire.into()));
    let body = http.get_stream("/v1/export", &params)?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(BufWriter::new(
            File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(BufWriter::new(std::io::stdout().lock())),
    };
    let mut count = 0u64;
    let copied = copy_export(body, &mut out, args.format, &mut count);
    if let Err(e) = copied.and_then(|()| out.flush()) {
        drop(out);
        // A file named as asked holds a whole export, or is not there: what
        // was written goes under another name, never mistaken for it.
        let place = match &args.output {
            None => "standard output".to_owned(),
            Some(path) => {
                let mut kept = path.as_os_str().to_owned();
                kept.push(".incomplete");
                let kept = PathBuf::from(kept);
                std::fs::rename(path, &kept).with_context(|| {
                    format!("renaming {} to {}", path.display(), kept.display())
                })?;
                kept.display().to_string()
            }
        };
        anyhow::bail!(
            "the export is incomplete: it stopped after {count} events ({e}); \
             what was written is in {place}, not the whole answer; the server's log \
             says why"
        );
    }
    eprintln!("exported {count} events");
    Ok(ExitCode::SUCCESS)
}

/// Copies an export's answer to `out` as `format`, counting its events in
/// `count` as they are written (a CSV record may span lines: a newline
/// inside quotes is part of its value).
fn copy_export(
    body: impl std::io::Read,
    out: &mut dyn Write,
    format: ExportFormat,
    count: &mut u64,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(body);
    let mut line = String::new();
    match format {
        ExportFormat::Csv => {
            let (mut quoted, mut records) = (false, 0u64);
            while reader.read_line(&mut line)? > 0 {
                out.write_all(line.as_bytes())?;
                quoted ^= line.bytes().filter(|b| *b == b'"').count() % 2 == 1;
                if !quoted && line.ends_with('\n') {
                    records += 1;
                    *count = records.saturating_sub(1); // the header
                }
                line.clear();
            }
        }
        ExportFormat::Ndjson => {
            while reader.read_line(&mut line)? > 0 {
                out.write_all(line.as_bytes())?;
                *count += 1;
                line.clear();
            }
        }
        ExportFormat::Json => {
            out.write_all(b"[")?;
            while reader.read_line(&mut line)? > 0 {
                if !line.trim().is_empty() {
                    out.write_all(if *count == 0 { b"\n" } else { b",\n" })?;
                    out.write_all(line.trim_end().as_bytes())?;
                    *count += 1;
                }
                line.clear();
            }
            out.write_all(b"\n]\n")?;
        }
    }
    Ok(())
}

#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum ReportFormat {
    Table,
    Csv,
    Json,
}

#[derive(Debug, Args)]
pub struct ReportArgs {
    #[command(flatten)]
    remote: Remote,
    #[arg(long)]
    tenant: Option<String>,
    /// The last N days.
    #[arg(long, default_value_t = 7)]
    days: u32,
    #[command(flatten)]
    exact: ExactFlags,
    #[arg(long, value_enum, default_value = "table")]
    format: ReportFormat,
}

const SECTIONS: [(&str, &str, &str); 5] = [
    ("by_action", "action", "By action"),
    ("by_actor", "actor", "By actor"),
    ("by_resource_type", "resource_type", "By resource type"),
    ("by_outcome", "outcome", "By outcome"),
    ("per_day", "day", "Per day"),
];

#[allow(clippy::print_stdout)] // the command's output
pub fn report(args: &ReportArgs) -> anyhow::Result<ExitCode> {
    let http = args.remote.http()?;
    let mut params = vec![("days", args.days.to_string())];
    if let Some(tenant) = &args.tenant {
        params.push(("tenant", tenant.clone()));
    }
    params.extend(args.exact.params());
    let stats: Value = http.get_json("/v1/stats", &params)?;
    let rows = |section: &str, key: &str| -> Vec<(String, u64)> {
        stats[section]
            .as_array()
            .into_iter()
            .flatten()
            .map(|r| {
                (
                    r[key].as_str().unwrap_or_default().to_owned(),
                    r["count"].as_u64().unwrap_or(0),
                )
            })
            .collect()
    };
    match args.format {
        ReportFormat::Json => println!("{}", serde_json::to_string_pretty(&stats)?),
        ReportFormat::Csv => {
            let mut w = csv::Writer::from_writer(std::io::stdout().lock());
            w.write_record(["dimension", "value", "count"])?;
            w.write_record(["total", "", &stats["total"].to_string()])?;
            for (section, key, _) in SECTIONS {
                for (value, count) in rows(section, key) {
                    w.write_record([key, &value, &count.to_string()])?;
                }
            }
            w.flush()?;
        }
        ReportFormat::Table => {
            println!(
                "Audit activity, last {} days: {} events",
                args.days, stats["total"]
            );
            for (section, key, title) in SECTIONS {
                let rows = rows(section, key);
                if rows.is_empty() {
                    continue;
                }
                println!("\n{title}");
                let width = rows
                    .iter()
                    .map(|(v, _)| v.chars().count())
                    .max()
                    .unwrap_or(0)
                    .max(8);
                for (value, count) in rows {
                    println!("  {value:<width$}  {count:>10}");
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::{ExportFormat, copy_export};

    /// Events are counted by record, not by line: a value with a newline
    /// in it (quoted in CSV) is one event; the bytes pass through unchanged.
    #[test]
    fn an_export_counts_events_not_lines() {
        let csv = "seq,reason\n2,\"two\nlines\"\n1,\"say \"\"hi\"\"\"\n";
        let (mut out, mut count) = (Vec::new(), 0);
        copy_export(csv.as_bytes(), &mut out, ExportFormat::Csv, &mut count).unwrap();
        assert_eq!((count, out.as_slice()), (2, csv.as_bytes()));

        let ndjson = "{\"seq\":2}\n{\"seq\":1}\n";
        let (mut out, mut count) = (Vec::new(), 0);
        copy_export(ndjson.as_bytes(), &mut out, ExportFormat::Json, &mut count).unwrap();
        assert_eq!(count, 2);
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&out).unwrap(),
            serde_json::json!([{"seq": 2}, {"seq": 1}])
        );
    }
}
