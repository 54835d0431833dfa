//! Alert sinks: where alerts are delivered (Slack, email, a generic webhook), what each one
//! receives, and the rendering of messages.
//!
//! A [`Message`] is one alert event, a digest of several, or a test; [`Sink::send`] delivers it
//! once and says whether a failure is worth retrying. Durability (the outbox, retries, resuming
//! after a restart) lives in [`crate::store`] and [`outbox`], not here.

pub mod email;
pub mod render;
pub mod slack;
pub mod webhook;

use std::time::Duration;

use crate::alerts::AlertRecord;

/// What a sink is asked to deliver.
#[derive(Debug, Clone, Copy)]
pub enum Message<'a> {
    /// One alert event: a change alert (`fired`), a new finding (`open`) or a resolution
    /// (`resolved`).
    Alert(&'a AlertRecord),
    /// Several alerts of one poll, summarised in one message.
    Digest {
        /// The alerts, most severe first.
        alerts: &'a [AlertRecord],
        /// The snapshot that raised them.
        snapshot_id: i64,
    },
    /// `segwatch sinks test`: proves the sink is reachable.
    Test,
}

/// Why a delivery failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// Worth trying again later (network error, 5xx, 429); `retry_after` when the receiver said.
    #[error("{message}")]
    Retryable {
        /// What went wrong (never contains a secret).
        message: String,
        /// How long the receiver asked us to wait.
        retry_after: Option<Duration>,
    },
    /// Will fail the same way again (4xx, rejected recipient, bad configuration).
    #[error("{message}")]
    Permanent {
        /// What went wrong (never contains a secret).
        message: String,
    },
}
