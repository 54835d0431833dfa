//! The Microsoft Teams sink end to end: `segwatch poll` against the simulated workspace delivers
//! change alerts, findings, resolutions and digests as Adaptive Cards to a Teams Workflows
//! stand-in that checks their shape; digests split to fit Teams' size; `sinks test`; the
//! webhook's signature stays out of logs and the database; bad URLs stop the configuration.

use segwatch_simulator::Mutation;
use segwatch_testkit::{TEAMS_SIG, TeamsReceiver};
use serde_json::Value;

use crate::util::TestWorkspace;

const RULES: &str = r#"
- id: owner-granted
  title: Workspace Owner granted
  description: Someone became Workspace Owner.
  remediation: Check who approved it.
  severity: critical
  resource: user
  kind: change
  on: [added, modified]
  when: 'has_role(after, "Workspace Owner") && !has_role(before, "Workspace Owner")'
  message: "Workspace Owner granted to {{ name }}"
- id: source-without-environment
  title: Source without environment label
  description: Every source must say which environment it belongs to.
  remediation: Add an environment label.
  severity: medium
  resource: source
  kind: compliance
  when: '!has_label(resource, "environment")'
  message: "{{ name }} has no environment label"
"#;

/// A workspace, its rules and a configuration with one Teams sink (resolutions sent, digests
/// past `digest_threshold` alerts of one poll).
struct Setup {
    ws: TestWorkspace,
    teams: TeamsReceiver,
    config: std::path::PathBuf,
    rules: std::path::PathBuf,
}

impl Setup {
    async fn start(digest_threshold: usize) -> Setup {
        Setup::with(TestWorkspace::start().await, digest_threshold).await
    }

    async fn with(ws: TestWorkspace, digest_threshold: usize) -> Setup {
        let teams = TeamsReceiver::start().await;
        let rules = ws.dir.path().join("rules.yaml");
        std::fs::write(&rules, RULES).unwrap();
        let config = ws.dir.path().join("segwatch.toml");
        std::fs::write(
            &config,
            format!(
                "{}digest_threshold = {digest_threshold}\n",
                TeamsReceiver::sink_toml("teams", "TEAMS_URL")
            ),
        )
        .unwrap();
        Setup {
            ws,
            teams,
            config,
            rules,
        }
    }

    fn segwatch(&self) -> segwatch_testkit::Segwatch {
        self.ws
            .segwatch()
            .env("TEAMS_URL", &self.teams.url)
            .env("SEGWATCH_RULES__PATH", self.rules.to_str().unwrap())
            .args(["--config", self.config.to_str().unwrap()])
    }

    fn poll(&self) -> segwatch_testkit::Run {
        self.segwatch().args(["poll"]).success()
    }

    /// The cards received since the `from`th.
    fn cards_from(&self, from: usize) -> Vec<Value> {
        self.teams.cards()[from..].to_vec()
    }
}

/// Grants Workspace Owner to `n` users who do not hold it; returns their emails and the
/// attribution line segwatch should give each grant (`Made by <actor> (User Policy Updated)`).
fn grant_owner(ws: &TestWorkspace, n: usize) -> Vec<(String, String)> {
    let users: Vec<(String, String)> = ws.sim.read(|s| {
        let ws_id = s.workspace.id.clone();
        s.users
            .iter()
            .filter(|u| {
                !u.permissions
                    .iter()
                    .any(|p| p.role_name == "Workspace Owner" && p.is_workspace_wide(&ws_id))
            })
            .take(n)
            .map(|u| (u.id.clone(), u.email.clone()))
            .collect()
    });
    assert_eq!(users.len(), n, "enough users to grant to");
    for (id, _) in &users {
        ws.sim
            .apply(Mutation::GrantRole {
                user_id: id.clone(),
                role_name: "Workspace Owner".into(),
            })
            .unwrap();
    }
    users
        .into_iter()
        .map(|(id, email)| {
            let event = ws
                .sim
                .audit_events()
                .into_iter()
                .rev()
                .find(|e| e.resource_id == id)
                .expect("the grant left an audit event");
            let who = event
                .actor_email
                .clone()
                .or_else(|| {
                    ws.sim
                        .read(|st| st.user(&event.actor).map(|u| u.email.clone()))
                })
                .unwrap_or(event.actor);
            (email, format!("Made by {who} ({})", event.event_type))
        })
        .collect()
}

