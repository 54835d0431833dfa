use std::collections::BTreeSet;

use serde_json::{Value, json};

use super::*;

const WS: &str = "ws1";

fn res(kind: ResourceKind, id: &str, name: &str, body: Value) -> Resource {
    Resource::new(kind, id.into(), name.into(), body)
}

fn workspace() -> Resource {
    res(
        ResourceKind::Workspace,
        WS,
        "Acme",
        json!({"id": WS, "name": "Acme"}),
    )
}

fn user(id: &str, email: &str, permissions: Value) -> Resource {
    res(
        ResourceKind::User,
        id,
        email,
        json!({"id": id, "name": "", "email": email, "permissions": permissions}),
    )
}

fn group(
    id: &str,
    name: &str,
    permissions: Value,
    members: &[(&str, &str)],
    invites: &[&str],
) -> Resource {
    let members: Vec<Value> = members
        .iter()
        .map(|(id, email)| json!({"id": id, "name": "", "email": email}))
        .collect();
    res(
        ResourceKind::Group,
        id,
        name,
        json!({"id": id, "name": name, "memberCount": members.len(), "permissions": permissions,
               "members": members, "invites": invites}),
    )
}

fn source(id: &str, name: &str, labels: &[(&str, &str)]) -> Resource {
    let labels: Vec<Value> = labels
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    res(
        ResourceKind::Source,
        id,
        name,
        json!({"id": id, "name": name, "slug": id, "workspaceId": WS, "enabled": true,
               "writeKeys": [], "labels": labels}),
    )
}

fn on_source(role: &str, ids: &[&str]) -> Value {
    let resources: Vec<Value> = ids
        .iter()
        .map(|id| json!({"id": id, "type": "SOURCE"}))
        .collect();
    json!({"roleId": format!("r-{role}"), "roleName": role, "resources": resources})
}

fn on_workspace(role: &str, labels: &[(&str, &str)]) -> Value {
    if labels.is_empty() {
        return json!({"roleId": format!("r-{role}"), "roleName": role,
                      "resources": [{"id": WS, "type": "WORKSPACE"}]});
    }
    let labels: Vec<Value> = labels
        .iter()
        .map(|(k, v)| json!({"key": k, "value": v}))
        .collect();
    json!({"roleId": format!("r-{role}"), "roleName": role,
           "resources": [{"id": WS, "type": "WORKSPACE", "labels": labels}], "labels": labels})
}

/// `email role resource-name via [filter] [invite]`, one line per grant, in the grants' order.
fn lines(access: &EffectiveAccess) -> Vec<String> {
    access.grants().map(|g| describe(&g)).collect()
}

fn describe(g: &Grant) -> String {
    let via = match &g.via {
        Via::Direct => "direct".to_string(),
        Via::Group { name, .. } => format!("group {name}"),
    };
    let mut s = format!(
        "{} {} {} {}",
        g.user.email, g.role_name, g.resource.name, via
    );
    if !g.label_filter.is_empty() {
        let f: Vec<String> = g
            .label_filter
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect();
        s.push_str(&format!(" [{}]", f.join(",")));
    }
    if g.invite {
        s.push_str(" invite");
    }
    s
}

fn changes(before: &[Resource], after: &[Resource]) -> Vec<String> {
    let b = EffectiveAccess::compute(before);
    let a = EffectiveAccess::compute(after);
    diff(&b, &a)
        .iter()
        .map(|c| {
            let sign = match c.change {
                ChangeKind::Added => '+',
                ChangeKind::Removed => '-',
            };
            format!("{sign} {}", describe(&c.grant))
        })
        .collect()
}

fn payments() -> Vec<Resource> {
    vec![
        workspace(),
        source("s1", "Payments (prod)", &[("environment", "prod")]),
        source("s2", "Web (staging)", &[("environment", "staging")]),
        source(
            "s3",
            "Mobile (prod)",
            &[("environment", "prod"), ("team", "mobile")],
        ),
        source("s4", "Legacy", &[]),
    ]
}

