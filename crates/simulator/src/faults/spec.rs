//! Parsing the compact fault spec syntax described in [the module docs](super).

use std::str::FromStr;

use crate::SimError;

use super::{BadEventDefect, BadItemShape, Fault, FaultKind, RACE_PATHS, RaceAction};

/// Finds the variant whose spec word is `word`, else says which words there are.
fn variant<T: Copy>(
    kind: &str,
    word: Option<&str>,
    all: &[T],
    spec: fn(T) -> &'static str,
) -> Result<T, String> {
    let words: Vec<&str> = all.iter().map(|v| spec(*v)).collect();
    let word = word.map(str::trim).unwrap_or_default().to_ascii_lowercase();
    all.iter()
        .copied()
        .find(|v| spec(*v) == word)
        .ok_or_else(|| match word.as_str() {
            "" => format!("`{kind}` needs a variant: `{kind}:{}`", words.join("|")),
            other => format!(
                "unknown `{kind}` variant `{other}`; expected one of {}",
                words.join(", ")
            ),
        })
}

impl FromStr for Fault {
    type Err = SimError;

    fn from_str(spec: &str) -> Result<Self, Self::Err> {
        parse_spec(spec).map_err(|reason| SimError::FaultSpec {
            spec: spec.to_owned(),
            reason,
        })
    }
}

