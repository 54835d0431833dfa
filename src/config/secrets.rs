//! Reading a secret from exactly one of an inline value, an environment variable or a file.

use std::path::Path;

use secrecy::{ExposeSecret, SecretString};

use super::{ConfigError, invalid};

/// A secret given inline (`key`), by environment variable name (`key_env`) or by file
/// (`key_file`): at most one of the three, trimmed, not empty. Errors name the field that was
/// given, with `context` (e.g. "sink `x`: ") before the message.
pub(super) fn read_secret(
    key: &str,
    context: &str,
    inline: Option<&SecretString>,
    env: Option<&str>,
    file: Option<&Path>,
) -> Result<Option<SecretString>, ConfigError> {
    let given = [inline.is_some(), env.is_some(), file.is_some()]
        .iter()
        .filter(|b| **b)
        .count();
    if given > 1 {
        return Err(invalid(
            key,
            format!("{context}set one of `{key}`, `{key}_env` or `{key}_file`, not several"),
        ));
    }
    let (value, field) = if let Some(v) = inline {
        (v.expose_secret().to_string(), key.to_string())
    } else if let Some(var) = env {
        let field = format!("{key}_env");
        let value = std::env::var(var).map_err(|_| {
            invalid(
                field.clone(),
                format!("{context}environment variable {var} is not set"),
            )
        })?;
        (value, field)
    } else if let Some(path) = file {
        let field = format!("{key}_file");
        let value = read_secret_file(path).map_err(|why| {
            invalid(
                field.clone(),
                format!("{context}cannot read {}: {why}", path.display()),
            )
        })?;
        (value, field)
    } else {
        return Ok(None);
    };
    let value = value.trim();
    if value.is_empty() {
        return Err(invalid(field, format!("{context}the value is empty")));
    }
    Ok(Some(SecretString::from(value)))
}

/// Most bytes read from a token or secret file. Real secrets are well under 1 KiB; the cap makes
/// a wrong path (`/dev/zero`, a log file, a disk image) fail at once instead of filling memory.
pub const MAX_SECRET_FILE_BYTES: u64 = 64 * 1024;

/// The text of a secret file, at most [`MAX_SECRET_FILE_BYTES`] read; the error says why not.
fn read_secret_file(path: &Path) -> Result<String, String> {
    use std::io::Read as _;
    let file = std::fs::File::open(path).map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "larger".
    file.take(MAX_SECRET_FILE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| e.to_string())?;
    if bytes.len() as u64 > MAX_SECRET_FILE_BYTES {
        return Err(format!(
            "it is larger than {}, the limit for a secret file (is this the right file?)",
            segwatch_api::segment::ByteSize(MAX_SECRET_FILE_BYTES)
        ));
    }
    String::from_utf8(bytes).map_err(|_| "it is not UTF-8 text".to_owned())
}
