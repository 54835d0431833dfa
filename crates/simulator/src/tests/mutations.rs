//! Mutations and shuffling: invariants, memberships, audit-free changes and reordering.

use super::*;

/// Sorts every array recursively, so two values compare equal iff they hold the same content.
fn unordered(v: &Value) -> Value {
    match v {
        Value::Array(items) => {
            let mut items: Vec<Value> = items.iter().map(unordered).collect();
            items.sort_by_key(|v| v.to_string());
            Value::Array(items)
        }
        Value::Object(map) => {
            Value::Object(map.iter().map(|(k, v)| (k.clone(), unordered(v))).collect())
        }
        other => other.clone(),
    }
}

#[tokio::test]
async fn mutations_keep_member_counts_and_memberships_consistent() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let (group, outsider, member) = sim.read(|st| {
        let g = st.groups[0].clone();
        let outsider = st
            .users
            .iter()
            .find(|u| !g.members.contains(&u.id))
            .unwrap()
            .id
            .clone();
        let member = g.members[0].clone();
        (g, outsider, member)
    });
    let member_count = |reply: Reply| {
        reply.json()["data"]["userGroup"]["memberCount"]
            .as_u64()
            .unwrap() as usize
    };
    let group_path = format!("/groups/{}", group.id);

    let d = sim
        .apply(Mutation::AddGroupMember {
            group_id: group.id.clone(),
            user_id: outsider.clone(),
        })
        .unwrap();
    assert!(d.contains(&group.name), "{d}");
    assert_eq!(
        member_count(client.get(&group_path, &[]).await),
        group.members.len() + 1
    );
    assert!(matches!(
        sim.apply(Mutation::AddGroupMember {
            group_id: group.id.clone(),
            user_id: outsider.clone()
        }),
        Err(SimError::Conflict(_))
    ));

    sim.apply(Mutation::RemoveGroupMember {
        group_id: group.id.clone(),
        user_id: outsider.clone(),
    })
    .unwrap();
    assert_eq!(
        member_count(client.get(&group_path, &[]).await),
        group.members.len()
    );

    // Removing a user removes them from every group.
    let groups_of_member: Vec<String> = sim.read(|st| {
        st.groups
            .iter()
            .filter(|g| g.members.contains(&member))
            .map(|g| g.id.clone())
            .collect()
    });
    let d = sim
        .apply(Mutation::RemoveUser {
            user_id: member.clone(),
        })
        .unwrap();
    assert!(d.starts_with("removed user "), "{d}");
    assert_eq!(
        client.get(&format!("/users/{member}"), &[]).await.status,
        StatusCode::NOT_FOUND
    );
    for g in &groups_of_member {
        let members = client.all(&format!("/groups/{g}/users"), "users", 10).await;
        assert!(!ids(&members).contains(&member));
        let count = member_count(client.get(&format!("/groups/{g}"), &[]).await);
        assert_eq!(count, members.len());
    }
    assert_eq!(client.all("/users", "users", 200).await.len(), 39);
    sim.read(|st| assert_eq!(st.check_invariants(), Ok(())));

    assert_eq!(
        sim.apply(Mutation::RemoveUser {
            user_id: member.clone()
        }),
        Err(SimError::NotFound {
            kind: "user",
            id: member.clone()
        })
    );
    sim.shutdown().await;
}

