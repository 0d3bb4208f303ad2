//! libpq's password file (`~/.pgpass`, `PGPASSFILE`, the `passfile`
//! setting): the password of a connection string that gives none, when the
//! environment's `PGPASSWORD` gives none either (libpq's order).
//!
//! Each line is `hostname:port:database:username:password`; a field of `*`
//! alone matches anything, a backslash escapes the next character (`\:`,
//! `\\`), a password ends at a `:` not escaped, a line starting with `#`
//! is a comment, and the first line that matches gives the password. As
//! libpq does, the host of a Unix-domain socket in the default directory is
//! matched as `localhost`.
//!
//! Unlike libpq, a file that cannot be used is an error, never skipped with
//! a warning nobody reads: one named by `passfile` or `PGPASSFILE` that does
//! not exist, and any password file that is not a plain file or that the
//! group or others may read (libpq's own rule: the owner's alone, mode 0600
//! or less).

use std::path::PathBuf;

/// Where a string without a password finds one: the process's environment,
/// or a test's.
#[derive(Clone, Debug, Default)]
pub(crate) struct Environment {
    /// `PGPASSWORD`.
    pub(crate) password: Option<String>,
    /// `PGPASSFILE`.
    pub(crate) passfile: Option<String>,
    /// `HOME`, where `.pgpass` is when neither names a file.
    pub(crate) home: Option<PathBuf>,
}

impl Environment {
    /// The process's environment (an empty variable counts as unset, as
    /// libpq has it).
    pub(crate) fn of_process() -> Self {
        let var = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        Self {
            password: var("PGPASSWORD"),
            passfile: var("PGPASSFILE"),
            home: var("HOME").map(PathBuf::from),
        }
    }
}

/// What a line of the file is matched against: one host of the string
/// (as libpq names it), with its port, the database and the user.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Target {
    pub(crate) host: String,
    pub(crate) port: String,
    pub(crate) database: String,
    pub(crate) user: String,
}

/// Where the password file is and who named it.
struct Location {
    path: PathBuf,
    /// What named it, for messages: `passfile`, `PGPASSFILE`, or the default.
    named_by: &'static str,
    /// Named by the string or the environment: then it must exist.
    named: bool,
}

/// The file to read: `setting` (the string's `passfile`), else the
/// environment's `PGPASSFILE`, else `.pgpass` in the home directory.
fn location(setting: Option<&str>, env: &Environment) -> Option<Location> {
    let named = |path: &str, named_by| Location {
        path: PathBuf::from(path),
        named_by,
        named: true,
    };
    if let Some(path) = setting {
        return Some(named(path, "passfile"));
    }
    if let Some(path) = &env.passfile {
        return Some(named(path, "PGPASSFILE"));
    }
    env.home.as_ref().map(|home| Location {
        path: home.join(".pgpass"),
        named_by: "the default password file",
        named: false,
    })
}

/// The password the file gives each target (the first line matching it),
/// one for all: targets the file gives different passwords are an error, as
/// one connection string has one password. `None` when no file is named and
/// `~/.pgpass` does not exist, or when no line matches.
pub(crate) fn password(
    setting: Option<&str>,
    env: &Environment,
    targets: &[Target],
) -> Result<Option<String>, String> {
    let Some(at) = location(setting, env) else {
        return Ok(None);
    };
    let Some(text) = read(&at)? else {
        return Ok(None);
    };
    let mut found: Option<String> = None;
    for target in targets {
        let Some(password) = lookup(&text, target) else {
            continue;
        };
        match &found {
            Some(other) if *other != password => {
                return Err(format!(
                    "{} {}: the connection string's hosts have different passwords there, and one connection string has one password; give password= in the string, or one host",
                    at.named_by,
                    at.path.display()
                ));
            }
            _ => found = Some(password),
        }
    }
    Ok(found)
}

