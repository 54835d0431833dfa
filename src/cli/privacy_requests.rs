//! `segwatch privacy delete | status | requests`: data-subject deletion and suppression through
//! Segment's regulations, each request recorded in the database with the subject pseudonymised
//! (an HMAC of the user id keyed with the database's salt; the clear id is never stored).

use std::io::{BufRead, IsTerminal, Write};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use serde::Serialize;
use serde_json::{Value, json};

use super::{TableOrJson, TextOrJson, WaitArgs, open_read_only, open_writer, plural, print_json};
use crate::config::Settings;
use segwatch_api::segment::{
    Regulation, RegulationType, SUBJECT_TYPE_USER_ID, SegmentClient, SegmentError,
};
use segwatch_core::time::Timestamp;
use segwatch_store::{NewPrivacyRequest, PrivacyRequestRecord};

/// How many hex digits of a subject hash are shown.
const HASH_PREFIX: usize = 12;

/// Arguments of `segwatch privacy delete`.
#[derive(Debug, Args)]
pub(super) struct DeleteArgs {
    /// The Segment userId whose data is to be deleted or suppressed.
    #[arg(long, value_name = "ID", value_parser = non_empty)]
    user_id: String,
    /// What Segment is asked to do.
    #[arg(long = "type", value_enum, default_value_t = RegulationType::SuppressWithDelete)]
    regulation_type: RegulationType,
    /// Do not ask for confirmation (required when there is no terminal).
    #[arg(long)]
    yes: bool,
    /// Who asked for the deletion (e.g. a ticket or the data subject's request reference);
    /// recorded with the request, next to the OS user.
    #[arg(long, value_name = "NAME")]
    requested_by: Option<String>,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of `segwatch privacy status`.
#[derive(Debug, Args)]
pub(super) struct StatusArgs {
    /// One regulation id; default: every recorded regulation that is not finished.
    #[arg(value_name = "REGULATION_ID")]
    regulation_id: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TextOrJson::Text)]
    format: TextOrJson,
    #[command(flatten)]
    wait: WaitArgs,
}

/// Arguments of `segwatch privacy requests`.
#[derive(Debug, Args)]
pub(super) struct RequestsArgs {
    /// Only the requests for this user id (matched by recomputing its hash); exits 1 if none.
    #[arg(long, value_name = "ID", value_parser = non_empty)]
    subject: Option<String>,
    /// Output format.
    #[arg(long, value_enum, default_value_t = TableOrJson::Table)]
    format: TableOrJson,
}

fn non_empty(value: &str) -> Result<String, String> {
    if value.trim().is_empty() {
        Err("must not be empty".to_owned())
    } else {
        Ok(value.to_owned())
    }
}

/// The OS user running the command, for the record.
fn os_user() -> Option<String> {
    ["USER", "LOGNAME"]
        .iter()
        .filter_map(|k| std::env::var(k).ok())
        .find(|v| !v.trim().is_empty())
}

/// `segwatch privacy delete`: confirm, create the regulation, record it.
pub(super) async fn delete(settings: &Settings, args: DeleteArgs) -> anyhow::Result<ExitCode> {
    let target = settings.validate()?;
    let what = args.regulation_type.as_str();
    if !args.yes {
        confirm(
            &args.user_id,
            what,
            &target.name,
            std::io::stdin().is_terminal(),
            &mut std::io::stdin().lock(),
            &mut std::io::stderr(),
        )?;
    }
    // Open (and migrate) the database before asking Segment, so that recording is unlikely to
    // fail after Segment has accepted.
    let mut store = open_writer(&settings.database.path, "privacy delete", args.wait)?;
    let workspace_id = store.workspace_id(&target.name)?;
    let client = SegmentClient::new(target.client.clone())?;
    let user_ids = [args.user_id.clone()];
    let regulation_id = match client
        .create_regulation(args.regulation_type, &user_ids)
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let meaning = creation_failure(&e);
            return Err(anyhow::Error::new(e).context(meaning));
        }
    };
    let os_user = os_user();
    let recorded = store.record_privacy_request(&NewPrivacyRequest {
        workspace_id,
        regulation_id: &regulation_id,
        regulation_type: what,
        subject_type: SUBJECT_TYPE_USER_ID,
        subject_id: &args.user_id,
        requested_by_os_user: os_user.as_deref(),
        requested_by: args.requested_by.as_deref(),
    });
    // The id goes to stdout alone, for scripts; the rest to stderr.
    println!("{regulation_id}");
    if let Err(e) = recorded {
        eprintln!(
            "\n!!! Segment ACCEPTED regulation {regulation_id} ({what}), but segwatch could not \
             record it in {}: {e}\n!!! Keep this regulation id: it is the only local trace of the \
             request. Segment lists it under GET /regulations.\n",
            settings.database.path.display()
        );
        return Ok(ExitCode::FAILURE);
    }
    eprintln!(
        "Segment accepted regulation {regulation_id} ({what}) in workspace `{}`; recorded. \
         Follow it with `segwatch privacy status {regulation_id}`.",
        target.name
    );
    Ok(ExitCode::SUCCESS)
}