/// Every `text`, `title` and `value` string of a card, one per line.
fn card_text(card: &Value) -> String {
    fn walk(v: &Value, out: &mut Vec<String>) {
        match v {
            Value::Object(map) => {
                for (k, v) in map {
                    match v {
                        Value::String(s) if matches!(k.as_str(), "text" | "title" | "value") => {
                            out.push(s.clone())
                        }
                        other => walk(other, out),
                    }
                }
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(card, &mut out);
    out.join("\n")
}

/// The card's facts as (title, value) pairs, at any depth.
fn facts(card: &Value) -> Vec<(String, String)> {
    fn walk(v: &Value, out: &mut Vec<(String, String)>) {
        match v {
            Value::Object(map) => {
                if map.get("type") == Some(&Value::from("FactSet")) {
                    for f in map["facts"].as_array().unwrap() {
                        out.push((
                            f["title"].as_str().unwrap().to_owned(),
                            f["value"].as_str().unwrap().to_owned(),
                        ));
                    }
                }
                map.values().for_each(|v| walk(v, out));
            }
            Value::Array(items) => items.iter().for_each(|i| walk(i, out)),
            _ => {}
        }
    }
    let mut out = Vec::new();
    walk(card, &mut out);
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alerts_findings_resolutions_and_digests_arrive_as_valid_cards() {
    let s = Setup::start(3).await;
    let ws = &s.ws;
    // Two unlabelled sources (the others labelled first): under the digest threshold.
    let unlabelled: Vec<String> = ws.sim.read(|st| {
        st.sources
            .iter()
            .filter(|src| src.label("environment").is_none())
            .map(|src| src.id.clone())
            .collect()
    });
    assert!(!unlabelled.is_empty());
    let keep = unlabelled.len().min(2);
    for id in &unlabelled[keep..] {
        ws.sim
            .apply(Mutation::SetSourceLabel {
                source_id: id.clone(),
                key: "environment".into(),
                value: "dev".into(),
            })
            .unwrap();
    }
    let unlabelled = keep;

    // Baseline: one finding card per unlabelled source.
    s.poll();
    assert_eq!(
        s.teams.rejected.lock().unwrap().clone(),
        Vec::<String>::new()
    );
    let baseline = s.teams.cards();
    assert_eq!(baseline.len(), unlabelled);
    for card in &baseline {
        let text = card_text(card);
        assert!(
            text.contains("MEDIUM: Source without environment label"),
            "{text}"
        );
        assert!(
            text.contains("Add an environment label."),
            "remediation: {text}"
        );
    }

    // A change alert naming who made it and what changed, and a new finding.
    let granted = grant_owner(ws, 1);
    let target = ws.sim.read(|st| {
        st.sources
            .iter()
            .find(|src| src.label("environment").is_some())
            .unwrap()
            .id
            .clone()
    });
    ws.sim
        .apply(Mutation::RemoveSourceLabel {
            source_id: target.clone(),
            key: "environment".into(),
        })
        .unwrap();
    let before = s.teams.cards().len();
    s.poll();
    let cards = s.cards_from(before);
    assert_eq!(cards.len(), 2, "the grant and the finding, one card each");
    let change = cards
        .iter()
        .find(|c| card_text(c).contains("CRITICAL: Workspace Owner granted"))
        .expect("a change card");
    let change_facts = facts(change);
    let fact = |title: &str| {
        change_facts
            .iter()
            .find(|(t, _)| t == title)
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| panic!("no {title} fact in {change_facts:?}"))
    };
    assert_eq!(fact("Resource"), granted[0].0);
    assert_eq!(fact("Workspace"), "default");
    assert_eq!(fact("Who"), granted[0].1);
    assert!(
        change_facts
            .iter()
            .any(|(path, value)| path.starts_with("permissions") && value.contains(" → ")),
        "the changed fields, before → after: {change_facts:?}"
    );
    assert!(card_text(change).contains("Check who approved it."));
    let finding = cards
        .iter()
        .find(|c| card_text(c).contains("MEDIUM: Source without environment label"))
        .expect("a finding card");
    assert!(
        facts(finding)
            .iter()
            .any(|(t, v)| t == "ID" && *v == target)
    );

    // Fixed: the resolution.
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: target.clone(),
            key: "environment".into(),
            value: "prod".into(),
        })
        .unwrap();
    let before = s.teams.cards().len();
    s.poll();
    let cards = s.cards_from(before);
    assert_eq!(cards.len(), 1);
    let text = card_text(&cards[0]);
    assert!(
        text.contains("RESOLVED (MEDIUM): Source without environment label"),
        "{text}"
    );
    assert!(
        text.contains("Resolved because the resource now complies with the rule"),
        "{text}"
    );

    // More than the threshold in one poll: one digest, each alert with who, what changed and
    // where to see it whole.
    let granted = grant_owner(ws, 4);
    let before = s.teams.cards().len();
    s.poll();
    let cards = s.cards_from(before);
    assert_eq!(cards.len(), 1, "one digest");
    let digest = &cards[0];
    let text = card_text(digest);
    assert!(
        text.starts_with("segwatch: 4 alerts from snapshot"),
        "{text}"
    );
    let entries: Vec<&Value> = digest["body"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["type"] == "Container")
        .collect();
    assert_eq!(entries.len(), 4);
    let mut command = None;
    for (email, who) in &granted {
        let entry = entries
            .iter()
            .find(|e| card_text(e).contains(email.as_str()))
            .unwrap_or_else(|| panic!("no entry for {email}: {text}"));
        let entry_text = card_text(entry);
        assert!(entry_text.contains(who.as_str()), "{entry_text}");
        assert!(
            facts(entry)
                .iter()
                .any(|(path, value)| path.starts_with("permissions") && value.contains(" → ")),
            "{entry}"
        );
        let pointer = entry_text
            .lines()
            .find_map(|l| l.split_once("In full: `"))
            .map(|(_, rest)| rest.trim_end_matches('`').to_owned())
            .unwrap_or_else(|| panic!("no command in {entry_text}"));
        command = Some(pointer);
    }
    // The command a digest gives lists the alerts in full.
    let command = command.unwrap();
    assert_eq!(
        command,
        "segwatch --workspace default alerts --rule owner-granted --status fired --format json"
    );
    let args: Vec<&str> = command.split_whitespace().skip(1).collect();
    let listed = s.segwatch().args(args).success().json();
    let listed = listed.as_array().unwrap();
    assert_eq!(
        listed.len(),
        5,
        "the first grant and the four of the digest"
    );
    for (email, _) in &granted {
        assert!(
            listed.iter().any(|a| a["resource_name"] == email.as_str()
                && a["explanation"]["changes"]
                    .as_array()
                    .is_some_and(|c| !c.is_empty())),
            "{email} listed with its changes"
        );
    }

    // Every request was a valid card, and the signature is nowhere.
    assert_eq!(
        s.teams.rejected.lock().unwrap().clone(),
        Vec::<String>::new()
    );
    let run = s
        .segwatch()
        .env("RUST_LOG", "debug")
        .args(["poll"])
        .success();
    let mut everything = run.stdout() + &run.stderr();
    for suffix in ["", "-wal"] {
        let mut path = ws.db().into_os_string();
        path.push(suffix);
        everything.push_str(&String::from_utf8_lossy(
            &std::fs::read(&path).unwrap_or_default(),
        ));
    }
    assert!(
        !everything.contains(TEAMS_SIG),
        "the webhook's signature leaked"
    );
    assert!(
        !everything.contains("7c0ffee5d1"),
        "the workflow's path leaked"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_large_digest_is_split_to_fit_and_a_refusal_splits_further() {
    let ws = TestWorkspace::with(segwatch_simulator::SimConfig {
        users: 80,
        ..segwatch_simulator::SimConfig::default()
    })
    .await;
    let s = Setup::with(ws, 3).await;
    s.poll();
    let before = s.teams.cards().len();

    // 45 grants in one poll: a digest of 45 alerts with who and what changed (about 750 bytes
    // each) is over 24,000 bytes, so it goes out as several cards, each within the limit.
    let granted = grant_owner(&s.ws, 45);
    let run = s.poll();
    let cards = s.cards_from(before);
    assert!(
        cards.len() >= 2,
        "split: {} card(s), {:?}, {}",
        cards.len(),
        s.teams.requests.lock().unwrap(),
        serde_json::to_string_pretty(&cards[0]).unwrap()
    );
    let sizes: Vec<usize> = s
        .teams
        .requests
        .lock()
        .unwrap()
        .iter()
        .map(|r| r.1)
        .collect();
    assert!(
        sizes
            .iter()
            .all(|n| *n <= segwatch_sinks::teams::MAX_BODY_BYTES),
        "{sizes:?}"
    );
    let all: String = cards.iter().map(card_text).collect::<Vec<_>>().join("\n");
    for (email, _) in &granted {
        assert_eq!(
            all.matches(&format!("— {email} (user)")).count(),
            1,
            "{email} listed once"
        );
    }
    assert!(
        run.stdout().contains("deliveries: 45 sent"),
        "{}",
        run.stdout()
    );

    // The receiver refuses bodies over 6,000 bytes: 413 halves the batch until each fits.
    s.teams
        .max_body
        .store(6_000, std::sync::atomic::Ordering::SeqCst);
    let before = s.teams.cards().len();
    let granted = grant_owner(&s.ws, 8);
    s.poll();
    let cards = s.cards_from(before);
    let all: String = cards.iter().map(card_text).collect::<Vec<_>>().join("\n");
    for (email, _) in &granted {
        assert_eq!(
            all.matches(&format!("— {email} (user)")).count(),
            1,
            "{all}"
        );
    }
    let requests = s.teams.requests.lock().unwrap().clone();
    assert!(requests.iter().any(|r| r.0 == 413), "{requests:?}");
    let dead = s
        .segwatch()
        .args(["deliveries", "--status", "dead", "--format", "json"])
        .success()
        .json();
    assert_eq!(dead.as_array().unwrap().len(), 0, "{dead}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sinks_test_posts_a_card_and_bad_urls_stop_the_configuration() {
    let s = Setup::start(10).await;
    let run = s.segwatch().args(["sinks", "test"]).success();
    assert!(run.stdout().contains("teams: ok"), "{}", run.stdout());
    assert!(!run.stdout().contains(TEAMS_SIG));
    let cards = s.teams.cards();
    assert_eq!(cards.len(), 1);
    assert!(card_text(&cards[0]).contains("segwatch test message"));

    // Plain http to another host: refused when the configuration is read, naming the key and
    // the sink, never the URL.
    let insecure = format!(
        "http://prod-00.westus.logic.azure.com/workflows/x/triggers/manual/paths/invoke?sig={TEAMS_SIG}"
    );
    let run = s
        .segwatch()
        .env("TEAMS_URL", &insecure)
        .args(["sinks", "test"])
        .code(1)
        .stderr_contains(&["sinks.url", "sink `teams`", "https://"]);
    assert!(!run.stderr().contains(TEAMS_SIG), "{}", run.stderr());
    assert!(s.teams.cards().len() == 1, "nothing was sent");

    // No URL at all.
    std::fs::write(&s.config, "[[sinks]]\nname = \"teams\"\ntype = \"teams\"\n").unwrap();
    s.segwatch()
        .args(["sinks", "test"])
        .code(1)
        .stderr_contains(&["sinks.url", "sink `teams`", "Teams Workflows webhook"]);

    // A Teams sink has no body-size key: its limit is Teams'.
    std::fs::write(
        &s.config,
        format!(
            "{}max_body_bytes = 100000\n",
            TeamsReceiver::sink_toml("teams", "TEAMS_URL")
        ),
    )
    .unwrap();
    s.segwatch()
        .args(["sinks", "test"])
        .code(1)
        .stderr_contains(&["sinks.max_body_bytes", "teams"]);

    // A receiver that refuses the card (400): `sinks test` fails with its reply.
    std::fs::write(&s.config, TeamsReceiver::sink_toml("teams", "TEAMS_URL")).unwrap();
    let wrong_sig = s.teams.url.replace(TEAMS_SIG, "not-the-signature");
    s.segwatch()
        .env("TEAMS_URL", &wrong_sig)
        .args(["sinks", "test"])
        .code(1)
        .stdout_contains(&["teams: FAILED", "401"]);
}
