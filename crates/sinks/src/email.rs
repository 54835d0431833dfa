//! Email sink: sends each message as multipart/alternative (plain text and HTML) over SMTP.
//!
//! The SMTP password never appears in errors, logs or `Debug` output. A permanent SMTP reply
//! (5xx: recipient rejected, authentication refused, message refused) is a permanent failure
//! quoting the server's reply; a transient reply (4xx), a timeout or a connection problem is
//! worth retrying.

use std::fmt;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::AsyncSmtpTransportBuilder;
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Tls as LettreTls, TlsParameters};
use lettre::{AsyncSmtpTransport, AsyncTransport, Tokio1Executor};
use secrecy::{ExposeSecret, SecretString};

use super::render::Templates;
use super::{Message, SendError};

/// How the connection to the SMTP server is secured.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tls {
    /// Plain connection upgraded with STARTTLS, which is required (usually port 587).
    StartTls,
    /// TLS from the first byte (SMTPS, usually port 465).
    Implicit,
    /// No encryption: only allowed to `localhost`, `127.0.0.1` or `::1` (tests, local relays).
    None,
}

/// Where and how to send email.
#[derive(Debug, Clone)]
pub struct EmailConfig {
    /// SMTP server host name.
    pub host: String,
    /// SMTP server port.
    pub port: u16,
    /// Connection security.
    pub tls: Tls,
    /// User name, when the server needs authentication (with `password`).
    pub username: Option<String>,
    /// Password (with `username`).
    pub password: Option<SecretString>,
    /// Sender: `alerts@example.com` or `segwatch <alerts@example.com>`.
    pub from: String,
    /// Recipients, in the same forms; at least one.
    pub to: Vec<String>,
    /// How long connecting and each SMTP command may take.
    pub timeout: Duration,
}

/// Why an email sink cannot be built from its configuration. Never contains the password.
#[derive(Debug, thiserror::Error)]
pub enum EmailConfigError {
    /// `host` is empty.
    #[error("email: the SMTP host is empty")]
    NoHost,
    /// `from` is not an address.
    #[error("email: invalid from address {address:?}: {reason}")]
    From {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `to` is empty.
    #[error("email: no recipient (to) configured")]
    NoRecipient,
    /// One of `to` is not an address.
    #[error("email: invalid recipient address {address:?}: {reason}")]
    To {
        /// The address as configured.
        address: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Only one of `username` and `password` is set.
    #[error("email: username and password must be set together")]
    PartialCredentials,
    /// `tls: none` to a remote host.
    #[error(
        "email: an unencrypted connection is only allowed to localhost, not to {host:?}; use starttls or implicit TLS"
    )]
    InsecureRemote {
        /// The configured host.
        host: String,
    },
    /// `timeout` is zero.
    #[error("email: the timeout must be more than zero")]
    ZeroTimeout,
    /// The TLS parameters could not be built.
    #[error("email: cannot set up TLS for {host:?}: {reason}")]
    Tls {
        /// The configured host.
        host: String,
        /// What went wrong.
        reason: String,
    },
}

/// Delivers messages by email. Clones share the connection pool.
///
/// The pool is created on the first send (it spawns a Tokio task), so a sink can be built
/// outside a runtime; it must be used, and should be dropped, inside one.
#[derive(Clone)]
pub struct EmailSink {
    builder: AsyncSmtpTransportBuilder,
    transport: Arc<OnceLock<AsyncSmtpTransport<Tokio1Executor>>>,
    from: Mailbox,
    to: Vec<Mailbox>,
    host: String,
    port: u16,
    tls: Tls,
    app_base: Option<String>,
    templates: Arc<Templates>,
}

impl fmt::Debug for EmailSink {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EmailSink")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("tls", &self.tls)
            .field("from", &self.from.to_string())
            .field(
                "to",
                &self.to.iter().map(ToString::to_string).collect::<Vec<_>>(),
            )
            .field("app_base", &self.app_base)
            .finish_non_exhaustive()
    }
}

