//! C2SP tlog-tiles paths and contents (c2sp.org/tlog-tiles): a log's
//! complete tree nodes as tiles of 256 hashes, height 8, and its entries as
//! bundles, so standard monitors can follow it.
//!
//! - hash tile `tile/<L>/<N>[.p/<W>]`: hash `i` is the node at height `8·L`,
//!   index `256·N + i` (level 0: the leaf hashes), `W` (1..=255) of them
//!   for a partial tile, 256 for a full one;
//! - entry bundle `tile/entries/<N>[.p/<W>]`: entries `256·N ..`, each as a
//!   big-endian `u16` length and the leaf bytes;
//! - `<N>` is written in groups of three digits, all but the last prefixed
//!   with `x` (`1234067` → `x001/x234/067`).

use std::fmt::Write as _;

use crate::{Error, NodeId};

/// Hashes per full tile.
pub const TILE_WIDTH: u64 = 256;
/// Tree levels per tile level.
pub const TILE_HEIGHT: u8 = 8;
/// The highest tile level a 63-bit tree reaches.
const MAX_TILE_LEVEL: u8 = 7;

/// A tile a monitor asks for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TilePath {
    Hashes { level: u8, index: u64, width: u64 },
    Entries { index: u64, width: u64 },
}

fn bad(path: &str, why: &str) -> Error {
    Error::MalformedCheckpoint {
        reason: format!("tile path {path:?}: {why}"),
    }
}

fn parse_index(parts: &[&str], path: &str) -> Result<u64, Error> {
    if parts.is_empty() || parts.len() > 7 {
        return Err(bad(path, "no tile index"));
    }
    let mut n: u64 = 0;
    for (i, part) in parts.iter().enumerate() {
        let digits = if i + 1 < parts.len() {
            part.strip_prefix('x')
                .ok_or_else(|| bad(path, "inner index elements start with x"))?
        } else {
            part
        };
        if digits.len() != 3 || !digits.bytes().all(|b| b.is_ascii_digit()) {
            return Err(bad(path, "index elements are three digits"));
        }
        let d: u64 = digits.parse().map_err(|_| bad(path, "not a number"))?;
        n = n
            .checked_mul(1000)
            .and_then(|n| n.checked_add(d))
            .ok_or_else(|| bad(path, "index too large"))?;
    }
    Ok(n)
}

fn format_index(mut n: u64) -> String {
    let mut groups = vec![format!("{:03}", n % 1000)];
    n /= 1000;
    while n > 0 {
        groups.push(format!("x{:03}", n % 1000));
        n /= 1000;
    }
    groups.reverse();
    groups.join("/")
}

impl TilePath {
    /// Parses the part after `tile/`.
    pub fn parse(path: &str) -> Result<Self, Error> {
        let (body, width) = match path.split_once(".p/") {
            Some((body, w)) => {
                let digits = !w.is_empty()
                    && w.len() <= 3
                    && !w.starts_with('0')
                    && w.bytes().all(|b| b.is_ascii_digit());
                let width: u64 = if digits { w.parse().unwrap_or(0) } else { 0 };
                if !(1..TILE_WIDTH).contains(&width) {
                    return Err(bad(path, "a partial width is 1 to 255"));
                }
                (body, width)
            }
            None => (path, TILE_WIDTH),
        };
        let parts: Vec<&str> = body.split('/').collect();
        match parts.split_first() {
            Some((&"entries", rest)) => Ok(Self::Entries {
                index: parse_index(rest, path)?,
                width,
            }),
            Some((level, rest)) => {
                let level: u8 = level
                    .parse()
                    .ok()
                    .filter(|l: &u8| *l <= MAX_TILE_LEVEL && l.to_string() == *level)
                    .ok_or_else(|| bad(path, "the level is 0 to 7"))?;
                Ok(Self::Hashes {
                    level,
                    index: parse_index(rest, path)?,
                    width,
                })
            }
            None => Err(bad(path, "empty")),
        }
    }

    /// The path after `tile/`.
    pub fn to_path(&self) -> String {
        let (head, index, width) = match *self {
            Self::Hashes {
                level,
                index,
                width,
            } => (level.to_string(), index, width),
            Self::Entries { index, width } => ("entries".to_owned(), index, width),
        };
        let mut path = format!("{head}/{}", format_index(index));
        if width < TILE_WIDTH {
            let _ = write!(path, ".p/{width}");
        }
        path
    }

    /// Whether a tree of `size` leaves has this tile (complete nodes never
    /// change, so any width up to what exists is served).
    pub fn within(&self, size: u64) -> bool {
        let (per_item_shift, index, width) = match *self {
            Self::Hashes {
                level,
                index,
                width,
            } => (u32::from(level) * u32::from(TILE_HEIGHT), index, width),
            Self::Entries { index, width } => (0, index, width),
        };
        let items = size.checked_shr(per_item_shift).unwrap_or(0);
        index
            .checked_mul(TILE_WIDTH)
            .and_then(|start| start.checked_add(width))
            .is_some_and(|end| end <= items)
    }

    /// The tree nodes a hash tile holds, in order (empty for a bundle).
    pub fn node_ids(&self) -> Vec<NodeId> {
        match *self {
            Self::Hashes {
                level,
                index,
                width,
            } => (0..width)
                .map(|i| NodeId::new(level * TILE_HEIGHT, index * TILE_WIDTH + i))
                .collect(),
            Self::Entries { .. } => Vec::new(),
        }
    }

    /// The entries `start..end` an entry bundle holds.
    pub fn entry_range(&self) -> Option<(u64, u64)> {
        match *self {
            Self::Entries { index, width } => {
                Some((index * TILE_WIDTH, index * TILE_WIDTH + width))
            }
            Self::Hashes { .. } => None,
        }
    }
}

/// An entry bundle: each entry's length as a big-endian `u16`, then its bytes.
pub fn entry_bundle<'a>(entries: impl IntoIterator<Item = &'a [u8]>) -> Result<Vec<u8>, Error> {
    let mut out = Vec::new();
    for entry in entries {
        let len = u16::try_from(entry.len()).map_err(|_| Error::MalformedCheckpoint {
            reason: "an entry longer than 65535 bytes cannot go in a bundle".into(),
        })?;
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(entry);
    }
    Ok(out)
}