/// What a failed creation means for the person who must decide whether to send it again.
fn creation_failure(error: &SegmentError) -> &'static str {
    match error {
        SegmentError::Api { .. }
        | SegmentError::Unauthorized { .. }
        | SegmentError::RateLimited { .. }
        | SegmentError::InvalidConfig(_) => {
            "Segment did not accept the regulation; nothing was recorded"
        }
        // Only connections that failed before sending are retried until exhausted.
        SegmentError::RetriesExhausted { .. } => {
            "could not reach Segment; the regulation was not sent and nothing was recorded"
        }
        _ => {
            "the outcome is unknown: Segment may have created the regulation. Nothing was \
             recorded; check Segment's regulation list (GET /regulations, or the Privacy page) \
             before sending it again"
        }
    }
}

/// Asks the person at the terminal to type the user id again; refuses without a terminal.
fn confirm(
    user_id: &str,
    what: &str,
    workspace: &str,
    terminal: bool,
    input: &mut impl BufRead,
    prompt: &mut impl Write,
) -> anyhow::Result<()> {
    if !terminal {
        bail!(
            "refusing to send a {what} regulation without confirmation: there is no terminal \
             to confirm on; pass --yes to confirm on the command line"
        );
    }
    write!(
        prompt,
        "This asks Segment to apply {what} to one user in workspace `{workspace}`; it cannot be \
         undone.\nType the user id to confirm: "
    )?;
    prompt.flush()?;
    let mut typed = String::new();
    input.read_line(&mut typed)?;
    if typed.trim_end_matches(['\r', '\n']) != user_id {
        bail!("not confirmed (the id typed differs); nothing was sent");
    }
    Ok(())
}

/// The per-destination statuses as stored and printed.
fn destination_statuses(regulation: &Regulation) -> Value {
    Value::Array(
        regulation
            .stream_status
            .iter()
            .flat_map(|stream| {
                stream.destination_status.iter().map(move |d| {
                    json!({
                        "stream": stream.id,
                        "id": d.id,
                        "name": d.name,
                        "status": d.status,
                        "error": d.err_string.as_deref().filter(|e| !e.is_empty()),
                        "finished_at": d.finished_at,
                    })
                })
            })
            .collect(),
    )
}

#[derive(Debug, Serialize)]
struct StatusLine {
    regulation_id: String,
    recorded: bool,
    overall_status: Option<String>,
    created_at: Option<String>,
    finished_at: Option<String>,
    destinations: Value,
    error: Option<String>,
}

/// `segwatch privacy status`: refresh one or every unfinished recorded regulation.
pub(super) async fn status(settings: &Settings, args: StatusArgs) -> anyhow::Result<ExitCode> {
    let target = settings.validate()?;
    let mut store = open_writer(&settings.database.path, "privacy status", args.wait)?;
    let workspace_id = store.workspace_id(&target.name)?;
    let ids: Vec<String> = match args.regulation_id {
        Some(id) => vec![id],
        None => store
            .privacy_requests(workspace_id, None)?
            .into_iter()
            .filter(|r| {
                r.overall_status
                    .as_deref()
                    .is_none_or(|s| !segwatch_api::segment::FINAL_STATUSES.contains(&s))
            })
            .map(|r| r.regulation_id)
            .collect(),
    };
    let client = SegmentClient::new(target.client.clone())?;
    let mut lines = Vec::with_capacity(ids.len());
    let mut failed = false;
    for id in ids {
        match client.get_regulation(&id).await {
            Ok(regulation) => {
                let destinations = destination_statuses(&regulation);
                let recorded = store.update_privacy_status(
                    workspace_id,
                    &id,
                    &regulation.overall_status,
                    &destinations,
                )?;
                lines.push(StatusLine {
                    regulation_id: id,
                    recorded,
                    overall_status: Some(regulation.overall_status),
                    created_at: regulation.created_at,
                    finished_at: regulation.finished_at,
                    destinations,
                    error: None,
                });
            }
            Err(e) => {
                failed = true;
                lines.push(StatusLine {
                    regulation_id: id,
                    recorded: false,
                    overall_status: None,
                    created_at: None,
                    finished_at: None,
                    destinations: Value::Array(Vec::new()),
                    error: Some(e.to_string()),
                });
            }
        }
    }
    let mut out = std::io::stdout().lock();
    if args.format == TextOrJson::Json {
        print_json(&mut out, &json!({ "regulations": lines }))?;
    } else if lines.is_empty() {
        writeln!(out, "no unfinished regulation recorded")?;
    } else {
        for line in &lines {
            match (&line.overall_status, &line.error) {
                (Some(status), _) => {
                    write!(out, "{}  {status}", line.regulation_id)?;
                    if let Some(at) = &line.finished_at {
                        write!(out, "  finished {at}")?;
                    }
                    if !line.recorded {
                        write!(out, "  (not recorded by segwatch in this workspace)")?;
                    }
                    writeln!(out)?;
                    for d in line.destinations.as_array().into_iter().flatten() {
                        let text = |k: &str| d[k].as_str().unwrap_or("-").to_owned();
                        write!(
                            out,
                            "  {} ({})  {}",
                            text("name"),
                            text("id"),
                            text("status")
                        )?;
                        if let Some(error) = d["error"].as_str() {
                            write!(out, "  error: {error}")?;
                        }
                        writeln!(out)?;
                    }
                }
                (None, error) => writeln!(
                    out,
                    "{}  cannot read: {}",
                    line.regulation_id,
                    error.as_deref().unwrap_or("unknown error")
                )?,
            }
        }
    }
    Ok(if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[derive(Debug, Serialize)]
struct RequestLine<'a> {
    regulation_id: &'a str,
    regulation_type: &'a str,
    subject_type: &'a str,
    subject_hash_prefix: &'a str,
    requested_at: Timestamp,
    requested_by_os_user: Option<&'a str>,
    requested_by: Option<&'a str>,
    overall_status: Option<&'a str>,
    last_checked_at: Option<Timestamp>,
}

impl<'a> From<&'a PrivacyRequestRecord> for RequestLine<'a> {
    fn from(r: &'a PrivacyRequestRecord) -> Self {
        RequestLine {
            regulation_id: &r.regulation_id,
            regulation_type: &r.regulation_type,
            subject_type: &r.subject_type,
            subject_hash_prefix: &r.subject_hash[..HASH_PREFIX.min(r.subject_hash.len())],
            requested_at: r.requested_at,
            requested_by_os_user: r.requested_by_os_user.as_deref(),
            requested_by: r.requested_by.as_deref(),
            overall_status: r.overall_status.as_deref(),
            last_checked_at: r.last_checked_at,
        }
    }
}

