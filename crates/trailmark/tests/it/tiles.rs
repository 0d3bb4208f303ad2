//! A tenant's tree served as C2SP tlog-tiles, read back by implementations
//! we did not write: Go's `golang.org/x/mod/sumdb/tlog` (through its
//! `TileHashReader`, which authenticates every tile against the signed
//! root) and `aics-tlog` (from a mirror of the tiles), each proving the
//! inclusion of entries picked across the tiles.

use std::process::Command;

use serde_json::{Value, json};

use crate::{Server, event};

const SIZE: u64 = 600;
const PICKS: [u64; 8] = [0, 1, 255, 256, 300, 511, 512, 599];

const GO_PROGRAM: &str = r#"package main

import (
	"encoding/base64"
	"fmt"
	"io"
	"net/http"
	"os"
	"strconv"
	"strings"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

var base, key string

func get(path string) []byte {
	req, _ := http.NewRequest("GET", base+path, nil)
	req.Header.Set("Authorization", "Bearer "+key)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		panic(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 {
		panic(fmt.Sprintf("%s: %d %s", path, resp.StatusCode, body))
	}
	return body
}

type tiles struct{}

func (tiles) Height() int { return 8 }
func (tiles) ReadTiles(ts []tlog.Tile) ([][]byte, error) {
	out := make([][]byte, len(ts))
	for i, t := range ts {
		out[i] = get("/tile/" + strings.TrimPrefix(t.Path(), "tile/8/"))
	}
	return out, nil
}
func (tiles) SaveTiles([]tlog.Tile, [][]byte) {}

func main() {
	base, key = os.Args[1], os.Args[2]
	v, err := note.NewVerifier(os.Args[3])
	if err != nil {
		panic(err)
	}
	n, err := note.Open(get("/checkpoint"), note.VerifierList(v))
	if err != nil {
		panic(err)
	}
	lines := strings.Split(n.Text, "\n")
	size, _ := strconv.ParseInt(lines[1], 10, 64)
	rootBytes, _ := base64.StdEncoding.DecodeString(lines[2])
	var root tlog.Hash
	copy(root[:], rootBytes)
	tree := tlog.Tree{N: size, Hash: root}
	r := tlog.TileHashReader(tree, tiles{})
	if th, err := tlog.TreeHash(size, r); err != nil || th != root {
		panic(fmt.Sprintf("tree hash from tiles: %v", err))
	}
	for _, arg := range os.Args[4:] {
		idx, _ := strconv.ParseInt(arg, 10, 64)
		tile := idx / 256
		w := size - tile*256
		path := fmt.Sprintf("/tile/entries/%03d", tile)
		if w < 256 {
			path += fmt.Sprintf(".p/%d", w)
		}
		bundle := get(path)
		var entry []byte
		for i := int64(0); i <= idx%256; i++ {
			l := int(bundle[0])<<8 | int(bundle[1])
			entry, bundle = bundle[2:2+l], bundle[2+l:]
		}
		proof, err := tlog.ProveRecord(size, idx, r)
		if err != nil {
			panic(err)
		}
		if err := tlog.CheckRecord(proof, size, root, idx, tlog.RecordHash(entry)); err != nil {
			panic(fmt.Sprintf("entry %d: %v", idx, err))
		}
		fmt.Printf("proved %d\n", idx)
	}
}
"#;

fn trail() -> (tempfile::TempDir, Server) {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path());
    for batch in 0..3 {
        let events: Vec<Value> = (0..200)
            .map(|i| event("acme", &format!("u{batch}-{i}"), "update"))
            .collect();
        assert_eq!(
            server.post("/v1/events", &server.admin, &json!(events)).0,
            201
        );
    }
    server.wait_checkpoint("acme", SIZE);
    (dir, server)
}

fn get_bytes(server: &Server, path: &str) -> Vec<u8> {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut r = agent
        .get(&format!("{}{path}", server.url))
        .header("Authorization", &format!("Bearer {}", server.admin))
        .call()
        .unwrap();
    assert_eq!(r.status(), 200, "{path}");
    r.body_mut()
        .with_config()
        .limit(1 << 20)
        .read_to_vec()
        .unwrap()
}

fn status(server: &Server, path: &str, key: Option<&str>) -> u16 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .build()
        .into();
    let mut req = agent.get(&format!("{}{path}", server.url));
    if let Some(k) = key {
        req = req.header("Authorization", &format!("Bearer {k}"));
    }
    req.call().unwrap().status().as_u16()
}