#[tokio::test]
async fn role_key_label_and_invite_mutations() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let (user, source, group) = sim.read(|st| {
        let owner_ids: HashSet<String> = st
            .users_with_workspace_role("Workspace Owner")
            .map(|u| u.id.clone())
            .collect();
        let user = st
            .users
            .iter()
            .find(|u| !owner_ids.contains(&u.id))
            .unwrap()
            .clone();
        let source = st
            .sources
            .iter()
            .find(|s| s.label("environment").is_some())
            .unwrap()
            .clone();
        (user, source, st.groups[1].clone())
    });

    let d = sim
        .apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Workspace Owner".into(),
        })
        .unwrap();
    assert_eq!(d, format!("granted Workspace Owner to {}", user.email));
    let body = client.get(&format!("/users/{}", user.id), &[]).await.json();
    let permissions = body["data"]["user"]["permissions"]
        .as_array()
        .unwrap()
        .clone();
    assert!(permissions.iter().any(|p| p["roleName"] == "Workspace Owner"
        && p["resources"] == json!([{"id": sim.read(|st| st.workspace.id.clone()), "type": "WORKSPACE"}])));
    assert!(matches!(
        sim.apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Workspace Owner".into()
        }),
        Err(SimError::Conflict(_))
    ));
    assert!(matches!(
        sim.apply(Mutation::GrantRole {
            user_id: user.id.clone(),
            role_name: "Janitor".into()
        }),
        Err(SimError::NotFound { kind: "role", .. })
    ));
    sim.apply(Mutation::RevokeRole {
        user_id: user.id.clone(),
        role_name: "Workspace Owner".into(),
    })
    .unwrap();
    assert_eq!(
        sim.read(|st| st.user(&user.id).unwrap().permissions.clone()),
        user.permissions
    );

    let d = sim
        .apply(Mutation::RotateWriteKey {
            source_id: source.id.clone(),
        })
        .unwrap();
    assert!(!d.contains(&source.write_keys[0]));
    let keys = sim.read(|st| st.source(&source.id).unwrap().write_keys.clone());
    assert_ne!(keys[0], source.write_keys[0]);
    assert_eq!(keys[1..], source.write_keys[1..]);
    assert_eq!(keys[0].len(), 32);

    sim.apply(Mutation::SetSourceEnabled {
        source_id: source.id.clone(),
        enabled: !source.enabled,
    })
    .unwrap();
    sim.apply(Mutation::RemoveSourceLabel {
        source_id: source.id.clone(),
        key: "environment".into(),
    })
    .unwrap();
    assert!(matches!(
        sim.apply(Mutation::RemoveSourceLabel {
            source_id: source.id.clone(),
            key: "environment".into()
        }),
        Err(SimError::Conflict(_))
    ));
    let d = sim
        .apply(Mutation::SetSourceLabel {
            source_id: source.id.clone(),
            key: "cost-center".into(),
            value: "cc-42".into(),
        })
        .unwrap();
    assert!(d.contains("cost-center=cc-42"), "{d}");
    let body = client
        .get(&format!("/sources/{}", source.id), &[])
        .await
        .json();
    let s = &body["data"]["source"];
    assert_eq!(s["enabled"], json!(!source.enabled));
    assert!(
        s["labels"]
            .as_array()
            .unwrap()
            .iter()
            .all(|l| l["key"] != "environment")
    );
    assert!(
        s["labels"]
            .as_array()
            .unwrap()
            .contains(&json!({"key": "cost-center", "value": "cc-42"}))
    );
    let labels = client.get("/labels", &[]).await.json();
    assert!(
        labels["data"]["labels"]
            .as_array()
            .unwrap()
            .iter()
            .any(|l| l["key"] == "cost-center")
    );

    // Group invites are workspace invites too; accepting one joins the group.
    let email = "new.hire@acme.io";
    sim.apply(Mutation::Invite {
        email: email.into(),
        group_id: Some(group.id.clone()),
    })
    .unwrap();
    let invites = client.all("/invites", "invites", 50).await;
    assert!(invites.contains(&json!(email)));
    let group_invites = client
        .all(&format!("/groups/{}/invites", group.id), "emails", 50)
        .await;
    assert!(group_invites.contains(&json!(email)));
    let d = sim
        .apply(Mutation::AddUser {
            email: email.into(),
            name: "New Hire".into(),
            role_name: "Minimal Workspace Access".into(),
        })
        .unwrap();
    assert!(d.contains(&group.name), "{d}");
    assert!(
        !client
            .all("/invites", "invites", 50)
            .await
            .contains(&json!(email))
    );
    let new_id = sim.read(|st| st.user_by_email(email).unwrap().id.clone());
    let members = client
        .all(&format!("/groups/{}/users", group.id), "users", 50)
        .await;
    assert!(ids(&members).contains(&new_id));
    assert!(matches!(
        sim.apply(Mutation::AddUser {
            email: email.into(),
            name: String::new(),
            role_name: "Minimal Workspace Access".into()
        }),
        Err(SimError::Conflict(_))
    ));
    assert!(matches!(
        sim.apply(Mutation::Invite {
            email: email.into(),
            group_id: None
        }),
        Err(SimError::Conflict(_))
    ));

    sim.apply(Mutation::Invite {
        email: "temp@gmail.com".into(),
        group_id: Some(group.id.clone()),
    })
    .unwrap();
    sim.apply(Mutation::RevokeInvite {
        email: "temp@gmail.com".into(),
    })
    .unwrap();
    sim.read(|st| {
        assert!(!st.invites.iter().any(|e| e == "temp@gmail.com"));
        assert!(
            st.groups
                .iter()
                .all(|g| !g.invites.iter().any(|e| e == "temp@gmail.com"))
        );
        assert_eq!(st.check_invariants(), Ok(()));
    });
    assert!(matches!(
        sim.apply(Mutation::RevokeInvite {
            email: "temp@gmail.com".into()
        }),
        Err(SimError::NotFound { kind: "invite", .. })
    ));
    assert!(matches!(
        sim.apply(Mutation::Invite {
            email: "not-an-email".into(),
            group_id: None
        }),
        Err(SimError::Invalid(_))
    ));
    sim.shutdown().await;
}

