//! Instants as segwatch stores and sends them.
//!
//! One stored format, written in one place ([`Timestamp`]'s `Display`) and read in one place
//! ([`Timestamp::parse`]): RFC 3339 in UTC with milliseconds and `Z`, e.g.
//! `2026-03-01T09:30:00.000Z`. Stored times sort and compare as text because every writer uses
//! this format.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, SubsecRound, Utc};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// An instant, written as RFC 3339 UTC with milliseconds (`2026-03-01T09:30:00.000Z`).
///
/// Serialized as that string. Digits below the millisecond are kept in memory but not written,
/// so a time read back from the store is its millisecond truncation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(DateTime<Utc>);

impl Timestamp {
    /// Now, to the millisecond (what is stored of it), so that it equals itself read back.
    pub fn now() -> Timestamp {
        Timestamp(Utc::now().trunc_subsecs(3))
    }

    /// Reads a time: RFC 3339 with any offset (what the store has always written, in UTC with
    /// milliseconds), converted to UTC.
    pub fn parse(text: &str) -> Result<Timestamp, chrono::ParseError> {
        DateTime::parse_from_rfc3339(text).map(|t| Timestamp(t.with_timezone(&Utc)))
    }

    /// The instant.
    pub fn as_datetime(self) -> DateTime<Utc> {
        self.0
    }
}

impl From<DateTime<Utc>> for Timestamp {
    fn from(t: DateTime<Utc>) -> Timestamp {
        Timestamp(t)
    }
}

impl From<Timestamp> for DateTime<Utc> {
    fn from(t: Timestamp) -> DateTime<Utc> {
        t.0
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // `pad`, not `write_str`: a width or alignment in the format string applies.
        f.pad(&self.0.to_rfc3339_opts(SecondsFormat::Millis, true))
    }
}

impl FromStr for Timestamp {
    type Err = chrono::ParseError;

    fn from_str(text: &str) -> Result<Timestamp, chrono::ParseError> {
        Timestamp::parse(text)
    }
}

impl Serialize for Timestamp {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Timestamp {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Timestamp, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        Timestamp::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_stored_format() {
        let t = Timestamp::parse("2026-03-01T10:30:00.123456+01:00").unwrap();
        assert_eq!(t.to_string(), "2026-03-01T09:30:00.123Z");
        let t = Timestamp::parse("2026-03-01T09:30:00Z").unwrap();
        assert_eq!(t.to_string(), "2026-03-01T09:30:00.000Z");
    }

    #[test]
    fn round_trips_what_it_writes() {
        let text = "2026-11-24T11:00:00.250Z";
        let t: Timestamp = text.parse().unwrap();
        assert_eq!(t.to_string(), text);
        assert_eq!(serde_json::to_string(&t).unwrap(), format!("\"{text}\""));
        let back: Timestamp = serde_json::from_str(&format!("\"{text}\"")).unwrap();
        assert_eq!(back, t);
    }

    #[test]
    fn orders_by_instant() {
        let a = Timestamp::parse("2026-03-01T09:30:00.000Z").unwrap();
        let b = Timestamp::parse("2026-03-01T10:00:00.000+00:20").unwrap();
        assert!(a < b);
        assert_eq!(format!("{a:<26}|"), "2026-03-01T09:30:00.000Z  |");
        assert!(Timestamp::parse("yesterday").is_err());
        let now = Timestamp::now();
        assert_eq!(now.to_string().parse::<Timestamp>().unwrap(), now);
    }
}
