//! The email channel: building messages with lettre, and sending them over SMTP or to files.
//!
//! Every header is built by lettre (never by string concatenation): UTF-8 subjects and names
//! are encoded as RFC 2047 words, bodies as multipart/alternative text + HTML; control
//! characters in a display name (a CR or LF in a unit's name) become spaces, so no header can
//! be split. Send errors are classified: a 5xx answer is permanent; a 4xx answer, a refused
//! or cut-off connection, a timeout or a TLS failure is transient and retried. An
//! authentication failure is also retried (it is our configuration, not the recipient, that
//! is wrong: nothing is given up while the admin fixes the password) and says so in its
//! error text.

use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use lettre::Message;
use lettre::message::header::{HeaderName, HeaderValue};
use lettre::message::{Mailbox, MultiPart};
use lettre::transport::smtp::authentication::Credentials;
use lettre::transport::smtp::client::{Certificate, TlsParameters};

use super::channel::{Outgoing, Receipt, SendError, Sender, Sending};
use super::smtp;
use crate::config::{Config, Security, Transport};

/// The domain of the From address, for Message-IDs and List-Id.
pub fn from_domain(cfg: &Config) -> String {
    let from = &cfg.email.from;
    let addr = match (from.rfind('<'), from.rfind('>')) {
        (Some(a), Some(b)) if a < b => &from[a + 1..b],
        _ => from.as_str(),
    };
    addr.rsplit('@')
        .next()
        .unwrap_or("localhost")
        .trim()
        .to_string()
}

/// A display name fit for a header: control characters (CR, LF, tabs) become spaces.
fn header_name(name: &str) -> String {
    name.chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .split_whitespace()
        .collect::<Vec<_>>()
        .join(" ")
}

fn parse_mailbox(name: Option<&str>, addr: &str) -> Result<Mailbox, SendError> {
    let address = addr
        .parse()
        .map_err(|e| SendError::Permanent(format!("invalid address `{addr}`: {e}")))?;
    Ok(Mailbox::new(name.map(header_name), address))
}

/// What every message from this config carries: From, Reply-To, and the domain of
/// Message-IDs and List-Id.
#[derive(Debug, Clone)]
pub struct Envelope {
    from: Mailbox,
    reply_to: Option<Mailbox>,
    domain: String,
}

impl Envelope {
    /// The config's From and Reply-To.
    pub fn of(cfg: &Config) -> Result<Envelope, SendError> {
        let from: Mailbox =
            cfg.email.from.parse().map_err(|e| {
                SendError::Permanent(format!("invalid From `{}`: {e}", cfg.email.from))
            })?;
        let reply_to = match &cfg.email.reply_to {
            Some(r) => Some(
                r.parse()
                    .map_err(|e| SendError::Permanent(format!("invalid Reply-To `{r}`: {e}")))?,
            ),
            None => None,
        };
        Ok(Envelope {
            from,
            reply_to,
            domain: from_domain(cfg),
        })
    }

    /// Builds the email: multipart text + HTML, From, To, Reply-To, Subject, Date,
    /// Message-ID, List-Id, Auto-Submitted (MIME-Version is added by lettre with the
    /// multipart body).
    pub fn build(&self, out: &Outgoing<'_>) -> Result<Message, SendError> {
        let to = parse_mailbox(out.to_name, out.to)?;
        let mut b = Message::builder()
            .from(self.from.clone())
            .to(to)
            .subject(out.rendered.subject.clone())
            .date(SystemTime::from(out.date))
            .message_id(Some(out.message_id.to_string()));
        if let Some(r) = &self.reply_to {
            b = b.reply_to(r.clone());
        }
        b = b
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("List-Id"),
                format!("nhacviec <nhacviec.{}>", self.domain),
            ))
            .raw_header(HeaderValue::new(
                HeaderName::new_from_ascii_str("Auto-Submitted"),
                "auto-generated".to_string(),
            ));
        b.multipart(MultiPart::alternative_plain_html(
            out.rendered.text.clone(),
            out.rendered.html.clone(),
        ))
        .map_err(|e| SendError::Permanent(format!("cannot build the message: {e}")))
    }
}

/// Where email goes.
pub struct Mailer {
    kind: Kind,
    envelope: Envelope,
    description: String,
}

enum Kind {
    Smtp(smtp::Pool),
    File(PathBuf),
}

impl std::fmt::Debug for Mailer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.description)
    }
}

