//! The configured sinks: building them from the configuration, and `segwatch sinks test`.

use std::process::ExitCode;

use anyhow::{Context, bail};

use crate::config::Settings;

/// The configured sinks, each checked as it is built.
pub(super) fn build(settings: &Settings) -> anyhow::Result<Vec<segwatch_sinks::Sink>> {
    let mut sinks = Vec::new();
    for config in settings.sinks()? {
        let name = config.name.clone();
        sinks.push(segwatch_sinks::Sink::new(config).with_context(|| format!("sink `{name}`"))?);
    }
    Ok(sinks)
}

/// `segwatch sinks test`: a test message to each sink (or the one named).
pub(super) async fn test(settings: &Settings, only: Option<String>) -> anyhow::Result<ExitCode> {
    let sinks = build(settings)?;
    let chosen: Vec<_> = sinks
        .iter()
        .filter(|s| only.as_deref().is_none_or(|n| n == s.name()))
        .collect();
    if chosen.is_empty() {
        bail!(
            "no sink {}is configured (see [[sinks]] in the configuration)",
            only.map(|n| format!("named `{n}` ")).unwrap_or_default()
        );
    }
    let mut failed = 0;
    for sink in chosen {
        match sink.send(&segwatch_sinks::Message::Test).await {
            Ok(()) => println!("{}: ok", sink.name()),
            Err(e) => {
                failed += 1;
                println!("{}: FAILED: {e}", sink.name());
            }
        }
    }
    Ok(if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
