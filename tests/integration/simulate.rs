//! `segwatch simulate` as its own process: plans, API releases and the new fault kinds given as
//! flags behave over loopback as `--help` documents them.

use std::io::{BufRead, BufReader};
use std::process::Child;

use serde_json::{Value, json};

use crate::util::Segwatch;

const TOKEN: &str = "simulate-e2e-token";

/// Kills the simulator when the test ends, passed or not.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts the binary on a free port and returns it with its base URL (from its first line).
fn simulate(extra: &[&str]) -> (Running, String) {
    let mut child = Segwatch::new()
        .env("SEGWATCH_SIMULATOR_TOKEN", TOKEN)
        .args(["simulate", "--listen", "127.0.0.1:0"])
        .args(extra)
        .spawn();
    let stdout = child.stdout.take().expect("stdout is piped");
    let running = Running(child);
    let mut lines = BufReader::new(stdout).lines();
    let first = lines
        .next()
        .expect("a first line")
        .expect("readable stdout");
    let url = first
        .split_whitespace()
        .find(|w| w.starts_with("http://"))
        .unwrap_or_else(|| panic!("no URL in `{first}`"))
        .to_owned();
    // Keep draining stdout so the child never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    (running, url)
}

async fn get(url: &str, path: &str, query: &[(&str, &str)]) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("{url}{path}"))
        .bearer_auth(TOKEN)
        .query(query)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    (status, response.json().await.unwrap())
}

/// Every user id, read ten at a time with the simulator's own cursors.
async fn user_ids(url: &str) -> Vec<String> {
    let mut ids = Vec::new();
    let mut cursor = String::new();
    loop {
        let mut query = vec![("pagination[count]", "10")];
        if !cursor.is_empty() {
            query.push(("pagination[cursor]", cursor.as_str()));
        }
        let (status, body) = get(url, "/users", &query).await;
        assert_eq!(status, 200, "{body}");
        for user in body["data"]["users"].as_array().unwrap() {
            ids.push(user["id"].as_str().unwrap().to_owned());
        }
        match body["data"]["pagination"]["next"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => return ids,
        }
    }
}

#[tokio::test]
async fn team_plan_release_and_race_from_flags() {
    let (_sim, url) = simulate(&[
        "--plan",
        "team",
        "--unavailable",
        "/warehouses",
        "--release",
        "users:createdAt",
        "--fault",
        "race:delete,path=/users",
    ]);
    let page = [("pagination[count]", "10")];
    let (status, body) = get(&url, "/groups", &page).await;
    assert_eq!(status, 403);
    assert_eq!(body["errors"][0]["type"], "Forbidden");
    assert!(
        body["errors"][0]["message"]
            .as_str()
            .unwrap()
            .contains("not available on this workspace's plan (team)"),
        "{body}"
    );
    assert_eq!(get(&url, "/audit-events", &page).await.0, 403);
    assert_eq!(get(&url, "/warehouses", &page).await.0, 404);
    let (status, body) = get(&url, "/", &[]).await;
    assert_eq!(status, 200);
    assert!(body["data"]["workspace"]["id"].is_string());

    // The first page is read before the race fires, on the second.
    let (_, first) = get(&url, "/users", &[("pagination[count]", "200")]).await;
    let before: Vec<String> = first["data"]["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| {
            assert_eq!(u["createdAt"], json!("2024-01-01T00:00:00.000Z"), "{u}");
            u["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(before.len(), 40);
    let read = user_ids(&url).await;
    let mut expected = before.clone();
    expected.remove(10);
    assert_eq!(
        read, expected,
        "one existing user skipped, the deleted first one read"
    );
    assert_eq!(
        get(&url, &format!("/users/{}", before[0]), &[]).await.0,
        404
    );
    let (status, skipped) = get(&url, &format!("/users/{}", before[10]), &[]).await;
    assert_eq!(status, 200);
    assert_eq!(
        skipped["data"]["user"]["createdAt"],
        json!("2024-01-01T00:00:00.000Z")
    );
    let (status, races) = get(&url, "/_simulator/races", &[]).await;
    assert_eq!(status, 200);
    assert_eq!(races[0]["id"], json!(before[0]));
}

#[tokio::test]
async fn malformed_records_from_flags() {
    let (_sim, url) = simulate(&["--fault", "bad-item:not-object,path=/sources,times=1"]);
    let (status, body) = get(&url, "/sources", &[("pagination[count]", "200")]).await;
    assert_eq!(status, 200);
    let sources = body["data"]["sources"].as_array().unwrap();
    assert_eq!(sources.len(), 13);
    assert_eq!(sources[6], json!("not-an-object"));
    assert!(
        sources
            .iter()
            .filter(|s| s.is_object())
            .all(|s| s["id"].is_string())
    );
    let (_, again) = get(&url, "/sources", &[("pagination[count]", "200")]).await;
    assert_eq!(again["data"]["sources"].as_array().unwrap().len(), 12);
}

#[test]
fn bad_flags_exit_2_naming_the_value() {
    for (flag, value, needle) in [
        ("--plan", "free", "unknown plan `free`"),
        ("--release", "users", "invalid release `users`"),
        ("--unavailable", "/groups=500", "403 or 404"),
        ("--fault", "race:delete", "`race` needs `path=/users`"),
    ] {
        let run = Segwatch::new()
            .env("SEGWATCH_SIMULATOR_TOKEN", TOKEN)
            .args(["simulate", "--listen", "127.0.0.1:0", flag, value])
            .code(2);
        assert_eq!(run.output.status.code(), Some(2), "{flag} {value}");
        assert!(
            run.stderr().contains(needle),
            "{flag} {value}: {}",
            run.stderr()
        );
    }
}
