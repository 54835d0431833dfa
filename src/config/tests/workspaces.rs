//! Workspaces: inheritance, mistakes named by workspace and key, description, pause and limits.

use super::*;

#[test]
fn workspaces_inherit_tuning_and_schedule_but_not_the_token() {
    let s = load(
        "[segment]\npage_size = 50\n[schedule]\ncron = \"0 * * * *\"\ntimezone = \"Europe/Paris\"\n\
         [[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\n\
         [[workspaces]]\nname = \"eu\"\nregion = \"eu\"\ntoken = \"t2\"\npage_size = 20\n\
         cron = \"*/5 * * * *\"\ntimezone = \"UTC\"\nrules = [\"source-*\"]\n",
        &[],
    )
    .unwrap();
    let targets = s.targets().unwrap();
    assert_eq!(targets.len(), 2);
    assert_eq!(targets[0].name, "prod");
    assert_eq!(targets[0].client.page_size, 50);
    assert_eq!(targets[0].client.base_url, US_API_URL);
    assert_eq!(targets[0].schedule_text, "0 * * * * (Europe/Paris)");
    assert_eq!(targets[0].client.token.expose_secret(), "t1");
    assert_eq!(targets[1].client.base_url, EU_API_URL);
    assert_eq!(targets[1].client.page_size, 20);
    assert_eq!(targets[1].schedule_text, "*/5 * * * * (UTC)");
    assert_eq!(targets[1].rules, ["source-*"]);
    // Commands that act on one workspace must be told which.
    let err = s.validate().unwrap_err().to_string();
    assert!(
        err.contains("--workspace") && err.contains("prod, eu"),
        "{err}"
    );
    let mut one = s;
    one.select_workspace(Some("eu")).unwrap();
    assert_eq!(one.validate().unwrap().name, "eu");
    assert!(
        one.select_workspace(Some("nope"))
            .unwrap_err()
            .to_string()
            .contains("no workspace named `nope`")
    );
}

