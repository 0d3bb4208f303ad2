//! Transactions PostgreSQL streams while they are still in progress
//! (replication protocol 2, `streaming = on`): once a transaction's decoded
//! changes outgrow the server's `logical_decoding_work_mem`, the server
//! sends them in chunks as they are made instead of spilling them to its
//! own disk and sending them at the commit. Nothing of such a transaction
//! may reach the ledger before its commit (it may still roll back, and its
//! events' ids derive from the commit's position), so its changes are held
//! here: in memory up to [`HELD_IN_MEMORY`] across all open transactions,
//! past that in a file of their own (created in the temporary directory and
//! unlinked at once: it is gone when the transaction ends or the process
//! does).
//!
//! Inside a streamed chunk every change names the (sub)transaction that
//! made it, and a `ROLLBACK TO SAVEPOINT` arrives as a stream abort naming
//! the subtransaction: its changes are dropped. The `trailmark` context
//! messages are named by the top transaction only (PostgreSQL's `pgoutput`
//! does so), so one written inside a subtransaction that rolled back is
//! told apart by its place in the WAL: a subtransaction's writes lie
//! between its first and its abort, with nothing of its parent between.
//! Where that cannot tell (a message after the parent's last change and
//! before the subtransaction's first), the transaction is not guessed at:
//! [`Unplaced`] asks the drainer to decode it again without streaming,
//! where PostgreSQL drops what rolled back itself.

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io::{BufRead, BufReader, BufWriter, Seek, Write};

use pg_walstream::RelationInfo;
use serde_json::Value;

use crate::{Error, RowImage};

/// Decoded changes of open streamed transactions held in memory, in bytes
/// (about: the values' lengths and a little per change); past it the
/// largest transaction's are moved to its file.
pub(crate) const HELD_IN_MEMORY: usize = 64 << 20;

/// One decoded change, before it becomes an event.
#[derive(Clone, Debug, PartialEq)]
pub(crate) struct Change {
    pub op: &'static str,
    pub schema: String,
    pub table: String,
    pub old: Option<RowImage>,
    pub new: Option<RowImage>,
}

impl Change {
    pub(crate) fn new(
        op: &'static str,
        schema: &str,
        table: &str,
        old: Option<RowImage>,
        new: Option<RowImage>,
    ) -> Self {
        Self {
            op,
            schema: schema.to_owned(),
            table: table.to_owned(),
            old,
            new,
        }
    }

    /// About the memory it holds.
    fn size(&self) -> usize {
        let image = |i: &Option<RowImage>| match i {
            None => 0,
            Some(RowImage::Json(text)) => text.len(),
            Some(RowImage::Columns(columns)) => columns
                .iter()
                .map(|(n, v)| {
                    let value = match v {
                        Value::String(text) => text.len(),
                        Value::Array(_) | Value::Object(_) => v.to_string().len(),
                        _ => 8,
                    };
                    n.len() + value + 48
                })
                .sum(),
        };
        64 + self.schema.len() + self.table.len() + image(&self.old) + image(&self.new)
    }
}

/// What a streamed transaction did, in order, held until its commit.
#[derive(Clone, Debug, PartialEq)]
pub(crate) enum Item {
    /// A change (or a pause or resume) by (sub)transaction `xid`.
    Change { xid: u32, change: Change },
    /// A `trailmark.set_context` message whose record ends at `at` in
    /// the WAL.
    Context { at: u64, content: Vec<u8> },
}

impl Item {
    fn size(&self) -> usize {
        match self {
            Item::Change { change, .. } => change.size(),
            Item::Context { content, .. } => 32 + content.len(),
        }
    }