#[test]
fn go_tlog_proves_entries_from_the_served_tiles() {
    let (_dir, server) = trail();
    let vkey = server.verifier_key("acme");
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("main.go");
    std::fs::write(&src, GO_PROGRAM).unwrap();
    let mut args = vec![
        "run".to_owned(),
        src.to_str().unwrap().to_owned(),
        format!("{}/log/acme", server.url),
        server.admin.clone(),
        vkey,
    ];
    args.extend(PICKS.iter().map(u64::to_string));
    let out = Command::new("go")
        .args(&args)
        .env("GO111MODULE", "off")
        .env("GOPATH", "/usr/share/gocode")
        .env("GOCACHE", work.path().join("cache"))
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        stdout.lines().filter(|l| l.starts_with("proved")).count(),
        PICKS.len()
    );
}

#[test]
fn aics_tlog_proves_entries_from_a_mirror_of_the_tiles() {
    let (_dir, server) = trail();
    let vkey = server.verifier_key("acme");
    // A monitor's mirror: the checkpoint and every tile of 600 entries.
    let mirror = tempfile::tempdir().unwrap();
    let paths = [
        "checkpoint",
        "tile/0/000",
        "tile/0/001",
        "tile/0/002.p/88",
        "tile/1/000.p/2",
        "tile/entries/000",
        "tile/entries/001",
        "tile/entries/002.p/88",
    ];
    for path in paths {
        let file = mirror.path().join(path);
        std::fs::create_dir_all(file.parent().unwrap()).unwrap();
        std::fs::write(&file, get_bytes(&server, &format!("/log/acme/{path}"))).unwrap();
    }
    let aics = crate::witness::aics_bin("aics-tlog");
    for index in PICKS {
        let (_, entries) = server.get(
            &format!("/v1/entries?tenant=acme&start={index}&end={}", index + 1),
            &server.admin,
        );
        let leaf = mirror.path().join(format!("leaf-{index}"));
        std::fs::write(&leaf, entries["entries"][0]["envelope"].as_str().unwrap()).unwrap();
        let out = Command::new(&aics)
            .args([
                "verify-inclusion",
                "--tiles",
                mirror.path().to_str().unwrap(),
            ])
            .args([
                "--index",
                &index.to_string(),
                "--leaf",
                leaf.to_str().unwrap(),
            ])
            .args(["--log-key", &vkey, "--origin", "trailmark.local/acme"])
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "entry {index}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn tiles_need_a_key_for_the_tenant_and_stop_at_the_tree() {
    let (_dir, server) = trail();
    assert_eq!(status(&server, "/log/acme/tile/0/000", None), 401);
    let other = server.key("read", Some("globex"));
    assert_eq!(status(&server, "/log/acme/tile/0/000", Some(&other)), 403);
    assert_eq!(
        status(&server, "/log/acme/tile/0/002", Some(&server.admin)),
        404
    );
    assert_eq!(
        status(&server, "/log/acme/tile/0/002.p/89", Some(&server.admin)),
        404
    );
    assert_eq!(
        status(&server, "/log/acme/tile/0/02", Some(&server.admin)),
        404
    );
    assert_eq!(get_bytes(&server, "/log/acme/tile/0/000").len(), 256 * 32);
    assert_eq!(
        get_bytes(&server, "/log/acme/tile/0/002.p/88").len(),
        88 * 32
    );
}
