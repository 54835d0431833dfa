//! `segwatch privacy …` (data-subject requests through the Profile API) and
//! `segwatch check-connection`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

use crate::config::Settings;
use segwatch_api::collect::{Probe, probe};
use segwatch_api::profiles::{IdType, Identifier, ProfileClient, ProfileError, access_document};
use segwatch_api::segment::{SegmentClient, SegmentError};

/// Exit code of `privacy access` when the space has no profile for the subject.
const NO_PROFILE: u8 = 2;
/// An identifier that no real profile carries: a 404 "Profile was not found." for it proves the
/// space id and the secret are right.
const PROBE: &str = "segwatch-connection-check";

/// Who the access request is about, and where the export goes.
#[derive(Debug, clap::Args)]
#[command(group(clap::ArgGroup::new("subject").required(true).multiple(false)))]
pub(super) struct AccessArgs {
    /// The subject's user id (`user_id:…`).
    #[arg(long, value_name = "ID", group = "subject")]
    user_id: Option<String>,
    /// The subject's email (`email:…`).
    #[arg(long, value_name = "EMAIL", group = "subject")]
    email: Option<String>,
    /// The subject's anonymous id (`anonymous_id:…`).
    #[arg(long, value_name = "ID", group = "subject")]
    anonymous_id: Option<String>,
    /// Write the document to FILE (atomically, mode 0600) instead of stdout.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

impl AccessArgs {
    fn subject(&self) -> Identifier {
        let (kind, value) = match (&self.user_id, &self.email, &self.anonymous_id) {
            (Some(v), _, _) => (IdType::UserId, v),
            (_, Some(v), _) => (IdType::Email, v),
            (_, _, Some(v)) => (IdType::AnonymousId, v),
            // clap's required group guarantees one of them.
            _ => unreachable!("one subject flag is required"),
        };
        Identifier {
            kind,
            value: value.clone(),
        }
    }
}

/// Runs a `privacy` subcommand.
fn profile_client(settings: &Settings) -> anyhow::Result<ProfileClient> {
    let Some(target) = settings.profiles()? else {
        anyhow::bail!(
            "the Profile API is not configured: set `profiles.space_id` and the access secret \
             (SEGWATCH_PROFILES__ACCESS_SECRET, `profiles.access_secret_env` or `profiles.access_secret_file`)"
        );
    };
    Ok(ProfileClient::new(&target)?)
}

/// `segwatch privacy access`.
pub(super) async fn access(settings: &Settings, args: AccessArgs) -> anyhow::Result<ExitCode> {
    let client = profile_client(settings)?;
    let subject = args.subject();
    let document = match access_document(&client, &subject).await {
        Ok(doc) => doc,
        Err(e @ ProfileError::NoProfile { .. }) => {
            eprintln!("{e}");
            return Ok(ExitCode::from(NO_PROFILE));
        }
        Err(e) => return Err(e.into()),
    };
    let mut text = serde_json::to_vec_pretty(&document)?;
    text.push(b'\n');
    match &args.out {
        Some(path) => {
            write_private(path, &text)?;
            let count = |k: &str| document[k]["count"].as_u64().unwrap_or(0);
            eprintln!(
                "wrote {}: {} traits, {} external ids, {} events for {subject}",
                path.display(),
                count("traits"),
                count("external_ids"),
                count("events"),
            );
        }
        None => std::io::stdout().lock().write_all(&text)?,
    }
    Ok(ExitCode::SUCCESS)
}

/// Writes `bytes` to `path` through a private temporary file in the same directory, renamed
/// into place: a reader never sees half a document, nor a file others can read.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "access".into());
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let result = (|| {
        let mut file = options
            .open(&tmp)
            .with_context(|| format!("cannot create {}", tmp.display()))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))?;
        anyhow::Ok(())
    })();
    if result.is_err() {
        let _ = std::fs::remove_file(&tmp);
    }
    result
}

/// Test each configured API and say what is wrong with each.
#[derive(Debug, clap::Args)]
pub(super) struct CheckConnectionArgs {
    /// Count an unconfigured Profile API (`[profiles]`) as a failure.
    #[arg(long)]
    require_profiles: bool,
}

