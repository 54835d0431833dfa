//! Loading (defaults, file, environment), the documented example and the `[profiles]` checks.

use super::*;

#[test]
fn defaults_then_file_then_environment() {
    let s = load(
        "[segment]\nregion = \"eu\"\npage_size = 50\n[database]\npath = \"file.db\"\n",
        &[
            ("SEGWATCH_DATABASE__PATH", "env.db"),
            ("SEGWATCH_SEGMENT__TOKEN", "tok"),
        ],
    )
    .unwrap();
    assert_eq!(s.database.path, PathBuf::from("env.db"));
    let target = s.validate().unwrap();
    assert_eq!(target.client.base_url, EU_API_URL);
    assert_eq!(target.client.page_size, 50);
    assert_eq!(target.client.concurrency, 8);
    assert_eq!(target.name, "default");
}

#[test]
fn api_url_from_environment_overrides_region() {
    let s = load(
        "",
        &[
            ("SEGWATCH_SEGMENT__API_URL", "http://127.0.0.1:9000/"),
            ("SEGWATCH_SEGMENT__TOKEN", "tok"),
            ("SEGWATCH_SEGMENT__PAGE_SIZE", "10"),
            ("SEGWATCH_CONFIG", "ignored.toml"),
        ],
    )
    .unwrap();
    let target = s.validate().unwrap();
    assert_eq!(target.client.base_url, "http://127.0.0.1:9000");
    assert_eq!(target.client.page_size, 10);
}

#[test]
fn bad_values_name_their_key() {
    let tok = [("SEGWATCH_SEGMENT__TOKEN", "tok")];
    type Env<'a> = &'a [(&'a str, &'a str)];
    let cases: &[(&str, Env, &str)] = &[
        ("[segment]\nregion = \"mars\"\n", &tok, "segment.region"),
        ("[segment]\npage_size = 500\n", &tok, "segment.page_size"),
        ("[segment]\nconcurrency = 0\n", &tok, "segment.concurrency"),
        (
            "[segment]\napi_url = \"http://example.com\"\n",
            &tok,
            "segment.api_url",
        ),
        (
            "[segment]\napi_url = \"not a url\"\n",
            &tok,
            "segment.api_url",
        ),
        ("", &[], "SEGWATCH_SEGMENT__TOKEN"),
        (
            "[segment]\ntoken_file = \"/nonexistent/token\"\n",
            &[],
            "segment.token_file",
        ),
        ("[segment]\npage_size = \"many\"\n", &tok, "page_size"),
        ("[segment]\npagesize = 5\n", &tok, "pagesize"),
        ("[databse]\npath = \"x\"\n", &tok, "databse"),
        (
            "[access]\ninternal_domains = [\"@acme io\"]\n",
            &tok,
            "invalid configuration: `access.internal_domains`: `@acme io` is not a domain name; expected e.g. `acme.io`",
        ),
        (
            "[flows]\npersonal_field_patterns = [\"email\", \" - \"]\n",
            &tok,
            "invalid configuration: `flows.personal_field_patterns`: ` - ` is not a field-name pattern: it has no letter or digit",
        ),
        (
            "[access]\ninternal_domain = [\"acme.io\"]\n",
            &tok,
            "internal_domain",
        ),
    ];
    for (toml, env, needle) in cases {
        let message = error_of(toml, env);
        assert!(
            message.contains(needle),
            "{toml:?}: {message:?} should mention {needle}"
        );
    }
}

#[test]
fn the_documented_example_is_valid() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/segwatch.example.toml");
    let env = [("SEGWATCH_SEGMENT__TOKEN".to_string(), "tok".to_string())].into();
    let settings = Settings::load_with_env(&path, true, env).unwrap();
    let target = settings.validate().unwrap();
    assert_eq!(target.client.base_url, US_API_URL);
    // Every key the example sets is spelled as the code reads it (unknown keys are errors),
    // and every key the code reads appears in the example.
    let text = std::fs::read_to_string(&path).unwrap();
    for (key, _) in DEFAULTS {
        let leaf = key.rsplit('.').next().unwrap();
        assert!(
            text.contains(&format!("{leaf} =")),
            "{key} is not documented in the example"
        );
    }
    assert!(settings.profiles().unwrap().is_none());
    for key in [
        "api_url",
        "token_file",
        "space_id",
        "access_secret",
        "access_secret_env",
        "access_secret_file",
    ] {
        assert!(text.contains(key), "{key} is not documented in the example");
    }
}

#[test]
fn profiles_section_is_checked_key_by_key() {
    let err = |toml: &str, env: &[(&str, &str)]| {
        let s = load(toml, env).unwrap();
        match s.profiles().unwrap_err() {
            ConfigError::Invalid { key, .. } => key,
            other => panic!("unexpected {other}"),
        }
    };
    assert_eq!(
        err("[profiles]\nregion = \"mars\"\nspace_id = \"spa\"\n", &[]),
        "profiles.region"
    );
    assert_eq!(
        err("[profiles]\napi_url = \"http://example.com\"\n", &[]),
        "profiles.api_url"
    );
    assert_eq!(
        err("[profiles]\nspace_id = \"spa_1\"\n", &[]),
        "profiles.access_secret"
    );
    assert_eq!(
        err("", &[("SEGWATCH_PROFILES__ACCESS_SECRET", "s3")]),
        "profiles.space_id"
    );
    assert_eq!(
        err(
            "[profiles]\nspace_id = \"a/b\"\n",
            &[("SEGWATCH_PROFILES__ACCESS_SECRET", "s3")]
        ),
        "profiles.space_id"
    );
    let s = load(
        "[profiles]\nregion = \"eu\"\nspace_id = \"spa_1\"\n",
        &[("SEGWATCH_PROFILES__ACCESS_SECRET", "very-secret-profile")],
    )
    .unwrap();
    let target = s.profiles().unwrap().unwrap();
    assert_eq!(target.base_url, PROFILES_EU_URL);
    assert_eq!(target.space_id, "spa_1");
    assert!(!format!("{s:?}{target:?}").contains("very-secret-profile"));
}