#[test]
fn a_direct_grant_on_a_source_reaches_that_source_only() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_source("Source Admin", &["s1"])]),
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        ["alice@acme.io Source Admin Payments (prod) direct"]
    );
    let g = a.grants().next().unwrap();
    assert_eq!(g.user.id, "u1");
    assert_eq!(g.resource.kind, "SOURCE");
    assert_eq!(g.resource.id, "s1");
    assert_eq!(g.role_id, "r-Source Admin");
    assert!(!g.invite);
}

#[test]
fn an_unrestricted_workspace_grant_is_one_grant_on_the_workspace() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_workspace("Workspace Owner", &[])]),
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(lines(&a), ["alice@acme.io Workspace Owner Acme direct"]);
    assert_eq!(a.grant_count(), 1);
}

#[test]
fn group_members_hold_the_groups_permissions() {
    let mut rs = payments();
    rs.push(user("u1", "alice@acme.io", json!([])));
    rs.push(user("u2", "bob@acme.io", json!([])));
    rs.push(group(
        "g1",
        "Data Eng",
        json!([on_source("Source Read-only", &["s2"])]),
        &[("u1", "alice@acme.io")],
        &[],
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        ["alice@acme.io Source Read-only Web (staging) group Data Eng"]
    );
    assert_eq!(
        a.grants().next().unwrap().via,
        Via::Group {
            id: "g1".into(),
            name: "Data Eng".into()
        }
    );
}

#[test]
fn a_user_in_two_groups_holds_both_and_their_direct_grants() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_source("Source Read-only", &["s4"])]),
    ));
    rs.push(group(
        "g1",
        "Data Eng",
        json!([on_source("Source Read-only", &["s2"])]),
        &[("u1", "alice@acme.io")],
        &[],
    ));
    rs.push(group(
        "g2",
        "Payments",
        json!([on_source("Source Admin", &["s1"])]),
        &[("u1", "alice@acme.io")],
        &[],
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        [
            "alice@acme.io Source Admin Payments (prod) group Payments",
            "alice@acme.io Source Read-only Legacy direct",
            "alice@acme.io Source Read-only Web (staging) group Data Eng",
        ]
    );
}

#[test]
fn several_roles_on_one_resource_are_all_reported_and_the_highest_is_chosen() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_source("Source Read-only", &["s1"])]),
    ));
    rs.push(group(
        "g1",
        "Payments",
        json!([on_source("Source Admin", &["s1"])]),
        &[("u1", "alice@acme.io")],
        &[],
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        [
            "alice@acme.io Source Admin Payments (prod) group Payments",
            "alice@acme.io Source Read-only Payments (prod) direct",
        ]
    );
    let top = highest_per_resource(a.grants());
    assert_eq!(top.len(), 1);
    assert_eq!(top[0].role_name, "Source Admin");
    assert_eq!(access_level("Workspace Owner"), AccessLevel::Owner);
    assert_eq!(access_level("Source Admin"), AccessLevel::Edit);
    assert_eq!(access_level("Source Read-only"), AccessLevel::Read);
    assert_eq!(access_level("Minimal Workspace Access"), AccessLevel::Other);
}

#[test]
fn a_workspace_role_restricted_by_one_label_reaches_the_sources_carrying_it() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_workspace("Source Admin", &[("environment", "prod")])]),
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        [
            "alice@acme.io Source Admin Payments (prod) direct [environment=prod]",
            "alice@acme.io Source Admin Mobile (prod) direct [environment=prod]",
        ]
    );
    assert_eq!(a.grant_count(), 2);
    assert_eq!(a.policy_count(), 1);
}

#[test]
fn several_labels_reach_the_sources_carrying_any_of_them_once_each() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_workspace(
            "Source Read-only",
            &[
                ("team", "mobile"),
                ("environment", "staging"),
                ("environment", "prod")
            ]
        )]),
    ));
    let a = EffectiveAccess::compute(&rs);
    let filter = "[environment=prod,environment=staging,team=mobile]";
    assert_eq!(
        lines(&a),
        [
            format!("alice@acme.io Source Read-only Payments (prod) direct {filter}"),
            format!("alice@acme.io Source Read-only Web (staging) direct {filter}"),
            format!("alice@acme.io Source Read-only Mobile (prod) direct {filter}"),
        ]
    );
    assert_eq!(a.grant_count(), 3);
}

