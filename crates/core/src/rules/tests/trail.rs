//! `last_acting` and `trail_since`: what the audit trail shows of a user, and nothing when the
//! trail is not read.

use super::*;
use crate::activity::TrailActivity;

const INACTIVE: &str = "trail_since != null && now - trail_since > duration(\"240h\") \
     && (last_acting == null || now - last_acting > duration(\"240h\"))";

fn at(s: &str) -> DateTime<Utc> {
    s.parse().unwrap()
}

/// Whether the INACTIVE rule fires on `body` (a `kind`) with `trail`.
fn fires(kind: ResourceKind, body: &Value, trail: Option<&TrailActivity>) -> Result<bool, String> {
    let rules = load(&compliance_rule(kind.as_str(), INACTIVE));
    let mut evaluator = Evaluator::new(&rules, now(), inventory([]));
    if let Some(trail) = trail {
        evaluator = evaluator.with_trail(trail);
    }
    let id = body["id"].as_str().unwrap_or_default().to_string();
    let verdicts = evaluator.check_resource(&subject(kind, &id, &id, body), None);
    outcome_result(&verdicts[0].outcome)
}

#[test]
fn last_acting_and_trail_since_are_time_dependent_rule_variables() {
    let rules = load(&compliance_rule("user", "last_acting == null"));
    assert!(rules.rules()[0].is_time_dependent());
    assert!(rules.rules()[0].reads("last_acting"));
    let rules = load(&compliance_rule("user", "trail_since != null"));
    assert!(rules.rules()[0].is_time_dependent());
}

#[test]
fn inactivity_counts_from_the_latest_action_and_from_when_the_trail_was_read() {
    // now() is 2026-06-15T12:00:00Z; the rule's window is 10 days.
    let ann = user("ann@acme.io", &["Source Admin"]);
    let mut trail = TrailActivity::new(at("2026-05-01T00:00:00Z"));
    assert_eq!(fires(ResourceKind::User, &ann, Some(&trail)), Ok(true));
    // An action 3 days ago, matched by id.
    trail.record("u-ann@acme.io", None, at("2026-06-12T00:00:00Z"));
    assert_eq!(fires(ResourceKind::User, &ann, Some(&trail)), Ok(false));
    // Matched by email alone, case-insensitively.
    let bob = user("Bob@Acme.io", &[]);
    let mut trail = TrailActivity::new(at("2026-05-01T00:00:00Z"));
    trail.record(
        "some-other-id",
        Some("bob@acme.io"),
        at("2026-06-14T00:00:00Z"),
    );
    assert_eq!(fires(ResourceKind::User, &bob, Some(&trail)), Ok(false));
    // An old action does not count.
    trail.record("u-Bob@Acme.io", None, at("2026-05-20T00:00:00Z"));
    let carol = user("carol@acme.io", &[]);
    trail.record("u-carol@acme.io", None, at("2026-05-20T00:00:00Z"));
    assert_eq!(fires(ResourceKind::User, &carol, Some(&trail)), Ok(true));
    // The trail read for 5 days only: nobody has been silent for 10 days yet.
    let young = TrailActivity::new(at("2026-06-10T12:00:00Z"));
    assert_eq!(fires(ResourceKind::User, &carol, Some(&young)), Ok(false));
    // The trail not read at all: never fires (and is no error).
    assert_eq!(fires(ResourceKind::User, &carol, None), Ok(false));
}

#[test]
fn last_acting_is_null_for_other_kinds() {
    let rules = load(&compliance_rule("source", "last_acting == null"));
    let trail = TrailActivity::new(at("2026-01-01T00:00:00Z"));
    let evaluator = Evaluator::new(&rules, now(), inventory([])).with_trail(&trail);
    let body = json!({"id": "s1", "name": "web"});
    let verdicts =
        evaluator.check_resource(&subject(ResourceKind::Source, "s1", "web", &body), None);
    assert_eq!(outcome_result(&verdicts[0].outcome), Ok(true));
}

#[test]
fn an_explanation_shows_the_trail_values_read() {
    let rules = load(&compliance_rule("user", INACTIVE));
    let trail = TrailActivity::new(at("2026-05-01T00:00:00Z"));
    let evaluator = Evaluator::new(&rules, now(), inventory([])).with_trail(&trail);
    let body = user("dan@acme.io", &[]);
    let verdicts = evaluator.check_resource(
        &subject(ResourceKind::User, "u-dan", "dan@acme.io", &body),
        None,
    );
    let Outcome::Fire { explanation, .. } = &verdicts[0].outcome else {
        panic!("{:?}", verdicts[0].outcome)
    };
    let text = explanation.to_string();
    assert!(text.contains("2026-05-01T00:00:00Z"), "{text}");
    assert!(text.contains("\"last_acting\""), "{text}");
}

/// The inactivity rule on 100k users, each seen acting, as every poll evaluates it: the body
/// is not converted (the rule does not read `resource`), each user costs two hash lookups.
/// Run with `cargo test --release -p segwatch-core inactivity_at_100k -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement; run it by name"]
fn inactivity_at_100k_users() {
    let rules = load(&compliance_rule("user", INACTIVE));
    let users: Vec<Value> = (0..100_000)
        .map(|i| user(&format!("user{i}@acme.io"), &["Source Admin"]))
        .collect();
    let started = std::time::Instant::now();
    let mut trail = TrailActivity::new(at("2026-01-01T00:00:00Z"));
    for (i, u) in users.iter().enumerate() {
        let day = if i % 2 == 0 {
            "2026-06-14"
        } else {
            "2026-02-01"
        };
        trail.record(
            u["id"].as_str().unwrap(),
            u["email"].as_str(),
            at(&format!("{day}T00:00:00Z")),
        );
    }
    let build = started.elapsed();
    let evaluator = Evaluator::new(&rules, now(), inventory([])).with_trail(&trail);
    let started = std::time::Instant::now();
    let mut fired = 0;
    for u in &users {
        let id = u["id"].as_str().unwrap();
        let email = u["email"].as_str().unwrap();
        let verdicts = evaluator.check_resource(&subject(ResourceKind::User, id, email, u), None);
        fired += usize::from(matches!(verdicts[0].outcome, Outcome::Fire { .. }));
    }
    let eval = started.elapsed();
    assert_eq!(fired, 50_000);
    println!("100k actors recorded in {build:?}; 100k users evaluated in {eval:?}");
}
