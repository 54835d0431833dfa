//! segwatch installed alone: shell completions and man pages generated from the command line,
//! the built-in starter rules used when no rules folder is configured or found, and
//! `segwatch rules init` writing them out.
//!
//! The completion scripts are checked by the shells themselves (`bash -n`, and `zsh -n` and
//! `fish -n` where installed; `.ci/run` installs them), the man pages by `mandoc -T lint` or
//! `groff`; a missing tool is skipped with a line on stderr, never silently.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use segwatch_core::rules::starter_pack;

use crate::util::{STARTER_RULES, Segwatch, TOKEN, TestWorkspace};

/// The subcommands the scripts and pages must name, nested ones included.
const SUBCOMMANDS: &[&str] = &["poll", "flows", "rules", "report", "completions", "man"];

/// Whether `tool` runs here; says so on stderr when it does not, so a skip is visible.
fn have(tool: &str) -> bool {
    let found = Command::new(tool).arg("--version").output().is_ok();
    if !found {
        assert!(
            std::env::var_os("SEGWATCH_REQUIRE_TOOLS").is_none(),
            "SEGWATCH_REQUIRE_TOOLS is set but `{tool}` is not installed"
        );
        eprintln!("skipped: `{tool}` is not installed (.ci/run installs it)");
    }
    found
}

/// Runs `tool args… file` and asserts it succeeds and prints nothing on stderr.
#[track_caller]
fn check_with(tool: &str, args: &[&str], file: &Path) {
    let out = Command::new(tool).args(args).arg(file).output().unwrap();
    assert!(
        out.status.success() && out.stderr.is_empty(),
        "{tool} {args:?} {} failed ({}):\n{}",
        file.display(),
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

fn completions(shell: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    let script = Segwatch::new()
        .current_dir(dir.path())
        .args(["completions", shell])
        .success()
        .stdout();
    for name in SUBCOMMANDS {
        assert!(script.contains(name), "{shell} script lacks `{name}`");
    }
    script
}

#[test]
fn completion_scripts_parse_and_complete_real_subcommands() {
    let dir = tempfile::tempdir().unwrap();

    let bash = dir.path().join("segwatch.bash");
    std::fs::write(&bash, completions("bash")).unwrap();
    check_with("bash", &["-n"], &bash);
    // Sourced, the script completes as bash would call it: `segwatch rules i<TAB>`.
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(segwatch rules i); COMP_CWORD=2; \
             _segwatch segwatch i rules; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&completed.stdout), "init\n");
    let completed = Command::new("bash")
        .arg("-c")
        .arg(format!(
            "source {}; COMP_WORDS=(segwatch fl); COMP_CWORD=1; \
             _segwatch segwatch fl segwatch; printf '%s\\n' \"${{COMPREPLY[@]}}\"",
            bash.display()
        ))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&completed.stdout), "flows\n");

    let zsh = dir.path().join("_segwatch");
    std::fs::write(&zsh, completions("zsh")).unwrap();
    assert!(
        std::fs::read_to_string(&zsh)
            .unwrap()
            .starts_with("#compdef segwatch\n")
    );
    if have("zsh") {
        check_with("zsh", &["-n"], &zsh);
    }

    let fish = dir.path().join("segwatch.fish");
    std::fs::write(&fish, completions("fish")).unwrap();
    if have("fish") {
        check_with("fish", &["-n"], &fish);
        let completed = Command::new("fish")
            .arg("-c")
            .arg(format!(
                "source {}; complete -C 'segwatch rules i'",
                fish.display()
            ))
            .output()
            .unwrap();
        let completed = String::from_utf8_lossy(&completed.stdout);
        assert!(completed.starts_with("init\t"), "{completed}");
    }

    for shell in ["powershell", "elvish"] {
        completions(shell);
    }
    Segwatch::new()
        .args(["completions", "tcsh"])
        .code(2)
        .stderr_contains(&["invalid value 'tcsh'"]);
}

/// Each page must parse: with mandoc's linter (no error), else with groff (no warning).
fn check_page(page: &Path) {
    if have("mandoc") {
        check_with("mandoc", &["-T", "lint", "-W", "error"], page);
    } else if have("groff") {
        // -k: the pages are UTF-8 (preconv), as `man` reads them.
        check_with("groff", &["-k", "-man", "-ww", "-z"], page);
    }
}