#[test]
fn labels_only_on_the_permission_restrict_a_workspace_resource_too() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([{"roleId": "r", "roleName": "Source Admin",
                "resources": [{"id": WS, "type": "WORKSPACE"}],
                "labels": [{"key": "environment", "value": "staging"}]}]),
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        ["alice@acme.io Source Admin Web (staging) direct [environment=staging]"]
    );
}

#[test]
fn labels_on_a_non_workspace_permission_are_ignored_and_the_named_resource_reached() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([{"roleId": "r", "roleName": "Source Admin",
                "resources": [{"id": "s4", "type": "SOURCE",
                               "labels": [{"key": "environment", "value": "prod"}]}],
                "labels": [{"key": "environment", "value": "prod"}]}]),
    ));
    let a = EffectiveAccess::compute(&rs);
    // s4 carries no label, yet the permission names it: it is reached, without a filter.
    assert_eq!(lines(&a), ["alice@acme.io Source Admin Legacy direct"]);
}

#[test]
fn a_pending_invite_to_a_group_is_flagged_and_is_not_a_user() {
    let mut rs = payments();
    rs.push(user("u1", "alice@acme.io", json!([])));
    rs.push(group(
        "g1",
        "Payments",
        json!([on_source("Source Admin", &["s1"])]),
        &[("u1", "alice@acme.io")],
        &["zed@partner.example"],
    ));
    let a = EffectiveAccess::compute(&rs);
    assert_eq!(
        lines(&a),
        [
            "alice@acme.io Source Admin Payments (prod) group Payments",
            "zed@partner.example Source Admin Payments (prod) group Payments invite",
        ]
    );
    let invite = a.grants().find(|g| g.invite).unwrap();
    assert_eq!(invite.user.id, "");
}

#[test]
fn a_source_without_labels_is_reached_by_no_label_restricted_grant() {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([
            on_workspace("Source Admin", &[("environment", "prod")]),
            on_workspace(
                "Source Read-only",
                &[("environment", "staging"), ("team", "mobile")]
            )
        ]),
    ));
    let a = EffectiveAccess::compute(&rs);
    assert!(a.grants().all(|g| g.resource.id != "s4"), "{:?}", lines(&a));
    assert_eq!(a.grant_count(), 4);
}

#[test]
fn a_removed_label_removes_access() {
    let mut before = payments();
    before.push(user(
        "u1",
        "alice@acme.io",
        json!([on_workspace("Source Admin", &[("environment", "prod")])]),
    ));
    let mut after = before.clone();
    after[3] = source("s3", "Mobile (prod)", &[("team", "mobile")]);
    assert_eq!(
        changes(&before, &after),
        ["- alice@acme.io Source Admin Mobile (prod) direct [environment=prod]"]
    );
    // And adding it back grants it again.
    assert_eq!(
        changes(&after, &before),
        ["+ alice@acme.io Source Admin Mobile (prod) direct [environment=prod]"]
    );
}

#[test]
fn a_user_added_to_a_group_gains_its_access() {
    let base = {
        let mut rs = payments();
        rs.push(user("u1", "alice@acme.io", json!([])));
        rs.push(user("u2", "carol@acme.io", json!([])));
        rs
    };
    let perms = json!([on_workspace("Source Admin", &[("environment", "prod")])]);
    let mut before = base.clone();
    before.push(group(
        "g1",
        "Data Eng",
        perms.clone(),
        &[("u1", "alice@acme.io")],
        &[],
    ));
    let mut after = base;
    after.push(group(
        "g1",
        "Data Eng",
        perms,
        &[("u1", "alice@acme.io"), ("u2", "carol@acme.io")],
        &[],
    ));
    assert_eq!(
        changes(&before, &after),
        [
            "+ carol@acme.io Source Admin Payments (prod) group Data Eng [environment=prod]",
            "+ carol@acme.io Source Admin Mobile (prod) group Data Eng [environment=prod]",
        ]
    );
}