impl EmailSink {
    /// A sink for `config`, linking resources under `app_base`
    /// (`https://app.segment.com/{workspace-slug}`) when given. Checks the addresses, the
    /// credentials and the TLS mode; does not connect.
    pub fn new(
        config: EmailConfig,
        app_base: Option<String>,
        templates: Arc<Templates>,
    ) -> Result<EmailSink, EmailConfigError> {
        let host = config.host.trim().to_owned();
        if host.is_empty() {
            return Err(EmailConfigError::NoHost);
        }
        if config.timeout.is_zero() {
            return Err(EmailConfigError::ZeroTimeout);
        }
        let from: Mailbox =
            config
                .from
                .trim()
                .parse()
                .map_err(|e: lettre::address::AddressError| EmailConfigError::From {
                    address: config.from.clone(),
                    reason: e.to_string(),
                })?;
        if config.to.is_empty() {
            return Err(EmailConfigError::NoRecipient);
        }
        let to = config
            .to
            .iter()
            .map(|address| {
                address
                    .trim()
                    .parse::<Mailbox>()
                    .map_err(|e| EmailConfigError::To {
                        address: address.clone(),
                        reason: e.to_string(),
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;

        let tls_params = || {
            TlsParameters::new(host.clone()).map_err(|e| EmailConfigError::Tls {
                host: host.clone(),
                reason: e.to_string(),
            })
        };
        let tls = match config.tls {
            Tls::StartTls => LettreTls::Required(tls_params()?),
            Tls::Implicit => LettreTls::Wrapper(tls_params()?),
            Tls::None => {
                if !matches!(host.as_str(), "localhost" | "127.0.0.1" | "::1" | "[::1]") {
                    return Err(EmailConfigError::InsecureRemote { host });
                }
                LettreTls::None
            }
        };
        let mut builder = AsyncSmtpTransport::<Tokio1Executor>::builder_dangerous(host.as_str())
            .port(config.port)
            .tls(tls)
            .timeout(Some(config.timeout));
        match (config.username, config.password) {
            (Some(user), Some(password)) => {
                builder = builder
                    .credentials(Credentials::new(user, password.expose_secret().to_owned()));
            }
            (None, None) => {}
            _ => return Err(EmailConfigError::PartialCredentials),
        }
        Ok(EmailSink {
            builder,
            transport: Arc::new(OnceLock::new()),
            from,
            to,
            host,
            port: config.port,
            tls: config.tls,
            app_base: app_base.filter(|b| !b.trim().is_empty()),
            templates,
        })
    }

    /// Sends `msg` once to every recipient, as one email.
    pub async fn send(&self, msg: &Message<'_>) -> Result<(), SendError> {
        let email = self.build(msg)?;
        let transport = self.transport.get_or_init(|| self.builder.clone().build());
        match transport.send(email).await {
            Ok(response) => {
                tracing::debug!(
                    host = %self.host,
                    code = %response.code(),
                    "SMTP server accepted the message"
                );
                Ok(())
            }
            Err(e) => {
                let error = classify(&e, &self.host);
                tracing::warn!(host = %self.host, error = %error, "email not delivered");
                Err(error)
            }
        }
    }

    /// The size in bytes of the email sent for `msg`, as transmitted (headers and encoded
    /// parts).
    pub fn message_len(&self, msg: &Message<'_>) -> Result<usize, SendError> {
        Ok(self.build(msg)?.formatted().len())
    }

    /// The email for `msg`: subject, plain text and HTML alternatives.
    fn build(&self, msg: &Message<'_>) -> Result<lettre::Message, SendError> {
        let app_base = self.app_base.as_deref();
        let render_err = |e: super::render::RenderError| SendError::Permanent {
            message: format!("cannot render the email: {e}"),
        };
        let subject = self.templates.subject(msg, app_base).map_err(render_err)?;
        let text = self.templates.text(msg, app_base).map_err(render_err)?;
        let html = self.templates.html(msg, app_base).map_err(render_err)?;

        let mut builder = lettre::Message::builder()
            .from(self.from.clone())
            .subject(subject)
            .user_agent(concat!("segwatch/", env!("CARGO_PKG_VERSION")).to_owned());
        for to in &self.to {
            builder = builder.to(to.clone());
        }
        builder
            .multipart(MultiPart::alternative_plain_html(text, html))
            .map_err(|e| SendError::Permanent {
                message: format!("cannot build the email: {e}"),
            })
    }
}

/// A permanent SMTP reply is permanent; everything else (4xx, timeouts, connection and TLS
/// problems) may succeed later. The message quotes the server's reply, which lettre keeps.
fn classify(e: &lettre::transport::smtp::Error, host: &str) -> SendError {
    let mut message = format!("SMTP server {host}: {e}");
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        let text = s.to_string();
        if !message.contains(&text) {
            message.push_str(": ");
            message.push_str(&text);
        }
        source = s.source();
    }
    if e.is_permanent() {
        SendError::Permanent { message }
    } else {
        SendError::Retryable {
            message,
            retry_after: None,
        }
    }
}

#[cfg(test)]
#[path = "tests_email.rs"]
mod tests;