#[test]
fn man_pages_parse_and_name_every_command() {
    let dir = tempfile::tempdir().unwrap();
    let top = Segwatch::new()
        .current_dir(dir.path())
        .args(["man"])
        .success()
        .stdout();
    assert!(top.contains("\n.TH segwatch 1 "), "{top}");
    for name in SUBCOMMANDS {
        assert!(
            top.contains(&format!("segwatch\\-{name}(1)")),
            "the page does not name segwatch-{name}(1)"
        );
    }
    let page = dir.path().join("printed.1");
    std::fs::write(&page, &top).unwrap();
    check_page(&page);

    // --dir: the top page (the same one) and one page per subcommand, each path printed.
    let pages = dir.path().join("man1");
    let written = Segwatch::new()
        .current_dir(dir.path())
        .args(["man", "--dir", "man1"])
        .success()
        .stdout();
    let mut listed: Vec<&str> = written
        .lines()
        .map(|l| l.strip_prefix("wrote man1/").expect(l))
        .collect();
    listed.sort();
    let mut files: Vec<String> = std::fs::read_dir(&pages)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(listed, files);
    for expected in [
        "segwatch.1",
        "segwatch-poll.1",
        "segwatch-flows.1",
        "segwatch-rules-init.1",
        "segwatch-access-review-import.1",
    ] {
        assert!(
            files.iter().any(|f| f == expected),
            "no {expected}: {files:?}"
        );
    }
    assert_eq!(
        std::fs::read_to_string(pages.join("segwatch.1")).unwrap(),
        top
    );
    for file in &files {
        check_page(&pages.join(file));
    }
    let init = std::fs::read_to_string(pages.join("segwatch-rules-init.1")).unwrap();
    assert!(init.contains("\\-\\-force"), "{init}");
}

/// The exact log line of a command that fell back on the built-in pack.
fn built_in_line() -> String {
    format!(
        "no rules folder configured or found; using the {} built-in starter rules",
        starter_pack().unwrap().rules().len()
    )
}