/// `segwatch privacy requests`: the recorded requests (read-only).
pub(super) fn requests(settings: &Settings, args: RequestsArgs) -> anyhow::Result<ExitCode> {
    let (store, workspace_id) = open_read_only(settings)?;
    let hash = match &args.subject {
        Some(subject) => Some(store.subject_hash(subject)?),
        None => None,
    };
    let records = store.privacy_requests(workspace_id, hash.as_deref())?;
    let lines: Vec<RequestLine<'_>> = records.iter().map(RequestLine::from).collect();
    let mut out = std::io::stdout().lock();
    if args.format == TableOrJson::Json {
        print_json(&mut out, &json!({ "requests": lines }))?;
    } else if lines.is_empty() {
        writeln!(
            out,
            "{}",
            if hash.is_some() {
                "no request recorded for this subject"
            } else {
                "no request recorded"
            }
        )?;
    } else {
        writeln!(
            out,
            "{:<24} {:<22} {:<12} {:<24} {:<20} {:<12} LAST CHECKED",
            "REGULATION", "TYPE", "SUBJECT", "REQUESTED AT", "BY", "STATUS"
        )?;
        for l in &lines {
            let by = match (l.requested_by_os_user, l.requested_by) {
                (Some(os), Some(by)) => format!("{os} for {by}"),
                (Some(one), None) | (None, Some(one)) => one.to_owned(),
                (None, None) => "-".to_owned(),
            };
            writeln!(
                out,
                "{:<24} {:<22} {:<12} {:<24} {:<20} {:<12} {}",
                l.regulation_id,
                l.regulation_type,
                l.subject_hash_prefix,
                l.requested_at,
                by,
                l.overall_status.unwrap_or("-"),
                l.last_checked_at
                    .map_or_else(|| "-".to_owned(), |t| t.to_string())
            )?;
        }
        writeln!(out, "{}", plural(lines.len(), "request"))?;
    }
    Ok(if hash.is_some() && lines.is_empty() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ask(terminal: bool, typed: &str) -> (anyhow::Result<()>, String) {
        let mut prompt = Vec::new();
        let result = confirm(
            "user-1",
            "DELETE_ONLY",
            "prod",
            terminal,
            &mut typed.as_bytes(),
            &mut prompt,
        );
        (result, String::from_utf8(prompt).unwrap())
    }

    #[test]
    fn only_the_same_id_typed_at_a_terminal_confirms() {
        let (ok, prompt) = ask(true, "user-1\n");
        ok.unwrap();
        assert!(
            prompt.contains("DELETE_ONLY") && prompt.contains("`prod`"),
            "{prompt}"
        );
        ask(true, "user-1\r\n").0.unwrap();
        for typed in ["user-2\n", "user-1 \n", "\n", ""] {
            let err = ask(true, typed).0.unwrap_err().to_string();
            assert!(err.contains("not confirmed"), "{typed:?}: {err}");
        }
        let (refused, prompt) = ask(false, "user-1\n");
        assert!(refused.unwrap_err().to_string().contains("no terminal"));
        assert!(prompt.is_empty(), "nothing is asked without a terminal");
    }
}
