//! SMTP connections: lettre's protocol client over our own sockets, pooled.
//!
//! lettre's pooled transport opens its sockets without `TCP_NODELAY`. It writes a message's
//! body and the final `.` line in two writes, so Nagle's algorithm holds the `.` until the
//! server acknowledges the body, and the server delays that acknowledgement (40 ms on Linux)
//! while it waits for the rest: every message on a reused connection costs 40 ms. Measured
//! here: 84 messages per second through four pooled connections to a local server. So this
//! module opens the TCP (and, for implicit TLS, the TLS) stream itself, with `TCP_NODELAY`,
//! and hands it to lettre's `AsyncSmtpConnection`, which speaks the protocol (EHLO, STARTTLS,
//! AUTH, MAIL/RCPT/DATA, dot-stuffing). Idle connections are kept for reuse, at most
//! [`POOL_SIZE`], and checked with NOOP when they have been idle a while.

// `AsyncNetworkStream` is public but deprecated in lettre 0.11 ("not meant to be made
// public"); it is the only way to get lettre's TLS before the greeting (implicit TLS) on a
// socket of ours. If a later lettre removes it, implicit TLS falls back to its own connect.
#![allow(deprecated)]

use std::io;
use std::net::SocketAddr;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use futures_io::{AsyncRead as FuturesRead, AsyncWrite as FuturesWrite};
use lettre::Message;
use lettre::transport::smtp::authentication::{Credentials, Mechanism};
use lettre::transport::smtp::client::{
    AsyncNetworkStream, AsyncSmtpConnection, AsyncTokioStream, TlsParameters,
};
use lettre::transport::smtp::extension::ClientId;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;

use super::channel::SendError;

/// Idle connections kept for reuse.
pub const POOL_SIZE: usize = 4;
/// A connection idle longer than this is checked with NOOP before reuse.
const CHECK_AFTER: Duration = Duration::from_secs(10);
/// A connection idle longer than this is closed instead of reused.
const IDLE_LIMIT: Duration = Duration::from_secs(60);

/// How the connection is secured.
#[derive(Clone)]
pub enum Tls {
    /// No TLS (loopback only; the config refuses it elsewhere).
    None,
    /// STARTTLS after the greeting, required.
    Starttls(TlsParameters),
    /// TLS from the first byte.
    Implicit(TlsParameters),
}

/// Where and how to connect.
#[derive(Clone)]
pub struct Server {
    /// Host name.
    pub host: String,
    /// Port.
    pub port: u16,
    /// TLS mode.
    pub tls: Tls,
    /// AUTH credentials.
    pub credentials: Option<Credentials>,
    /// Limit for each network step.
    pub timeout: Duration,
}

struct Idle {
    conn: AsyncSmtpConnection,
    since: Instant,
}

/// Adds what to change to an error that comes from `security` not matching the port: TLS
/// spoken to a server that greets in plain text (rustls reads "220 …" as a corrupt record),
/// or plain SMTP waiting for a greeting from a server that waits for TLS first (port 465, or
/// any port where the greeting never comes: an SMTP server greets at once, a TLS one says
/// nothing until the client's hello).
fn security_hint(e: SendError, s: &Server) -> SendError {
    let hint = |text: &str| -> Option<String> {
        match &s.tls {
            Tls::Implicit(_)
                if text.contains("InvalidContentType") || text.contains("corrupt message") =>
            {
                Some(format!(
                    "port {} answers in plain text, so it wants `security = \"starttls\"` (ports 587 and 25); `security = \"tls\"` is for port 465, which speaks TLS at once",
                    s.port
                ))
            }
            Tls::Starttls(_) | Tls::None if s.port == 465 => Some(
                "port 465 speaks TLS at once and wants `security = \"tls\"`; `starttls` is for ports 587 and 25".to_string(),
            ),
            Tls::Starttls(_) | Tls::None if text.starts_with(GREETING_TIMEOUT) => Some(format!(
                "port {} sent no greeting: a server that waits in silence expects TLS at once, as port 465 does, and wants `security = \"tls\"`",
                s.port
            )),
            _ => None,
        }
    };
    match e {
        SendError::Transient(t) => match hint(&t) {
            Some(h) => SendError::Transient(format!("{t} ({h})")),
            None => SendError::Transient(t),
        },
        SendError::Permanent(t) => match hint(&t) {
            Some(h) => SendError::Permanent(format!("{t} ({h})")),
            None => SendError::Permanent(t),
        },
        other => other,
    }
}

/// What a greeting that never came is called in the error (see [`security_hint`]).
const GREETING_TIMEOUT: &str = "greeting";

/// A pool of SMTP connections to one server.
pub struct Pool {
    server: Server,
    idle: Mutex<Vec<Idle>>,
    hello: ClientId,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pool({}:{})", self.server.host, self.server.port)
    }
}

/// A TLS stream made by lettre before the greeting (implicit TLS), seen as a tokio stream so
/// lettre's connection can be built on it.
struct Wrapped {
    inner: AsyncNetworkStream,
    peer: SocketAddr,
}

