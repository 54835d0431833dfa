//! Loopback HTTP tests of the simulator, with reqwest as the client.

mod api;
mod audit;
mod control;
mod controls;
mod data_flow;
mod faults;
mod mutations;
mod plans;
mod profiles;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use reqwest::StatusCode;
use reqwest::header::{CONTENT_TYPE, HeaderMap};
use serde_json::{Value, json};

use super::*;

const TOKEN: &str = "sim-token";

async fn sim(config: SimConfig) -> SimHandle {
    start(config, "127.0.0.1:0".parse().unwrap()).await.unwrap()
}

struct Reply {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| {
            panic!(
                "invalid JSON ({e}): {}",
                String::from_utf8_lossy(&self.body)
            )
        })
    }

    fn content_type(&self) -> &str {
        self.headers
            .get(CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
    }

    fn error_type(&self) -> String {
        self.json()["errors"][0]["type"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    }
}

struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    fn new(sim: &SimHandle) -> Self {
        Client {
            http: reqwest::Client::new(),
            base: sim.base_url(),
        }
    }

    async fn send(&self, request: reqwest::RequestBuilder) -> Reply {
        let response = request.send().await.unwrap();
        Reply {
            status: response.status(),
            headers: response.headers().clone(),
            body: response.bytes().await.unwrap().to_vec(),
        }
    }

    async fn get(&self, path: &str, query: &[(&str, &str)]) -> Reply {
        let url = format!("{}{path}", self.base);
        self.send(self.http.get(url).bearer_auth(TOKEN).query(query))
            .await
    }

    async fn page(&self, path: &str, count: usize, cursor: Option<&str>) -> Reply {
        let count = count.to_string();
        let mut query = vec![("pagination[count]", count.as_str())];
        if let Some(c) = cursor {
            query.push(("pagination[cursor]", c));
        }
        self.get(path, &query).await
    }

    /// Follows `next` to the end, checking the cursors on the way; returns every item.
    async fn all(&self, path: &str, key: &str, count: usize) -> Vec<Value> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for page in 0.. {
            assert!(page < 10_000, "pagination of {path} does not end");
            let reply = self.page(path, count, cursor.as_deref()).await;
            assert_eq!(reply.status, StatusCode::OK, "{path}");
            let data = &reply.json()["data"];
            let pagination = &data["pagination"];
            let offset = page * count;
            assert_eq!(pagination["current"], json!(server::encode_cursor(offset)));
            if page == 0 {
                assert_eq!(pagination["current"], "MA==");
                assert_eq!(pagination["previous"], Value::Null);
            } else {
                assert_eq!(
                    pagination["previous"],
                    json!(server::encode_cursor(offset - count))
                );
            }
            let batch = data[key].as_array().unwrap().clone();
            assert!(batch.len() <= count);
            items.extend(batch);
            match &pagination["next"] {
                Value::Null => {
                    assert_eq!(
                        pagination["totalEntries"].as_u64().unwrap() as usize,
                        items.len()
                    );
                    break;
                }
                Value::String(next) => {
                    assert_eq!(next, &server::encode_cursor(offset + count));
                    cursor = Some(next.clone());
                }
                other => panic!("bad next: {other}"),
            }
        }
        items
    }

    async fn post(&self, path: &str, body: &Value) -> Reply {
        let url = format!("{}{path}", self.base);
        self.send(self.http.post(url).bearer_auth(TOKEN).json(body))
            .await
    }
}

fn ids(items: &[Value]) -> Vec<String> {
    items
        .iter()
        .map(|v| v["id"].as_str().unwrap().to_owned())
        .collect()
}

/// Reads `path` page by page with the simulator's own `next` cursors; returns every item.
async fn read_pages(client: &Client, path: &str, key: &str, count: usize) -> Vec<Value> {
    let mut items = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..1000 {
        let reply = client.page(path, count, cursor.as_deref()).await;
        assert_eq!(reply.status, StatusCode::OK, "{path}");
        let data = reply.json()["data"].clone();
        items.extend(data[key].as_array().unwrap().iter().cloned());
        match &data["pagination"]["next"] {
            Value::String(next) => cursor = Some(next.clone()),
            _ => return items,
        }
    }
    panic!("pagination of {path} does not end");
}