fn parse_spec(spec: &str) -> Result<Fault, String> {
    let spec = spec.trim();
    if spec.is_empty() {
        return Err("empty spec; expected e.g. `429:ms=2000` or `500,path=/users`".into());
    }
    let mut items = spec.split(',');
    let head = items.next().unwrap_or_default();
    let (kind_name, first_param) = match head.split_once(':') {
        Some((k, p)) => (k, Some(p)),
        None => (head, None),
    };
    let kind_name = kind_name.trim().to_ascii_lowercase();
    // These kinds name their variant after the colon (`race:delete`) instead of a parameter.
    let (variant_word, first_param) = match kind_name.as_str() {
        "race" | "bad-item" | "bad-event" => (first_param, None),
        _ => (None, first_param),
    };

    let mut ms: Option<u64> = None;
    let mut status: Option<u16> = None;
    let mut repeat: Option<bool> = None;
    let mut path: Option<String> = None;
    let mut query: Option<String> = None;
    let mut skip: Option<u32> = None;
    let mut times: Option<u32> = None;

    for param in first_param.into_iter().chain(items) {
        let param = param.trim();
        if param.is_empty() {
            return Err("empty parameter (stray comma?)".into());
        }
        let (name, value) = match param.split_once('=') {
            Some((n, v)) => (n.trim(), Some(v.trim())),
            None => (param, None),
        };
        let need = |value: Option<&str>| {
            value
                .filter(|v| !v.is_empty())
                .ok_or_else(|| format!("`{name}` needs a value, as in `{name}=N`"))
                .map(str::to_owned)
        };
        match name {
            "ms" => set_once(&mut ms, name, parse_num(name, &need(value)?)?)?,
            "status" => set_once(&mut status, name, parse_num(name, &need(value)?)?)?,
            "repeat" => {
                let flag = match value {
                    None | Some("true") => true,
                    Some("false") => false,
                    Some(other) => {
                        return Err(format!(
                            "`repeat` is a flag or `repeat=true|false`, not `{other}`"
                        ));
                    }
                };
                set_once(&mut repeat, name, flag)?;
            }
            "path" => {
                let value = need(value)?;
                if !value.starts_with('/') {
                    return Err(format!("`path` must start with `/`, got `{value}`"));
                }
                set_once(&mut path, name, value)?;
            }
            "query" => {
                let value = need(value)?;
                if !value.contains('=') || value.starts_with('=') {
                    return Err(format!("`query` is `NAME=VALUE`, got `{value}`"));
                }
                set_once(&mut query, name, value)?;
            }
            "skip" => set_once(&mut skip, name, parse_num(name, &need(value)?)?)?,
            "times" => {
                let n: u32 = parse_num(name, &need(value)?)?;
                if n == 0 {
                    return Err("`times` must be at least 1 (omit it for forever)".into());
                }
                set_once(&mut times, name, n)?;
            }
            other => return Err(format!("unknown parameter `{other}`")),
        }
    }

    let reject = |given: bool, param: &str| {
        if given {
            Err(format!("`{param}` does not apply to `{kind_name}`"))
        } else {
            Ok(())
        }
    };
    let kind = match kind_name.as_str() {
        "429" | "rate-limited" => {
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::RateLimited {
                ms_before_next: ms.unwrap_or(1000),
            }
        }
        "slow" => {
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::Slow {
                delay_ms: ms.unwrap_or(1000),
            }
        }
        "malformed" | "malformed-json" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::MalformedJson
        }
        "endless-body" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::EndlessBody
        }
        "trickle" => {
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            let interval_ms = ms.unwrap_or(1000);
            if interval_ms == 0 {
                return Err("`trickle` needs `ms` of at least 1".into());
            }
            FaultKind::Trickle { interval_ms }
        }
        "endless-cursor" | "endless" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            FaultKind::EndlessCursor {
                repeat: repeat.unwrap_or(false),
            }
        }
        "error" | "server-error" => {
            reject(ms.is_some(), "ms")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::ServerError {
                status: server_status(status.unwrap_or(500))?,
            }
        }
        numeric if numeric.chars().all(|c| c.is_ascii_digit()) => {
            reject(ms.is_some(), "ms")?;
            reject(repeat.is_some(), "repeat")?;
            reject(status.is_some(), "status")?;
            let code: u16 = numeric
                .parse()
                .map_err(|_| format!("`{numeric}` is not an HTTP status"))?;
            if matches!(code, 400 | 422) {
                FaultKind::ClientError { status: code }
            } else {
                FaultKind::ServerError {
                    status: server_status(code)?,
                }
            }
        }
        "race" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            let action = variant("race", variant_word, &RaceAction::ALL, RaceAction::spec)?;
            match path.as_deref() {
                Some(p) if RACE_PATHS.contains(&p.trim_end_matches('/')) => {}
                Some(p) => {
                    return Err(format!(
                        "`race` works on {} only, not `{p}`",
                        RACE_PATHS.join(" and ")
                    ));
                }
                None => return Err("`race` needs `path=/users` or `path=/destinations`".into()),
            }
            // A race is a one-off by default: it fires on the first later page only.
            times = times.or(Some(1));
            FaultKind::PaginationRace { action }
        }
        "bad-item" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            FaultKind::BadItem {
                shape: variant(
                    "bad-item",
                    variant_word,
                    &BadItemShape::ALL,
                    BadItemShape::spec,
                )?,
            }
        }
        "bad-event" => {
            reject(ms.is_some(), "ms")?;
            reject(status.is_some(), "status")?;
            reject(repeat.is_some(), "repeat")?;
            path = path.or_else(|| Some("/audit-events".to_owned()));
            FaultKind::BadEvent {
                defect: variant(
                    "bad-event",
                    variant_word,
                    &BadEventDefect::ALL,
                    BadEventDefect::spec,
                )?,
            }
        }
        other => {
            return Err(format!(
                "unknown fault kind `{other}`; expected one of 429, rate-limited, 5xx (e.g. 500), \
                 400, 422, error, slow, malformed, endless-body, trickle, endless-cursor, race, \
                 bad-item, bad-event"
            ));
        }
    };
    Ok(Fault {
        kind,
        path,
        query,
        skip: skip.unwrap_or(0),
        times,
    })
}

fn server_status(code: u16) -> Result<u16, String> {
    if (500..=599).contains(&code) {
        Ok(code)
    } else if code == 429 {
        Err("use `429` as the kind (not `status=429`) for rate limiting".into())
    } else {
        Err(format!(
            "status {code} is not a server error (500..=599) or a validation error (400, 422)"
        ))
    }
}

fn parse_num<T: FromStr>(name: &str, value: &str) -> Result<T, String> {
    value
        .parse()
        .map_err(|_| format!("`{name}` must be a non-negative integer, got `{value}`"))
}

fn set_once<T>(slot: &mut Option<T>, name: &str, value: T) -> Result<(), String> {
    if slot.is_some() {
        return Err(format!("`{name}` given twice"));
    }
    *slot = Some(value);
    Ok(())
}
