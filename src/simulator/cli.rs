//! `segwatch simulate`: run the simulator as its own process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use super::{Fault, RateLimit, SimConfig};

/// Run a simulated Segment workspace (Public API) for demos, tests and benchmarks.
///
/// Fault specs (`--fault`, repeatable, checked in order): `KIND[:PARAM][,PARAM...]`.
/// Kinds: `429` (param `ms=` for msBeforeNext), a 5xx status such as `500` or `503`, `400` or
/// `422` (a validation error), `slow` (`ms=` delay), `malformed`, `endless-cursor` (flag
/// `repeat`). Any kind also takes `path=/prefix`, `query=NAME=VALUE` (only requests with that
/// query parameter), `skip=N` (let N matching requests through first) and `times=N` (default:
/// forever). Examples: `429:ms=2000,path=/users,skip=1,times=3`, `500`, `slow:ms=3000`,
/// `malformed,path=/sources`, `endless-cursor:repeat`,
/// `422,path=/functions,query=resourceType=INSERT_SOURCE`.
#[derive(Clone, Debug, clap::Args)]
pub struct SimulateArgs {
    /// Address to listen on (port 0 picks a free port).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:8910")]
    pub listen: SocketAddr,
    /// Bearer token clients must present.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "SEGWATCH_SIMULATOR_TOKEN",
        hide_env_values = true,
        value_parser = parse_secret
    )]
    pub token: SecretString,
    /// Seed for the generated workspace and its mutations.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// Number of users.
    #[arg(long, default_value_t = 40)]
    pub users: usize,
    /// Number of user groups.
    #[arg(long, default_value_t = 5)]
    pub groups: usize,
    /// Number of sources.
    #[arg(long, default_value_t = 12)]
    pub sources: usize,
    /// Number of pending workspace invites.
    #[arg(long, default_value_t = 3)]
    pub invites: usize,
    /// Number of destinations.
    #[arg(long, default_value_t = 8)]
    pub destinations: usize,
    /// Number of warehouses.
    #[arg(long, default_value_t = 2)]
    pub warehouses: usize,
    /// Number of functions.
    #[arg(long, default_value_t = 5)]
    pub functions: usize,
    /// Number of tracking plans.
    #[arg(long, default_value_t = 3)]
    pub tracking_plans: usize,
    /// API requests allowed per minute (0 = unlimited).
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub rate_limit: u32,
    /// Apply a random mutation every SECS seconds (0 = never).
    #[arg(long, value_name = "SECS", default_value_t = 0)]
    pub mutate_every: u64,
    /// The Unify space id the Profile API routes serve.
    #[arg(long, value_name = "ID", default_value = "spa_sim")]
    pub profiles_space: String,
    /// The Profile API access secret clients must send (Basic auth user name).
    #[arg(
        long,
        value_name = "SECRET",
        env = "SEGWATCH_SIMULATOR_PROFILES_SECRET",
        hide_env_values = true,
        value_parser = parse_secret,
        default_value = "sim-profiles-secret",
        hide_default_value = true
    )]
    pub profiles_secret: SecretString,
    /// Seconds a regulation stays in each status (INITIALIZED, RUNNING) before the next.
    #[arg(long, value_name = "SECS", default_value_t = 30)]
    pub regulation_step_secs: u64,
    /// Inject a fault, e.g. `429:ms=2000,path=/users,times=3` (repeatable).
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<Fault>,
}

impl SimulateArgs {
    /// The simulator configuration these arguments describe.
    pub fn config(&self) -> SimConfig {
        SimConfig {
            token: self.token.expose_secret().to_owned(),
            seed: self.seed,
            users: self.users,
            groups: self.groups,
            sources: self.sources,
            invites: self.invites,
            destinations: self.destinations,
            warehouses: self.warehouses,
            functions: self.functions,
            tracking_plans: self.tracking_plans,
            rate_limit: (self.rate_limit > 0).then(|| RateLimit::per_minute(self.rate_limit)),
            faults: self.faults.clone(),
            profiles_space: self.profiles_space.clone(),
            profiles_secret: self.profiles_secret.clone(),
            regulation_step: Duration::from_secs(self.regulation_step_secs),
        }
    }
}

/// Keeps the token out of `Debug` output from the moment it is parsed.
fn parse_secret(s: &str) -> Result<SecretString, std::convert::Infallible> {
    Ok(SecretString::from(s))
}

/// Runs the simulator until Ctrl-C: prints its URL (never the token) and applies random
/// mutations on schedule.
pub async fn run(args: SimulateArgs) -> anyhow::Result<()> {
    let handle = super::start(args.config(), args.listen)
        .await
        .with_context(|| format!("cannot start the simulator on {}", args.listen))?;
    println!(
        "Simulated Segment workspace at {} (seed {}, {} users, {} groups, {} sources, {} invites)",
        handle.base_url(),
        args.seed,
        args.users,
        args.groups,
        args.sources,
        args.invites
    );
    for fault in &args.faults {
        println!("  fault: {fault}");
    }
    let mutator = (args.mutate_every > 0)
        .then(|| handle.spawn_mutator(Duration::from_secs(args.mutate_every)));
    println!("Press Ctrl-C to stop.");
    tokio::signal::ctrl_c()
        .await
        .context("cannot listen for Ctrl-C")?;
    handle.shutdown().await;
    if let Some(mutator) = mutator {
        // Shutdown tells the mutator to stop; waiting makes sure it has.
        let _ = mutator.await;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;
    use crate::simulator::FaultKind;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: SimulateArgs,
    }

    #[test]
    fn parses_flags_and_faults() {
        let cli = Cli::try_parse_from([
            "segwatch",
            "--token",
            "secret-token",
            "--users",
            "100",
            "--rate-limit",
            "60",
            "--fault",
            "429:ms=2000,path=/users,times=3",
            "--fault",
            "500",
        ])
        .unwrap();
        let config = cli.args.config();
        assert_eq!(config.users, 100);
        assert_eq!(config.rate_limit, Some(RateLimit::per_minute(60)));
        assert_eq!(config.faults.len(), 2);
        assert_eq!(
            config.faults[1].kind,
            FaultKind::ServerError { status: 500 }
        );
        assert_eq!(cli.args.listen.port(), 8910);
        let debug = format!("{:?} {:?}", cli.args, config);
        assert!(!debug.contains("secret-token"), "{debug}");
    }

    #[test]
    fn bad_fault_spec_is_a_clear_error() {
        let err = Cli::try_parse_from(["segwatch", "--token", "t", "--fault", "429:ms=soon"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("invalid fault spec `429:ms=soon`"), "{err}");
        assert!(err.contains("`ms` must be a non-negative integer"), "{err}");
    }
}