    /// Writes it to the spill file: a kind byte, then lengths (u32, little
    /// endian) before the strings.
    fn write_to(&self, out: &mut impl Write) -> std::io::Result<()> {
        fn text(out: &mut impl Write, text: &[u8]) -> std::io::Result<()> {
            let len = u32::try_from(text.len()).map_err(std::io::Error::other)?;
            out.write_all(&len.to_le_bytes())?;
            out.write_all(text)
        }
        fn image(out: &mut impl Write, image: Option<&RowImage>) -> std::io::Result<()> {
            match image {
                None => out.write_all(&[0]),
                Some(RowImage::Json(json)) => {
                    out.write_all(&[1])?;
                    text(out, json.as_bytes())
                }
                Some(RowImage::Columns(columns)) => {
                    out.write_all(&[2])?;
                    let count = u32::try_from(columns.len()).map_err(std::io::Error::other)?;
                    out.write_all(&count.to_le_bytes())?;
                    for (name, value) in columns {
                        text(out, name.as_bytes())?;
                        text(out, value.to_string().as_bytes())?;
                    }
                    Ok(())
                }
            }
        }
        match self {
            Item::Change { xid, change } => {
                let op = OPS.iter().position(|op| *op == change.op).unwrap_or(0);
                out.write_all(&[0, u8::try_from(op).unwrap_or(0)])?;
                out.write_all(&xid.to_le_bytes())?;
                text(out, change.schema.as_bytes())?;
                text(out, change.table.as_bytes())?;
                image(out, change.old.as_ref())?;
                image(out, change.new.as_ref())
            }
            Item::Context { at, content } => {
                out.write_all(&[1])?;
                out.write_all(&at.to_le_bytes())?;
                text(out, content)
            }
        }
    }

    /// Reads the next item [`Item::write_to`] wrote; `None` at the file's end.
    fn read_from(input: &mut impl BufRead) -> std::io::Result<Option<Item>> {
        fn bytes<const N: usize>(input: &mut impl BufRead) -> std::io::Result<[u8; N]> {
            let mut buf = [0; N];
            input.read_exact(&mut buf)?;
            Ok(buf)
        }
        fn raw(input: &mut impl BufRead) -> std::io::Result<Vec<u8>> {
            let len = u32::from_le_bytes(bytes(input)?) as usize;
            let mut buf = vec![0; len];
            input.read_exact(&mut buf)?;
            Ok(buf)
        }
        fn text(input: &mut impl BufRead) -> std::io::Result<String> {
            String::from_utf8(raw(input)?).map_err(std::io::Error::other)
        }
        fn image(input: &mut impl BufRead) -> std::io::Result<Option<RowImage>> {
            Ok(match bytes::<1>(input)?[0] {
                0 => None,
                1 => Some(RowImage::Json(text(input)?)),
                _ => {
                    let count = u32::from_le_bytes(bytes(input)?);
                    let columns = (0..count)
                        .map(|_| {
                            let name = text(input)?;
                            let value = serde_json::from_slice(&raw(input)?)
                                .map_err(std::io::Error::other)?;
                            Ok((name, value))
                        })
                        .collect::<std::io::Result<_>>()?;
                    Some(RowImage::Columns(columns))
                }
            })
        }
        if input.fill_buf()?.is_empty() {
            return Ok(None);
        }
        Ok(Some(match bytes::<1>(input)?[0] {
            0 => {
                let op = OPS
                    .get(usize::from(bytes::<1>(input)?[0]))
                    .copied()
                    .ok_or_else(|| std::io::Error::other("an unknown operation"))?;
                Item::Change {
                    xid: u32::from_le_bytes(bytes(input)?),
                    change: Change {
                        op,
                        schema: text(input)?,
                        table: text(input)?,
                        old: image(input)?,
                        new: image(input)?,
                    },
                }
            }
            _ => Item::Context {
                at: u64::from_le_bytes(bytes(input)?),
                content: raw(input)?,
            },
        }))
    }
}

/// The operations a held change may be (its number in the spill file).
use crate::event::OPS;

/// A streamed transaction whose context messages cannot be placed (see the
/// module's documentation): decode it again without streaming.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Unplaced {
    pub xid: u32,
}

/// Consecutive changes of one (sub)transaction: where they start and end
/// in the WAL.
#[derive(Debug)]
struct Run {
    xid: u32,
    first: u64,
    last: u64,
}

