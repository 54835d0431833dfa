//! Where the rules come from, so that segwatch works installed alone: the configured
//! `rules.path` (or a command's `--rules`), else a `rules` folder in the working directory, else
//! the starter pack built into the binary; and `segwatch rules init`, which writes that pack out
//! for editing.

use std::fmt;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use segwatch_core::rules::{LoadErrors, RuleSet, starter_files, starter_pack};

/// The folder looked for in the working directory when no rules path is configured.
pub const DEFAULT_DIR: &str = "rules";

/// Which rules a command evaluates.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RuleSource {
    /// A file or folder named by `rules.path` or a command's option: it must load, and a
    /// missing one is an error (never replaced by the built-in pack).
    Configured(PathBuf),
    /// [`DEFAULT_DIR`], present in the working directory while nothing was configured.
    Found(PathBuf),
    /// Nothing configured or found: the starter pack built into the binary. Its rules name their
    /// files `rules/<file>.yaml`, as when loaded from the repository.
    BuiltIn,
}

impl RuleSource {
    /// The source for a configured path (`None`: not configured), looking for [`DEFAULT_DIR`] in
    /// the working directory only when nothing is configured. Anything named `rules` there
    /// counts as found, even a file or a broken link, so that a mistake in it is reported rather
    /// than silently replaced by the built-in pack.
    pub fn resolve(configured: Option<&Path>) -> RuleSource {
        match configured {
            Some(path) => RuleSource::Configured(path.to_path_buf()),
            None if fs::symlink_metadata(DEFAULT_DIR).is_ok() => {
                RuleSource::Found(PathBuf::from(DEFAULT_DIR))
            }
            None => RuleSource::BuiltIn,
        }
    }

    /// The file or folder the rules are read from; `None` for the built-in pack.
    pub fn path(&self) -> Option<&Path> {
        match self {
            RuleSource::Configured(path) | RuleSource::Found(path) => Some(path),
            RuleSource::BuiltIn => None,
        }
    }

    /// Loads the rules, every mistake named by [`LoadErrors`]. Loading the built-in pack is said
    /// in the log (one info line), since nothing in the configuration or the working directory
    /// shows it.
    pub fn load(&self) -> Result<RuleSet, LoadErrors> {
        match self.path() {
            Some(path) => RuleSet::load(path),
            None => {
                let rules = starter_pack()?;
                tracing::info!(
                    "no rules folder configured or found; using the {} built-in starter rules",
                    rules.rules().len()
                );
                Ok(rules)
            }
        }
    }
}

impl fmt::Display for RuleSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.path() {
            Some(path) => write!(f, "{}", path.display()),
            None => f.write_str("the built-in starter pack"),
        }
    }
}

/// Why `segwatch rules init` wrote nothing, or not everything.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// Files of the starter pack already exist in the folder and `--force` was not given;
    /// nothing was written.
    #[error(
        "{dir} already has {}: not overwritten (--force replaces the starter pack's files, and \
         leaves other files alone)",
        names.join(", ")
    )]
    Exists {
        /// The folder.
        dir: PathBuf,
        /// The starter pack's files already in it, in the pack's order.
        names: Vec<&'static str>,
    },
    /// The folder cannot be created or a file cannot be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The folder or file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
}

/// One file written by [`init`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// Where it was written.
    pub path: PathBuf,
    /// Whether it replaced an existing file (only with `force`).
    pub replaced: bool,
}

/// Writes every file of the starter pack (its rule files and `README.md`, as in the
/// repository's `rules/`) into `dir`, creating the folder if needed. Without `force`, refuses
/// before writing anything when one of those files exists; with it, replaces them. Other files
/// in `dir` are never touched.
pub fn init(dir: &Path, force: bool) -> Result<Vec<Written>, InitError> {
    let io_error = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    fs::create_dir_all(dir).map_err(io_error(dir))?;
    let existing: Vec<&'static str> = starter_files()
        .filter(|file| fs::symlink_metadata(dir.join(file.name)).is_ok())
        .map(|file| file.name)
        .collect();
    if !force && !existing.is_empty() {
        return Err(InitError::Exists {
            dir: dir.to_path_buf(),
            names: existing,
        });
    }
    let mut written = Vec::new();
    for file in starter_files() {
        let path = dir.join(file.name);
        let replaced = existing.contains(&file.name);
        // Without `force`, `create_new` also refuses a file that appeared since the check.
        let mut out = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .create_new(!force)
            .open(&path)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => InitError::Exists {
                    dir: dir.to_path_buf(),
                    names: vec![file.name],
                },
                _ => InitError::Io {
                    path: path.clone(),
                    source: e,
                },
            })?;
        out.write_all(file.text.as_bytes())
            .map_err(io_error(&path))?;
        written.push(Written { path, replaced });
    }
    Ok(written)
}