/// The binary from `dir` with only the simulator's address and the token: no configuration
/// file, no rules path, the database in `dir`.
fn alone(ws: &TestWorkspace, dir: &Path) -> Segwatch {
    Segwatch::new()
        .env("SEGWATCH_SEGMENT__API_URL", &ws.sim.base_url())
        .env("SEGWATCH_SEGMENT__TOKEN", TOKEN)
        .current_dir(dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn installed_alone_it_polls_with_the_built_in_rules() {
    let ws = TestWorkspace::start().await;
    let dir = tempfile::tempdir().unwrap();
    let run = alone(&ws, dir.path())
        .args(["poll", "--format", "json"])
        .success()
        .stderr_contains(&[&built_in_line()]);
    let stdout = run.stdout();
    let outcome: serde_json::Value = serde_json::from_str(stdout.lines().next().unwrap()).unwrap();
    assert_eq!(
        (&outcome["type"], &outcome["snapshot_id"]),
        (&"poll".into(), &1.into()),
        "{stdout}"
    );
    assert_eq!(outcome["rule_problems"], serde_json::json!([]), "{stdout}");
    // The baseline opens the starter pack's compliance findings.
    let pack = starter_pack().unwrap();
    let alerts: Vec<serde_json::Value> = stdout
        .lines()
        .skip(1)
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert!(!alerts.is_empty(), "no alert: {stdout}");
    for alert in &alerts {
        let rule = alert["rule_id"].as_str().unwrap();
        assert!(pack.get(rule).is_some(), "{rule} is not a starter rule");
    }
    assert!(dir.path().join("segwatch.db").is_file());

    // A `rules` folder in the working directory is used instead, without the log line.
    let rules = dir.path().join("rules");
    std::fs::create_dir(&rules).unwrap();
    std::fs::write(
        rules.join("mine.yaml"),
        "- id: any-source\n  title: A source\n  description: Every source.\n  \
         remediation: None.\n  severity: low\n  resource: source\n  kind: compliance\n  \
         when: \"true\"\n",
    )
    .unwrap();
    let run = alone(&ws, dir.path())
        .args(["rules", "validate"])
        .success()
        .stdout_is("rules: 1 rule (0 change, 1 compliance; 0 disabled)\n");
    assert!(!run.stderr().contains("built-in"), "{}", run.stderr());

    // A configured path that is missing stays an error, never the built-in pack.
    let run = alone(&ws, dir.path())
        .env("SEGWATCH_RULES__PATH", "missing")
        .args(["poll"])
        .code(1)
        .stderr_contains(&[
            "invalid rules in missing:",
            "missing: cannot read rules from here",
        ]);
    assert!(!run.stderr().contains("built-in"), "{}", run.stderr());
}

/// Every file of a folder, by name.
fn files_of(dir: &Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| {
            let e = e.unwrap();
            let text = std::fs::read_to_string(e.path()).unwrap();
            (e.file_name().to_string_lossy().into_owned(), text)
        })
        .collect()
}

#[test]
fn rules_init_writes_the_starter_pack_and_never_overwrites_unasked() {
    let dir = tempfile::tempdir().unwrap();
    let repo = files_of(Path::new(STARTER_RULES));
    let segwatch = || Segwatch::new().current_dir(dir.path());

    let run = segwatch().args(["rules", "init", "pack"]).success();
    let mut expected: String = repo
        .keys()
        .filter(|n| n.as_str() != "README.md")
        .chain(std::iter::once(&"README.md".to_string()))
        .map(|n| format!("wrote pack/{n}\n"))
        .collect();
    expected.push_str(
        "the starter pack is in pack: edit it (its README.md says what to change first), check \
         it with `segwatch rules validate pack`, and set `rules.path` to it\n",
    );
    run.stdout_is(&expected);
    assert_eq!(files_of(&dir.path().join("pack")), repo);

    let pack = starter_pack().unwrap();
    let enabled = pack.rules().iter().filter(|r| r.enabled).count();
    let change = pack
        .rules()
        .iter()
        .filter(|r| r.enabled && r.is_change())
        .count();
    segwatch()
        .args(["rules", "validate", "pack"])
        .success()
        .stdout_is(&format!(
            "pack: {} rules ({change} change, {} compliance; {} disabled)\n",
            pack.rules().len(),
            enabled - change,
            pack.rules().len() - enabled
        ));
    // Polls read it as configured.
    segwatch()
        .env("SEGWATCH_RULES__PATH", "pack")
        .args(["rules", "validate"])
        .success()
        .stdout_contains(&["pack: "]);

    // Again: refused with exit status 2, naming every file already there; nothing changes.
    std::fs::write(dir.path().join("pack/sources.yaml"), "# edited\n").unwrap();
    std::fs::write(dir.path().join("pack/mine.yaml"), "# my own\n").unwrap();
    let all: Vec<&str> = expected
        .lines()
        .filter_map(|l| l.strip_prefix("wrote pack/"))
        .collect();
    let run = segwatch()
        .args(["rules", "init", "pack"])
        .code(2)
        .stdout_is("")
        .stderr_has_line(&format!(
            "error: pack already has {}: not overwritten (--force replaces the starter pack's \
             files, and leaves other files alone)",
            all.join(", ")
        ));
    assert_eq!(run.stderr().lines().count(), 1, "{}", run.stderr());
    assert_eq!(
        std::fs::read_to_string(dir.path().join("pack/sources.yaml")).unwrap(),
        "# edited\n"
    );

    // One file in the way is enough to write nothing at all.
    std::fs::create_dir(dir.path().join("partial")).unwrap();
    std::fs::write(dir.path().join("partial/README.md"), "notes\n").unwrap();
    segwatch()
        .args(["rules", "init", "partial"])
        .code(2)
        .stderr_has_line(
            "error: partial already has README.md: not overwritten (--force replaces the starter \
             pack's files, and leaves other files alone)",
        );
    assert_eq!(
        files_of(&dir.path().join("partial"))
            .keys()
            .collect::<Vec<_>>(),
        ["README.md"]
    );

    // --force puts the pack's files back and leaves the others alone.
    let run = segwatch()
        .args(["rules", "init", "pack", "--force"])
        .success();
    let stdout = run.stdout();
    let replaced: Vec<&str> = stdout
        .lines()
        .filter_map(|l| l.strip_prefix("replaced pack/"))
        .collect();
    assert_eq!(replaced, all);
    let mut now = files_of(&dir.path().join("pack"));
    assert_eq!(now.remove("mine.yaml").as_deref(), Some("# my own\n"));
    assert_eq!(now, repo);
}

/// A panic's backtrace from `binary`: `rules validate` printing into a pipe already closed
/// panics ("failed printing to stdout"), as `segwatch rules validate | head -0` would.
fn panic_backtrace(binary: &Path) -> String {
    let mut child = Command::new(binary)
        .args(["rules", "validate", STARTER_RULES])
        .env("RUST_BACKTRACE", "1")
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert_eq!(out.status.code(), Some(101), "{stderr}");
    assert!(stderr.contains("failed printing to stdout"), "{stderr}");
    stderr
}

#[test]
fn packaged_binary_shows_file_and_line_only_with_its_debug_file() {
    if !have("objcopy") || !have("readelf") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("pkg");
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let run = Command::new(root.join("scripts/package.sh"))
        .arg("--binary")
        .arg(segwatch_testkit::binary())
        .arg(&out)
        .output()
        .unwrap();
    assert!(
        run.status.success(),
        "{}",
        String::from_utf8_lossy(&run.stderr)
    );
    for file in [
        "segwatch",
        "segwatch.debug",
        "completions/segwatch.bash",
        "completions/_segwatch",
        "completions/segwatch.fish",
        "man/man1/segwatch.1",
        "man/man1/segwatch-poll.1",
    ] {
        assert!(out.join(file).is_file(), "no {file}");
    }
    let binary = out.join("segwatch");
    let sections = Command::new("readelf")
        .arg("-SW")
        .arg(&binary)
        .output()
        .unwrap();
    let sections = String::from_utf8_lossy(&sections.stdout);
    assert!(!sections.contains(".debug_line"), "{sections}");
    assert!(sections.contains(".gnu_debuglink"), "{sections}");

    let with = panic_backtrace(&binary);
    assert!(with.contains("src/cli/rules.rs:"), "{with}");
    std::fs::rename(out.join("segwatch.debug"), dir.path().join("elsewhere")).unwrap();
    let without = panic_backtrace(&binary);
    assert!(
        without.contains("segwatch::cli::rules::validate"),
        "{without}"
    );
    assert!(!without.contains("src/cli/rules.rs:"), "{without}");
}
