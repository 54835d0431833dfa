//! `segwatch report` through the real binary, over a history of polls of the simulated
//! workspace with the starter rules: every section is there, and every number agrees with the
//! database.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use scraper::{ElementRef, Html, Selector};
use segwatch_core::alerts::{AlertRecord, AlertStatus};
use segwatch_core::ids::SnapshotId;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::{Fault, FaultKind, Mutation};
use segwatch_store::{AlertFilter, SnapshotStatus, Store};
use sha2::{Digest, Sha256};

use crate::util::{STARTER_RULES, TestWorkspace};

/// A user whose email, and so whose resource name, is markup.
const SCRIPT_EMAIL: &str = "<script>alert(1)</script>@evil.io";

/// The polls of [`history`], by role.
struct History {
    ws: TestWorkspace,
    rules: RuleSet,
    baseline: SnapshotId,
    second: SnapshotId,
    failed: SnapshotId,
    fourth: SnapshotId,
}

/// Four polls with the starter rules: a baseline; a poll where a prod source and another one
/// lose their environment label and a third gets an unknown one (findings open, a change alert
/// fires), an unlabelled source gets a label (its finding resolves) and an external user whose
/// email is markup joins with a workspace-wide role; a failed poll; a poll where the prod label
/// comes back (its finding resolves) and a write key is rotated.
async fn history() -> History {
    let ws = TestWorkspace::start().await;
    let rules = RuleSet::load(Path::new(STARTER_RULES)).unwrap();
    let shared = Arc::new(rules.clone());
    let baseline = ws.poll_rules(&shared).await.unwrap().snapshot_id;

    let (prod, others, unlabelled) = ws.sim.read(|s| {
        let prod = s
            .sources
            .iter()
            .find(|s| s.label("environment") == Some("prod"));
        let prod = prod.unwrap().id.clone();
        let others: Vec<String> = s
            .sources
            .iter()
            .filter(|s| s.label("environment").is_some() && s.id != prod)
            .map(|s| s.id.clone())
            .take(2)
            .collect();
        let unlabelled = s.sources.iter().find(|s| s.label("environment").is_none());
        (prod, others, unlabelled.unwrap().id.clone())
    });
    let apply = |m: Mutation| ws.sim.apply(m).unwrap();
    for source_id in [&prod, &others[0]] {
        apply(Mutation::RemoveSourceLabel {
            source_id: source_id.clone(),
            key: "environment".into(),
        });
    }
    apply(Mutation::SetSourceLabel {
        source_id: others[1].clone(),
        key: "environment".into(),
        value: "production".into(),
    });
    apply(Mutation::SetSourceLabel {
        source_id: unlabelled,
        key: "environment".into(),
        value: "dev".into(),
    });
    apply(Mutation::AddUser {
        email: SCRIPT_EMAIL.into(),
        name: String::new(),
        role_name: "Source Read-only".into(),
    });
    let second = ws.poll_rules(&shared).await.unwrap().snapshot_id;

    ws.sim
        .inject(Fault::new(FaultKind::ServerError { status: 500 }).on_path("/sources"));
    ws.poll_rules(&shared).await.unwrap_err();
    ws.sim.clear_faults();
    let failed = SnapshotId(second.get() + 1);

    apply(Mutation::SetSourceLabel {
        source_id: prod.clone(),
        key: "environment".into(),
        value: "prod".into(),
    });
    apply(Mutation::RotateWriteKey { source_id: prod });
    let fourth = ws.poll_rules(&shared).await.unwrap().snapshot_id;
    assert_eq!(
        (baseline.get(), second.get(), failed.get(), fourth.get()),
        (1, 2, 3, 4),
        "snapshot ids follow the polls"
    );
    History {
        ws,
        rules,
        baseline,
        second,
        failed,
        fourth,
    }
}

/// What the database says, read independently of the report.
struct Facts {
    alerts: Vec<AlertRecord>,
    resources_by_kind: HashMap<&'static str, u64>,
    changes: i64,
}

fn facts(ws: &TestWorkspace, snapshot: SnapshotId) -> Facts {
    let store = Store::open_read_only(&ws.db()).unwrap();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let alerts = store.alerts(workspace, &AlertFilter::default()).unwrap();
    let mut resources_by_kind = HashMap::new();
    for r in store.resources_at(workspace, snapshot).unwrap() {
        *resources_by_kind.entry(r.kind.as_str()).or_default() += 1;
    }
    let changes = store
        .connection()
        .query_row("SELECT count(*) FROM changes", [], |r| r.get(0))
        .unwrap();
    Facts {
        alerts,
        resources_by_kind,
        changes,
    }
}

