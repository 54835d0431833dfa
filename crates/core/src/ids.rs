//! Ids of stored rows that travel between crates: a snapshot's and an alert's.
//!
//! Each wraps the row's `INTEGER PRIMARY KEY`, serializes as the bare number and displays as
//! it, so output is unchanged; the types keep one id from being passed for the other.

use std::fmt;
use std::num::ParseIntError;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! row_id {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(
            Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
        )]
        #[serde(transparent)]
        pub struct $name(pub i64);

        impl $name {
            /// The row id, for SQL.
            pub fn get(self) -> i64 {
                self.0
            }
        }

        impl From<i64> for $name {
            fn from(id: i64) -> $name {
                $name(id)
            }
        }

        impl From<$name> for i64 {
            fn from(id: $name) -> i64 {
                id.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                fmt::Display::fmt(&self.0, f)
            }
        }

        impl FromStr for $name {
            type Err = ParseIntError;

            fn from_str(text: &str) -> Result<$name, ParseIntError> {
                text.parse().map($name)
            }
        }
    };
}

row_id!(
    /// A snapshot: one poll of one workspace (`snapshots.id`).
    SnapshotId
);

row_id!(
    /// An alert: a finding or a change alert (`alerts.id`).
    AlertId
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_and_writes_as_the_number() {
        let id = SnapshotId(42);
        assert_eq!(id.to_string(), "42");
        assert_eq!(format!("{id:>5}"), "   42");
        assert_eq!(serde_json::to_string(&AlertId(7)).unwrap(), "7");
        assert_eq!(serde_json::from_str::<AlertId>("7").unwrap(), AlertId(7));
        assert_eq!("42".parse::<SnapshotId>().unwrap(), id);
    }
}
