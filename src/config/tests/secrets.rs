//! Secrets: token files, keeping tokens out of debug output, and the secret file size limit.

use super::*;

#[test]
fn token_file_is_read_and_trimmed() {
    let dir = tempfile::tempdir().unwrap();
    let token_path = dir.path().join("token");
    std::fs::write(&token_path, "secret-token\n").unwrap();
    let s = load(
        &format!(
            "[segment]\ntoken_file = {:?}\n",
            token_path.display().to_string()
        ),
        &[],
    )
    .unwrap();
    let target = s.validate().unwrap();
    assert_eq!(target.client.token.expose_secret(), "secret-token");
}

#[test]
fn token_is_not_in_debug_output() {
    let s = load("", &[("SEGWATCH_SEGMENT__TOKEN", "very-secret-value")]).unwrap();
    assert!(!format!("{s:?}").contains("very-secret-value"));
}

#[test]
fn health_token_comes_from_one_of_token_env_or_file() {
    let none = load("[segment]\ntoken = \"t\"\n", &[]).unwrap();
    assert!(none.health.token().unwrap().is_none());
    let inline = load(
        "[segment]\ntoken = \"t\"\n[health]\ntoken = \" h-1 \"\n",
        &[],
    )
    .unwrap();
    assert_eq!(
        inline.health.token().unwrap().unwrap().expose_secret(),
        "h-1"
    );
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("health-token");
    std::fs::write(&file, "h-2\n").unwrap();
    let from_file = load(
        &format!(
            "[segment]\ntoken = \"t\"\n[health]\ntoken_file = \"{}\"\n",
            file.display()
        ),
        &[],
    )
    .unwrap();
    assert_eq!(
        from_file.health.token().unwrap().unwrap().expose_secret(),
        "h-2"
    );
    let unset = load(
        "[segment]\ntoken = \"t\"\n[health]\ntoken_env = \"SEGWATCH_TEST_NO_SUCH_VAR_4471\"\n",
        &[],
    )
    .unwrap();
    let err = unset.health.token().unwrap_err().to_string();
    assert!(
        err.contains("`health.token_env`") && err.contains("SEGWATCH_TEST_NO_SUCH_VAR_4471"),
        "{err}"
    );
    let both = load(
        &format!(
            "[segment]\ntoken = \"t\"\n[health]\ntoken = \"a\"\ntoken_file = \"{}\"\n",
            file.display()
        ),
        &[],
    )
    .unwrap();
    let err = both.health.token().unwrap_err().to_string();
    assert!(err.contains("not several"), "{err}");
}

#[test]
fn secret_files_are_read_up_to_the_limit_only() {
    let dir = tempfile::tempdir().unwrap();
    let at_limit = dir.path().join("at-limit");
    let mut text = "t".repeat(MAX_SECRET_FILE_BYTES as usize - 1);
    text.push('\n');
    std::fs::write(&at_limit, &text).unwrap();
    let over = dir.path().join("over");
    text.push('x');
    std::fs::write(&over, &text).unwrap();
    let toml = |key: &str, path: &Path| format!("{key} = {:?}\n", path.display().to_string());

    let s = load(
        &format!("[segment]\n{}", toml("token_file", &at_limit)),
        &[],
    )
    .unwrap();
    assert_eq!(
        s.validate().unwrap().client.token.expose_secret().len(),
        MAX_SECRET_FILE_BYTES as usize - 1
    );
    let err = error_of(&format!("[segment]\n{}", toml("token_file", &over)), &[]);
    assert!(
        err.contains("`segment.token_file`")
            && err.contains(&over.display().to_string())
            && err.contains("larger than 64 KiB (65536 bytes)"),
        "{err}"
    );

    // A device that never ends fails at once instead of filling memory.
    let zero = Path::new("/dev/zero");
    let err = error_of(&format!("[segment]\n{}", toml("token_file", zero)), &[]);
    assert!(err.contains("/dev/zero") && err.contains("64 KiB"), "{err}");
    let s = load(
        &format!(
            "[profiles]\nspace_id = \"spa_1\"\n{}",
            toml("access_secret_file", zero)
        ),
        &[],
    )
    .unwrap();
    let err = s.profiles().unwrap_err().to_string();
    assert!(
        err.contains("`profiles.access_secret_file`") && err.contains("64 KiB"),
        "{err}"
    );
    let s = load(
        &format!(
            "[[sinks]]\nname = \"hook\"\ntype = \"webhook\"\n{}",
            toml("url_file", zero)
        ),
        &[],
    )
    .unwrap();
    let err = s.sinks().unwrap_err().to_string();
    assert!(
        err.contains("`sinks.url_file`") && err.contains("sink `hook`") && err.contains("64 KiB"),
        "{err}"
    );
}