#[test]
fn renaming_a_source_or_a_group_is_not_an_access_change() {
    let mut before = payments();
    before.push(user("u1", "alice@acme.io", json!([])));
    before.push(group(
        "g1",
        "Data Eng",
        json!([on_source("Source Admin", &["s1"])]),
        &[("u1", "alice@acme.io")],
        &[],
    ));
    let mut after = before.clone();
    after[1] = source("s1", "Payments (production)", &[("environment", "prod")]);
    after[6] = group(
        "g1",
        "Data Engineering",
        json!([on_source("Source Admin", &["s1"])]),
        &[("u1", "alice@acme.io")],
        &[],
    );
    assert!(changes(&before, &after).is_empty());
}

#[test]
fn the_order_does_not_depend_on_the_order_of_the_resources() {
    let mut rs = payments();
    rs.push(user(
        "u2",
        "bob@acme.io",
        json!([on_workspace("Source Admin", &[("environment", "prod")])]),
    ));
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_source("Source Admin", &["s1", "s2"])]),
    ));
    rs.push(group(
        "g1",
        "G",
        json!([on_workspace("Workspace Owner", &[])]),
        &[("u2", "bob@acme.io"), ("u1", "alice@acme.io")],
        &["x@y.io"],
    ));
    let forward = lines(&EffectiveAccess::compute(&rs));
    rs.reverse();
    assert_eq!(lines(&EffectiveAccess::compute(&rs)), forward);
}

/// A random workspace: users with direct permissions, groups with members and invites,
/// sources with random labels.
fn random_workspace(
    rng: &mut fastrand::Rng,
    users: usize,
    groups: usize,
    sources: usize,
) -> Vec<Resource> {
    const LABELS: [(&str, &str); 5] = [
        ("environment", "prod"),
        ("environment", "staging"),
        ("environment", "dev"),
        ("team", "mobile"),
        ("team", "payments"),
    ];
    const ROLES: [&str; 3] = ["Source Admin", "Source Read-only", "Workspace Owner"];
    let mut rs = vec![workspace()];
    for i in 0..sources {
        let labels: Vec<(&str, &str)> = LABELS
            .iter()
            .copied()
            .filter(|_| rng.u32(..4) == 0)
            .collect();
        rs.push(source(&format!("s{i}"), &format!("Source {i}"), &labels));
    }
    let perm = |rng: &mut fastrand::Rng| -> Value {
        let role = ROLES[rng.usize(..ROLES.len())];
        match rng.u32(..3) {
            0 => on_workspace(role, &[]),
            1 => {
                let labels: Vec<(&str, &str)> = LABELS
                    .iter()
                    .copied()
                    .filter(|_| rng.u32(..3) == 0)
                    .collect();
                on_workspace(role, &labels)
            }
            _ => on_source(role, &[&format!("s{}", rng.usize(..sources.max(1)))]),
        }
    };
    for i in 0..users {
        let n = rng.usize(..3);
        let perms: Vec<Value> = (0..n).map(|_| perm(rng)).collect();
        rs.push(user(
            &format!("u{i}"),
            &format!("user{i}@acme.io"),
            Value::Array(perms),
        ));
    }
    for g in 0..groups {
        let n = rng.usize(1..3);
        let perms: Vec<Value> = (0..n).map(|_| perm(rng)).collect();
        let ids: Vec<(String, String)> = (0..users)
            .filter(|_| rng.u32(..3) == 0)
            .map(|i| (format!("u{i}"), format!("user{i}@acme.io")))
            .collect();
        let members: Vec<(&str, &str)> =
            ids.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        let invites: Vec<&str> = if rng.bool() { vec!["inv@x.io"] } else { vec![] };
        rs.push(group(
            &format!("g{g}"),
            &format!("Group {g}"),
            Value::Array(perms),
            &members,
            &invites,
        ));
    }
    rs
}

