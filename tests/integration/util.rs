//! The harness of the end-to-end tests: `segwatch_testkit`'s helpers, and polls run in-process
//! through the application's `Poller` (which the test kit, a layer below the application, cannot
//! name).

use std::ops::Deref;
use std::sync::Arc;

use segwatch::poll::{PollError, PollOutcome, Poller};
use segwatch_api::segment::{ClientConfig, SegmentClient};
use segwatch_core::redact::SecretPolicy;
use segwatch_core::rules::RuleSet;
use segwatch_simulator::SimConfig;

pub use segwatch_testkit::{
    HMAC_KEY, Run, STARTER_RULES, Segwatch, TOKEN, WebhookReceiver, free_port, stop_daemon,
};

/// The test kit's workspace, with in-process polls.
pub struct TestWorkspace(segwatch_testkit::TestWorkspace);

impl Deref for TestWorkspace {
    type Target = segwatch_testkit::TestWorkspace;

    fn deref(&self) -> &Self::Target {
        &self.0
    }
}

impl std::ops::DerefMut for TestWorkspace {
    fn deref_mut(&mut self) -> &mut Self::Target {
        &mut self.0
    }
}

impl TestWorkspace {
    /// A small default workspace.
    pub async fn start() -> TestWorkspace {
        TestWorkspace(segwatch_testkit::TestWorkspace::start().await)
    }

    /// A workspace from an explicit simulator configuration (the token is always [`TOKEN`]).
    pub async fn with(config: SimConfig) -> TestWorkspace {
        TestWorkspace(segwatch_testkit::TestWorkspace::with(config).await)
    }

    /// Runs one poll cycle in-process.
    pub async fn poll(&self) -> Result<PollOutcome, PollError> {
        self.poll_with(self.client_config()).await
    }

    /// Runs one poll cycle with a specific client configuration.
    pub async fn poll_with(&self, config: ClientConfig) -> Result<PollOutcome, PollError> {
        let client = SegmentClient::new(config).unwrap();
        let mut store = self.store();
        Poller::new(client, SecretPolicy::default(), "default")
            .poll(&mut store)
            .await
    }

    /// Runs one poll cycle that evaluates `rules`.
    pub async fn poll_rules(&self, rules: &Arc<RuleSet>) -> Result<PollOutcome, PollError> {
        let client = SegmentClient::new(self.client_config()).unwrap();
        let mut store = self.store();
        Poller::new(client, SecretPolicy::default(), "default")
            .with_rules(rules.clone(), false)
            .poll(&mut store)
            .await
    }
}