impl std::fmt::Debug for Wrapped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Wrapped({})", self.peer)
    }
}

impl AsyncRead for Wrapped {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        let dst = buf.initialize_unfilled();
        match Pin::new(&mut self.inner).poll_read(cx, dst) {
            Poll::Ready(Ok(n)) => {
                buf.advance(n);
                Poll::Ready(Ok(()))
            }
            Poll::Ready(Err(e)) => Poll::Ready(Err(e)),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl AsyncWrite for Wrapped {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_close(cx)
    }
}

impl AsyncTokioStream for Wrapped {
    fn peer_addr(&self) -> io::Result<SocketAddr> {
        Ok(self.peer)
    }
}

impl Pool {
    /// A pool for `server` (connections are opened on demand).
    pub fn new(server: Server) -> Pool {
        Pool {
            server,
            idle: Mutex::new(Vec::new()),
            hello: ClientId::default(),
        }
    }

    async fn timed<T, E>(
        &self,
        what: &str,
        f: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, SendError>
    where
        E: Into<SendError>,
    {
        match tokio::time::timeout(self.server.timeout, f).await {
            Ok(r) => r.map_err(Into::into),
            Err(_) => Err(SendError::Transient(format!(
                "{what}: no answer within {} s",
                self.server.timeout.as_secs()
            ))),
        }
    }

    async fn connect(&self) -> Result<AsyncSmtpConnection, SendError> {
        let s = &self.server;
        let addr = format!("{}:{}", s.host, s.port);
        let tcp = self
            .timed("connect", async {
                TcpStream::connect(&addr)
                    .await
                    .map_err(|e| {
                        SendError::Transient(format!(
                            "cannot connect to {addr}: {e} (is the SMTP server running, and are `email.smtp.host` and `port` right?)"
                        ))
                    })
            })
            .await?;
        // The point of this module: no Nagle delay on the final line of each message.
        let _ = tcp.set_nodelay(true);
        let peer = tcp
            .peer_addr()
            .map_err(|e| SendError::Transient(format!("connection to {addr} lost: {e}")))?;
        let stream: Box<dyn AsyncTokioStream> = match &s.tls {
            Tls::Implicit(params) => {
                let mut inner = AsyncNetworkStream::use_existing_tokio1(Box::new(tcp));
                self.timed("TLS handshake", inner.upgrade_tls(params.clone()))
                    .await
                    .map_err(|e| security_hint(e, s))?;
                Box::new(Wrapped { inner, peer })
            }
            _ => Box::new(tcp),
        };
        let mut conn = self
            .timed(
                GREETING_TIMEOUT,
                AsyncSmtpConnection::connect_with_transport(stream, &self.hello),
            )
            .await
            .map_err(|e| security_hint(e, s))?;
        if let Tls::Starttls(params) = &s.tls {
            if !conn.can_starttls() {
                return Err(SendError::Transient(format!(
                    "{addr} does not offer STARTTLS; use `security = \"tls\"` if it expects TLS from the start"
                )));
            }
            self.timed("STARTTLS", conn.starttls(params.clone(), &self.hello))
                .await?;
        }
        if let Some(creds) = &s.credentials {
            self.timed(
                "AUTH",
                conn.auth(&[Mechanism::Plain, Mechanism::Login], creds),
            )
            .await?;
        }
        Ok(conn)
    }

    /// A connection: an idle one if it is still good, or a new one.
    async fn checkout(&self) -> Result<AsyncSmtpConnection, SendError> {
        loop {
            let idle = self.idle.lock().await.pop();
            let Some(Idle { mut conn, since }) = idle else {
                return self.connect().await;
            };
            let age = since.elapsed();
            if conn.has_broken() || age > IDLE_LIMIT {
                self.close(conn).await;
                continue;
            }
            if age > CHECK_AFTER {
                let alive = tokio::time::timeout(self.server.timeout, conn.test_connected()).await;
                if !matches!(alive, Ok(true)) {
                    self.close(conn).await;
                    continue;
                }
            }
            return Ok(conn);
        }
    }

    /// Sends one message (at least once: see [`super::channel::Sender::send`]).
    pub async fn send(&self, msg: &Message) -> Result<(), SendError> {
        let mut conn = self.checkout().await?;
        let body = msg.formatted();
        let result = self
            .timed("sending", conn.send(msg.envelope(), &body))
            .await
            .map(|_| ());
        if result.is_ok() && !conn.has_broken() {
            let mut idle = self.idle.lock().await;
            if idle.len() < POOL_SIZE {
                idle.push(Idle {
                    conn,
                    since: Instant::now(),
                });
                return result;
            }
        }
        self.close(conn).await;
        result
    }

    /// QUIT and close, without waiting long for a server that does not answer.
    async fn close(&self, mut conn: AsyncSmtpConnection) {
        let _ = tokio::time::timeout(self.server.timeout, conn.abort()).await;
    }
}
