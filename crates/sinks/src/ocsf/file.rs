//! The OCSF file sink: events appended as JSON lines to a file a SIEM forwarder tails, with
//! size-based rotation.
//!
//! Guarantees:
//! - **A write is whole lines, in one file.** A message (one event, or a digest's events) is
//!   appended with one `write_all`; before a write that would take the file past
//!   `max_file_bytes`, the file is rotated (`F` → `F.1`, `F.1` → `F.2`, …, the oldest past
//!   `max_files` dropped by the rename over it) and the write goes to a new `F`. A line is never
//!   split across two files.
//! - **Durable before it counts.** The file is `fsync`ed (`sync_data`) before the delivery is
//!   reported sent; renames and the new file are made durable with an `fsync` of the folder.
//! - **No torn line survives.** A failed write is cut back to where it started; a line torn by
//!   a crash or power cut mid-write (never confirmed, so its delivery is sent again) is cut off
//!   before the next append.
//! - **One writer at a time.** Every append takes an exclusive advisory lock (`flock`) on a
//!   hidden `.NAME.lock` beside the file, so two sinks or processes on one path never interleave.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};

use crate::SendError;

/// Default `max_file_bytes`: 100 MiB.
pub const DEFAULT_MAX_FILE_BYTES: u64 = 100 * 1024 * 1024;
/// Default `max_files`: rotated files kept besides the live one.
pub const DEFAULT_MAX_FILES: u32 = 5;

/// Where and how an OCSF file sink writes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileConfig {
    /// The live file, e.g. `/var/log/segwatch/findings.ocsf.jsonl`.
    pub path: PathBuf,
    /// Rotate before a write that would take the file past this size.
    pub max_file_bytes: u64,
    /// Rotated files kept (`path.1` newest … `path.N` oldest); older ones are deleted.
    pub max_files: u32,
}

/// An OCSF JSON lines file.
#[derive(Debug, Clone)]
pub struct FileSink {
    config: FileConfig,
}

impl FileSink {
    /// A sink appending to `config.path`.
    pub fn new(config: FileConfig) -> FileSink {
        FileSink { config }
    }

    /// Its configuration.
    pub fn config(&self) -> &FileConfig {
        &self.config
    }

    /// Appends `bytes` (whole lines) durably, rotating first if they would not fit.
    pub async fn append(&self, bytes: Vec<u8>) -> Result<(), SendError> {
        let sink = self.clone();
        tokio::task::spawn_blocking(move || sink.append_blocking(&bytes))
            .await
            .map_err(|e| SendError::Retryable {
                message: format!("the OCSF file writer stopped: {e}"),
                retry_after: None,
            })?
            .map_err(|e| SendError::Retryable {
                message: format!("cannot append to {}: {e}", self.config.path.display()),
                retry_after: None,
            })
    }

    /// Checks that the file can be appended to (opened, created if missing) without writing
    /// anything: `segwatch sinks test` does not put a test event among real findings.
    pub async fn check(&self) -> Result<(), SendError> {
        let path = self.config.path.clone();
        let opened = tokio::task::spawn_blocking(move || {
            OpenOptions::new().create(true).append(true).open(&path)
        })
        .await
        .map_err(|e| SendError::Permanent {
            message: format!("the OCSF file check stopped: {e}"),
        })?;
        opened.map(drop).map_err(|e| SendError::Permanent {
            message: format!(
                "cannot open {} for appending: {e}",
                self.config.path.display()
            ),
        })
    }

    /// [`FileSink::append`], blocking.
    pub fn append_blocking(&self, bytes: &[u8]) -> std::io::Result<()> {
        let _lock = self.lock()?;
        let path = &self.config.path;
        let mut file = open(path)?;
        let mut len = clean_end(&mut file)?;
        if len > 0 && len + bytes.len() as u64 > self.config.max_file_bytes {
            drop(file);
            self.rotate()?;
            file = open(path)?;
            len = 0;
        }
        if let Err(e) = file.write_all(bytes).and_then(|()| file.sync_data()) {
            // Leave whole lines only: the delivery fails and is sent again.
            let _ = file.set_len(len);
            return Err(e);
        }
        if len == 0 {
            sync_dir(path)?;
        }
        Ok(())
    }

    /// `path.N-1` → `path.N`, …, `path` → `path.1`; the rename over `path.N` drops the oldest.
    fn rotate(&self) -> std::io::Result<()> {
        let path = &self.config.path;
        let keep = self.config.max_files.max(1);
        for i in (1..keep).rev() {
            let from = rotated(path, i);
            if from.exists() {
                std::fs::rename(&from, rotated(path, i + 1))?;
            }
        }
        std::fs::rename(path, rotated(path, 1))?;
        sync_dir(path)
    }

    fn lock(&self) -> std::io::Result<File> {
        let path = &self.config.path;
        let name = path
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        let lock_path = path.with_file_name(format!(".{name}.lock"));
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(lock_path)?;
        file.lock()?;
        Ok(file)
    }
}

/// The `n`th rotated file of `path`: `findings.ocsf.jsonl.n`.
pub fn rotated(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open(path: &Path) -> std::io::Result<File> {
    OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)
}

/// The file's length once anything after its last newline (a line torn by a crash) is cut off.
fn clean_end(file: &mut File) -> std::io::Result<u64> {
    let len = file.metadata()?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1))?;
    file.read_exact(&mut last)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    // Find the last newline, reading backwards a block at a time.
    const BLOCK: u64 = 64 * 1024;
    let mut end = len;
    let mut keep = 0;
    let mut buf = vec![0u8; BLOCK as usize];
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let n = (end - start) as usize;
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(&mut buf[..n])?;
        if let Some(i) = buf[..n].iter().rposition(|b| *b == b'\n') {
            keep = start + i as u64 + 1;
            break;
        }
        end = start;
    }
    tracing::warn!(
        torn_bytes = len - keep,
        "the OCSF file ended in a torn line (an interrupted write); cutting it off"
    );
    file.set_len(keep)?;
    Ok(keep)
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir)?.sync_all()
}
