//! segwatch's clients of Segment: the Public API ([`segment`]), the Profile API
//! ([`profiles`]), the collection of a workspace's resources ([`collect`]) and the reading of
//! its audit trail ([`trail`]).
//!
//! Everything here is network I/O turned into `segwatch_core` types; nothing here knows of the
//! store or the sinks.

pub mod collect;
pub mod profiles;
pub mod segment;
pub mod trail;
