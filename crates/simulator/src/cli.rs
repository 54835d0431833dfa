//! `segwatch simulate`: run the simulator as its own process.

use std::net::SocketAddr;
use std::time::Duration;

use anyhow::Context as _;
use secrecy::{ExposeSecret, SecretString};

use super::{Fault, Plan, RateLimit, Release, SimConfig};

/// Shown after the options by `segwatch simulate --help`; the spec table in the `faults`
/// module docs says the same in more detail, so change both together.
const LONG_HELP: &str = "\
FAULT SPECS (--fault, repeatable, checked in order): KIND[:PARAM][,PARAM...]
  429             rate limited; ms=N sets msBeforeNext (default 1000)
  500..599        server error (also `error:status=5xx`)
  400, 422        validation error (ValidationFailure envelope)
  slow            ms=N delay, then the normal answer (default 1000)
  malformed       a truncated, invalid JSON body
  endless-body    a 200 whose body never ends (no Content-Length; filler as fast as read)
  trickle         the normal answer, one byte every ms=N (default 1000)
  endless-cursor  lists always hand out `next`; flag `repeat` repeats `current`
  race:delete     pagination race (path=/users or path=/destinations, required): when a later
  race:insert       page (cursor offset above 0) is requested, first delete the listing's
                    first item, or insert one at its front, as a real audited mutation, then
                    answer that page with offsets on the new state. A page-by-page reader skips
                    one existing item (delete) or sees one twice (insert). Fires once unless
                    times=N. Inserted users are race-N@acme.io; destinations race-inserted-N.
  bad-item:no-id       a copy of the page's first item without `id`, added at the middle of
                         the page (index len/2); real items are kept as they are
  bad-item:null-id     the same with \"id\": null
  bad-item:not-object  the string \"not-an-object\" added as an item
  bad-item:all         every item of the page loses its `id` (the API changed shape)
  bad-item:repeat      the page's first item is replaced by a copy of its second: one item
                         listed twice, one missing, nothing changed (pages that disagree)
  bad-item:drop        the page's last item is left out (on the last page: a list that misses
                         an item that still exists)
  bad-event:timestamp     an audit event (copy of the page's first, id <id>-malformed) whose
                            timestamp is \"yesterday\"; path defaults to /audit-events
  bad-event:no-timestamp  the same event without `timestamp`
Every kind also takes path=/prefix (segment-wise), query=NAME=VALUE, skip=N (let N matching
requests through first) and times=N (default forever; races default to 1). bad-item and
bad-event only touch paginated lists.
Examples: 429:ms=2000,path=/users,skip=1,times=3  503,times=2  slow:ms=3000
  malformed,path=/sources  endless-cursor:repeat  422,path=/functions,query=resourceType=SOURCE
  race:delete,path=/users  bad-item:no-id,path=/users  bad-event:timestamp

PLANS (--plan): business (default) has every feature. team lacks user groups, Functions,
Protocols (tracking plans) and the audit trail: /groups, /functions, /tracking-plans and
/audit-events and everything below them answer 403 with the errors envelope
{\"errors\":[{\"type\":\"Forbidden\",\"message\":\"... is not available on this workspace's plan (team)...\"}]}.
--unavailable /functions makes one endpoint answer 404 NotFound (a token or region without
it); --unavailable /groups=403 a 403 as above. GET / always answers.

API RELEASES (--release, repeatable): every item served under PATH (its list and its
get-by-id route: users covers GET /users and GET /users/{id}, not /groups/{id}/users) gets a
field nobody set, or loses one:
  users:createdAt                      sets \"2024-01-01T00:00:00.000Z\" (the default value)
  users:permissions[].createdAt=null   sets JSON null in every permissions entry
  sources:settings.newKey=true         nested key (created if missing)
  sources:-writeKeys                   removes a field the simulator normally sends
FIELD is dotted, `[]` means every element of an array; =VALUE is JSON (a bare word is a
string). Rewritten bodies have their object keys in alphabetical order.";

/// Run a simulated Segment workspace (Public API) for demos, tests and benchmarks.
///
/// `segwatch simulate --help` documents fault specs (`--fault`: errors, slowness, malformed
/// JSON, endless cursors, pagination races, malformed records), plans (`--plan`,
/// `--unavailable`) and API releases (`--release`); see the `faults` module docs for the
/// spec table.
#[derive(Clone, Debug, clap::Args)]
#[command(
    after_help = "Run with --help for fault specs, plans and API releases.",
    after_long_help = LONG_HELP
)]
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
    /// Inject a fault, e.g. `429:ms=2000,path=/users,times=3` or `race:delete,path=/users`
    /// (repeatable).
    #[arg(long = "fault", value_name = "SPEC")]
    pub faults: Vec<Fault>,
    /// The workspace's plan: `business` (everything) or `team` (no user groups, Functions,
    /// tracking plans or audit trail: those answer 403).
    #[arg(long, value_name = "NAME", default_value = "business")]
    pub plan: Plan,
    /// Make an endpoint unavailable: `PREFIX` answers 404, `PREFIX=403` answers 403
    /// (repeatable), e.g. `/functions`.
    #[arg(long = "unavailable", value_name = "PREFIX[=STATUS]", value_parser = parse_unavailable)]
    pub unavailable: Vec<(String, u16)>,
    /// An API release: `PATH:FIELD` (set to "2024-01-01T00:00:00.000Z"), `PATH:FIELD=JSON` or
    /// `PATH:-FIELD` (removed), e.g. `users:createdAt` (repeatable).
    #[arg(long = "release", value_name = "SPEC")]
    pub releases: Vec<Release>,
}