impl Mailer {
    /// The configured transport; reads the SMTP password and CA file now, so a problem with
    /// them is reported at start or reload, not at the first send.
    pub fn new(cfg: &Config) -> Result<Mailer> {
        match (cfg.email.transport, &cfg.email.smtp) {
            (Transport::File, _) => Ok(Mailer {
                kind: Kind::File(cfg.email.file_dir.clone()),
                envelope: Envelope::of(cfg)?,
                description: format!("file transport into {}", cfg.email.file_dir.display()),
            }),
            (Transport::Smtp, None) => anyhow::bail!("`transport = \"smtp\"` needs `[email.smtp]`"),
            (Transport::Smtp, Some(s)) => {
                let params = || -> Result<TlsParameters> {
                    let mut params = TlsParameters::builder(s.host.clone());
                    if let Some(ca) = &s.ca_file {
                        let pem = std::fs::read(ca).with_context(|| {
                            format!("cannot read `email.smtp.ca_file` {}", ca.display())
                        })?;
                        let cert = Certificate::from_pem(&pem).with_context(|| {
                            format!(
                                "`email.smtp.ca_file` {} is not a PEM certificate",
                                ca.display()
                            )
                        })?;
                        params = params.add_root_certificate(cert);
                    }
                    params.build_rustls().context("cannot set up TLS for SMTP")
                };
                let tls = match s.security {
                    Security::None => smtp::Tls::None,
                    Security::Starttls => smtp::Tls::Starttls(params()?),
                    Security::Tls => smtp::Tls::Implicit(params()?),
                };
                let credentials = match (&s.username, &s.password) {
                    (Some(user), Some(secret)) => {
                        let password = secret.read().context(
                            "cannot read the SMTP password (`email.smtp.password_file` or `password_env`)",
                        )?;
                        Some(Credentials::new(user.clone(), password))
                    }
                    _ => None,
                };
                let security = match s.security {
                    Security::Starttls => "STARTTLS",
                    Security::Tls => "TLS",
                    Security::None => "no encryption",
                };
                Ok(Mailer {
                    envelope: Envelope::of(cfg)?,
                    kind: Kind::Smtp(smtp::Pool::new(smtp::Server {
                        host: s.host.clone(),
                        port: s.port,
                        tls,
                        credentials,
                        timeout: Duration::from_secs(u64::from(s.timeout_seconds)),
                    })),
                    description: format!("SMTP {}:{} ({security})", s.host, s.port),
                })
            }
        }
    }

    /// Sends one built message. At least once: if the connection is cut after the server
    /// took the message but before it answered, this reports a transient error and the
    /// message is sent again later, with the same Message-ID, so the recipient's mail system
    /// can tell.
    pub async fn send_message(&self, msg: &Message) -> Result<(), SendError> {
        match &self.kind {
            Kind::Smtp(pool) => pool.send(msg).await,
            Kind::File(dir) => write_eml(dir, msg).await,
        }
    }

    /// The From, Reply-To and domain it sends with.
    pub fn envelope(&self) -> &Envelope {
        &self.envelope
    }
}

impl Sender for Mailer {
    fn send<'a>(&'a self, out: &'a Outgoing<'a>) -> Sending<'a> {
        Box::pin(async move {
            let msg = self.envelope.build(out)?;
            self.send_message(&msg).await.map(|()| Receipt::default())
        })
    }

    /// "SMTP mail.example.invalid:587 (STARTTLS)" or "file transport into var/mail".
    fn describe(&self) -> &str {
        &self.description
    }
}

/// One `.eml` file per message, named by its Message-ID, written atomically (a temporary
/// file renamed into place), so a crash leaves no half-written file and a resend replaces it.
/// Every failure here is the local disk's (a full or read-only folder) and transient: the
/// message is retried, and the outbox reports the folder to `/healthz` while it fails. A
/// temporary file cut short by a full disk is removed, so it does not keep the space.
async fn write_eml(dir: &std::path::Path, msg: &Message) -> Result<(), SendError> {
    let id = msg
        .headers()
        .get_raw("Message-ID")
        .unwrap_or("<unnamed>")
        .to_string();
    let name: String = id
        .trim_matches(|c| c == '<' || c == '>')
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "-.@".contains(c) {
                c
            } else {
                '_'
            }
        })
        .collect();
    let io = |what: &str, e: std::io::Error| {
        SendError::Transient(format!("cannot {what} in {}: {e}", dir.display()))
    };
    tokio::fs::create_dir_all(dir)
        .await
        .map_err(|e| io("create the mail folder", e))?;
    let tmp = dir.join(format!(".{name}.tmp"));
    let written = match tokio::fs::write(&tmp, msg.formatted()).await {
        Ok(()) => tokio::fs::rename(&tmp, dir.join(format!("{name}.eml"))).await,
        Err(e) => Err(e),
    };
    if let Err(e) = written {
        let _ = tokio::fs::remove_file(&tmp).await;
        return Err(io("write the message", e));
    }
    Ok(())
}

/// An untrusted server certificate shows as a network error, not a TLS one: look at the
/// causes.
fn is_certificate_error(e: &lettre::transport::smtp::Error) -> bool {
    let mut cause: Option<&dyn std::error::Error> = std::error::Error::source(e);
    while let Some(c) = cause {
        if c.to_string().to_lowercase().contains("certificate") {
            return true;
        }
        cause = c.source();
    }
    false
}

impl From<lettre::transport::smtp::Error> for SendError {
    fn from(e: lettre::transport::smtp::Error) -> SendError {
        classify(e)
    }
}

/// Transient or permanent, with a message that says what to check.
fn classify(e: lettre::transport::smtp::Error) -> SendError {
    let text = e.to_string();
    let code: Option<u16> = e.status().map(u16::from);
    match code {
        Some(530 | 534 | 535 | 538 | 454) => SendError::Transient(format!(
            "SMTP authentication failed ({text}): check `email.smtp.username` and the password in `email.smtp.password_file` (or `password_env`)"
        )),
        _ if e.is_permanent() => SendError::Permanent(text),
        _ if e.is_tls() || is_certificate_error(&e) => SendError::Transient(format!(
            "{text} (if the server's certificate is from a private CA, name it in `email.smtp.ca_file`)"
        )),
        _ if e.is_timeout() => SendError::Transient(format!(
            "{text} (no answer in time; `email.smtp.timeout_seconds` sets how long to wait)"
        )),
        _ if e.is_response() && text.contains("incomplete") => SendError::Transient(
            "the server closed the connection without answering: the message may or may not have arrived; it is sent again (same Message-ID)".into(),
        ),
        _ => SendError::Transient(text),
    }
}
