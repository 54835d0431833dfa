use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use mailin_embedded::{Handler, Response, Server, response};
use secrecy::SecretString;

use super::*;
use crate::render::fixtures::{APP_BASE, change_alert, finding};

/// A mailin handler recording each accepted message; rejects recipients at `reject_domain`.
#[derive(Clone)]
struct Recorder {
    current: Vec<u8>,
    messages: Arc<Mutex<Vec<String>>>,
    reject_domain: Option<&'static str>,
}

impl Handler for Recorder {
    fn helo(&mut self, _ip: IpAddr, _domain: &str) -> Response {
        response::OK
    }

    fn rcpt(&mut self, to: &str) -> Response {
        match self.reject_domain {
            Some(domain) if to.ends_with(domain) => Response::custom(
                550,
                format!("5.1.1 <{to}>: Recipient address rejected: User unknown"),
            ),
            _ => response::OK,
        }
    }

    fn data_start(
        &mut self,
        _domain: &str,
        _from: &str,
        _is8bit: bool,
        _to: &[String],
    ) -> Response {
        self.current.clear();
        response::OK
    }

    fn data(&mut self, buf: &[u8]) -> std::io::Result<()> {
        self.current.extend_from_slice(buf);
        Ok(())
    }

    fn data_end(&mut self) -> Response {
        let text = String::from_utf8_lossy(&self.current).into_owned();
        self.messages.lock().unwrap().push(text);
        response::OK
    }
}

/// Starts a plain SMTP server on 127.0.0.1 in a thread; returns its port and what it received.
fn start(reject_domain: Option<&'static str>) -> (u16, Arc<Mutex<Vec<String>>>) {
    let messages = Arc::new(Mutex::new(Vec::new()));
    let handler = Recorder {
        current: Vec::new(),
        messages: messages.clone(),
        reject_domain,
    };
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let mut server = Server::new(handler);
    server
        .with_name("mx.test")
        .with_num_threads(2)
        .with_tcp_listener(listener);
    std::thread::spawn(move || {
        let _ = server.serve();
    });
    (port, messages)
}

fn config(port: u16, to: &[&str]) -> EmailConfig {
    EmailConfig {
        host: "127.0.0.1".to_owned(),
        port,
        tls: Tls::None,
        username: None,
        password: None,
        from: "segwatch <alerts@acme.test>".to_owned(),
        to: to.iter().map(|s| (*s).to_owned()).collect(),
        timeout: Duration::from_secs(10),
    }
}

fn sink(config: EmailConfig) -> EmailSink {
    EmailSink::new(
        config,
        Some(APP_BASE.to_owned()),
        Arc::new(Templates::builtin()),
    )
    .unwrap()
}

