//! The `updated` event end to end: a finding stays open while its resource is modified; the
//! binary polls the simulator and the sinks that take updates hear of it once (the OCSF file an
//! Update activity of the same finding, validated by `tests/ocsf_validate.py`; Jira one comment
//! on the finding's issue; PagerDuty a trigger folded into the open incident), while a webhook,
//! which takes no updates by default, gets nothing more, and one with `send_updates = true`
//! gets the event `updated`; `segwatch export ocsf` writes the same lines.

use segwatch_simulator::Mutation;
use segwatch_testkit::jira::{JIRA_TOKEN, JIRA_TOKEN_ENV};
use segwatch_testkit::{
    HMAC_KEY, JiraStandIn, PAGERDUTY_KEY, PagerDutyOutcome, PagerDutyStandIn, WebhookReceiver,
};

use serde_json::Value;

use crate::ocsf::{lines, validate};
use crate::util::TestWorkspace;

const RULE: &str = r#"
- id: source-without-owner
  title: Source without owner label
  description: Every source must name its owning team.
  remediation: Add an owner label.
  severity: high
  tags: [soc2:CC8.1]
  resource: source
  kind: compliance
  when: 'resource.id == "TARGET" && !has_label(resource, "owner")'
  message: "{{ name }} has no owner label"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_finding_modified_while_open_is_an_update_to_the_sinks_that_track_it() {
    let ws = TestWorkspace::start().await;
    let jira = JiraStandIn::start().await;
    let pagerduty = PagerDutyStandIn::start().await;
    let hook = WebhookReceiver::start().await;
    let told = WebhookReceiver::start().await;
    // A labelled source without an owner: its finding opens at the baseline.
    let target = ws.sim.read(|s| {
        s.sources
            .iter()
            .find(|s| s.label("environment").is_some() && s.label("owner").is_none())
            .unwrap()
            .id
            .clone()
    });
    let dir = ws.dir.path();
    let rules = dir.join("rules.yaml");
    std::fs::write(&rules, RULE.replace("TARGET", &target)).unwrap();
    let file = dir.join("findings.ocsf.jsonl");
    let config = dir.join("segwatch.toml");
    std::fs::write(
        &config,
        format!(
            "[[sinks]]\nname = \"siem\"\ntype = \"ocsf\"\npath = \"{}\"\n\n{}\n{}\n\
             [[sinks]]\nname = \"hook\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\n\n\
             [[sinks]]\nname = \"told\"\ntype = \"webhook\"\nurl = \"{}\"\nsecret = \"{HMAC_KEY}\"\n\
             send_updates = true\n",
            file.display(),
            jira.sink_toml(),
            pagerduty.sink_toml("pd", "PD_KEY"),
            hook.url,
            told.url
        ),
    )
    .unwrap();
    let poll = || {
        ws.segwatch()
            .env(JIRA_TOKEN_ENV, JIRA_TOKEN)
            .env("PD_KEY", PAGERDUTY_KEY)
            .env("SEGWATCH_RULES__PATH", rules.to_str().unwrap())
            .args(["--config", config.to_str().unwrap(), "poll"])
            .success()
    };

    // The finding opens: each sink hears of it once.
    poll();
    assert_eq!(lines(&file).len(), 1);
    assert_eq!(jira.issues().len(), 1);
    assert_eq!(pagerduty.incidents().len(), 1);
    assert_eq!(hook.accepted.lock().unwrap().len(), 1);

    // Its resource changes (another label) and still fails the rule.
    ws.sim
        .apply(Mutation::SetSourceLabel {
            source_id: target.clone(),
            key: "environment".into(),
            value: "staging-updated".into(),
        })
        .unwrap();
    poll();
    // A poll that changes nothing updates nothing.
    poll();

    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let findings = store.open_findings(workspace).unwrap();
    assert_eq!(findings.len(), 1, "still one open finding, not a new one");
    let finding = &findings[0];
    let uid = finding.finding_uid();
    let (update_id, summary): (i64, String) = store
        .connection()
        .query_row(
            "SELECT id, summary FROM alert_updates WHERE alert_id = ?1",
            [finding.id.get()],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    let updated_deliveries: Vec<String> = {
        let mut stmt = store
            .connection()
            .prepare("SELECT sink FROM deliveries WHERE event = 'updated' AND status = 'sent' ORDER BY sink")
            .unwrap();
        stmt.query_map([], |r| r.get(0))
            .unwrap()
            .map(Result::unwrap)
            .collect()
    };
    assert_eq!(updated_deliveries, ["jira", "pd", "siem", "told"]);

    // OCSF: a Create, then an Update of the same finding.
    let events = lines(&file);
    assert_eq!(events.len(), 2, "{events:#?}");
    let (create, update) = (&events[0], &events[1]);
    assert_eq!(
        (&create["activity_id"], &update["activity_id"]),
        (&1.into(), &2.into())
    );
    assert_eq!(update["type_uid"], 200302);
    assert_eq!(update["status_id"], 1);
    assert_eq!(update["finding_info"]["uid"], uid.as_str());
    assert_eq!(create["finding_info"]["uid"], update["finding_info"]["uid"]);
    assert_eq!(
        update["metadata"]["uid"],
        format!("segwatch-alert-{}-updated-{update_id}", finding.id).as_str()
    );
    assert_eq!(update["finding_info"]["desc"], summary.as_str());
    assert!(
        update["finding_info"]["modified_time"].as_i64().unwrap()
            >= create["finding_info"]["modified_time"].as_i64().unwrap()
    );

    // Jira: one issue, one comment on it.
    let issues = jira.issues();
    assert_eq!(issues.len(), 1, "{issues:#?}");
    let issue = &issues[0];
    assert!(issue.labels().contains(&uid));
    assert_eq!(issue.comments.len(), 1, "{:#?}", issue.comments);
    assert_eq!(issue.comments_with("Changed while open"), 1);
    assert_eq!(
        issue.comments_with(&format!("event alert-{}-updated-{update_id}", finding.id)),
        1
    );
    assert_eq!(issue.status, "To Do");

    // PagerDuty: a second trigger with the same key, folded into the open incident.
    let requests = pagerduty.requests();
    let triggers: Vec<_> = requests
        .iter()
        .filter(|r| r.action() == Some("trigger"))
        .collect();
    assert_eq!(triggers.len(), 2, "{requests:#?}");
    assert!(triggers.iter().all(|r| r.dedup_key() == Some(uid.as_str())));
    assert_eq!(triggers[0].outcome, PagerDutyOutcome::Opened(1));
    assert_eq!(triggers[1].outcome, PagerDutyOutcome::Deduplicated(1));
    assert_eq!(
        triggers[1].body["payload"]["custom_details"]["event"],
        "updated"
    );
    let incidents = pagerduty.incidents();
    assert_eq!(incidents.len(), 1);
    assert_eq!(incidents[0].triggers, 2);

    // The webhook takes no updates by default: only the raising reached it.
    let accepted = hook.accepted.lock().unwrap().clone();
    assert_eq!(accepted.len(), 1, "{accepted:#?}");
    assert_eq!(accepted[0].1["event"], "raised");
    // Told to, a webhook gets the update: the finding with the update's summary.
    let told = told.accepted.lock().unwrap().clone();
    let events: Vec<(&str, &Value)> = told
        .iter()
        .map(|(id, body)| (id.as_str(), &body["event"]))
        .collect();
    assert_eq!(
        events,
        [
            (
                format!("alert-{}-raised", finding.id).as_str(),
                &"raised".into()
            ),
            (
                format!("alert-{}-updated-{update_id}", finding.id).as_str(),
                &"updated".into()
            )
        ]
    );
    assert_eq!(told[1].1["alert"]["summary"], summary.as_str());
    assert_eq!(told[1].1["alert"]["status"], "open");

    // The backfill holds the same events, the update included, byte for byte.
    let exported = dir.join("export.ocsf.jsonl");
    ws.segwatch()
        .args([
            "--config",
            config.to_str().unwrap(),
            "export",
            "ocsf",
            "--since",
            "2000-01-01",
            "--output",
            exported.to_str().unwrap(),
        ])
        .success()
        .stdout_contains(&["2 OCSF events from"]);
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap(),
        std::fs::read_to_string(&file).unwrap()
    );

    validate(&[&file, &exported], false);
}