impl Facts {
    fn with_status(&self, status: AlertStatus) -> Vec<&AlertRecord> {
        self.alerts.iter().filter(|a| a.status == status).collect()
    }

    fn open_by_rule(&self) -> HashMap<&str, u64> {
        let mut out = HashMap::new();
        for a in self.with_status(AlertStatus::Open) {
            *out.entry(a.rule_id.as_str()).or_default() += 1;
        }
        out
    }

    /// The pass rate of a set of compliance rules, by hand: every resource of a rule's kind is
    /// a check (the starter rules have no exceptions), and a rule fails where it has an open
    /// finding.
    fn pass_rate(&self, rules: &[&segwatch_core::rules::Rule]) -> Option<String> {
        let open = self.open_by_rule();
        let checks: u64 = rules
            .iter()
            .map(|r| {
                self.resources_by_kind
                    .get(r.resource.as_str())
                    .copied()
                    .unwrap_or(0)
            })
            .sum();
        let fails: u64 = rules
            .iter()
            .map(|r| open.get(r.id.as_str()).copied().unwrap_or(0))
            .sum();
        (checks > 0).then(|| format!("{:.1}%", (checks - fails) as f64 * 100.0 / checks as f64))
    }
}

fn sel(css: &str) -> Selector {
    Selector::parse(css).unwrap_or_else(|e| panic!("selector {css}: {e}"))
}

fn text(e: ElementRef<'_>) -> String {
    e.text()
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn one<'a>(doc: &'a Html, css: &str) -> ElementRef<'a> {
    let selector = sel(css);
    let mut found = doc.select(&selector);
    let first = found
        .next()
        .unwrap_or_else(|| panic!("no {css} in the report"));
    assert!(found.next().is_none(), "more than one {css}");
    first
}

fn cells(row: ElementRef<'_>) -> Vec<String> {
    row.select(&sel("td")).map(text).collect()
}

fn number(cell: &str) -> u64 {
    let digits: String = cell
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .replace(',', "");
    digits
        .parse()
        .unwrap_or_else(|_| panic!("`{cell}` is not a number"))
}