fn parse_unavailable(s: &str) -> Result<(String, u16), String> {
    super::shape::parse_unavailable(s)
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
            plan: self.plan,
            unavailable: self.unavailable.clone(),
            releases: self.releases.clone(),
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
    if args.plan != Plan::default() {
        println!("  plan: {}", args.plan);
    }
    for (prefix, status) in &args.unavailable {
        println!("  unavailable: {prefix} ({status})");
    }
    for release in &args.releases {
        println!("  release: {release}");
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
    use crate::FaultKind;

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
    fn parses_plans_unavailable_endpoints_releases_and_new_faults() {
        let cli = Cli::try_parse_from([
            "segwatch",
            "--token",
            "t",
            "--plan",
            "team",
            "--unavailable",
            "/functions",
            "--unavailable",
            "/warehouses=403",
            "--release",
            "users:createdAt",
            "--release",
            "/users:permissions[].createdAt=null",
            "--release",
            "sources:-writeKeys",
            "--fault",
            "race:delete,path=/users",
            "--fault",
            "bad-item:not-object,path=/sources",
            "--fault",
            "bad-event:timestamp",
        ])
        .unwrap();
        let config = cli.args.config();
        assert_eq!(config.plan, Plan::Team);
        assert_eq!(
            config.unavailable,
            vec![
                ("/functions".to_owned(), 404),
                ("/warehouses".to_owned(), 403)
            ]
        );
        assert_eq!(
            config.releases,
            vec![
                Release::new(
                    "/users",
                    "createdAt",
                    Some(serde_json::json!("2024-01-01T00:00:00.000Z"))
                )
                .unwrap(),
                Release::new(
                    "/users",
                    "permissions[].createdAt",
                    Some(serde_json::Value::Null)
                )
                .unwrap(),
                Release::new("/sources", "writeKeys", None).unwrap(),
            ]
        );
        let specs: Vec<String> = config.faults.iter().map(ToString::to_string).collect();
        assert_eq!(
            specs,
            [
                "race:delete,path=/users,times=1",
                "bad-item:not-object,path=/sources",
                "bad-event:timestamp,path=/audit-events"
            ]
        );
        assert_eq!(
            Cli::try_parse_from(["segwatch", "--token", "t"])
                .unwrap()
                .args
                .plan,
            Plan::Business
        );
        for (flag, value, expected) in [
            ("--plan", "free", "unknown plan `free`"),
            ("--unavailable", "/groups=500", "403 or 404"),
            ("--release", "users", "invalid release `users`"),
            ("--release", "users:a[]", "must end with a key"),
        ] {
            let err = Cli::try_parse_from(["segwatch", "--token", "t", flag, value])
                .err()
                .unwrap()
                .to_string();
            assert!(err.contains(expected), "{flag} {value}: {err}");
        }
    }

    #[test]
    fn long_help_documents_plans_releases_and_new_faults() {
        use clap::CommandFactory;
        let help = Cli::command().render_long_help().to_string();
        for needle in [
            "race:delete",
            "race:insert",
            "bad-item:no-id",
            "bad-item:null-id",
            "bad-item:not-object",
            "bad-item:all",
            "bad-event:timestamp",
            "bad-event:no-timestamp",
            "--plan",
            "team lacks user groups",
            "--unavailable",
            "--release",
            "2024-01-01T00:00:00.000Z",
            "sources:-writeKeys",
        ] {
            assert!(help.contains(needle), "`{needle}` missing from:\n{help}");
        }
        assert!(help.contains(Release::DEFAULT_VALUE));
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