/// Random edits: relabel, add or remove sources, change a user's permissions or a group.
fn mutate(rng: &mut fastrand::Rng, rs: &[Resource]) -> Vec<Resource> {
    let other = random_workspace(rng, 6, 3, 8);
    let mut out: Vec<Resource> = Vec::new();
    for r in rs {
        if rng.u32(..5) != 0 {
            out.push(r.clone());
        } else if let Some(o) = other.iter().find(|o| o.kind == r.kind && o.id == r.id) {
            out.push(o.clone()); // the same resource, changed
        } // else removed
    }
    for o in &other {
        if !out.iter().any(|r| r.kind == o.kind && r.id == o.id) && rng.bool() {
            out.push(o.clone());
        }
    }
    out
}

fn naive(before: &EffectiveAccess, after: &EffectiveAccess) -> BTreeSet<(ChangeKind, String)> {
    let key = |g: &Grant| format!("{:?}", g.key());
    let b: BTreeSet<String> = before.grants().map(|g| key(&g)).collect();
    let a: BTreeSet<String> = after.grants().map(|g| key(&g)).collect();
    b.difference(&a)
        .map(|k| (ChangeKind::Removed, k.clone()))
        .chain(a.difference(&b).map(|k| (ChangeKind::Added, k.clone())))
        .collect()
}

#[test]
fn diff_equals_the_set_difference_of_the_expanded_grants() {
    let mut rng = fastrand::Rng::with_seed(16);
    for _ in 0..200 {
        let before = random_workspace(&mut rng, 6, 3, 8);
        let after = mutate(&mut rng, &before);
        let b = EffectiveAccess::compute(&before);
        let a = EffectiveAccess::compute(&after);
        assert_eq!(b.grant_count(), b.grants().count());
        let d = diff(&b, &a);
        let got: BTreeSet<(ChangeKind, String)> = d
            .iter()
            .map(|c| (c.change, format!("{:?}", c.grant.key())))
            .collect();
        assert_eq!(got.len(), d.len(), "a change is reported twice");
        assert_eq!(got, naive(&b, &a));
        assert!(diff(&a, &a).is_empty());
    }
}

/// `reaching` and `held_by`: the queries of `segwatch access`.
fn reach_fixture() -> Vec<Resource> {
    let mut rs = payments();
    rs.push(user(
        "u1",
        "alice@acme.io",
        json!([on_source("Source Admin", &["s1"])]),
    ));
    rs.push(user(
        "u2",
        "bob@acme.io",
        json!([on_workspace("Workspace Owner", &[])]),
    ));
    rs.push(user(
        "u3",
        "carol@acme.io",
        json!([
            on_workspace("Minimal Workspace Access", &[]),
            on_workspace("Source Read-only", &[("environment", "prod")])
        ]),
    ));
    rs.push(user(
        "u4",
        "dan@acme.io",
        json!([on_workspace("Tracking Plan Admin", &[])]),
    ));
    rs.push(group(
        "g1",
        "Data Eng",
        json!([on_source("Source Read-only", &["s1", "s2"])]),
        &[("u4", "dan@acme.io")],
        &["erin@acme.io"],
    ));
    rs
}

#[test]
fn reaching_a_source_adds_unrestricted_workspace_grants_and_matching_label_grants() {
    let a = EffectiveAccess::compute(&reach_fixture());
    let who: Vec<String> = a.reaching("SOURCE", "s1").map(|g| describe(&g)).collect();
    assert_eq!(
        who,
        [
            "alice@acme.io Source Admin Payments (prod) direct",
            "bob@acme.io Workspace Owner Acme direct",
            "carol@acme.io Source Read-only Payments (prod) direct [environment=prod]",
            "dan@acme.io Source Read-only Payments (prod) group Data Eng",
            "erin@acme.io Source Read-only Payments (prod) group Data Eng invite",
        ]
    );
    // Not labelled prod: only the owner and the group.
    let who: Vec<String> = a.reaching("SOURCE", "s2").map(|g| describe(&g)).collect();
    assert_eq!(
        who,
        [
            "bob@acme.io Workspace Owner Acme direct",
            "dan@acme.io Source Read-only Web (staging) group Data Eng",
            "erin@acme.io Source Read-only Web (staging) group Data Eng invite",
        ]
    );
    // A source nobody was granted on is still reached by the owner.
    let who: Vec<String> = a.reaching("SOURCE", "s4").map(|g| describe(&g)).collect();
    assert_eq!(who, ["bob@acme.io Workspace Owner Acme direct"]);
}