/// One open streamed transaction.
#[derive(Debug, Default)]
pub(crate) struct Held {
    xid: u32,
    /// Relations (re)described inside it: its own until it commits.
    pub relations: HashMap<u32, RelationInfo>,
    /// The items not moved to the file, in order after those in it.
    memory: Vec<Item>,
    memory_bytes: usize,
    file: Option<BufWriter<File>>,
    /// Its changes' runs, in WAL order.
    runs: Vec<Run>,
    /// Its context messages' places, and whether each rolled back.
    contexts: Vec<(u64, bool)>,
    /// Subtransactions that rolled back.
    aborted: HashSet<u32>,
    /// Subtransactions aborted at one place (one rollback aborts a
    /// subtransaction and those inside it), weighed together once all
    /// have arrived.
    pending: Option<(u64, Vec<u32>)>,
}

impl Held {
    fn push(&mut self, item: Item) -> usize {
        let size = item.size();
        self.memory_bytes += size;
        self.memory.push(item);
        size
    }

    /// Moves the items in memory to the transaction's file.
    fn spill(&mut self) -> Result<usize, Error> {
        let spill_error =
            |e: std::io::Error| Error::Replication(format!("spilling a streamed transaction: {e}"));
        if self.file.is_none() {
            self.file = Some(BufWriter::new(spill_file(self.xid).map_err(spill_error)?));
        }
        let file = self.file.as_mut().expect("made above");
        for item in self.memory.drain(..) {
            item.write_to(file).map_err(spill_error)?;
        }
        Ok(std::mem::take(&mut self.memory_bytes))
    }

    /// Weighs the subtransactions aborted at one place: drops the context
    /// messages they wrote, or says the transaction cannot be placed.
    fn settle(&mut self) -> Result<(), Unplaced> {
        let Some((abort, xids)) = self.pending.take() else {
            return Ok(());
        };
        // Where the aborted subtransactions began to write: their first
        // change, or (none) their abort.
        let from = self
            .runs
            .iter()
            .filter(|r| xids.contains(&r.xid))
            .map(|r| r.first)
            .min()
            .unwrap_or(abort);
        // The last change before that which stands: the parent's (or a
        // sibling's), after which they began.
        let bound = self
            .runs
            .iter()
            .rev()
            .find(|r| r.last < from && !self.aborted.contains(&r.xid))
            .map_or(0, |r| r.last);
        // A change is placed by where its record starts, a logical message
        // by where its record ends (as PostgreSQL stamps them): a message
        // ending where the subtransactions' first change starts may be
        // theirs or the parent's; one ending after it and no later than
        // the abort is theirs.
        let mut unplaced = false;
        for (at, dropped) in &mut self.contexts {
            if *dropped {
                continue;
            }
            if *at > from && *at <= abort {
                *dropped = true;
            } else if *at > bound && *at <= from {
                unplaced = true;
            }
        }
        if unplaced {
            Err(Unplaced { xid: self.xid })
        } else {
            Ok(())
        }
    }
}

/// Where a streamed transaction's items go past the memory bound: a file
/// in the temporary directory, unlinked at once.
fn spill_file(xid: u32) -> std::io::Result<File> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path = std::env::temp_dir().join(format!(
        "trailmark-streamed-{}-{xid}-{n}",
        std::process::id()
    ));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)?;
    std::fs::remove_file(&path)?;
    Ok(file)
}

/// The open streamed transactions.
#[derive(Debug, Default)]
pub(crate) struct Open {
    held: HashMap<u32, Held>,
    memory_bytes: usize,
}

impl Open {
    /// A chunk of transaction `xid` begins.
    pub(crate) fn start(&mut self, xid: u32) -> &mut Held {
        self.held.entry(xid).or_insert_with(|| Held {
            xid,
            ..Held::default()
        })
    }

    /// The relations transaction `xid` described.
    pub(crate) fn relations(&self, xid: u32) -> Option<&HashMap<u32, RelationInfo>> {
        self.held.get(&xid).map(|held| &held.relations)
    }

