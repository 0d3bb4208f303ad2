//! C2SP tlog-tiles paths and contents, against `tlog_tiles` (an independent
//! implementation of the same layout, which writes the older
//! `tile/<height>/…` prefix): every tile of trees across the 256 and 65536
//! boundaries has the same path and the same bytes.

use trailmark_log::{CompactRange, MemoryNodes, TilePath, entry_bundle, leaf_hash};

use crate::cross_check::TlogReader;

fn nodes(size: u64) -> MemoryNodes {
    let mut nodes = MemoryNodes::new();
    let mut range = CompactRange::new();
    for i in 0..size {
        range
            .append(leaf_hash(&i.to_be_bytes()), |id, h| {
                nodes.insert(id, h).unwrap();
            })
            .unwrap();
    }
    nodes
}

#[test]
fn every_tile_has_the_path_and_bytes_tlog_tiles_gives_it() {
    for size in [1u64, 255, 256, 257, 513, 65_535, 65_536, 65_537, 70_000] {
        let nodes = nodes(size);
        for theirs in tlog_tiles::Tile::new_tiles(8, 0, size) {
            let their_path = theirs.path();
            let path = their_path.strip_prefix("tile/8/").unwrap();
            let ours = TilePath::parse(path).unwrap();
            assert_eq!(ours.to_path(), path);
            assert!(ours.within(size), "{path} in a tree of {size}");
            let bytes: Vec<u8> = ours
                .node_ids()
                .into_iter()
                .flat_map(|id| nodes.get(id).unwrap().as_bytes().to_vec())
                .collect();
            assert_eq!(
                bytes,
                theirs.read_data(&TlogReader(&nodes)).unwrap(),
                "{path}"
            );
        }
    }
}

#[test]
fn tile_paths_outside_the_spec_or_the_tree_are_refused() {
    let p = TilePath::parse("0/x001/x234/067").unwrap();
    assert_eq!(
        p,
        TilePath::Hashes {
            level: 0,
            index: 1_234_067,
            width: 256
        }
    );
    assert_eq!(
        TilePath::parse("entries/000.p/5").unwrap().entry_range(),
        Some((0, 5))
    );
    for bad in [
        "0/1",
        "0/0001",
        "8/000",
        "00/000",
        "0/001/002",
        "0/x001",
        "0/000.p/0",
        "0/000.p/256",
        "0/000.p/07",
        "0/000.p/",
        "data/000",
        "entries",
        "",
    ] {
        assert!(TilePath::parse(bad).is_err(), "{bad}");
    }
    // Only what the tree holds: 300 leaves have level-0 tile 0 full and
    // tile 1 up to width 44, no level-1 tile beyond width 1.
    assert!(TilePath::parse("0/000").unwrap().within(300));
    assert!(TilePath::parse("0/001.p/44").unwrap().within(300));
    assert!(!TilePath::parse("0/001.p/45").unwrap().within(300));
    assert!(!TilePath::parse("0/001").unwrap().within(300));
    assert!(TilePath::parse("1/000.p/1").unwrap().within(300));
    assert!(!TilePath::parse("1/000.p/2").unwrap().within(300));
}

#[test]
fn an_entry_bundle_is_length_prefixed_entries() {
    let bundle = entry_bundle([&b"ab"[..], &b""[..], &[7u8; 300][..]]).unwrap();
    assert_eq!(&bundle[..4], &[0, 2, b'a', b'b']);
    assert_eq!(&bundle[4..6], &[0, 0]);
    assert_eq!(&bundle[6..8], &300u16.to_be_bytes());
    assert_eq!(bundle.len(), 8 + 300);
    assert!(entry_bundle([&vec![0u8; 70_000][..]]).is_err());
}
