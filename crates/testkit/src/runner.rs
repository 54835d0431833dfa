//! A fluent runner for the real `segwatch` binary, asserting exact exit statuses and, where
//! it matters, exact lines of output (as `just`'s test builder does).

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// A fluent runner for the `segwatch` binary.
#[must_use]
pub struct Segwatch {
    command: Command,
}

impl Default for Segwatch {
    fn default() -> Self {
        Self::new()
    }
}

impl Segwatch {
    /// The binary with a clean `SEGWATCH_*` environment.
    pub fn new() -> Segwatch {
        let mut command = Command::new(binary());
        for (key, _) in std::env::vars() {
            if key.starts_with("SEGWATCH_") || key == "RUST_LOG" {
                command.env_remove(key);
            }
        }
        command.stdin(Stdio::null());
        Segwatch { command }
    }

    /// Adds arguments.
    pub fn args<I: IntoIterator<Item = S>, S: AsRef<std::ffi::OsStr>>(mut self, args: I) -> Self {
        self.command.args(args);
        self
    }

    /// Sets an environment variable.
    pub fn env(mut self, key: &str, value: &str) -> Self {
        self.command.env(key, value);
        self
    }

    /// Sets the working directory.
    pub fn current_dir(mut self, dir: &Path) -> Self {
        self.command.current_dir(dir);
        self
    }

    /// Runs to completion and returns the output, whatever the exit status.
    pub fn output(mut self) -> Run {
        let output = self.command.output().expect("segwatch runs");
        Run { output }
    }

    /// Runs and expects exit status 0.
    #[track_caller]
    pub fn success(self) -> Run {
        let run = self.output();
        assert!(
            run.output.status.success(),
            "segwatch failed:\n{}",
            run.describe()
        );
        run
    }

    /// Runs and expects exactly exit status `code` (1: an error, 2: a usage error or
    /// findings, 75: the database is locked; see the README).
    #[track_caller]
    pub fn code(self, code: i32) -> Run {
        let run = self.output();
        assert_eq!(
            run.output.status.code(),
            Some(code),
            "segwatch exited with another status than {code}:\n{}",
            run.describe()
        );
        run
    }

    /// Starts without waiting.
    pub fn spawn(mut self) -> std::process::Child {
        self.command
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("segwatch starts")
    }
}

/// A finished run of the binary.
pub struct Run {
    /// Raw output.
    pub output: Output,
}

impl Run {
    /// Standard output as text.
    pub fn stdout(&self) -> String {
        String::from_utf8_lossy(&self.output.stdout).into_owned()
    }

    /// Standard error as text.
    pub fn stderr(&self) -> String {
        String::from_utf8_lossy(&self.output.stderr).into_owned()
    }

    /// Asserts standard error contains every needle.
    #[track_caller]
    pub fn stderr_contains(self, needles: &[&str]) -> Self {
        let err = self.stderr();
        for n in needles {
            assert!(err.contains(n), "stderr lacks {n:?}:\n{}", self.describe());
        }
        self
    }

    /// Asserts one line of standard error is exactly `line` (without its newline): for the
    /// messages a user acts on, the whole line matters, not a fragment.
    #[track_caller]
    pub fn stderr_has_line(self, line: &str) -> Self {
        assert!(
            self.stderr().lines().any(|l| l == line),
            "stderr has no line {line:?}:\n{}",
            self.describe()
        );
        self
    }

    /// Asserts standard output is exactly `expected`.
    #[track_caller]
    pub fn stdout_is(self, expected: &str) -> Self {
        assert_eq!(self.stdout(), expected, "stdout:\n{}", self.describe());
        self
    }

    /// Asserts standard output contains every needle.
    #[track_caller]
    pub fn stdout_contains(self, needles: &[&str]) -> Self {
        let out = self.stdout();
        for n in needles {
            assert!(out.contains(n), "stdout lacks {n:?}:\n{}", self.describe());
        }
        self
    }

    /// Parses standard output as one JSON document.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.output.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}):\n{}", self.describe()))
    }

    fn describe(&self) -> String {
        format!(
            "status: {}\n--- stdout\n{}\n--- stderr\n{}",
            self.output.status,
            self.stdout(),
            self.stderr()
        )
    }
}

/// The `segwatch` binary Cargo built beside the running test: tests run from
/// `target/<profile>/deps/`, and Cargo builds a package's binaries before its integration tests.
pub fn binary() -> PathBuf {
    let exe = std::env::current_exe().expect("the test knows its own path");
    let profile_dir = exe
        .parent()
        .and_then(|deps| deps.parent())
        .expect("tests run from target/<profile>/deps");
    let binary = profile_dir.join(format!("segwatch{}", std::env::consts::EXE_SUFFIX));
    assert!(
        binary.exists(),
        "{} does not exist; run the tests with `cargo test`",
        binary.display()
    );
    binary
}