/// `segwatch check-connection`: one line per check, `OK` or the reason; exit 1 on any failure.
pub(super) async fn check_connection(
    settings: &Settings,
    args: CheckConnectionArgs,
) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for target in settings.targets()? {
        let mut config = target.client.clone();
        // A connection check should answer in seconds, not sit through a poll's retry budget.
        config.max_attempts = config.max_attempts.min(2);
        config.request_timeout = config.request_timeout.min(Duration::from_secs(15));
        let label = format!(
            "Public API, workspace `{}` ({})",
            target.name, config.base_url
        );
        // One item a page: the feature probes only ask whether each list answers.
        config.page_size = 1;
        let client = SegmentClient::new(config);
        let line = match &client {
            Err(e) => Err(e.to_string()),
            Ok(client) => match client.get_object("/", "workspace").await {
                Ok(_) => Ok(()),
                Err(e) => Err(public_api_reason(&e, &target.key)),
            },
        };
        let token_works = line.is_ok();
        failed |= line.is_err();
        report(&mut out, &label, line)?;
        if let (true, Ok(client)) = (token_works, &client) {
            let options = settings.collect.options();
            let audit_trail = settings.collect.audit_events;
            for (kind, probe) in probe(client, &options, audit_trail).await {
                match probe {
                    Probe::Readable => writeln!(out, "  {kind}: readable")?,
                    Probe::Unavailable(status, reason) => writeln!(
                        out,
                        "  {kind}: not available to this workspace (HTTP {status}: its plan or \
                         the token lacks the feature); polls skip it and watch the rest. {reason}"
                    )?,
                    Probe::Failed(reason) => {
                        failed = true;
                        writeln!(out, "  {kind}: FAIL: {reason}")?;
                    }
                }
            }
        }
    }
    match settings.profiles()? {
        None => {
            failed |= args.require_profiles;
            writeln!(
                out,
                "Profile API: {}",
                if args.require_profiles {
                    "FAIL: not configured (`profiles.space_id` and an access secret)"
                } else {
                    "not configured"
                }
            )?;
        }
        Some(target) => {
            let label = format!(
                "Profile API, space `{}` ({})",
                target.space_id, target.base_url
            );
            let line = match ProfileClient::new(&target) {
                Err(e) => Err(e.to_string()),
                Ok(client) => profile_probe(&client.with_max_attempts(2)).await,
            };
            failed |= line.is_err();
            report(&mut out, &label, line)?;
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn report(out: &mut impl Write, label: &str, line: Result<(), String>) -> std::io::Result<()> {
    match line {
        Ok(()) => writeln!(out, "{label}: OK"),
        Err(reason) => writeln!(out, "{label}: FAIL: {reason}"),
    }
}

fn public_api_reason(e: &SegmentError, key: &str) -> String {
    match e {
        SegmentError::Unauthorized { status, .. } => format!(
            "invalid token (HTTP {status}): the token was refused; check `{key}.token`, that it has \
             Workspace Owner access, and `{key}.region` (a token works only in its workspace's region)"
        ),
        SegmentError::RetriesExhausted { last, .. } => format!("network: {last}"),
        SegmentError::Transport { cause, .. } => format!("network: {cause}"),
        e if e.status() == Some(404) => format!(
            "wrong region or API URL: `GET /` is not found there; check `{key}.region` / `{key}.api_url` ({e})"
        ),
        e => e.to_string(),
    }
}

/// Reads the metadata of an identifier no profile has: "Profile was not found." proves that
/// the space exists on this host and that the secret opens it.
async fn profile_probe(client: &ProfileClient) -> Result<(), String> {
    let probe = Identifier {
        kind: IdType::UserId,
        value: PROBE.to_owned(),
    };
    match client.metadata(&probe).await {
        Ok(_) | Err(ProfileError::NoProfile { .. }) => Ok(()),
        Err(ProfileError::InvalidSecret { status, server, .. }) => Err(format!(
            "invalid access secret (HTTP {status}{server}): check `profiles.access_secret`"
        )),
        Err(ProfileError::UnknownSpace { server, .. }) => Err(format!(
            "wrong space id or region (HTTP 404{server}): check `profiles.space_id` and `profiles.region`"
        )),
        Err(ProfileError::Network { cause, .. }) => Err(format!("network: {cause}")),
        Err(e) => Err(e.to_string()),
    }
}