#[test]
fn reaching_the_workspace_is_every_unrestricted_workspace_grant() {
    let a = EffectiveAccess::compute(&reach_fixture());
    let who: Vec<String> = a.reaching("WORKSPACE", WS).map(|g| describe(&g)).collect();
    assert_eq!(
        who,
        [
            "bob@acme.io Workspace Owner Acme direct",
            "carol@acme.io Minimal Workspace Access Acme direct",
            "dan@acme.io Tracking Plan Admin Acme direct",
        ]
    );
}

#[test]
fn reaching_agrees_with_the_expanded_grants_on_the_resource() {
    let a = EffectiveAccess::compute(&reach_fixture());
    for id in ["s1", "s2", "s3", "s4"] {
        let on_it: BTreeSet<Grant> = a
            .grants()
            .filter(|g| g.resource.kind == "SOURCE" && g.resource.id == id)
            .collect();
        let reaching: BTreeSet<Grant> = a
            .reaching("SOURCE", id)
            .filter(|g| g.resource.kind == "SOURCE")
            .collect();
        assert_eq!(reaching, on_it, "source {id}");
    }
}

#[test]
fn held_by_selects_one_subject_by_id_or_email() {
    let a = EffectiveAccess::compute(&reach_fixture());
    let by_id: Vec<Grant> = a.held_by("u3").collect();
    let by_email: Vec<Grant> = a.held_by("Carol@Acme.io").collect();
    assert_eq!(by_id, by_email);
    let all: Vec<Grant> = a.grants().filter(|g| g.user.id == "u3").collect();
    assert_eq!(by_id, all);
    assert_eq!(by_id.len(), 3, "minimal access + two prod sources");
    let invite: Vec<String> = a.held_by("erin@acme.io").map(|g| describe(&g)).collect();
    assert_eq!(
        invite,
        [
            "erin@acme.io Source Read-only Payments (prod) group Data Eng invite",
            "erin@acme.io Source Read-only Web (staging) group Data Eng invite",
        ]
    );
    assert_eq!(a.held_by("nobody@acme.io").count(), 0);
}

#[test]
fn roles_scoped_elsewhere_do_not_reach_sources() {
    for role in [
        "Minimal Workspace Access",
        "Workspace Billing Admin",
        "Tracking Plan Admin",
        "Warehouse Destination Read-only",
        "Engage User",
        "Identity Admin",
    ] {
        assert!(!role_reaches_sources(role), "{role}");
    }
    for role in [
        "Workspace Owner",
        "Source Admin",
        "Source Read-only",
        "Custom Ops",
    ] {
        assert!(role_reaches_sources(role), "{role}");
    }
}

