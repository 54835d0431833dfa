//! One writer per database: an exclusive OS advisory lock on a file next to the database.
//!
//! Every command that writes (`run`, `poll`, `prune`, `workspaces delete`, `deliveries retry`,
//! `privacy delete`/`status`, `demo`) takes [`WriterLock`] before it opens the store with
//! [`Store::open_writer`](super::Store::open_writer), and holds it until the process ends.
//! Readers take nothing: SQLite's WAL lets them read while the writer writes.
//!
//! Why an advisory lock (`flock(2)` through std's `File::try_lock`) and not a pid file: the
//! kernel releases it when the process dies, however it dies (`kill -9`, a power cut), so a
//! stale lock file never blocks the next writer, and no pid is ever guessed alive or dead. The
//! file itself is never deleted (deleting a locked file lets a second process lock a new
//! inode under the same name); its content (pid, host, command, start time) only names the
//! current holder in the refusal message, and is stale once the lock is free.
//!
//! Advisory locks are only as good as the filesystem: keep the database on a local one (on NFS
//! `flock` may be emulated per host or not at all).

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

/// The longest `--wait` a one-shot command may ask for: a cron job should not pile up behind
/// a stuck writer for longer than this.
pub const MAX_WAIT_SECS: u64 = 3600;

/// How often a waiting command retries the lock.
const RETRY_EVERY: Duration = Duration::from_millis(100);

/// The largest lock file read back to name the holder (it holds four short lines).
const MAX_HOLDER_BYTES: u64 = 4096;

/// Who holds (or last held) the writer lock, as written in the lock file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Holder {
    /// Process id.
    pub pid: u32,
    /// Host name.
    pub host: String,
    /// The command it runs (`run`, `poll`, …).
    pub command: String,
    /// When it took the lock (RFC 3339 UTC).
    pub since: String,
}

impl Holder {
    /// This process, running `command`.
    pub fn this_process(command: &str) -> Holder {
        Holder {
            pid: std::process::id(),
            host: host_name(),
            command: command.to_string(),
            since: super::now(),
        }
    }

    fn render(&self) -> String {
        format!(
            "pid={}\nhost={}\ncommand={}\nsince={}\n",
            self.pid, self.host, self.command, self.since
        )
    }

    fn parse(text: &str) -> Option<Holder> {
        let field = |key: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix('='))
                .map(str::to_string)
        };
        Some(Holder {
            pid: field("pid")?.parse().ok()?,
            host: field("host")?,
            command: field("command").unwrap_or_default(),
            since: field("since").unwrap_or_default(),
        })
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} on host {}", self.pid, self.host)?;
        if !self.command.is_empty() {
            write!(f, " (`segwatch {}`", self.command)?;
            if !self.since.is_empty() {
                write!(f, ", since {}", self.since)?;
            }
            write!(f, ")")?;
        }
        Ok(())
    }
}

/// The host name as the OS reports it (`unknown` if it cannot be read).
pub fn host_name() -> String {
    hostname::get()
        .ok()
        .and_then(|h| h.into_string().ok())
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown".into())
}

/// Why the writer lock could not be taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another process holds it.
    #[error(
        "the database {db} is in use by another segwatch writer: {holder} holds the lock file {lock}{waited}; only one process may write to a database at a time",
        db = db.display(),
        lock = lock.display(),
        holder = holder.as_ref().map_or_else(|| "an unknown process (its lock file names no holder yet)".to_string(), ToString::to_string),
        waited = if waited.is_zero() { String::new() } else { format!(" (still, after waiting {} s)", waited.as_secs()) },
    )]
    Held {
        /// The database.
        db: PathBuf,
        /// The lock file.
        lock: PathBuf,
        /// Who holds it, as its lock file says (boxed: keeps the error small).
        holder: Option<Box<Holder>>,
        /// How long this process waited for it.
        waited: Duration,
    },
    /// The lock file cannot be created, locked or written.
    #[error("cannot use the lock file {lock}: {cause}", lock = lock.display())]
    Io {
        /// The lock file.
        lock: PathBuf,
        /// The OS error.
        cause: std::io::Error,
    },
}

/// The lock file of the database at `db`: `<db>.lock`, in the same directory.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.as_os_str().to_owned();
    name.push(".lock");
    PathBuf::from(name)
}

