//! `segwatch verify`: recomputes the tamper-evidence chain of every workspace in the database
//! (read-only) and checks anchors recorded earlier. docs/EVIDENCE.md explains the guarantees.

use std::io::Write;
use std::process::ExitCode;

use anyhow::{Context, bail};
use serde::Serialize;

use super::{TextOrJson, plural, print_json};
use crate::config::Settings;
use segwatch_store::Store;
use segwatch_store::chain::{ChainReport, Link, WorkspaceChain};

/// An anchor given on the command line and where the chain holds it.
#[derive(Debug, Serialize)]
struct AnchorCheck {
    hash: String,
    found: bool,
    workspace: Option<String>,
    snapshot_id: Option<i64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    review_id: Option<i64>,
}

#[derive(Debug, Serialize)]
struct Output<'a> {
    intact: bool,
    #[serde(flatten)]
    report: &'a ChainReport,
    anchors: Vec<AnchorCheck>,
}

/// Runs `segwatch verify`: exit 0 if every chain is intact and holds every anchor, else 1.
pub(super) fn run(
    settings: &Settings,
    anchors: &[String],
    format: TextOrJson,
) -> anyhow::Result<ExitCode> {
    for anchor in anchors {
        let hash = anchor.trim();
        if hash.len() != 64 || !hash.chars().all(|c| c.is_ascii_hexdigit()) {
            bail!(
                "--anchor `{anchor}` is not a chain hash (64 hex digits, as `segwatch verify` prints)"
            );
        }
    }
    let path = &settings.database.path;
    let store = Store::open_read_only(path)
        .with_context(|| format!("cannot open the database {}", path.display()))?;
    let report = store
        .verify_chain()
        .with_context(|| format!("cannot read the database {}", path.display()))?;
    let checks: Vec<AnchorCheck> = anchors
        .iter()
        .map(|anchor| {
            let found = report.find_link(anchor);
            AnchorCheck {
                hash: anchor.trim().to_ascii_lowercase(),
                found: found.is_some(),
                workspace: found.map(|(w, _)| w.workspace.clone()),
                snapshot_id: found.map(|(_, l)| l.snapshot_id),
                review_id: found.and_then(|(_, l)| l.review_id),
            }
        })
        .collect();
    let intact = report.intact() && checks.iter().all(|c| c.found);
    let mut out = std::io::stdout().lock();
    if format == TextOrJson::Json {
        print_json(
            &mut out,
            &Output {
                intact,
                report: &report,
                anchors: checks,
            },
        )?;
    } else {
        if report.workspaces.is_empty() {
            writeln!(out, "chain intact: the database holds no workspace yet")?;
        }
        for chain in &report.workspaces {
            print_workspace(&mut out, chain)?;
        }
        for check in &checks {
            match (&check.workspace, check.snapshot_id) {
                (Some(workspace), Some(_)) if check.review_id.is_some() => writeln!(
                    out,
                    "anchor {} holds: it is access review {} of workspace `{workspace}`",
                    check.hash,
                    check.review_id.unwrap_or_default()
                )?,
                (Some(workspace), Some(id)) => writeln!(
                    out,
                    "anchor {} holds: it is snapshot {id} of workspace `{workspace}`",
                    check.hash
                )?,
                _ => writeln!(
                    out,
                    "ANCHOR NOT FOUND: {} is not a link of the verified chain; the history it vouched for was rewritten or deleted (or it was recorded from another database)",
                    check.hash
                )?,
            }
        }
    }
    Ok(if intact {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

fn print_workspace(out: &mut impl Write, chain: &WorkspaceChain) -> anyhow::Result<()> {
    let name = &chain.workspace;
    match (&chain.problem, &chain.head) {
        (None, None) => writeln!(
            out,
            "chain intact: 0 snapshots (workspace `{name}` has no complete snapshot yet)"
        )?,
        (None, Some(head)) => writeln!(
            out,
            "chain intact: {}, head {} ({}, workspace `{name}`)",
            plural(chain.snapshots, "snapshot"),
            head.chain_hash,
            link_name(head)
        )?,
        (Some(problem), head) => {
            let at = match problem.review_id {
                Some(review) => format!("access review {review}"),
                None => format!("snapshot {}", problem.snapshot_id),
            };
            writeln!(
                out,
                "CHAIN BROKEN in workspace `{name}` at {at}: {}",
                problem.message
            )?;
            if let Some(head) = head {
                writeln!(
                    out,
                    "  verified before it: {} up to {} (chain hash {})",
                    plural(chain.snapshots, "snapshot"),
                    link_name(head),
                    head.chain_hash
                )?;
            }
        }
    }
    if chain.reviews > 0 {
        writeln!(
            out,
            "  {} verified in the chain",
            plural(chain.reviews, "imported access review")
        )?;
    }
    if chain.pruned > 0 {
        writeln!(
            out,
            "  {} pruned by retention, verified from their tombstones",
            plural(chain.pruned, "quiet snapshot")
        )?;
    }
    if let Some(backfill) = &chain.backfill {
        writeln!(
            out,
            "  {} up to snapshot {} predate the chain and were hashed at {}: they are vouched for only since then",
            plural(backfill.snapshots.max(0) as usize, "snapshot"),
            backfill.through_snapshot_id,
            backfill.at
        )?;
    }
    Ok(())
}

/// `snapshot N` or `access review N`.
fn link_name(link: &Link) -> String {
    match link.review_id {
        Some(review) => format!("access review {review}"),
        None => format!("snapshot {}", link.snapshot_id),
    }
}