/// The file's text; `None` when it is the default file and does not exist.
fn read(at: &Location) -> Result<Option<String>, String> {
    let (path, named_by) = (&at.path, at.named_by);
    let shown = path.display();
    let meta = match std::fs::metadata(path) {
        Ok(meta) => meta,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound && !at.named => {
            return Ok(None);
        }
        Err(e) => {
            return Err(format!(
                "{named_by} {shown}: cannot be read ({e}); name a password file that exists, or give password= in the string"
            ));
        }
    };
    if !meta.is_file() {
        return Err(format!(
            "{named_by} {shown}: not a plain file; name the password file itself"
        ));
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o777;
        if mode & 0o077 != 0 {
            return Err(format!(
                "{named_by} {shown}: its group or other users may read it (mode {mode:04o}); make it its owner's alone (chmod 600 {shown}), as libpq requires"
            ));
        }
    }
    std::fs::read_to_string(path)
        .map(Some)
        .map_err(|e| format!("{named_by} {shown}: cannot be read ({e})"))
}

/// The password of the first line of `text` that matches `target`.
pub(crate) fn lookup(text: &str, target: &Target) -> Option<String> {
    let wanted = [
        target.host.as_str(),
        &target.port,
        &target.database,
        &target.user,
    ];
    'lines: for line in text.lines() {
        let line = line.strip_suffix('\r').unwrap_or(line);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let mut rest = line;
        for want in wanted {
            match field_matches(rest, want) {
                Some(after) => rest = after,
                None => continue 'lines,
            }
        }
        return Some(unescaped(rest));
    }
    None
}

/// When the field at the start of `line` matches `want` (a field of `*`
/// alone matches anything; `\` escapes the next character), the text after
/// its `:`.
fn field_matches<'a>(line: &'a str, want: &str) -> Option<&'a str> {
    if let Some(after) = line.strip_prefix("*:") {
        return Some(after);
    }
    let mut chars = line.char_indices();
    let mut wanted = want.chars();
    while let Some((i, c)) = chars.next() {
        let c = match c {
            ':' => {
                return wanted.next().is_none().then(|| &line[i + 1..]);
            }
            '\\' => match chars.next() {
                Some((_, escaped)) => escaped,
                None => return None,
            },
            c => c,
        };
        if wanted.next() != Some(c) {
            return None;
        }
    }
    // The line ended inside the field: no password follows.
    None
}

