//! The data directory: database, signing seed, bootstrap key.
//!
//! ```text
//! <data-dir>/trailmark.db            SQLite database (+ -wal, -shm)
//! <data-dir>/trailmark.db-index      its query and search indexes, derived
//!                                    from it and rebuilt when missing (+ -wal, -shm)
//! <data-dir>/signing.seed            32-byte Ed25519 seed, hex (0600)
//! <data-dir>/bootstrap-admin.key     the first admin key, alone on one line (0600)
//! <data-dir>/serve.lock              held (flock) while a server runs
//! ```

use std::fs;
use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use anyhow::{Context as _, bail};

pub const DB_FILE: &str = "trailmark.db";
pub const SEED_FILE: &str = "signing.seed";
pub const BOOTSTRAP_KEY_FILE: &str = "bootstrap-admin.key";
pub const LOCK_FILE: &str = "serve.lock";

pub fn db_path(dir: &Path) -> PathBuf {
    dir.join(DB_FILE)
}

/// Replaces the file at `path` whole and durably: the new bytes are on
/// disk before they take the old file's name (through `<path>.tmp`), and the
/// name before this returns. A power cut leaves the old file or the new,
/// never an empty or half-written one (a state file that remembers
/// checkpoints would lose them).
pub fn replace_durably(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut file = fs::File::create(&tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    fs::rename(&tmp, path)?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    fs::File::open(dir)?.sync_all()
}

/// Writes a secret file that only the owner can read; never overwrites.
pub fn write_secret(path: &Path, contents: &str) -> anyhow::Result<()> {
    let mut file = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents.as_bytes())?;
    file.sync_all()?;
    Ok(())
}

/// Holds the data dir for one server: the embedded store has one writer.
/// The lock goes with the returned file (and with the process).
pub fn lock(dir: &Path) -> anyhow::Result<fs::File> {
    let path = dir.join(LOCK_FILE);
    let file = fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o600)
        .open(&path)
        .with_context(|| format!("opening {}", path.display()))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => bail!(
            "another trailmark serve is using {}; one server per data dir (stop it, or use another --data-dir)",
            dir.display()
        ),
        Err(fs::TryLockError::Error(e)) => {
            Err(e).with_context(|| format!("locking {}", path.display()))
        }
    }
}

/// Creates the data dir (0700) if missing, and closes an existing one and
/// the files in it to group and others (payloads, key digests and secrets
/// live there), saying so.
pub fn ensure(dir: &Path) -> anyhow::Result<()> {
    if dir.exists() {
        close_to_others(dir, 0o700)?;
    } else {
        fs::create_dir_all(dir).with_context(|| format!("creating data dir {}", dir.display()))?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    for name in [
        DB_FILE,
        "trailmark.db-wal",
        "trailmark.db-shm",
        "trailmark.db-index",
        "trailmark.db-index-wal",
        "trailmark.db-index-shm",
        SEED_FILE,
        BOOTSTRAP_KEY_FILE,
        LOCK_FILE,
    ] {
        let path = dir.join(name);
        if path.exists() {
            close_to_others(&path, 0o600)?;
        }
    }
    Ok(())
}

/// The embedded database's path, the file created 0600 (empty: SQLite makes
/// it a database) if it does not exist, so its WAL and index inherit 0600.
pub fn prepare_db(dir: &Path) -> anyhow::Result<PathBuf> {
    let db = db_path(dir);
    if !db.exists() {
        fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&db)
            .with_context(|| format!("creating {}", db.display()))?;
    }
    Ok(db)
}

/// Sets `mode` on a path that group or others could use, and says so.
fn close_to_others(path: &Path, mode: u32) -> anyhow::Result<()> {
    let current = fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .permissions()
        .mode()
        & 0o777;
    if current & 0o077 != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode))
            .with_context(|| format!("closing {} to others (chmod {mode:o})", path.display()))?;
        eprintln!(
            "trailmark: {} was open to others (mode {current:o}); made it {mode:o}",
            path.display()
        );
    }
    Ok(())
}

/// Reads the signing seed in the data dir, creating it on first start.
pub fn signing_seed(dir: &Path, create: bool) -> anyhow::Result<[u8; 32]> {
    read_seed(&dir.join(SEED_FILE), create)
}

/// Reads a signing seed file (64 hex digits), creating it (0600) when
/// `create` is set and it is missing. A seed file that group or others may
/// read is refused: whoever reads it can sign this trail's checkpoints.
pub fn read_seed(path: &Path, create: bool) -> anyhow::Result<[u8; 32]> {
    let path = path.to_path_buf();
    if path.exists() {
        let mode = fs::metadata(&path)
            .with_context(|| format!("reading {}", path.display()))?
            .permissions()
            .mode();
        if mode & 0o077 != 0 {
            bail!(
                "the signing key {} may be read by group or others (mode {:o}): chmod 600 it",
                path.display(),
                mode & 0o777
            );
        }
    }
    if !path.exists() {
        if !create {
            bail!(
                "{} is missing: is this a Trailmark data dir?",
                path.display()
            );
        }
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| anyhow::anyhow!("no randomness: {e}"))?;
        write_secret(&path, &format!("{}\n", hex::encode(seed)))?;
    }
    let text = fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut seed = [0u8; 32];
    hex::decode_to_slice(text.trim(), &mut seed)
        .with_context(|| format!("{} must hold 64 hex digits", path.display()))?;
    Ok(seed)
}