    /// Holds a change by `sub` (the top transaction or one of its
    /// subtransactions), written at `at`.
    pub(crate) fn change(
        &mut self,
        xid: u32,
        sub: u32,
        at: u64,
        change: Change,
    ) -> Result<Result<(), Unplaced>, Error> {
        self.hold(xid, at, Item::Change { xid: sub, change })
    }

    /// Holds a context message whose record ends at `at`.
    pub(crate) fn context(
        &mut self,
        xid: u32,
        at: u64,
        content: &[u8],
    ) -> Result<Result<(), Unplaced>, Error> {
        let content = content.to_vec();
        self.hold(xid, at, Item::Context { at, content })
    }

    /// Holds `item` of transaction `xid`, written at `at`, once the
    /// rollbacks before it are weighed, with its place noted (a change's
    /// run, a context message's place).
    fn hold(&mut self, xid: u32, at: u64, item: Item) -> Result<Result<(), Unplaced>, Error> {
        let held = self.start(xid);
        if let Err(unplaced) = held.settle() {
            return Ok(Err(unplaced));
        }
        match &item {
            Item::Change { xid: sub, .. } => match held.runs.last_mut() {
                Some(run) if run.xid == *sub => run.last = at,
                _ => held.runs.push(Run {
                    xid: *sub,
                    first: at,
                    last: at,
                }),
            },
            Item::Context { .. } => held.contexts.push((at, false)),
        }
        let size = held.push(item);
        self.grew(size)?;
        Ok(Ok(()))
    }

    /// Past the bound, the largest transaction's items go to its file.
    fn grew(&mut self, size: usize) -> Result<(), Error> {
        self.memory_bytes += size;
        if self.memory_bytes > HELD_IN_MEMORY
            && let Some(largest) = self.held.values_mut().max_by_key(|h| h.memory_bytes)
        {
            let moved = largest.spill()?;
            self.memory_bytes -= moved;
        }
        Ok(())
    }

    /// Subtransaction `sub` of `xid` rolled back at `at` (or, `sub` being
    /// `xid`, the whole transaction did: all of it is dropped).
    pub(crate) fn abort(&mut self, xid: u32, sub: u32, at: u64) -> Result<(), Unplaced> {
        if sub == xid {
            if let Some(held) = self.held.remove(&xid) {
                self.memory_bytes -= held.memory_bytes;
            }
            return Ok(());
        }
        let Some(held) = self.held.get_mut(&xid) else {
            return Ok(());
        };
        if held.pending.as_ref().is_some_and(|(place, _)| *place != at) {
            held.settle()?;
        }
        held.aborted.insert(sub);
        held.pending
            .get_or_insert_with(|| (at, Vec::new()))
            .1
            .push(sub);
        Ok(())
    }

    /// A chunk ends: what it aborted is weighed.
    pub(crate) fn stop(&mut self, xid: u32) -> Result<(), Unplaced> {
        self.held.get_mut(&xid).map_or(Ok(()), Held::settle)
    }

    /// Transaction `xid` committed: its items, in order, without what rolled
    /// back, and the relations it described.
    pub(crate) fn commit(&mut self, xid: u32) -> Result<Result<Committed, Unplaced>, Error> {
        let Some(mut held) = self.held.remove(&xid) else {
            // Nothing of it was captured (it wrote only to other tables).
            return Ok(Ok(Committed::default()));
        };
        self.memory_bytes -= held.memory_bytes;
        if let Err(unplaced) = held.settle() {
            return Ok(Err(unplaced));
        }
        let file = match held.file.take() {
            None => None,
            Some(writer) => {
                let mut file = writer
                    .into_inner()
                    .map_err(|e| read_back_error(e.into_error()))?;
                file.rewind().map_err(read_back_error)?;
                Some(BufReader::new(file))
            }
        };
        let dropped = held
            .contexts
            .iter()
            .filter(|(_, dropped)| *dropped)
            .map(|(at, _)| *at)
            .collect();
        Ok(Ok(Committed {
            items: Replay {
                file,
                memory: std::mem::take(&mut held.memory).into_iter(),
                aborted: std::mem::take(&mut held.aborted),
                dropped,
            },
            relations: std::mem::take(&mut held.relations),
        }))
    }

