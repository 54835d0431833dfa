//! `segwatch privacy access` and `segwatch check-connection` against the simulated Profile API.

use segwatch_simulator::{Fault, FaultKind, SimConfig};

use crate::util::{Segwatch, TOKEN, TestWorkspace};

/// The access secret every test simulator accepts; distinctive so a leak is easy to find.
const SECRET: &str = "sgw-profiles-secret-8e2b5a1c9d7f";
const SPACE: &str = "spa_test_1";

async fn workspace() -> TestWorkspace {
    TestWorkspace::with(SimConfig {
        profiles_space: SPACE.into(),
        profiles_secret: SECRET.to_owned().into(),
        ..SimConfig::default()
    })
    .await
}

/// The binary configured for the workspace and its Profile API.
fn segwatch(ws: &TestWorkspace) -> Segwatch {
    ws.segwatch()
        .env("SEGWATCH_PROFILES__API_URL", &ws.sim.base_url())
        .env("SEGWATCH_PROFILES__SPACE_ID", SPACE)
        .env("SEGWATCH_PROFILES__ACCESS_SECRET", SECRET)
}

fn first_user(ws: &TestWorkspace) -> String {
    ws.sim.read(|s| s.users[0].id.clone())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_export_is_complete_and_shaped_for_hand_over() {
    let ws = workspace().await;
    let user = first_user(&ws);
    let expected = ws.sim.profile(&user).unwrap();
    assert!(expected.events > 100, "several pages of events");
    let out = ws.dir.path().join("export.json");
    let run = segwatch(&ws)
        .args(["privacy", "access", "--user-id", &user, "--out"])
        .args([&out])
        .success();
    assert!(run.stdout().is_empty());
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&out).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let doc: serde_json::Value = serde_json::from_slice(&std::fs::read(&out).unwrap()).unwrap();
    assert_eq!(doc["subject"]["type"], "user_id");
    assert_eq!(doc["subject"]["value"], user.as_str());
    assert_eq!(doc["subject"]["identifier"], format!("user_id:{user}"));
    assert_eq!(doc["space"], SPACE);
    assert_eq!(doc["segment_id"], expected.segment_id.as_str());
    assert!(
        chrono::DateTime::parse_from_rfc3339(doc["gathered_at"].as_str().unwrap()).is_ok(),
        "gathered_at is a timestamp"
    );
    assert_eq!(doc["metadata"]["count"], 1);
    assert!(doc["metadata"]["records"]["created_at"].is_string());
    assert_eq!(doc["traits"]["count"], expected.traits);
    assert_eq!(
        doc["traits"]["records"].as_object().unwrap().len(),
        expected.traits
    );
    assert_eq!(doc["traits"]["records"]["user_id"], user.as_str());
    assert_eq!(doc["external_ids"]["count"], expected.external_ids);
    assert_eq!(doc["events"]["count"], expected.events);
    let events = doc["events"]["records"].as_array().unwrap();
    assert_eq!(events.len(), expected.events);
    // Every page, each event once.
    let ids: std::collections::HashSet<&str> = events
        .iter()
        .map(|e| e["message_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), expected.events);
    // The pages were followed through the cursor.
    let pages = ws
        .sim
        .request_log()
        .iter()
        .filter(|p| p.contains("/events"))
        .count();
    assert_eq!(pages, expected.events.div_ceil(100));

    // Without --out the same document goes to stdout.
    let run = segwatch(&ws)
        .args(["privacy", "access", "--user-id", &user])
        .success();
    assert_eq!(run.json()["events"]["count"], expected.events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_and_anonymous_id_find_the_same_profile() {
    let ws = workspace().await;
    let user = first_user(&ws);
    let expected = ws.sim.profile(&user).unwrap();
    for (flag, value) in [
        ("--email", expected.email.clone()),
        ("--anonymous-id", expected.anonymous_id.clone()),
    ] {
        let doc = segwatch(&ws)
            .args(["privacy", "access", flag, &value])
            .success()
            .json();
        assert_eq!(doc["segment_id"], expected.segment_id.as_str(), "{flag}");
        assert_eq!(doc["subject"]["value"], value.as_str());
        assert_eq!(doc["events"]["count"], expected.events);
        assert_eq!(doc["traits"]["records"]["user_id"], user.as_str());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unknown_subject_is_a_clear_no_profile_and_writes_nothing() {
    let ws = workspace().await;
    let out = ws.dir.path().join("nobody.json");
    let run = segwatch(&ws)
        .args([
            "privacy",
            "access",
            "--user-id",
            "nobody+x@example",
            "--out",
        ])
        .args([&out])
        .output();
    assert_eq!(run.output.status.code(), Some(2), "{}", run.stderr());
    let err = run.stderr();
    assert!(
        err.contains(&format!(
            "no profile for user_id:nobody+x@example in space {SPACE}"
        )),
        "{err}"
    );
    assert!(!out.exists());
    // The identifier went out percent-encoded.
    assert!(
        ws.sim
            .request_log()
            .iter()
            .any(|p| p.contains("user_id:nobody%2Bx%40example/metadata")),
        "{:?}",
        ws.sim.request_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limits_and_server_errors_are_retried() {
    let ws = workspace().await;
    let user = first_user(&ws);
    let expected = ws.sim.profile(&user).unwrap();
    ws.sim.inject(
        Fault::new(FaultKind::RateLimited { ms_before_next: 50 })
            .on_path("/v1/spaces")
            .times(3),
    );
    ws.sim.inject(
        Fault::new(FaultKind::ServerError { status: 503 })
            .on_path("/v1/spaces")
            .skip(4)
            .times(1),
    );
    let run = segwatch(&ws)
        .args(["privacy", "access", "--user-id", &user])
        .success();
    assert_eq!(run.json()["events"]["count"], expected.events);
    assert!(run.stderr().contains("retrying Profile API request"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connection_names_each_failure() {
    let ws = workspace().await;
    let run = segwatch(&ws).args(["check-connection"]).success();
    let out = run.stdout();
    assert!(out.contains("Public API, workspace `default`"), "{out}");
    assert_eq!(out.matches(": OK").count(), 2, "{out}");

    let run = segwatch(&ws)
        .env("SEGWATCH_PROFILES__ACCESS_SECRET", "wrong-secret")
        .args(["check-connection"])
        .code(1);
    assert!(
        run.stdout().contains("FAIL: invalid access secret"),
        "{}",
        run.stdout()
    );

    let run = segwatch(&ws)
        .env("SEGWATCH_PROFILES__SPACE_ID", "spa_other")
        .args(["check-connection"])
        .code(1);
    assert!(
        run.stdout().contains("FAIL: wrong space id or region"),
        "{}",
        run.stdout()
    );

    let run = segwatch(&ws)
        .env("SEGWATCH_SEGMENT__TOKEN", "wrong-token")
        .args(["check-connection"])
        .code(1);
    let out = run.stdout();
    assert!(
        out.contains("Public API") && out.contains("FAIL: invalid token"),
        "{out}"
    );
    assert!(
        out.contains("Profile API, space") && out.contains(": OK"),
        "{out}"
    );

    // Without [profiles] the Profile API is reported, and fails only when required.
    let run = ws.segwatch().args(["check-connection"]).success();
    assert!(run.stdout().contains("Profile API: not configured"));
    ws.segwatch()
        .args(["check-connection", "--require-profiles"])
        .code(1)
        .stdout_contains(&["Profile API: FAIL: not configured"]);

    // A host that does not answer is a network failure.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let run = segwatch(&ws)
        .env("SEGWATCH_PROFILES__API_URL", &url)
        .args(["check-connection"])
        .code(1);
    assert!(run.stdout().contains("FAIL: network"), "{}", run.stdout());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_access_secret_never_leaks() {
    let ws = workspace().await;
    let user = first_user(&ws);
    let mut transcript = String::new();
    for args in [
        vec!["privacy", "access", "--user-id", user.as_str()],
        vec![
            "--log-format",
            "json",
            "privacy",
            "access",
            "--user-id",
            "nobody",
        ],
        vec!["check-connection"],
        vec!["poll"],
    ] {
        let run = segwatch(&ws).env("RUST_LOG", "trace").args(&args).output();
        transcript.push_str(&run.stdout());
        transcript.push_str(&run.stderr());
    }
    let run = segwatch(&ws)
        .env("SEGWATCH_PROFILES__ACCESS_SECRET", "wrong-secret-5c4b3a")
        .env("RUST_LOG", "trace")
        .args(["privacy", "access", "--user-id", &user])
        .code(1);
    transcript.push_str(&run.stdout());
    transcript.push_str(&run.stderr());
    assert!(transcript.contains("Profile API"), "logs were captured");
    // Logs name the section read, not the person.
    assert!(!transcript.contains(&format!("profiles/user_id:{user}")));
    for secret in [SECRET, "wrong-secret-5c4b3a"] {
        assert!(!transcript.contains(secret), "{secret} leaked");
    }
    assert!(!transcript.contains(TOKEN));
    for entry in std::fs::read_dir(ws.dir.path()).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let bytes = std::fs::read(&path).unwrap();
            let text = String::from_utf8_lossy(&bytes);
            assert!(
                !text.contains(SECRET),
                "{} holds the secret",
                path.display()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn check_connection_checks_every_workspace_or_the_one_named() {
    let ws = workspace().await;
    let config = ws.dir.path().join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[workspaces]]\nname = \"production\"\napi_url = \"{url}\"\ntoken_env = \"PRODUCTION_TOKEN\"\n\
             [[workspaces]]\nname = \"staging\"\napi_url = \"{url}\"\ntoken_env = \"STAGING_TOKEN\"\n",
            url = ws.sim.base_url()
        ),
    )
    .unwrap();
    let segwatch = || {
        Segwatch::new()
            .env("SEGWATCH_DATABASE__PATH", ws.db().to_str().unwrap())
            .env("PRODUCTION_TOKEN", TOKEN)
            .env("STAGING_TOKEN", "sgw-revoked-token")
            .args(["--config", config.to_str().unwrap()])
    };
    let run = segwatch().args(["check-connection"]).code(1);
    let out = run.stdout();
    assert!(
        out.contains("workspace `production`") && out.contains("workspace `staging`"),
        "{out}"
    );
    let line = |name: &str| {
        out.lines()
            .find(|l| l.contains(&format!("workspace `{name}`")))
            .unwrap()
            .to_owned()
    };
    assert!(line("production").ends_with(": OK"), "{out}");
    assert!(line("staging").contains("FAIL: invalid token"), "{out}");
    assert!(
        line("staging").contains("workspaces[staging].token"),
        "{out}"
    );
    let run = segwatch()
        .args(["--workspace", "production", "check-connection"])
        .success();
    assert!(!run.stdout().contains("staging"), "{}", run.stdout());
}