fn db_hash(ws: &TestWorkspace) -> String {
    format!("{:x}", Sha256::digest(std::fs::read(ws.db()).unwrap()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_html_report_states_its_evidence_and_agrees_with_the_database() {
    let History {
        ws,
        rules,
        baseline,
        fourth,
        ..
    } = history().await;
    let before = db_hash(&ws);
    let out = ws.dir.path().join("report.html");
    ws.segwatch()
        .args(["report", "--format", "html", "--out", out.to_str().unwrap()])
        .success()
        .stdout_contains(&["snapshots 1 to 4", "report.html"]);
    assert_eq!(db_hash(&ws), before, "the report wrote to the database");
    let raw = std::fs::read_to_string(&out).unwrap();
    let doc = Html::parse_document(&raw);
    let db = facts(&ws, fourth);

    // The header names the chain link of the last snapshot, which `verify` vouches for.
    let head: String = ws
        .store()
        .connection()
        .query_row(
            "SELECT chain_hash FROM snapshots WHERE id = ?1",
            [fourth.get()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(text(one(&doc, "#chain-head-hash")), head);
    ws.segwatch().args(["verify", "--anchor", &head]).success();

    // Self-contained: no script, no external resource.
    assert_eq!(doc.select(&sel("script, link, img, iframe")).count(), 0);
    assert!(!raw.contains("http://") && !raw.contains("https://") && !raw.contains("@import"));

    // Every section: its heading and its table.
    let headings: Vec<String> = doc.select(&sel("section > h2")).map(text).collect();
    assert_eq!(
        headings,
        [
            "1. Summary",
            "2. Pass rate by framework",
            "3. Results by rule",
            "4. Open findings",
            "5. Resolved findings",
            "6. Notable changes",
            "7. Data flows",
            "8. Method"
        ]
    );
    for table in [
        "#framework-overview",
        "#frameworks table.controls",
        "#compliance-rules",
        "#change-rules",
        "#open-findings-table",
        "#resolved-findings-table",
        "#change-alerts-table",
        "#change-counts",
    ] {
        assert!(
            doc.select(&sel(table)).next().is_some(),
            "no {table} in the report"
        );
    }

    // The evidence: the snapshots and polls it rests on.
    assert_eq!(text(one(&doc, "#first-snapshot")), baseline.to_string());
    assert_eq!(text(one(&doc, "#last-snapshot")), fourth.to_string());
    assert_eq!(
        text(one(&doc, "#poll-counts")),
        "3 complete polls, 1 failed"
    );

    // Open findings: exactly the open rows of `alerts`, most severe first.
    let open = db.with_status(AlertStatus::Open);
    assert!(
        open.len() >= 3,
        "the history leaves findings open: {open:#?}"
    );
    assert!(
        open.iter().any(|a| a.severity != open[0].severity),
        "findings of several severities"
    );
    let rows: Vec<ElementRef<'_>> = doc.select(&sel("#open-findings-table tbody tr")).collect();
    assert_eq!(rows.len(), open.len());
    assert_eq!(text(one(&doc, "#tile-open .value")), open.len().to_string());
    let listed: Vec<i64> = rows
        .iter()
        .map(|r| r.value().attr("data-alert").unwrap().parse().unwrap())
        .collect();
    let mut expected: Vec<i64> = open.iter().map(|a| a.id.get()).collect();
    expected.sort_by_key(|id| {
        let a = open.iter().find(|a| a.id.get() == *id).unwrap();
        (std::cmp::Reverse(a.severity), a.opened_at.to_string(), a.id)
    });
    assert_eq!(listed, expected, "most severe, then oldest, first");

    // Per rule: the fresh evaluation of the last snapshot agrees with the recorded findings.
    let open_by_rule = db.open_by_rule();
    for rule in rules.rules().iter().filter(|r| r.enabled && !r.is_change()) {
        let row = one(
            &doc,
            &format!("#compliance-rules tr[data-rule=\"{}\"]", rule.id),
        );
        let c = cells(row);
        let open = open_by_rule.get(rule.id.as_str()).copied().unwrap_or(0);
        let kind_count = db.resources_by_kind[rule.resource.as_str()];
        assert_eq!(number(&c[2]), kind_count, "{}: checks", rule.id);
        assert_eq!(c[4], open.to_string(), "{}: fail = open findings", rule.id);
        assert_eq!(number(&c[3]), kind_count - open, "{}: pass", rule.id);
        assert_eq!((c[5].as_str(), c[6].as_str()), ("0", "0"), "{}", rule.id);
    }
    assert!(
        open_by_rule["source-missing-environment-label"] > 0
            && open_by_rule["external-user-workspace-wide-access"] > 0
    );
    // Per change rule: the alerts it fired.
    let fired = db.with_status(AlertStatus::Fired);
    for rule in rules.rules().iter().filter(|r| r.enabled && r.is_change()) {
        let row = one(
            &doc,
            &format!("#change-rules tr[data-rule=\"{}\"]", rule.id),
        );
        let count = fired.iter().filter(|a| a.rule_id == rule.id).count();
        assert_eq!(cells(row)[3], count.to_string(), "{}", rule.id);
    }

    // Pass rate per tag and per framework, by hand.
    let compliance: Vec<&segwatch_core::rules::Rule> = rules
        .rules()
        .iter()
        .filter(|r| r.enabled && !r.is_change())
        .collect();
    let mut tags_seen = 0;
    for row in doc.select(&sel("tr[data-tag]")) {
        let tag = row.value().attr("data-tag").unwrap();
        let carrying: Vec<_> = compliance
            .iter()
            .copied()
            .filter(|r| r.tags.iter().any(|t| t == tag))
            .collect();
        let shown = cells(row)[5].clone();
        match db.pass_rate(&carrying) {
            Some(rate) => assert_eq!(shown, rate, "{tag}"),
            None => assert_eq!(shown, "no checks", "{tag}"),
        }
        tags_seen += 1;
    }
    let all_tags: std::collections::BTreeSet<&String> = rules
        .rules()
        .iter()
        .filter(|r| r.enabled)
        .flat_map(|r| &r.tags)
        .collect();
    assert_eq!(tags_seen, all_tags.len(), "one row per tag");
    let soc2: Vec<_> = compliance
        .iter()
        .copied()
        .filter(|r| r.tags.iter().any(|t| t.starts_with("soc2:")))
        .collect();
    let row = one(&doc, "#framework-overview tr[data-framework=\"soc2\"]");
    assert_eq!(cells(row)[0], "SOC 2");
    assert_eq!(Some(cells(row)[6].clone()), db.pass_rate(&soc2));
    let overall = text(one(&doc, "#tile-pass-rate .value"));
    assert_eq!(Some(overall), db.pass_rate(&compliance));

    // Resolved findings and notable changes.
    let resolved = db.with_status(AlertStatus::Resolved);
    assert_eq!(
        resolved.len(),
        2,
        "one resolved in each good poll after the baseline"
    );
    let rows: Vec<Vec<String>> = doc
        .select(&sel("#resolved-findings-table tbody tr"))
        .map(cells)
        .collect();
    assert_eq!(rows.len(), resolved.len());
    assert!(rows.iter().all(|r| r[6] == "Became compliant"), "{rows:?}");
    assert_eq!(
        doc.select(&sel("#change-alerts-table tbody tr")).count(),
        fired.len()
    );
    assert!(
        fired
            .iter()
            .any(|a| a.rule_id == "production-label-removed")
    );
    let total = doc
        .select(&sel("#change-counts tr.total td"))
        .map(text)
        .next_back()
        .unwrap();
    assert_eq!(total, db.changes.to_string());

    // A resource name that is markup is shown as text, never as markup.
    assert!(!raw.contains(SCRIPT_EMAIL));
    assert!(raw.contains("&lt;script&gt;alert(1)&lt;&#x2f;script&gt;@evil.io"));
    let names: Vec<String> = doc
        .select(&sel("#open-findings-table tbody tr td:nth-child(3)"))
        .map(text)
        .collect();
    assert!(
        names.iter().any(|n| n.starts_with(SCRIPT_EMAIL)),
        "{names:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_markdown_report_has_the_same_content_as_tables() {
    let History {
        ws, rules, fourth, ..
    } = history().await;
    let md = ws
        .segwatch()
        .args(["report", "--format", "md"])
        .success()
        .stdout();
    let db = facts(&ws, fourth);
    let section = |heading: &str| -> Vec<&str> {
        let start = md
            .find(heading)
            .unwrap_or_else(|| panic!("no {heading} in:\n{md}"));
        let rest = &md[start + heading.len()..];
        let end = rest.find("\n## ").unwrap_or(rest.len());
        rest[..end].lines().collect()
    };
    for heading in [
        "## 1. Summary",
        "## 2. Pass rate by framework",
        "## 3. Results by rule",
        "## 4. Open findings",
        "## 5. Resolved findings",
        "## 6. Notable changes",
        "## 7. Data flows",
        "## 8. Method",
    ] {
        assert!(md.contains(&format!("\n{heading}\n")), "no {heading}");
    }
    assert!(md.contains("| Evidence | complete snapshots 1 ("));
    assert!(md.contains("3 complete polls, 1 failed |"));

    let rows = |heading: &str| -> Vec<Vec<String>> {
        section(heading)
            .into_iter()
            .filter(|l| l.starts_with("| **"))
            .map(|l| {
                l.trim_matches('|')
                    .split(" | ")
                    .map(|c| c.trim().to_string())
                    .collect()
            })
            .collect()
    };
    let open = db.with_status(AlertStatus::Open);
    assert_eq!(rows("## 4. Open findings").len(), open.len());
    assert_eq!(
        rows("## 5. Resolved findings").len(),
        db.with_status(AlertStatus::Resolved).len()
    );
    let open_by_rule = db.open_by_rule();
    let rule_rows = rows("## 3. Results by rule");
    for rule in rules.rules().iter().filter(|r| r.enabled && !r.is_change()) {
        let row = rule_rows
            .iter()
            .find(|r| r[2] == rule.id)
            .unwrap_or_else(|| panic!("no row for {}", rule.id));
        let open = open_by_rule.get(rule.id.as_str()).copied().unwrap_or(0);
        assert_eq!(row[5], open.to_string(), "{}", rule.id);
    }

    // Long lists are cut to the most severe rows, and say so.
    let cut = ws
        .segwatch()
        .args(["report", "--format", "md", "--max-rows", "1"])
        .success()
        .stdout();
    let cut_rows = cut
        .split("## 4. Open findings")
        .nth(1)
        .and_then(|rest| rest.split("\n## ").next())
        .unwrap()
        .lines()
        .filter(|l| l.starts_with("| **"))
        .count();
    assert_eq!(cut_rows, 1);
    assert!(
        cut.contains(&format!(
            "Showing the first 1 of {} open findings",
            open.len()
        )),
        "{cut}"
    );

    // Escaped: the markup stays text, and table cells stay whole.
    assert!(md.contains(r"\<script\>alert(1)\</script\>@evil.io"));
    assert!(!md.replace(r"\<", "").contains("<script"));
    for line in md.lines().filter(|l| l.starts_with('|')) {
        let header_cells = line.replace(r"\|", "").matches('|').count();
        assert!(header_cells >= 3, "a broken table row: {line}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_period_reports_the_state_of_its_own_last_snapshot() {
    let History {
        ws,
        rules,
        second,
        failed,
        fourth,
        ..
    } = history().await;
    let store = Store::open_read_only(&ws.db()).unwrap();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let started = |id| {
        store
            .snapshot(workspace, id)
            .unwrap()
            .started_at
            .to_string()
    };
    let (since, until) = (started(second), started(fourth));
    assert_eq!(
        store.snapshot(workspace, failed).unwrap().status,
        SnapshotStatus::Failed
    );
    let report = ws
        .segwatch()
        .args([
            "report", "--format", "json", "--since", &since, "--until", &until,
        ])
        .success()
        .json();
    let header = &report["header"];
    assert_eq!(header["first_snapshot"]["id"], second.get());
    assert_eq!(header["last_snapshot"]["id"], second.get());
    assert_eq!(
        (&header["complete_polls"], &header["failed_polls"]),
        (&1.into(), &1.into())
    );

    // Open right after snapshot 2: findings it or the baseline raised that nothing had yet
    // resolved, including the one snapshot 4 resolved later.
    let alerts = store.alerts(workspace, &AlertFilter::default()).unwrap();
    let open_then: Vec<&AlertRecord> = alerts
        .iter()
        .filter(|a| {
            a.rule_kind == "compliance"
                && a.snapshot_id <= second
                && a.resolved_snapshot_id.is_none_or(|r| r > second)
        })
        .collect();
    assert!(
        open_then
            .iter()
            .any(|a| a.resolved_snapshot_id == Some(fourth)),
        "a finding resolved after the period counts as open in it"
    );
    assert_eq!(report["open_findings"]["total"], open_then.len());
    for rule in report["compliance_rules"].as_array().unwrap() {
        let id = rule["id"].as_str().unwrap();
        let open = open_then.iter().filter(|a| a.rule_id == id).count();
        assert_eq!(rule["tally"]["fail"], open, "{id} on snapshot {second}");
        assert_eq!(rule["recorded_open"], open, "{id}");
    }
    assert_eq!(report["compliance_rules"].as_array().unwrap().len(), 9);
    assert_eq!(
        rules.rules().iter().filter(|r| !r.is_change()).count(),
        9,
        "the starter pack"
    );

    // Only what the period's polls raised and resolved.
    let fired_then = alerts
        .iter()
        .filter(|a| a.status == AlertStatus::Fired && a.snapshot_id == second)
        .count();
    assert_eq!(report["change_alerts"]["total"], fired_then);
    let resolved_then = alerts
        .iter()
        .filter(|a| a.resolved_snapshot_id == Some(second))
        .count();
    assert_eq!(
        (report["resolved_findings"]["total"].clone(), resolved_then),
        (1.into(), 1)
    );
    let changes_then: i64 = store
        .connection()
        .query_row(
            "SELECT count(*) FROM changes WHERE snapshot_id = ?1",
            [second.get()],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(report["summary"]["changes"], changes_then);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_times_and_empty_periods_are_refused_clearly() {
    let ws = TestWorkspace::start().await;
    let rules = Arc::new(RuleSet::load(Path::new(STARTER_RULES)).unwrap());
    ws.poll_rules(&rules).await.unwrap();

    ws.segwatch()
        .args(["report", "--since", "last tuesday"])
        .code(2)
        .stderr_has_line("error: invalid value 'last tuesday' for '--since <TIME>': `last tuesday` is not a time: expected an RFC 3339 timestamp (2026-11-01T09:30:00Z) or a date (2026-11-01, UTC)");
    ws.segwatch()
        .args(["report", "--until", "2026-13-01"])
        .code(2)
        .stderr_has_line("error: invalid value '2026-13-01' for '--until <TIME>': `2026-13-01` is not a time: expected an RFC 3339 timestamp (2026-11-01T09:30:00Z) or a date (2026-11-01, UTC)");
    ws.segwatch()
        .args([
            "report",
            "--since",
            "2026-11-02",
            "--until",
            "2026-11-01T12:00:00Z",
        ])
        .code(1)
        .stderr_has_line("error: --since (2026-11-02T00:00:00+00:00) must be before --until (2026-11-01T12:00:00+00:00)");
    ws.segwatch()
        .args(["report", "--since", "2000-01-01", "--until", "2000-01-31"])
        .args(["--out", "report.html"])
        .code(1)
        .stderr_contains(&[
            "no complete snapshot between 2000-01-01T00:00:00.000Z and 2000-02-01T00:00:00.000Z",
            "the latest complete snapshot is 1",
        ]);
    assert!(
        !ws.dir.path().join("report.html").exists(),
        "nothing is written on failure"
    );
}