/// The exclusive right to write one database, held until dropped (the CLI keeps it for the
/// whole process; the kernel releases it if the process dies).
#[derive(Debug)]
pub struct WriterLock {
    // Kept open: closing the last descriptor releases the lock.
    _file: File,
    db: PathBuf,
    lock: PathBuf,
    holder: Holder,
}

impl WriterLock {
    /// Takes the writer lock of the database at `db` for `command`, waiting at most `wait`
    /// (`Duration::ZERO`: refuse at once) for another holder to release it.
    pub fn acquire(db: &Path, command: &str, wait: Duration) -> Result<WriterLock, LockError> {
        let lock = lock_path(db);
        let io = |cause| LockError::Io {
            lock: lock.clone(),
            cause,
        };
        // Not truncated on open: until we hold the lock, its content names the holder.
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(&lock)
            .map_err(io)?;
        let started = Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => break,
                Err(TryLockError::WouldBlock) => {
                    let waited = started.elapsed();
                    if waited >= wait {
                        return Err(LockError::Held {
                            db: db.to_path_buf(),
                            holder: read_holder(&mut file).map(Box::new),
                            lock,
                            waited: wait,
                        });
                    }
                    std::thread::sleep(RETRY_EVERY.min(wait - waited));
                }
                Err(TryLockError::Error(e)) => return Err(io(e)),
            }
        }
        let holder = Holder::this_process(command);
        file.set_len(0).map_err(io)?;
        file.rewind().map_err(io)?;
        file.write_all(holder.render().as_bytes()).map_err(io)?;
        file.flush().map_err(io)?;
        tracing::debug!(lock = %lock.display(), "took the writer lock");
        Ok(WriterLock {
            _file: file,
            db: db.to_path_buf(),
            lock,
            holder,
        })
    }

    /// The database it guards.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// The lock file.
    pub fn lock_file(&self) -> &Path {
        &self.lock
    }

    /// This process, as the lock file names it.
    pub fn holder(&self) -> &Holder {
        &self.holder
    }
}

/// Who holds the writer lock of `db` now, if anyone, for a process that does not hold it: it
/// probes the lock with a shared `try_lock` (released at once) and reads the lock file.
/// `Ok(None)`: nobody holds it (or there is no lock file: no locking writer ever ran).
pub fn current_holder(db: &Path) -> Result<Option<Holder>, LockError> {
    let lock = lock_path(db);
    let mut file = match File::open(&lock) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(cause) => return Err(LockError::Io { lock, cause }),
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            Ok(None)
        }
        Err(TryLockError::WouldBlock) => Ok(read_holder(&mut file)),
        Err(TryLockError::Error(cause)) => Err(LockError::Io { lock, cause }),
    }
}

fn read_holder(file: &mut File) -> Option<Holder> {
    let mut text = String::new();
    file.rewind().ok()?;
    file.take(MAX_HOLDER_BYTES).read_to_string(&mut text).ok()?;
    Holder::parse(&text)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_is_refused_naming_the_holder_and_freed_on_drop() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("s.db");
        let first = WriterLock::acquire(&db, "run", Duration::ZERO).unwrap();
        assert_eq!(first.lock_file(), dir.path().join("s.db.lock"));
        // Another descriptor is another lock owner, even in this process.
        let err = WriterLock::acquire(&db, "poll", Duration::from_millis(250)).unwrap_err();
        let LockError::Held { holder, waited, .. } = &err else {
            panic!("{err}")
        };
        assert_eq!(holder.as_ref().unwrap().pid, std::process::id());
        assert_eq!(holder.as_ref().unwrap().command, "run");
        assert_eq!(*waited, Duration::from_millis(250));
        let text = err.to_string();
        assert!(
            text.contains(&format!("pid {}", std::process::id())),
            "{text}"
        );
        assert!(text.contains("s.db.lock"), "{text}");
        assert_eq!(
            current_holder(&db).unwrap().unwrap().pid,
            std::process::id()
        );
        drop(first);
        assert_eq!(current_holder(&db).unwrap(), None);
        let second = WriterLock::acquire(&db, "poll", Duration::ZERO).unwrap();
        assert_eq!(second.holder().command, "poll");
    }

    #[test]
    fn no_lock_file_means_no_holder() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(current_holder(&dir.path().join("s.db")).unwrap(), None);
    }
}