#[test]
fn workspace_mistakes_name_the_workspace_and_key() {
    let cases: &[(&str, &str)] = &[
        (
            "[[workspaces]]\nname = \"prod\"\n",
            "`workspaces[prod].token`",
        ),
        (
            "[segment]\ntoken = \"t\"\n[[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\n",
            "`segment.token`",
        ),
        (
            "[[workspaces]]\nname = \"a\"\ntoken = \"t\"\n[[workspaces]]\nname = \"a\"\ntoken = \"u\"\n",
            "`workspaces[a].name`",
        ),
        (
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\ntimezone = \"Mars/Olympus\"\n",
            "`workspaces[prod].timezone`",
        ),
        (
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\ncron = \"often\"\n",
            "`workspaces[prod].cron`",
        ),
        (
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\npage_size = 0\n",
            "`workspaces[prod].page_size`",
        ),
        (
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\nrules = [\"[\"]\n",
            "`workspaces[prod].rules`",
        ),
        (
            "[[workspaces]]\nname = \"prod\"\ntoken_env = \"SEGWATCH_TEST_UNSET_VARIABLE\"\n",
            "`workspaces[prod].token_env`",
        ),
        (
            "[schedule]\ntimezone = \"Paris\"\n[segment]\ntoken = \"t\"\n",
            "`schedule.timezone`",
        ),
    ];
    for (toml, needle) in cases {
        let message = match load(toml, &[]).and_then(|s| s.targets().map(|_| ())) {
            Ok(()) => panic!("{toml:?} should be rejected"),
            Err(e) => e.to_string(),
        };
        assert!(
            message.contains(needle),
            "{toml:?}: {message:?} should mention {needle}"
        );
    }
}

#[test]
fn description_and_paused_are_read_per_workspace_and_not_inherited() {
    let s = load(
        "[[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\ndescription = \"EU production\"\npaused = true\n\
         [[workspaces]]\nname = \"staging\"\ntoken = \"t2\"\npaused = false\n\
         [[workspaces]]\nname = \"dev\"\ntoken = \"t3\"\n",
        &[],
    )
    .unwrap();
    let listed = s.configured_workspaces().unwrap();
    assert_eq!(
        listed,
        [
            ConfiguredWorkspace {
                name: "prod".into(),
                description: Some("EU production".into()),
                paused: true
            },
            ConfiguredWorkspace {
                name: "staging".into(),
                description: None,
                paused: false
            },
            ConfiguredWorkspace {
                name: "dev".into(),
                description: None,
                paused: false
            },
        ]
    );
    let targets = s.targets().unwrap();
    let paused: Vec<(&str, bool)> = targets
        .iter()
        .map(|t| (t.name.as_str(), t.paused))
        .collect();
    assert_eq!(paused, [("prod", true), ("staging", false), ("dev", false)]);
    assert_eq!(targets[0].description.as_deref(), Some("EU production"));
}

#[test]
fn the_short_form_takes_description_and_paused_from_file_or_environment() {
    let s = load(
        "[segment]\ntoken = \"t\"\ndescription = \"the only one\"\n",
        &[("SEGWATCH_SEGMENT__PAUSED", "true")],
    )
    .unwrap();
    let target = s.validate().unwrap();
    assert!(target.paused);
    assert_eq!(target.description.as_deref(), Some("the only one"));
    let s = load("[segment]\ntoken = \"t\"\n", &[]).unwrap();
    assert!(!s.validate().unwrap().paused, "paused defaults to false");
    assert!(!s.configured_workspaces().unwrap()[0].paused);
}

#[test]
fn bad_pause_values_name_the_workspace_key() {
    let cases = [
        (
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\npaused = \"yes\"\n",
            "`workspaces[prod].paused`: expected `true` or `false`, found `yes`",
        ),
        (
            "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\npaused = 1\n",
            "`workspaces[prod].paused`: expected `true` or `false`, found the number 1",
        ),
        (
            "[segment]\ntoken = \"t\"\npaused = \"maybe\"\n",
            "`segment.paused`",
        ),
        (
            "[segment]\npaused = true\n[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\n",
            "`segment.paused`: `[[workspaces]]` are configured",
        ),
        (
            "[segment]\ndescription = \"x\"\n[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\n",
            "`segment.description`",
        ),
    ];
    for (toml, needle) in cases {
        let settings = load(toml, &[]).unwrap();
        for message in [
            settings.targets().unwrap_err().to_string(),
            settings.configured_workspaces().unwrap_err().to_string(),
        ] {
            assert!(
                message.contains(needle),
                "{toml:?}: {message:?} should mention {needle}"
            );
        }
    }
}

#[test]
fn max_response_bytes_defaults_is_inherited_and_checked() {
    let s = load(
        "[segment]\nmax_response_bytes = 2048\n\
         [[workspaces]]\nname = \"prod\"\ntoken = \"t1\"\n\
         [[workspaces]]\nname = \"eu\"\ntoken = \"t2\"\nmax_response_bytes = 4096\n",
        &[],
    )
    .unwrap();
    let targets = s.targets().unwrap();
    assert_eq!(targets[0].client.max_response_bytes, 2048);
    assert_eq!(targets[1].client.max_response_bytes, 4096);
    let s = load("", &[("SEGWATCH_SEGMENT__TOKEN", "t")]).unwrap();
    assert_eq!(
        s.validate().unwrap().client.max_response_bytes,
        segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES
    );
    let err = error_of(
        "[segment]\nmax_response_bytes = 10\n",
        &[("SEGWATCH_SEGMENT__TOKEN", "t")],
    );
    assert!(
        err.contains("`segment.max_response_bytes`") && err.contains("at least 1024"),
        "{err}"
    );
    let err = error_of(
        "[[workspaces]]\nname = \"prod\"\ntoken = \"t\"\nmax_response_bytes = 0\n",
        &[],
    );
    assert!(
        err.contains("`workspaces[prod].max_response_bytes`"),
        "{err}"
    );

    let profiles = |toml: &str| {
        load(toml, &[("SEGWATCH_PROFILES__ACCESS_SECRET", "s3")])
            .unwrap()
            .profiles()
    };
    let target = profiles("[profiles]\nspace_id = \"spa_1\"\n")
        .unwrap()
        .unwrap();
    assert_eq!(
        target.max_response_bytes,
        segwatch_api::segment::DEFAULT_MAX_RESPONSE_BYTES
    );
    let target = profiles("[profiles]\nspace_id = \"spa_1\"\nmax_response_bytes = 5000\n")
        .unwrap()
        .unwrap();
    assert_eq!(target.max_response_bytes, 5000);
    let err = profiles("[profiles]\nspace_id = \"spa_1\"\nmax_response_bytes = 1\n")
        .unwrap_err()
        .to_string();
    assert!(err.contains("`profiles.max_response_bytes`"), "{err}");
}