#[tokio::test]
async fn churn_and_random_mutations_keep_invariants() {
    let sim = sim(SimConfig {
        users: 500,
        groups: 20,
        sources: 100,
        invites: 10,
        ..SimConfig::default()
    })
    .await;
    let before = sim.read(Clone::clone);
    let d = sim.apply(Mutation::Churn { percent: 10.0 }).unwrap();
    assert_eq!(d, "churned 10%: changed 50 users, 2 groups, 10 sources");
    sim.read(|st| {
        assert_eq!(st.check_invariants(), Ok(()));
        let changed_users = st
            .users
            .iter()
            .zip(&before.users)
            .filter(|(a, b)| a != b)
            .count();
        let changed_sources = st
            .sources
            .iter()
            .zip(&before.sources)
            .filter(|(a, b)| a != b)
            .count();
        let changed_groups = st
            .groups
            .iter()
            .zip(&before.groups)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(
            (changed_users, changed_groups, changed_sources),
            (50, 2, 10)
        );
    });
    for bad in [0.0, -1.0, 101.0, f64::NAN] {
        assert!(matches!(
            sim.apply(Mutation::Churn { percent: bad }),
            Err(SimError::Invalid(_))
        ));
    }

    let mut kinds = HashSet::new();
    for _ in 0..300 {
        let d = sim.random_mutation();
        assert!(!d.is_empty() && !d.starts_with("no mutation"), "{d}");
        kinds.insert(d.split_whitespace().next().unwrap().to_owned());
    }
    for verb in ["granted", "removed", "rotated", "added", "invited"] {
        assert!(kinds.contains(verb), "{verb} missing from {kinds:?}");
    }
    sim.read(|st| {
        assert_eq!(st.check_invariants(), Ok(()));
        assert!(st.users_with_workspace_role("Workspace Owner").count() >= 1);
    });
    sim.shutdown().await;
}

#[tokio::test]
async fn mutations_serialise_with_an_op_tag() {
    let m = Mutation::Invite {
        email: "a@b.io".into(),
        group_id: None,
    };
    assert_eq!(
        serde_json::to_value(&m).unwrap(),
        json!({"op": "invite", "email": "a@b.io", "group_id": null})
    );
    let back: Mutation = serde_json::from_value(json!({"op": "churn", "percent": 1.0})).unwrap();
    assert_eq!(back, Mutation::Churn { percent: 1.0 });
    let back: Mutation =
        serde_json::from_value(json!({"op": "invite", "email": "a@b.io"})).unwrap();
    assert_eq!(back, m);
}

/// Every list the API serves, fully paged, keyed by its envelope key.
#[tokio::test]
async fn a_removed_user_can_come_back_with_the_same_id() {
    let sim = sim(SimConfig::default()).await;
    let gone = sim.read(|st| st.users[3].clone());
    sim.apply(Mutation::RemoveUser {
        user_id: gone.id.clone(),
    })
    .unwrap();
    let back = Mutation::AddExistingUser {
        user_id: gone.id.clone(),
        email: gone.email.clone(),
        name: gone.name.clone(),
        role_name: "Workspace Owner".into(),
    };
    sim.apply(back.clone()).unwrap();
    sim.read(|st| {
        let user = st.user(&gone.id).expect("back under the same id");
        assert_eq!(user.email, gone.email);
        assert!(
            st.users_with_workspace_role("Workspace Owner")
                .any(|u| u.id == gone.id)
        );
        assert_eq!(st.check_invariants(), Ok(()));
    });
    assert!(matches!(sim.apply(back), Err(SimError::Conflict(_))));
    assert!(matches!(
        sim.apply(Mutation::AddExistingUser {
            user_id: gone.id.clone(),
            email: "someone.else@acme.io".into(),
            name: String::new(),
            role_name: "Workspace Owner".into(),
        }),
        Err(SimError::Conflict(_))
    ));
    sim.shutdown().await;
}

async fn snapshot(client: &Client) -> Value {
    let mut all = serde_json::Map::new();
    for (path, key) in [
        ("/users", "users"),
        ("/groups", "userGroups"),
        ("/sources", "sources"),
        ("/roles", "roles"),
        ("/invites", "invites"),
    ] {
        all.insert(
            key.to_owned(),
            Value::Array(client.all(path, key, 200).await),
        );
    }
    let labels = client.get("/labels", &[]).await.json()["data"]["labels"].clone();
    all.insert("labels".into(), labels);
    Value::Object(all)
}

#[tokio::test]
async fn shuffle_reorders_without_changing_content() {
    let sim = sim(SimConfig::default()).await;
    let client = Client::new(&sim);
    let before = snapshot(&client).await;
    let state_before = sim.read(Clone::clone);
    sim.shuffle();
    let after = snapshot(&client).await;
    let state_after = sim.read(Clone::clone);

    assert_eq!(unordered(&before), unordered(&after));
    for key in [
        "users",
        "userGroups",
        "sources",
        "roles",
        "invites",
        "labels",
    ] {
        assert_ne!(before[key], after[key], "{key} kept its order");
    }
    let members_moved = state_before.groups.iter().any(|g| {
        let g2 = state_after.group(&g.id).unwrap();
        g2.members != g.members
    });
    assert!(members_moved);
    for s in &state_before.sources {
        assert_eq!(state_after.source(&s.id).unwrap().write_keys, s.write_keys);
    }
    assert_eq!(state_after.check_invariants(), Ok(()));
    sim.shutdown().await;
}