    /// Bytes held in memory now.
    #[cfg(test)]
    fn memory_bytes(&self) -> usize {
        self.memory_bytes
    }
}

#[allow(clippy::needless_pass_by_value)] // given to `map_err`, which passes the error by value
fn read_back_error(e: std::io::Error) -> Error {
    Error::Replication(format!("reading back a streamed transaction: {e}"))
}

/// A streamed transaction that committed.
#[derive(Debug, Default)]
pub(crate) struct Committed {
    /// What it did, without what rolled back.
    pub items: Replay,
    /// The relations it described.
    pub relations: HashMap<u32, RelationInfo>,
}

/// A committed streamed transaction's items, read back in order.
#[derive(Debug, Default)]
pub(crate) struct Replay {
    file: Option<BufReader<File>>,
    memory: std::vec::IntoIter<Item>,
    aborted: HashSet<u32>,
    dropped: HashSet<u64>,
}

impl Replay {
    /// The next item that stands (not rolled back), or `None` at the end.
    pub(crate) fn next_item(&mut self) -> Result<Option<Item>, Error> {
        loop {
            let from_file = match self.file.as_mut() {
                Some(file) => Item::read_from(file).map_err(read_back_error)?,
                None => None,
            };
            let item = if let Some(item) = from_file {
                item
            } else {
                // The file (if any) is read: the items after it.
                self.file = None;
                match self.memory.next() {
                    Some(item) => item,
                    None => return Ok(None),
                }
            };
            let stands = match &item {
                Item::Change { xid, .. } => !self.aborted.contains(xid),
                Item::Context { at, .. } => !self.dropped.contains(at),
            };
            if stands {
                return Ok(Some(item));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn change(n: u32) -> Change {
        Change::new(
            "insert",
            "public",
            "t",
            None,
            Some(RowImage::Columns(vec![("id".into(), Value::from(n))])),
        )
    }

    fn replayed(open: &mut Open, xid: u32) -> Vec<Item> {
        let mut replay = open.commit(xid).unwrap().unwrap().items;
        let mut items = Vec::new();
        while let Some(item) = replay.next_item().unwrap() {
            items.push(item);
        }
        items
    }

    fn ids(items: &[Item]) -> Vec<String> {
        items
            .iter()
            .map(|i| match i {
                Item::Change { change, .. } => match &change.new {
                    Some(RowImage::Columns(c)) => c[0].1.to_string(),
                    _ => "?".into(),
                },
                Item::Context { content, .. } => String::from_utf8_lossy(content).into_owned(),
            })
            .collect()
    }

    #[test]
    fn a_rolled_back_savepoint_drops_its_changes_and_the_context_it_set() {
        let mut open = Open::default();
        // BEGIN (xid 10); set_context(A); INSERT 1; SAVEPOINT s (xid 11);
        // INSERT 2; set_context(B); INSERT 3; ROLLBACK TO s; INSERT 4.
        open.context(10, 100, b"A").unwrap().unwrap();
        open.change(10, 10, 110, change(1)).unwrap().unwrap();
        open.change(10, 11, 120, change(2)).unwrap().unwrap();
        open.context(10, 130, b"B").unwrap().unwrap();
        open.change(10, 11, 140, change(3)).unwrap().unwrap();
        open.abort(10, 11, 150).unwrap();
        open.change(10, 10, 160, change(4)).unwrap().unwrap();
        assert_eq!(ids(&replayed(&mut open, 10)), ["A", "1", "4"]);
        assert_eq!(open.memory_bytes(), 0, "nothing held after the commit");
    }

    #[test]
    fn a_context_set_inside_a_savepoint_before_its_first_change_is_not_guessed_at() {
        let mut open = Open::default();
        // set_context(A); INSERT 1; SAVEPOINT s; set_context(B); INSERT 2;
        // ROLLBACK TO s: B may be the parent's or the savepoint's.
        open.context(10, 100, b"A").unwrap().unwrap();
        open.change(10, 10, 110, change(1)).unwrap().unwrap();
        open.context(10, 120, b"B").unwrap().unwrap();
        open.change(10, 11, 130, change(2)).unwrap().unwrap();
        open.abort(10, 11, 140).unwrap();
        assert_eq!(open.stop(10), Err(Unplaced { xid: 10 }));

        // Ending where the savepoint's first change starts: the same.
        let mut open = Open::default();
        open.change(10, 10, 110, change(1)).unwrap().unwrap();
        open.context(10, 130, b"B").unwrap().unwrap();
        open.change(10, 11, 130, change(2)).unwrap().unwrap();
        open.abort(10, 11, 140).unwrap();
        assert_eq!(open.stop(10), Err(Unplaced { xid: 10 }));

        // With a change of the parent between, it is the parent's.
        let mut open = Open::default();
        open.context(20, 100, b"A").unwrap().unwrap();
        open.change(20, 20, 110, change(1)).unwrap().unwrap();
        open.change(20, 21, 130, change(2)).unwrap().unwrap();
        open.abort(20, 21, 140).unwrap();
        open.stop(20).unwrap();
        assert_eq!(ids(&replayed(&mut open, 20)), ["A", "1"]);
    }

    #[test]
    fn subtransactions_aborted_together_are_weighed_together() {
        let mut open = Open::default();
        // INSERT 1 (top); SAVEPOINT s (11): INSERT 2; set_context(B);
        // SAVEPOINT t (12): INSERT 3; RELEASE t; ROLLBACK TO s: 12 and 11
        // abort at one place. B lies inside s: dropped, not unplaced.
        open.change(10, 10, 100, change(1)).unwrap().unwrap();
        open.change(10, 11, 110, change(2)).unwrap().unwrap();
        open.context(10, 120, b"B").unwrap().unwrap();
        open.change(10, 12, 130, change(3)).unwrap().unwrap();
        open.abort(10, 12, 140).unwrap();
        open.abort(10, 11, 140).unwrap();
        open.change(10, 10, 150, change(4)).unwrap().unwrap();
        assert_eq!(ids(&replayed(&mut open, 10)), ["1", "4"]);
    }

    #[test]
    fn a_whole_transaction_aborted_is_dropped() {
        let mut open = Open::default();
        open.change(10, 10, 100, change(1)).unwrap().unwrap();
        open.abort(10, 10, 110).unwrap();
        assert_eq!(open.memory_bytes(), 0);
        assert!(replayed(&mut open, 10).is_empty());
    }

    #[test]
    fn past_the_memory_bound_items_go_to_a_file_and_come_back_in_order() {
        let mut open = Open::default();
        let big = "x".repeat(1 << 20);
        let wide = |n: u32| {
            Change::new(
                "update",
                "public",
                "t",
                Some(RowImage::Json(format!("{{\"id\": {n}}}"))),
                Some(RowImage::Columns(vec![
                    ("id".into(), Value::from(n)),
                    ("big".into(), Value::String(big.clone())),
                ])),
            )
        };
        let count = 100u32;
        for n in 0..count {
            open.change(10, 10 + n % 2, u64::from(n) * 10, wide(n))
                .unwrap()
                .unwrap();
            if n == 50 {
                open.context(10, 505, b"{\"actor_id\": \"7\"}")
                    .unwrap()
                    .unwrap();
            }
        }
        assert!(open.memory_bytes() <= HELD_IN_MEMORY, "bounded in memory");
        assert!(open.held[&10].file.is_some(), "the rest went to its file");
        let items = replayed(&mut open, 10);
        assert_eq!(items.len(), count as usize + 1);
        assert_eq!(
            items[0],
            Item::Change {
                xid: 10,
                change: wide(0)
            }
        );
        assert_eq!(
            items[51],
            Item::Context {
                at: 505,
                content: b"{\"actor_id\": \"7\"}".to_vec()
            }
        );
        assert_eq!(
            items[count as usize],
            Item::Change {
                xid: 11,
                change: wide(count - 1)
            }
        );
    }
}
