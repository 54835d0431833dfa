//! Unit tests of loading and validating the configuration.

mod jira;
mod loading;
mod ocsf;
mod pagerduty;
mod secrets;
mod sinks;
mod workspaces;

use std::path::PathBuf;

use secrecy::ExposeSecret;

use super::*;

fn load(toml: &str, env: &[(&str, &str)]) -> Result<Settings, ConfigError> {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("segwatch.toml");
    std::fs::write(&path, toml).unwrap();
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::load_with_env(&path, true, env)
}

fn error_of(toml: &str, env: &[(&str, &str)]) -> String {
    match load(toml, env).and_then(|s| s.validate().map(|_| ())) {
        Ok(()) => panic!("expected an error"),
        Err(e) => e.to_string(),
    }
}
