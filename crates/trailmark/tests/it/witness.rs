//! Witnesses: `trailmark witness` and `aics-witness` (`PyPI`, a C2SP
//! tlog-witness we did not write) beside one live server. Both cosign its
//! checkpoints and both refuse a forked log; the cosigned note verifies with
//! `aics-tlog` (both cosignatures, quorum 2) and with Go's
//! `golang.org/x/mod/sumdb/note` (the log's signature among the witnesses').

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::json;

use crate::{Server, cli, event, wait_for};

/// Where `aics-witness` and `aics-tlog` are: `TRAILMARK_AICS_BIN`, else the
/// virtualenv `./scripts/test` makes under `target/`.
pub(crate) fn aics_bin(tool: &str) -> PathBuf {
    let dir = std::env::var("TRAILMARK_AICS_BIN").map_or_else(
        |_| Path::new(env!("CARGO_MANIFEST_DIR")).join("../../target/interop-venv/bin"),
        PathBuf::from,
    );
    let bin = dir.join(tool);
    assert!(
        bin.exists(),
        "{} is missing: ./scripts/test installs aics-witness and aics-tlog there (or set TRAILMARK_AICS_BIN)",
        bin.display()
    );
    bin
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A child process killed when dropped.
pub(crate) struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn wait_port(port: u16) {
    wait_for(
        &format!("port {port} to listen"),
        Duration::from_secs(20),
        || std::net::TcpStream::connect(("127.0.0.1", port)).ok(),
    );
}

/// `trailmark witness` for the given logs; returns it and its vkey.
pub(crate) fn trailmark_witness(dir: &Path, logs: &[(String, String)]) -> (Running, String, u16) {
    trailmark_witness_on(dir, logs, free_port())
}

/// [`trailmark_witness`] on `port`.
fn trailmark_witness_on(
    dir: &Path,
    logs: &[(String, String)],
    port: u16,
) -> (Running, String, u16) {
    let mut cmd = Command::new(crate::BIN);
    cmd.args(["witness", "--data-dir", dir.to_str().unwrap()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--name", "trailmark.test/w1"]);
    for (origin, vkey) in logs {
        cmd.args(["--log", &format!("{origin}={vkey}")]);
    }
    let child = cmd
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_port(port);
    let vkey = std::fs::read_to_string(dir.join("witness.vkey"))
        .unwrap()
        .trim()
        .to_owned();
    (running, vkey, port)
}

/// `aics-witness` for the given logs; returns it and its vkey.
fn aics_witness(dir: &Path, logs: &[(String, String)]) -> (Running, String, u16) {
    let port = free_port();
    let config = dir.join("witness.json");
    let out = Command::new(aics_bin("aics-witness"))
        .args(["init", "--config", config.to_str().unwrap()])
        .args([
            "--name",
            "aics.test/w2",
            "--listen",
            &format!("127.0.0.1:{port}"),
        ])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let vkey = String::from_utf8_lossy(&out.stdout)
        .lines()
        .chain(String::from_utf8_lossy(&out.stderr).lines())
        .find(|l| l.starts_with("aics.test/w2+"))
        .unwrap()
        .trim()
        .to_owned();
    for (origin, log_vkey) in logs {
        let out = Command::new(aics_bin("aics-witness"))
            .args(["add-log", "--config", config.to_str().unwrap()])
            .args(["--origin", origin, "--vkey", log_vkey])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let child = Command::new(aics_bin("aics-witness"))
        .args(["serve", "--config", config.to_str().unwrap()])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let running = Running(child);
    wait_port(port);
    (running, vkey, port)
}

/// The signed checkpoint of `tenant` once it has `size` entries and
/// `lines` signature lines (the log's and the witnesses').
pub(crate) fn cosigned_checkpoint(
    server: &Server,
    tenant: &str,
    size: u64,
    lines: usize,
) -> String {
    wait_for(
        &format!("{tenant}'s checkpoint at {size} with {lines} signatures"),
        Duration::from_secs(30),
        || {
            let (_, body) = server.get(&format!("/v1/checkpoint?tenant={tenant}"), &server.admin);
            let note = body.as_str()?.to_owned();
            let signed: u64 = note.lines().nth(1)?.parse().ok()?;
            let sigs = note.lines().filter(|l| l.starts_with('\u{2014}')).count();
            (signed == size && sigs == lines).then_some(note)
        },
    )
}

/// Go's sumdb/note opens the note with the log's key (witness lines are
/// signatures by keys it does not know, which it must ignore).
fn go_note_verifies(note: &str, vkey: &str) -> bool {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("main.go");
    std::fs::write(
        &src,
        r#"package main

import (
	"fmt"
	"os"

	"golang.org/x/mod/sumdb/note"
)

func main() {
	msg, _ := os.ReadFile(os.Args[1])
	v, err := note.NewVerifier(os.Args[2])
	if err != nil {
		fmt.Println("bad key:", err)
		os.Exit(2)
	}
	n, err := note.Open(msg, note.VerifierList(v))
	if err != nil {
		fmt.Println("rejected:", err)
		os.Exit(1)
	}
	fmt.Printf("ok %d verified, %d unverified\n", len(n.Sigs), len(n.UnverifiedSigs))
}
"#,
    )
    .unwrap();
    let note_file = dir.path().join("note");
    std::fs::write(&note_file, note).unwrap();
    let out = Command::new("go")
        .args([
            "run",
            src.to_str().unwrap(),
            note_file.to_str().unwrap(),
            vkey,
        ])
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", dir.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.code() != Some(2)
            && !String::from_utf8_lossy(&out.stderr).contains("cannot find package"),
        "go: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.status.success() && stdout.contains("ok 1 verified, 2 unverified")
}

fn post_n(server: &Server, tenant: &str, n: u64, actor: &str) {
    let batch: Vec<_> = (0..n)
        .map(|i| event(tenant, &format!("{actor}-{i}"), "update"))
        .collect();
    assert_eq!(
        server.post("/v1/events", &server.admin, &json!(batch)).0,
        201
    );
}

/// A signing key kept apart, a data dir, and two witnesses of its logs.
struct Witnessed {
    keys: tempfile::TempDir,
    data: tempfile::TempDir,
    logs: Vec<(String, String)>,
    _witnesses: (Running, Running),
    _witness_dirs: (tempfile::TempDir, tempfile::TempDir),
    w1: String,
    w2: String,
    serve_args: Vec<String>,
}

fn witnessed() -> Witnessed {
    let keys = tempfile::tempdir().unwrap();
    let key_arg = keys
        .path()
        .join("signing.seed")
        .to_str()
        .unwrap()
        .to_owned();
    let data = tempfile::tempdir().unwrap();
    // The log's verifier keys, from a first start.
    let mut server = Server::start_with(data.path(), &["--signing-key", &key_arg]);
    let logs: Vec<(String, String)> = ["acme", "_system"]
        .iter()
        .map(|t| (format!("trailmark.local/{t}"), server.verifier_key(t)))
        .collect();
    server.stop();
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (r1, w1, p1) = trailmark_witness(dirs.0.path(), &logs);
    let (r2, w2, p2) = aics_witness(dirs.1.path(), &logs);
    let serve_args = vec![
        "--signing-key".to_owned(),
        key_arg,
        "--witness".into(),
        format!("{w1}@http://127.0.0.1:{p1}"),
        "--witness".into(),
        format!("{w2}@http://127.0.0.1:{p2}"),
    ];
    Witnessed {
        keys,
        data,
        logs,
        _witnesses: (r1, r2),
        _witness_dirs: dirs,
        w1,
        w2,
        serve_args,
    }
}

impl Witnessed {
    fn serve(&self, dir: &Path) -> Server {
        let refs: Vec<&str> = self.serve_args.iter().map(String::as_str).collect();
        Server::start_with(dir, &refs)
    }

    /// `verify --data-dir` demanding both witnesses' keys, plus `extra`.
    fn verify(&self, dir: &Path, extra: &[&str]) -> (bool, String) {
        let mut args = vec!["verify", "--data-dir", dir.to_str().unwrap()];
        args.extend(["--witness", &self.w1, "--witness", &self.w2]);
        args.extend(extra);
        let out = cli(&args);
        (
            out.status.success(),
            String::from_utf8_lossy(&out.stdout).into_owned(),
        )
    }

    /// The cosigned note, checked by implementations we did not write.
    fn check_elsewhere(&self, cosigned: &str) {
        let note_file = self.keys.path().join("acme.cosigned");
        std::fs::write(&note_file, cosigned).unwrap();
        let out = Command::new(aics_bin("aics-tlog"))
            .args(["verify-checkpoint", "--note", note_file.to_str().unwrap()])
            .args([
                "--log-key",
                &self.logs[0].1,
                "--origin",
                "trailmark.local/acme",
            ])
            .args(["--witness-key", &self.w1, "--witness-key", &self.w2])
            .args(["--quorum", "2"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "aics-tlog rejected the cosigned checkpoint: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(
            go_note_verifies(cosigned, &self.logs[0].1),
            "Go's note package rejected {cosigned}"
        );
    }
}

/// A witness down when checkpoints are signed is offered the newest of
/// each tenant once it is back (the retry every 5 s): it cosigns the log
/// it knows and refuses the one it does not.
#[test]
fn a_witness_back_after_an_outage_is_offered_the_newest_checkpoint() {
    let keys = tempfile::tempdir().unwrap();
    let key_arg = keys.path().join("signing.seed");
    let key_arg = key_arg.to_str().unwrap();
    let data = tempfile::tempdir().unwrap();
    let mut server = Server::start_with(data.path(), &["--signing-key", key_arg]);
    // The witness knows acme's log and _system's, not globex's.
    let logs: Vec<(String, String)> = ["acme", "_system"]
        .iter()
        .map(|t| (format!("trailmark.local/{t}"), server.verifier_key(t)))
        .collect();
    server.stop();
    let dir = tempfile::tempdir().unwrap();
    let (witness, vkey, port) = trailmark_witness(dir.path(), &logs);
    drop(witness);
    let witness_arg = format!("{vkey}@http://127.0.0.1:{port}");
    let server = Server::start_with(
        data.path(),
        &["--signing-key", key_arg, "--witness", &witness_arg],
    );
    post_n(&server, "acme", 3, "down");
    post_n(&server, "globex", 2, "down");
    // Signed, and offered to a witness that is not there.
    cosigned_checkpoint(&server, "acme", 3, 1);
    let _back = trailmark_witness_on(dir.path(), &logs, port);
    cosigned_checkpoint(&server, "acme", 3, 2);
    assert_eq!(refusers(&server, "globex", 1), ["trailmark.test/w1"]);
    // And the live log goes on being cosigned.
    post_n(&server, "acme", 1, "up");
    cosigned_checkpoint(&server, "acme", 4, 2);
}

#[test]
fn two_independent_witnesses_cosign_the_live_log_and_verify_demands_them() {
    let w = witnessed();
    let mut server = w.serve(w.data.path());
    // Both witnesses cosign each checkpoint as the log grows.
    let mut cosigned = String::new();
    let mut size = 0;
    for add in [10, 5, 25] {
        post_n(&server, "acme", add, &format!("r{size}"));
        size += add;
        cosigned = cosigned_checkpoint(&server, "acme", size, 3);
    }
    let (_, metrics) = server.get("/metrics", &server.admin);
    let metrics = metrics.as_str().unwrap_or_default().to_owned();
    assert!(
        metrics.contains("trailmark_witness_refusals_total 0"),
        "{metrics}"
    );
    w.check_elsewhere(&cosigned);
    // A receipt carries the cosigned checkpoint; verify --receipt can demand it.
    let (_, page) = server.get("/v1/events?tenant=acme&limit=1", &server.admin);
    let id = page["events"][0]["id"].as_str().unwrap().to_owned();
    let (_, found) = server.get(&format!("/v1/events/{id}?tenant=acme"), &server.admin);
    let receipt = w.keys.path().join("receipt");
    std::fs::write(&receipt, found["proof"]["receipt"].as_str().unwrap()).unwrap();
    let receipt_args = |required: &str| {
        cli(&[
            "verify",
            "--receipt",
            receipt.to_str().unwrap(),
            "--verifier-key",
            &w.logs[0].1,
            "--witness",
            &w.w1,
            "--witness",
            &w.w2,
            "--witnesses-required",
            required,
        ])
    };
    let out = receipt_args("2");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Without the cosignature lines, the same receipt no longer satisfies it.
    let text = std::fs::read_to_string(&receipt).unwrap();
    let mut stripped = String::new();
    for line in text.lines().filter(|l| {
        !l.starts_with("\u{2014} trailmark.test/") && !l.starts_with("\u{2014} aics.test/")
    }) {
        stripped.push_str(line);
        stripped.push('\n');
    }
    std::fs::write(&receipt, stripped).unwrap();
    let out = receipt_args("1");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("0 valid cosignatures"));
    server.stop();
    let (ok, report) = w.verify(
        w.data.path(),
        &["--witnesses-required", "2", "--tenant", "acme"],
    );
    assert!(ok, "{report}");
}

#[test]
fn both_witnesses_refuse_a_fork_and_the_server_says_so() {
    let w = witnessed();
    let mut server = w.serve(w.data.path());
    post_n(&server, "acme", 15, "genuine");
    cosigned_checkpoint(&server, "acme", 15, 3);
    server.stop();
    // The same key signs another history of acme, longer than the one the
    // witnesses cosigned.
    let forked = tempfile::tempdir().unwrap();
    let mut fork = w.serve(forked.path());
    post_n(&fork, "acme", 50, "other");
    let refused_by = refusers(&fork, "acme", 2);
    assert_eq!(refused_by, ["aics.test/w2", "trailmark.test/w1"]);
    let (_, m) = fork.get("/metrics", &fork.admin);
    assert!(
        !m.as_str()
            .unwrap()
            .contains("trailmark_witness_refusals_total 0"),
        "{m}"
    );
    let latest = fork.wait_checkpoint("acme", 50);
    assert_eq!(
        latest.lines().filter(|l| l.starts_with('\u{2014}')).count(),
        1,
        "{latest}"
    );
    fork.stop();
    // verify, told to demand a witness, fails on the fork.
    let (ok, report) = w.verify(
        forked.path(),
        &[
            "--witnesses-required",
            "1",
            "--tenant",
            "acme",
            "--max-unsigned-age",
            "0",
        ],
    );
    assert!(
        !ok && report.contains("no checkpoint cosigned by 1 of the given witnesses"),
        "{report}"
    );
}

/// The witnesses that refused `tenant`'s checkpoints, from `_system`.
/// The `trailmark.witness_refused` events the server recorded.
fn refusals(server: &Server) -> serde_json::Value {
    let (_, recorded) = server.get(
        "/v1/events?tenant=_system&action=trailmark.witness_refused",
        &server.admin,
    );
    recorded
}

fn refusers(server: &Server, tenant: &str, want: usize) -> Vec<String> {
    wait_for(
        &format!("{want} witnesses to refuse {tenant}"),
        Duration::from_secs(30),
        || {
            let recorded = refusals(server);
            let mut by: Vec<String> = recorded["events"]
                .as_array()?
                .iter()
                .filter(|e| e["metadata"]["tenant"] == tenant)
                .filter_map(|e| e["resource"]["id"].as_str().map(str::to_owned))
                .collect();
            by.sort();
            by.dedup();
            (by.len() == want).then_some(by)
        },
    )
}

#[test]
fn both_witnesses_refuse_a_rolled_back_data_dir_and_a_trail_under_another_key() {
    let w = witnessed();
    let mut server = w.serve(w.data.path());
    post_n(&server, "acme", 10, "first");
    cosigned_checkpoint(&server, "acme", 10, 3);
    server.stop();
    let snapshot = crate::copy_dir(w.data.path());
    let mut server = w.serve(w.data.path());
    post_n(&server, "acme", 10, "second");
    cosigned_checkpoint(&server, "acme", 20, 3);
    server.stop();

    // The data dir rolled back to the copy at 10 entries, then appended to.
    let mut rolled = w.serve(snapshot.path());
    post_n(&rolled, "acme", 3, "after");
    assert_eq!(
        refusers(&rolled, "acme", 2),
        ["aics.test/w2", "trailmark.test/w1"]
    );
    let answers = refusals(&rolled);
    assert!(
        answers.to_string().contains("the log was rolled back"),
        "{answers}"
    );
    rolled.stop();

    // A trail signed with another key under the same origins: not the log.
    let other = tempfile::tempdir().unwrap();
    let other_key = other.path().join("other.seed");
    let mut args = w.serve_args.clone();
    args[1] = other_key.to_str().unwrap().to_owned();
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    let data = tempfile::tempdir().unwrap();
    let mut impostor = Server::start_with(data.path(), &refs);
    post_n(&impostor, "acme", 5, "impostor");
    assert_eq!(
        refusers(&impostor, "acme", 2),
        ["aics.test/w2", "trailmark.test/w1"]
    );
    let answers = refusals(&impostor);
    assert!(answers.to_string().contains("\"status\":403"), "{answers}");
    impostor.stop();
}
