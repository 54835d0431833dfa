//! What a poll stores and which changes it finds.

use std::collections::BTreeSet;

use segwatch_core::diff::{ChangeOp, ResourceChange};
use segwatch_core::model::ResourceKind;
use segwatch_simulator::Mutation;

use crate::util::TestWorkspace;

/// (kind, id, op, sorted field paths) of every change: what a test asserts exactly.
fn summary(changes: &[ResourceChange]) -> BTreeSet<(ResourceKind, String, ChangeOp, Vec<String>)> {
    changes
        .iter()
        .map(|c| {
            (
                c.kind,
                c.resource_id.clone(),
                c.op,
                c.fields.iter().map(|f| f.path.clone()).collect(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn first_poll_stores_every_resource_as_a_baseline() {
    let ws = TestWorkspace::start().await;
    let outcome = ws.poll().await.unwrap();
    assert!(outcome.is_baseline());
    assert!(outcome.changes.is_empty(), "a baseline reports no changes");

    let (users, groups, sources, roles, invites, labels) = ws.sim.read(|s| {
        (
            s.users.len(),
            s.groups.len(),
            s.sources.len(),
            s.roles.len(),
            s.invites.len(),
            s.labels.len(),
        )
    });
    let count = |k| outcome.resource_counts.get(&k).copied().unwrap_or(0);
    assert_eq!(count(ResourceKind::Workspace), 1);
    assert_eq!(count(ResourceKind::User), users);
    assert_eq!(count(ResourceKind::Group), groups);
    assert_eq!(count(ResourceKind::Source), sources);
    assert_eq!(count(ResourceKind::Role), roles);
    assert_eq!(count(ResourceKind::Invite), invites);
    assert_eq!(count(ResourceKind::Label), labels);

    // Stored exactly: every user with its permissions, every group with its members.
    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let stored = store.resources_at(workspace, outcome.snapshot_id).unwrap();
    assert_eq!(stored.len(), outcome.resource_count());
    let (user_id, user_roles, group_id, group_members) = ws.sim.read(|s| {
        let u = &s.users[0];
        let g = &s.groups[0];
        (
            u.id.clone(),
            u.permissions.len(),
            g.id.clone(),
            g.members.len(),
        )
    });
    let body = |kind, id: &str| -> serde_json::Value {
        let r = stored
            .iter()
            .find(|r| r.kind == kind && r.id == id)
            .expect("stored");
        serde_json::from_str(&r.body).unwrap()
    };
    assert_eq!(
        body(ResourceKind::User, &user_id)["permissions"]
            .as_array()
            .unwrap()
            .len(),
        user_roles
    );
    let group = body(ResourceKind::Group, &group_id);
    assert_eq!(group["members"].as_array().unwrap().len(), group_members);
    assert_eq!(group["memberCount"], group_members);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_mutations_yield_exactly_those_changes() {
    let ws = TestWorkspace::start().await;
    ws.poll().await.unwrap();

    let (owner_role, grantee, group_id, member_id, labelled, rotated, disabled) =
        ws.sim.read(|s| {
            let owner_role = s
                .roles
                .iter()
                .find(|r| r.name == "Workspace Owner")
                .unwrap()
                .id
                .clone();
            let grantee = s
                .users
                .iter()
                .find(|u| {
                    !u.permissions
                        .iter()
                        .any(|p| p.role_name == "Workspace Owner")
                })
                .unwrap()
                .id
                .clone();
            let group = s.groups.iter().find(|g| !g.members.is_empty()).unwrap();
            let labelled = s
                .sources
                .iter()
                .find(|src| src.label("environment").is_some())
                .unwrap()
                .id
                .clone();
            let rotated = s
                .sources
                .iter()
                .find(|src| src.id != labelled)
                .unwrap()
                .id
                .clone();
            let disabled = s
                .sources
                .iter()
                .find(|src| src.enabled && src.id != labelled && src.id != rotated)
                .unwrap()
                .id
                .clone();
            (
                owner_role,
                grantee,
                group.id.clone(),
                group.members[0].clone(),
                labelled,
                rotated,
                disabled,
            )
        });
    let apply = |m| ws.sim.apply(m).unwrap();
    apply(Mutation::AddUser {
        email: "new.hire@acme.io".into(),
        name: "New Hire".into(),
        role_name: "Minimal Workspace Access".into(),
    });
    apply(Mutation::GrantRole {
        user_id: grantee.clone(),
        role_name: "Workspace Owner".into(),
    });
    apply(Mutation::RemoveGroupMember {
        group_id: group_id.clone(),
        user_id: member_id.clone(),
    });
    apply(Mutation::RemoveSourceLabel {
        source_id: labelled.clone(),
        key: "environment".into(),
    });
    apply(Mutation::RotateWriteKey {
        source_id: rotated.clone(),
    });
    apply(Mutation::SetSourceEnabled {
        source_id: disabled.clone(),
        enabled: false,
    });
    let new_user = ws.sim.read(|s| {
        s.users
            .iter()
            .find(|u| u.email == "new.hire@acme.io")
            .unwrap()
            .id
            .clone()
    });

    let outcome = ws.poll().await.unwrap();
    let expected: BTreeSet<_> = [
        (ResourceKind::User, new_user, ChangeOp::Added, vec![]),
        (
            ResourceKind::User,
            grantee,
            ChangeOp::Modified,
            vec![format!("permissions[roleId={owner_role}]")],
        ),
        (
            ResourceKind::Group,
            group_id,
            ChangeOp::Modified,
            vec![
                "memberCount".to_string(),
                format!("members[id={member_id}]"),
            ],
        ),
        (
            ResourceKind::Source,
            labelled,
            ChangeOp::Modified,
            vec!["labels[key=environment]".to_string()],
        ),
        (
            ResourceKind::Source,
            rotated,
            ChangeOp::Modified,
            vec!["writeKeys".to_string()],
        ),
        (
            ResourceKind::Source,
            disabled,
            ChangeOp::Modified,
            vec!["enabled".to_string()],
        ),
    ]
    .into_iter()
    .collect();
    assert_eq!(summary(&outcome.changes), expected);

    // Old and new values are there, and the text diff reads like a diff.
    let enabled = outcome
        .changes
        .iter()
        .find(|c| c.fields.iter().any(|f| f.path == "enabled"))
        .unwrap();
    assert_eq!(enabled.fields[0].old, Some(serde_json::json!(true)));
    assert_eq!(enabled.fields[0].new, Some(serde_json::json!(false)));
    assert!(
        enabled.text_diff.contains("-  \"enabled\": true")
            && enabled.text_diff.contains("+  \"enabled\": false"),
        "{}",
        enabled.text_diff
    );

    // The same changes are in the database, one row each.
    assert_eq!(
        summary(&ws.store().changes_of(outcome.snapshot_id).unwrap()),
        expected
    );

    // And nothing changes again.
    let quiet = ws.poll().await.unwrap();
    assert!(quiet.changes.is_empty(), "{:?}", quiet.changes);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pure_reordering_is_not_a_change() {
    let ws = TestWorkspace::start().await;
    let first = ws.poll().await.unwrap();
    let before = ws.sim.read(|s| serde_json::to_string(&s.users).unwrap());
    ws.sim.shuffle();
    assert_ne!(
        before,
        ws.sim.read(|s| serde_json::to_string(&s.users).unwrap()),
        "the shuffle reordered"
    );
    let second = ws.poll().await.unwrap();
    assert!(second.changes.is_empty(), "{:?}", second.changes);
    assert_eq!(second.resource_count(), first.resource_count());
    // No new versions were stored either.
    let versions: i64 = ws
        .store()
        .connection()
        .query_row("SELECT count(*) FROM resource_versions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(versions as usize, first.resource_count());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_then_readded_resources_reconstruct_exactly() {
    let ws = TestWorkspace::start().await;
    let email = "returning@partner-agency.com".to_string();
    ws.sim
        .apply(Mutation::Invite {
            email: email.clone(),
            group_id: None,
        })
        .unwrap();
    let s1 = ws.poll().await.unwrap().snapshot_id;
    ws.sim
        .apply(Mutation::RevokeInvite {
            email: email.clone(),
        })
        .unwrap();
    let s2 = ws.poll().await.unwrap();
    assert_eq!(
        summary(&s2.changes),
        [(
            ResourceKind::Invite,
            email.clone(),
            ChangeOp::Removed,
            vec![]
        )]
        .into()
    );
    ws.sim
        .apply(Mutation::Invite {
            email: email.clone(),
            group_id: None,
        })
        .unwrap();
    let s3 = ws.poll().await.unwrap();
    assert_eq!(
        summary(&s3.changes),
        [(ResourceKind::Invite, email.clone(), ChangeOp::Added, vec![])].into()
    );

    let store = ws.store();
    let workspace = store.find_workspace("default").unwrap().unwrap();
    let has_invite = |snapshot| {
        store
            .resources_at(workspace, snapshot)
            .unwrap()
            .iter()
            .any(|r| r.kind == ResourceKind::Invite && r.id == email)
    };
    assert!(has_invite(s1));
    assert!(!has_invite(s2.snapshot_id));
    assert!(has_invite(s3.snapshot_id));
}
