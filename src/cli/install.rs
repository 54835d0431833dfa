//! `segwatch completions SHELL` and `segwatch man [--dir DIR]`: what a package installs beside
//! the binary, generated from the clap definitions (`clap_complete`, `clap_mangen`) so it can
//! never disagree with the commands the binary accepts.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::CommandFactory;
use clap_complete::Shell;

use super::Cli;

/// The name the scripts and pages complete and document: the installed binary's.
const BIN: &str = "segwatch";

/// Prints the completion script of `shell`. Generated into memory first so that a closed
/// standard output is an error, not a panic (`clap_complete::generate` panics on write errors).
pub(super) fn completions(shell: Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), BIN, &mut script);
    write_stdout(&script)?;
    Ok(ExitCode::SUCCESS)
}

/// Prints the top man page, or with `dir` writes it and one page per subcommand there
/// (`segwatch.1`, `segwatch-poll.1`, `segwatch-rules-validate.1`, …), printing each path.
pub(super) fn man(dir: Option<&Path>) -> anyhow::Result<ExitCode> {
    let command = manual_command();
    let Some(dir) = dir else {
        let mut page = Vec::new();
        page_of(command).render(&mut page)?;
        write_stdout(&page)?;
        return Ok(ExitCode::SUCCESS);
    };
    std::fs::create_dir_all(dir)
        .with_context(|| format!("cannot create the folder {}", dir.display()))?;
    let mut written = Vec::new();
    write_pages(command, dir, &mut written)?;
    let mut out = String::new();
    for path in written {
        out.push_str(&format!("wrote {}\n", path.display()));
    }
    write_stdout(out.as_bytes())?;
    Ok(ExitCode::SUCCESS)
}

/// The command line as the man pages document it: built (so that subcommands carry their
/// `segwatch-…` page names), without clap's `help` subcommand, which `--help` covers.
fn manual_command() -> clap::Command {
    let mut command = Cli::command().disable_help_subcommand(true);
    command.build();
    command
}

/// Writes the page of `command` and, depth first, of each subcommand not hidden (as
/// `clap_mangen::generate_to` does, but returning the paths).
fn write_pages(
    command: clap::Command,
    dir: &Path,
    written: &mut Vec<PathBuf>,
) -> anyhow::Result<()> {
    for sub in command.get_subcommands().filter(|s| !s.is_hide_set()) {
        write_pages(sub.clone(), dir, written)?;
    }
    let man = page_of(command);
    let path = dir.join(man.get_filename());
    man.generate_to(dir)
        .with_context(|| format!("cannot write {}", path.display()))?;
    written.push(path);
    Ok(())
}

/// One page, every one naming the program and its version in its footer (clap gives the
/// version to the top command only).
fn page_of(command: clap::Command) -> clap_mangen::Man {
    clap_mangen::Man::new(command).source(concat!("segwatch ", env!("CARGO_PKG_VERSION")))
}

fn write_stdout(bytes: &[u8]) -> anyhow::Result<()> {
    let mut out = std::io::stdout().lock();
    out.write_all(bytes)
        .and_then(|()| out.flush())
        .context("cannot write to standard output")
}
