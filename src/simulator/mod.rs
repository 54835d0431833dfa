//! Simulator stub (replaced by the real module).
#![allow(missing_docs, dead_code)]
use std::net::SocketAddr;
use std::time::Duration;
#[derive(Debug, Clone)]
pub struct SimConfig {
    pub token: String,
    pub seed: u64,
    pub users: usize,
    pub groups: usize,
    pub sources: usize,
    pub invites: usize,
}
impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            token: "sim-token".into(),
            seed: 1,
            users: 40,
            groups: 5,
            sources: 12,
            invites: 3,
        }
    }
}
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    #[arg(long)]
    pub listen: Option<String>,
}
pub async fn run(_a: SimulateArgs) -> anyhow::Result<()> {
    Ok(())
}
#[derive(Clone)]
pub struct SimHandle;
impl SimHandle {
    pub fn base_url(&self) -> String {
        String::new()
    }
    pub fn spawn_mutator(&self, _e: Duration) -> tokio::task::JoinHandle<()> {
        tokio::spawn(async {})
    }
    pub async fn shutdown(self) {}
}
pub async fn start(_c: SimConfig, _l: SocketAddr) -> std::io::Result<SimHandle> {
    Ok(SimHandle)
}
