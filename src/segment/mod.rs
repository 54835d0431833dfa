//! Segment client stub (replaced by the real module).
#![allow(missing_docs, dead_code)]
use secrecy::SecretString;
use serde_json::Value;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct ClientConfig {
    pub base_url: String,
    pub token: SecretString,
    pub page_size: u32,
    pub request_timeout: Duration,
    pub concurrency: usize,
    pub max_attempts: u32,
    pub max_pages: u32,
    pub max_rate_limit_wait: Duration,
    pub backoff_min: Duration,
    pub backoff_max: Duration,
}
impl ClientConfig {
    pub fn new(base_url: impl Into<String>, token: SecretString) -> Self {
        ClientConfig {
            base_url: base_url.into(),
            token,
            page_size: 200,
            request_timeout: Duration::from_secs(30),
            concurrency: 8,
            max_attempts: 6,
            max_pages: 10_000,
            max_rate_limit_wait: Duration::from_secs(120),
            backoff_min: Duration::from_millis(500),
            backoff_max: Duration::from_secs(30),
        }
    }
}
#[derive(Debug, thiserror::Error)]
#[error("segment error")]
pub struct SegmentError;
#[derive(Debug, Clone)]
pub struct SegmentClient;
#[derive(Debug, Clone, Copy, Default)]
pub struct ClientStats {
    pub requests: u64,
    pub retries: u64,
    pub rate_limited: u64,
}
pub struct Pages;
impl Pages {
    pub async fn next_page(&mut self) -> Result<Option<Vec<Value>>, SegmentError> {
        Ok(None)
    }
    pub fn total_entries(&self) -> Option<u64> {
        None
    }
}
impl SegmentClient {
    pub fn new(_c: ClientConfig) -> Result<Self, SegmentError> {
        Ok(SegmentClient)
    }
    pub async fn get_object(&self, _p: &str, _k: &str) -> Result<Value, SegmentError> {
        Err(SegmentError)
    }
    pub fn pages(&self, _p: &str, _k: &str) -> Pages {
        Pages
    }
    pub async fn list_all(&self, _p: &str, _k: &str) -> Result<Vec<Value>, SegmentError> {
        Ok(vec![])
    }
    pub fn stats(&self) -> ClientStats {
        ClientStats::default()
    }
}