/// Decodes quoted-printable (soft line breaks and `=XX`), enough to read the parts.
fn unqp(s: &str) -> String {
    let s = s.replace("=\r\n", "");
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'='
            && i + 2 < bytes.len()
            && let Ok(b) = u8::from_str_radix(&s[i + 1..i + 3], 16)
        {
            out.push(b);
            i += 3;
            continue;
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The part of a multipart message with this content type, decoded.
fn part(raw: &str, content_type: &str) -> String {
    let start = raw
        .find(&format!("Content-Type: {content_type}"))
        .unwrap_or_else(|| panic!("no {content_type} part in\n{raw}"));
    let rest = &raw[start..];
    let body_start = rest.find("\r\n\r\n").unwrap() + 4;
    let body = &rest[body_start..];
    let end = body.find("\r\n--").unwrap_or(body.len());
    unqp(&body[..end])
}

#[tokio::test]
async fn sends_multipart_alternative_with_subject_from_and_to() {
    let (port, messages) = start(None);
    let sink = sink(config(port, &["secops@acme.test", "Bob <bob@acme.test>"]));
    let alert = change_alert();
    sink.send(&Message::Alert(&alert)).await.unwrap();
    let found = finding();
    sink.send(&Message::Alert(&found)).await.unwrap();

    let messages = messages.lock().unwrap();
    assert_eq!(messages.len(), 2);
    let raw = &messages[0];
    assert!(
        raw.contains("Subject: [segwatch][HIGH] Workspace Owner granted: alice@example.com\r\n"),
        "{raw}"
    );
    assert!(
        raw.contains("From: segwatch <alerts@acme.test>\r\n"),
        "{raw}"
    );
    assert!(
        raw.contains("To: secops@acme.test, Bob <bob@acme.test>\r\n"),
        "{raw}"
    );
    assert!(
        raw.contains("Content-Type: multipart/alternative;"),
        "{raw}"
    );

    let text = part(raw, "text/plain");
    assert!(text.contains("HIGH: Workspace Owner granted"), "{text}");
    assert!(
        text.contains("permissions[0].roleName: Read-Only Member -> Workspace Owner"),
        "{text}"
    );
    let html = part(raw, "text/html");
    assert!(
        html.contains("<strong>alice@example.com</strong>"),
        "{html}"
    );
    assert!(html.contains("Read-Only Member"), "{html}");

    let second = &messages[1];
    assert!(
        second.contains("Subject: [segwatch][MEDIUM] Source has no environment label: ios-app\r\n"),
        "{second}"
    );
    assert!(part(second, "text/plain").contains(
        "Open in Segment: https://app.segment.com/acme-analytics/sources/src_9f3K2a/overview"
    ));
}

#[tokio::test]
async fn rejected_recipient_is_permanent_with_the_servers_reply() {
    let (port, messages) = start(Some("@nowhere.test"));
    let sink = sink(config(port, &["ghost@nowhere.test"]));
    let err = sink.send(&Message::Test).await.unwrap_err();
    match &err {
        SendError::Permanent { message } => {
            assert!(message.contains("550"), "{message}");
            assert!(
                message.contains("Recipient address rejected: User unknown"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(messages.lock().unwrap().is_empty());
}

#[tokio::test]
async fn unreachable_server_is_retryable() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let err = sink(config(port, &["secops@acme.test"]))
        .send(&Message::Test)
        .await
        .unwrap_err();
    assert!(matches!(err, SendError::Retryable { .. }), "{err:?}");
}

#[test]
fn configuration_is_validated() {
    let templates = Arc::new(Templates::builtin());
    let build = |c: EmailConfig| EmailSink::new(c, None, templates.clone()).map(|_| ());

    let mut c = config(25, &["secops@acme.test"]);
    c.from = "not an address".to_owned();
    let err = build(c).unwrap_err().to_string();
    assert!(
        err.contains("invalid from address \"not an address\""),
        "{err}"
    );

    let err = build(config(25, &["ok@acme.test", "bad@"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("invalid recipient address \"bad@\""), "{err}");

    let err = build(config(25, &[])).unwrap_err().to_string();
    assert!(err.contains("no recipient"), "{err}");

    let mut c = config(25, &["secops@acme.test"]);
    c.host = "smtp.example.com".to_owned();
    let err = build(c).unwrap_err().to_string();
    assert!(err.contains("only allowed to localhost"), "{err}");

    let mut c = config(25, &["secops@acme.test"]);
    c.username = Some("user".to_owned());
    assert!(matches!(
        build(c),
        Err(EmailConfigError::PartialCredentials)
    ));

    let mut c = config(587, &["secops@acme.test"]);
    c.host = "smtp.example.com".to_owned();
    c.tls = Tls::StartTls;
    c.username = Some("user".to_owned());
    c.password = Some(SecretString::from("hunter2-SeCrEt".to_owned()));
    let sink = EmailSink::new(c.clone(), None, templates.clone()).unwrap();
    for text in [format!("{sink:?}"), format!("{c:?}")] {
        assert!(!text.contains("hunter2-SeCrEt"), "{text}");
    }
}

#[tokio::test]
async fn password_never_appears_in_errors() {
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = config(port, &["secops@acme.test"]);
    c.username = Some("user".to_owned());
    c.password = Some(SecretString::from("hunter2-SeCrEt".to_owned()));
    let err = sink(c).send(&Message::Test).await.unwrap_err();
    assert!(!err.to_string().contains("hunter2-SeCrEt"));
    assert!(!format!("{err:?}").contains("hunter2-SeCrEt"));
}