/// The password field with its escapes removed. It ends at the line's end
/// or at a `:` not escaped (libpq ignores what follows, room for more
/// fields), so a password holding `:` or `\` writes them `\:` and `\\`.
fn unescaped(field: &str) -> String {
    let mut out = String::with_capacity(field.len());
    let mut chars = field.chars();
    while let Some(c) = chars.next() {
        match c {
            ':' => break,
            '\\' => match chars.next() {
                Some(escaped) => out.push(escaped),
                None => out.push('\\'),
            },
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use std::path::Path;

    use super::*;

    fn target(host: &str, port: &str, database: &str, user: &str) -> Target {
        Target {
            host: host.into(),
            port: port.into(),
            database: database.into(),
            user: user.into(),
        }
    }

    /// Lines match field by field, `*` alone matches anything, escapes are
    /// literal characters on both sides, comments and short lines never
    /// match, and the first match wins.
    #[test]
    fn the_first_matching_line_gives_the_password() {
        let file = "\
# a comment:*:*:*:not this
db.example:5432:shop:app:first
db.example:5432:shop:app:second
*:5433:*:app:any\\:host\\\\pw
h\\:x:5432:d:u:colon in host
short:5432:shop
db.example:5432:sh*:app:star is literal unless alone
10.0.0.7:*:*:*:pass with\\: colon:a sixth field\r
";
        let pw = |t: Target| lookup(file, &t);
        assert_eq!(
            pw(target("db.example", "5432", "shop", "app")).as_deref(),
            Some("first")
        );
        assert_eq!(
            pw(target("other", "5433", "x", "app")).as_deref(),
            Some("any:host\\pw")
        );
        assert_eq!(pw(target("other", "5433", "x", "bob")), None);
        assert_eq!(
            pw(target("h:x", "5432", "d", "u")).as_deref(),
            Some("colon in host")
        );
        assert_eq!(pw(target("short", "5432", "shop", "app")), None);
        assert_eq!(pw(target("db.example", "5432", "shopping", "app")), None);
        assert_eq!(
            pw(target("db.example", "5432", "sh*", "app")).as_deref(),
            Some("star is literal unless alone")
        );
        assert_eq!(
            pw(target("10.0.0.7", "1", "any", "one")).as_deref(),
            Some("pass with: colon")
        );
        assert_eq!(pw(target("# a comment", "x", "y", "z")), None);
        // A prefix of a field is no match, nor a field longer than wanted.
        assert_eq!(pw(target("db.exampl", "5432", "shop", "app")), None);
        assert_eq!(pw(target("db.example", "543", "shop", "app")), None);
    }

    fn env_with(dir: &Path) -> Environment {
        Environment {
            password: None,
            passfile: None,
            home: Some(dir.to_path_buf()),
        }
    }

    /// Writes `text` to `path` with permissions `mode` (Unix).
    pub(crate) fn write(path: &Path, text: &str, mode: u32) {
        std::fs::write(path, text).unwrap();
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
        }
        #[cfg(not(unix))]
        let _ = mode;
    }

    /// The string's `passfile` before `PGPASSFILE` before `~/.pgpass`; a
    /// missing default file is no password, a missing named one an error;
    /// a file others may read is refused, naming it and the fix.
    #[test]
    fn the_file_is_found_in_libpqs_order_and_refused_when_others_may_read_it() {
        let dir = std::env::temp_dir().join(format!("tm-pgpass-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let t = [target("db", "5432", "shop", "app")];
        let mut env = env_with(&dir);
        assert_eq!(password(None, &env, &t), Ok(None), "no ~/.pgpass");
        write(&dir.join(".pgpass"), "*:*:*:*:home\n", 0o600);
        write(&dir.join("env"), "*:*:*:*:from-env\n", 0o600);
        write(&dir.join("setting"), "*:*:*:*:from-setting\n", 0o400);
        assert_eq!(password(None, &env, &t).unwrap().as_deref(), Some("home"));
        env.passfile = Some(dir.join("env").display().to_string());
        assert_eq!(
            password(None, &env, &t).unwrap().as_deref(),
            Some("from-env")
        );
        let setting = dir.join("setting").display().to_string();
        assert_eq!(
            password(Some(&setting), &env, &t).unwrap().as_deref(),
            Some("from-setting")
        );
        let missing = dir.join("missing").display().to_string();
        let err = password(Some(&missing), &env, &t).unwrap_err();
        assert!(
            err.starts_with("passfile ") && err.contains("missing"),
            "{err}"
        );
        env.passfile = Some(missing);
        let err = password(None, &env, &t).unwrap_err();
        assert!(err.starts_with("PGPASSFILE "), "{err}");
        env.passfile = None;
        #[cfg(unix)]
        {
            write(&dir.join(".pgpass"), "*:*:*:*:home\n", 0o640);
            let err = password(None, &env, &t).unwrap_err();
            assert!(
                err.contains("mode 0640") && err.contains("chmod 600"),
                "{err}"
            );
        }
        let err = password(Some(&dir.display().to_string()), &env, &t).unwrap_err();
        assert!(err.contains("not a plain file"), "{err}");
        // Two hosts the file gives different passwords: ambiguous.
        write(
            &dir.join(".pgpass"),
            "a:*:*:*:one\nb:*:*:*:two\nc:*:*:*:one\n",
            0o600,
        );
        let hosts = |names: &[&str]| -> Vec<Target> {
            names
                .iter()
                .map(|h| target(h, "5432", "shop", "app"))
                .collect()
        };
        assert_eq!(
            password(None, &env, &hosts(&["a", "c", "z"]))
                .unwrap()
                .as_deref(),
            Some("one")
        );
        let err = password(None, &env, &hosts(&["a", "b"])).unwrap_err();
        assert!(err.contains("different passwords"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