/// Bodies that do not fit the typed reading exactly are read leniently, element by element,
/// as before: a malformed permission or member is skipped, the rest kept.
#[test]
fn malformed_elements_are_skipped_not_the_body() {
    let rs = vec![
        workspace(),
        source("s1", "Payments", &[("environment", "prod")]),
        res(
            ResourceKind::User,
            "u1",
            "alice@acme.io",
            json!({"id": "u1", "email": "alice@acme.io", "permissions": [
                {"roleId": 7, "roleName": "Broken", "resources": [{"id": "s1", "type": "SOURCE"}]},
                on_source("Source Admin", &["s1"]),
            ]}),
        ),
        res(
            ResourceKind::User,
            "u2",
            "bob@acme.io",
            json!({"id": "u2", "email": 42, "permissions": [on_source("Source Read-only", &["s1"])]}),
        ),
        res(
            ResourceKind::Group,
            "g1",
            "Ops",
            json!({"id": "g1", "name": "Ops", "permissions": [on_source("Source Read-only", &["s1"])],
                   "members": [17, "alice@acme.io", {"id": null, "email": "ghost@acme.io"},
                               {"email": 3}],
                   "invites": ["new@acme.io", 5]}),
        ),
    ];
    let ea = EffectiveAccess::compute(&rs);
    let got: Vec<(String, String, String, bool)> = ea
        .grants()
        .map(|g| (g.user.email, g.user.id, g.role_name, g.invite))
        .collect();
    assert_eq!(
        got,
        vec![
            (
                "alice@acme.io".into(),
                "u1".into(),
                "Source Admin".into(),
                false
            ),
            (
                "alice@acme.io".into(),
                "u1".into(),
                "Source Read-only".into(),
                false
            ),
            // `email` not a string: the resource's name stands for it.
            (
                "bob@acme.io".into(),
                "u2".into(),
                "Source Read-only".into(),
                false
            ),
            (
                "new@acme.io".into(),
                "".into(),
                "Source Read-only".into(),
                true
            ),
        ]
    );
}

#[test]
fn diff_lazily_gives_the_changes_of_diff() {
    let mut rng = fastrand::Rng::with_seed(7);
    for _ in 0..50 {
        let before = random_workspace(&mut rng, 6, 3, 8);
        let after = mutate(&mut rng, &before);
        let b = EffectiveAccess::compute(&before);
        let a = EffectiveAccess::compute(&after);
        let lazily = diff_lazily(&b, &a);
        assert_eq!(lazily.len(), diff(&b, &a).len());
        assert_eq!(lazily.iter().collect::<Vec<_>>(), diff(&b, &a));
    }
}

#[test]
fn editor_counts_equal_the_distinct_editors_among_the_grants_reaching_each_resource() {
    let mut rng = fastrand::Rng::with_seed(16);
    for _ in 0..100 {
        let rs = random_workspace(&mut rng, 8, 3, 8);
        let access = EffectiveAccess::compute(&rs);
        let mut targets: std::collections::BTreeSet<(String, String)> = (0..8)
            .map(|i| ("SOURCE".to_string(), format!("s{i}")))
            .collect();
        targets.insert(("WORKSPACE".into(), WS.into()));
        targets.insert(("SOURCE".into(), "gone".into()));
        let counts = access.editor_counts(&targets);
        // A source the snapshot does not hold (removed) has no editors.
        assert_eq!(counts[&("SOURCE".to_string(), "gone".to_string())], 0);
        targets.remove(&("SOURCE".to_string(), "gone".to_string()));
        for (kind, id) in &targets {
            let naive: BTreeSet<String> = access
                .reaching(kind, id)
                .filter(|g| !g.invite && access_level(&g.role_name) >= AccessLevel::Edit)
                .map(|g| g.user.id.clone())
                .collect();
            assert_eq!(
                counts[&(kind.clone(), id.clone())],
                naive.len(),
                "{kind} {id}"
            );
        }
    }
}

#[test]
fn the_resource_a_compact_change_reaches_is_its_grants_resource() {
    let mut rng = fastrand::Rng::with_seed(17);
    for _ in 0..100 {
        let before = random_workspace(&mut rng, 6, 3, 8);
        let after = mutate(&mut rng, &before);
        let (b, a) = (
            EffectiveAccess::compute(&before),
            EffectiveAccess::compute(&after),
        );
        let lazy = diff_lazily(&b, &a);
        let made: Vec<AccessChange> = lazy.iter().collect();
        let reached: Vec<(String, String)> = lazy
            .pending
            .iter()
            .map(|c| match c.change {
                ChangeKind::Removed => b.reached_resource(c),
                ChangeKind::Added => a.reached_resource(c),
            })
            .collect();
        let expected: Vec<(String, String)> = made
            .iter()
            .map(|c| (c.grant.resource.kind.clone(), c.grant.resource.id.clone()))
            .collect();
        assert_eq!(reached, expected);
    }
}
