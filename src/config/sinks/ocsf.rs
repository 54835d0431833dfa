//! The settings of an `ocsf` sink: exactly one of a file (`path`, rotation) and a collector
//! (`url`, `format`, token).

use std::path::PathBuf;

use secrecy::SecretString;

use super::{ConfigError, SinkSettings, check_webhook_url, invalid, secret};
use segwatch_sinks::ocsf::OcsfTarget;
use segwatch_sinks::ocsf::file::{DEFAULT_MAX_FILE_BYTES, DEFAULT_MAX_FILES, FileConfig};
use segwatch_sinks::ocsf::http::{HttpConfig, HttpFormat};

/// Bounds of `max_file_bytes`: room for the largest body, and files a forwarder can ship.
const FILE_BYTES_RANGE: std::ops::RangeInclusive<u64> = 64 * 1024..=100 * 1024 * 1024 * 1024;
/// Bounds of `max_files`.
const MAX_FILES_RANGE: std::ops::RangeInclusive<u32> = 1..=1000;

/// The keys only an `ocsf` sink takes, refused on any other.
pub(super) fn refuse_keys(s: &SinkSettings) -> Result<(), ConfigError> {
    let given = [
        ("path", s.path.is_some()),
        ("max_file_bytes", s.max_file_bytes.is_some()),
        ("max_files", s.max_files.is_some()),
        ("format", s.format.is_some()),
        // A `jira` sink takes a token too (its API token).
        ("token", s.token.is_some() && s.kind != "jira"),
        ("token_env", s.token_env.is_some() && s.kind != "jira"),
        ("token_file", s.token_file.is_some() && s.kind != "jira"),
    ];
    match given.iter().find(|(_, set)| *set) {
        Some((key, _)) => Err(invalid(
            format!("sinks.{key}"),
            format!(
                "sink `{}`: `{key}` applies only to an `ocsf` sink{}, not a `{}` sink",
                s.name,
                if key.starts_with("token") {
                    " or a `jira` sink"
                } else {
                    ""
                },
                s.kind
            ),
        )),
        None => Ok(()),
    }
}

/// Where an `ocsf` sink writes; `url` is the sink's URL secret, if given, and `signed` whether
/// an HMAC `secret` was given (a webhook's, refused here).
pub(super) fn target(
    s: &SinkSettings,
    url: Option<SecretString>,
    signed: bool,
) -> Result<OcsfTarget, ConfigError> {
    let name = &s.name;
    if signed {
        return Err(invalid(
            "sinks.secret",
            format!(
                "sink `{name}`: an `ocsf` sink is not signed; `secret` applies to a `webhook` sink"
            ),
        ));
    }
    let token = secret(
        "sinks.token",
        name,
        s.token.as_ref(),
        s.token_env.as_deref(),
        s.token_file.as_deref(),
    )?;
    match (&s.path, url) {
        (Some(_), Some(_)) => Err(invalid(
            "sinks.path",
            format!(
                "sink `{name}`: set one of `path` (a JSON lines file) or `url` (a collector), not both"
            ),
        )),
        (None, None) => Err(invalid(
            "sinks.path",
            format!(
                "sink `{name}`: an `ocsf` sink needs `path` (a JSON lines file) or `url`, `url_env` or `url_file` (a collector)"
            ),
        )),
        (Some(path), None) => {
            let only_url = [
                ("format", s.format.is_some()),
                ("token", token.is_some()),
                ("allow_insecure_http", s.allow_insecure_http),
            ];
            if let Some((key, _)) = only_url.iter().find(|(_, set)| *set) {
                return Err(invalid(
                    format!("sinks.{key}"),
                    format!(
                        "sink `{name}`: `{key}` applies to a collector (`url`), not to a file (`path`)"
                    ),
                ));
            }
            file_config(s, path.clone()).map(OcsfTarget::File)
        }
        (None, Some(url)) => {
            for (key, set) in [
                ("max_file_bytes", s.max_file_bytes.is_some()),
                ("max_files", s.max_files.is_some()),
            ] {
                if set {
                    return Err(invalid(
                        format!("sinks.{key}"),
                        format!(
                            "sink `{name}`: `{key}` applies to a file (`path`), not to a collector (`url`)"
                        ),
                    ));
                }
            }
            check_webhook_url(s, &url)?;
            let format = match s.format.as_deref().unwrap_or("ndjson") {
                "splunk-hec" => HttpFormat::SplunkHec,
                "ndjson" => HttpFormat::Ndjson,
                other => {
                    return Err(invalid(
                        "sinks.format",
                        format!(
                            "sink `{name}`: `{other}` is not a format; expected `splunk-hec` or `ndjson`"
                        ),
                    ));
                }
            };
            if format == HttpFormat::SplunkHec && token.is_none() {
                return Err(invalid(
                    "sinks.token",
                    format!(
                        "sink `{name}`: `format = \"splunk-hec\"` needs the HEC token: `token`, `token_env` or `token_file`"
                    ),
                ));
            }
            Ok(OcsfTarget::Http(HttpConfig { url, token, format }))
        }
    }
}

fn file_config(s: &SinkSettings, path: PathBuf) -> Result<FileConfig, ConfigError> {
    let name = &s.name;
    if path.as_os_str().is_empty() || path.file_name().is_none() {
        return Err(invalid(
            "sinks.path",
            format!("sink `{name}`: `{}` is not a file path", path.display()),
        ));
    }
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if !parent.is_dir() {
        return Err(invalid(
            "sinks.path",
            format!(
                "sink `{name}`: the folder {} does not exist (segwatch creates the file, not its folder)",
                parent.display()
            ),
        ));
    }
    if path.is_dir() {
        return Err(invalid(
            "sinks.path",
            format!(
                "sink `{name}`: {} is a folder; name a file in it",
                path.display()
            ),
        ));
    }
    let max_file_bytes = s.max_file_bytes.unwrap_or(DEFAULT_MAX_FILE_BYTES);
    if !FILE_BYTES_RANGE.contains(&max_file_bytes) {
        return Err(invalid(
            "sinks.max_file_bytes",
            format!(
                "sink `{name}`: {max_file_bytes} is out of range; expected {} to {} bytes",
                FILE_BYTES_RANGE.start(),
                FILE_BYTES_RANGE.end()
            ),
        ));
    }
    let body = s
        .max_body_bytes
        .unwrap_or(segwatch_sinks::DEFAULT_MAX_MESSAGE_BYTES) as u64;
    if body > max_file_bytes {
        return Err(invalid(
            "sinks.max_body_bytes",
            format!(
                "sink `{name}`: {body} is larger than `max_file_bytes` ({max_file_bytes}); one write must fit in a new file"
            ),
        ));
    }
    let max_files = s.max_files.unwrap_or(DEFAULT_MAX_FILES);
    if !MAX_FILES_RANGE.contains(&max_files) {
        return Err(invalid(
            "sinks.max_files",
            format!(
                "sink `{name}`: {max_files} is out of range; expected {} to {}",
                MAX_FILES_RANGE.start(),
                MAX_FILES_RANGE.end()
            ),
        ));
    }
    Ok(FileConfig {
        path,
        max_file_bytes,
        max_files,
    })
}
