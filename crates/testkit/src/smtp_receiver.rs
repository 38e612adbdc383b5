//! [`SmtpReceiver`]: a real SMTP server on loopback for tests of e-mail alerts. It speaks
//! EHLO/HELO, STARTTLS (or TLS from the first byte), AUTH PLAIN and LOGIN, MAIL, RCPT, DATA
//! (with dot-unstuffing), RSET, NOOP and QUIT, and records each message with its envelope, the
//! user that authenticated and whether the session was encrypted. Its certificate is issued for
//! `localhost` and `127.0.0.1` by a throwaway CA ([`SmtpReceiver::ca_pem`]) made with rcgen.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use tokio::sync::Notify;
use tokio::task::JoinHandle;
use tokio_rustls::TlsAcceptor;

/// How the receiver protects its sessions.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SmtpTls {
    /// Plain SMTP, no STARTTLS offered.
    None,
    /// Plain, with STARTTLS offered.
    StartTls,
    /// TLS from the first byte ("SMTPS").
    Implicit,
}

/// What the receiver wants.
#[derive(Clone, Debug)]
pub struct SmtpOptions {
    pub tls: SmtpTls,
    /// When set, MAIL needs a successful AUTH with this user and password.
    pub credentials: Option<(String, String)>,
}

/// One message as received.
#[derive(Clone, Debug)]
pub struct ReceivedMail {
    pub from: String,
    pub to: Vec<String>,
    /// The message (headers and body) after dot-unstuffing, lines ending in CRLF.
    pub data: String,
    pub auth_user: Option<String>,
    pub tls: bool,
    pub received: Instant,
}

impl ReceivedMail {
    /// A header's value (folded lines joined), e.g. `Subject`.
    pub fn header(&self, name: &str) -> Option<String> {
        let head = self.data.split("\r\n\r\n").next().unwrap_or("");
        let mut value: Option<String> = None;
        for line in head.split("\r\n") {
            if line.starts_with([' ', '\t']) {
                if let Some(v) = value.as_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
                continue;
            }
            if value.is_some() {
                break;
            }
            if let Some((n, v)) = line.split_once(':') {
                if n.eq_ignore_ascii_case(name) {
                    value = Some(v.trim().to_string());
                }
            }
        }
        value
    }

    /// The body after the headers, as sent.
    pub fn body(&self) -> &str {
        self.data.split_once("\r\n\r\n").map_or("", |(_, b)| b)
    }

    /// The body decoded (quoted-printable or base64, as `Content-Transfer-Encoding` says).
    pub fn text(&self) -> String {
        let encoding = self
            .header("Content-Transfer-Encoding")
            .unwrap_or_default()
            .to_ascii_lowercase();
        match encoding.as_str() {
            "quoted-printable" => quoted_printable(self.body()),
            "base64" => b64(&self.body().replace("\r\n", "")),
            _ => self.body().to_string(),
        }
    }
}

fn quoted_printable(s: &str) -> String {
    let joined = s.replace("=\r\n", "");
    let bytes = joined.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'=' && i + 2 < bytes.len() {
            if let Ok(b) = u8::from_str_radix(&joined[i + 1..i + 3], 16) {
                out.push(b);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

struct State {
    mails: Mutex<Vec<ReceivedMail>>,
    arrived: Notify,
    options: SmtpOptions,
    acceptor: TlsAcceptor,
}

/// The receiver; stops when dropped.
pub struct SmtpReceiver {
    addr: SocketAddr,
    state: Arc<State>,
    ca_pem: String,
    task: JoinHandle<()>,
}

impl SmtpReceiver {
    pub async fn start(options: SmtpOptions) -> SmtpReceiver {
        let (acceptor, ca_pem) = tls_setup();
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind an SMTP receiver on 127.0.0.1");
        let addr = listener.local_addr().expect("local address");
        let state = Arc::new(State {
            mails: Mutex::new(Vec::new()),
            arrived: Notify::new(),
            options,
            acceptor,
        });
        let st = state.clone();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let st = st.clone();
                tokio::spawn(async move {
                    if st.options.tls == SmtpTls::Implicit {
                        if let Ok(tls) = st.acceptor.accept(stream).await {
                            let _ = session(tls, &st, true).await;
                        }
                        return;
                    }
                    if let Ok(Some(plain)) = session(stream, &st, false).await {
                        if let Ok(tls) = st.acceptor.accept(plain).await {
                            let _ = session(tls, &st, true).await;
                        }
                    }
                });
            }
        });
        SmtpReceiver {
            addr,
            state,
            ca_pem,
            task,
        }
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// The PEM of the CA that issued the receiver's certificate (trust it in the client).
    pub fn ca_pem(&self) -> &str {
        &self.ca_pem
    }

    pub fn mails(&self) -> Vec<ReceivedMail> {
        self.state.mails.lock().unwrap().clone()
    }

    /// Waits until at least `n` messages arrived or `timeout` passed; returns what arrived.
    pub async fn wait_for(&self, n: usize, timeout: Duration) -> Vec<ReceivedMail> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let arrived = self.state.arrived.notified();
            let got = self.mails();
            if got.len() >= n {
                return got;
            }
            if tokio::time::timeout_at(deadline, arrived).await.is_err() {
                return self.mails();
            }
        }
    }
}

impl Drop for SmtpReceiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn tls_setup() -> (TlsAcceptor, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair};
    let ca_key = KeyPair::generate().expect("CA key");
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "holdfast test CA");
    let ca = ca_params.self_signed(&ca_key).expect("CA certificate");
    let key = KeyPair::generate().expect("server key");
    let params = CertificateParams::new(vec!["localhost".to_string(), "127.0.0.1".to_string()])
        .expect("server params");
    let cert = params
        .signed_by(&key, &ca, &ca_key)
        .expect("server certificate");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("TLS versions")
        .with_no_client_auth()
        .with_single_cert(
            vec![cert.der().clone(), CertificateDer::from(ca.der().to_vec())],
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der())),
        )
        .expect("TLS server config");
    (TlsAcceptor::from(Arc::new(config)), ca.pem())
}

/// One SMTP session on `stream`. Returns the stream when the client asked for STARTTLS (the
/// caller does the handshake and starts a new session, without a greeting... per RFC 3207 the
/// client sends EHLO again, and the server does not greet).
async fn session<S>(stream: S, st: &State, tls: bool) -> std::io::Result<Option<S>>
where
    S: AsyncRead + AsyncWrite + Unpin,
{
    let mut io = BufReader::new(stream);
    let upgraded = tls && st.options.tls == SmtpTls::StartTls;
    if !upgraded {
        io.write_all(b"220 holdfast-test ESMTP ready\r\n").await?;
    }
    let mut auth_user: Option<String> = None;
    let mut from: Option<String> = None;
    let mut to: Vec<String> = Vec::new();
    loop {
        let Some(line) = read_line(&mut io).await? else {
            return Ok(None);
        };
        let upper = line.to_ascii_uppercase();
        let verb = upper.split_whitespace().next().unwrap_or("").to_string();
        match verb.as_str() {
            "EHLO" => {
                let mut reply = String::from("250-holdfast-test\r\n");
                if st.options.tls == SmtpTls::StartTls && !tls {
                    reply.push_str("250-STARTTLS\r\n");
                }
                reply.push_str("250-AUTH PLAIN LOGIN\r\n250 8BITMIME\r\n");
                io.write_all(reply.as_bytes()).await?;
            }
            "HELO" => io.write_all(b"250 holdfast-test\r\n").await?,
            "STARTTLS" if st.options.tls == SmtpTls::StartTls && !tls => {
                io.write_all(b"220 2.0.0 ready to start TLS\r\n").await?;
                io.flush().await?;
                return Ok(Some(io.into_inner()));
            }
            "AUTH" => {
                let words: Vec<&str> = line.split_whitespace().collect();
                let mechanism = words.get(1).map(|m| m.to_ascii_uppercase());
                let creds = match mechanism.as_deref() {
                    Some("PLAIN") => {
                        let initial = match words.get(2) {
                            Some(i) => i.to_string(),
                            None => {
                                io.write_all(b"334 \r\n").await?;
                                read_line(&mut io).await?.unwrap_or_default()
                            }
                        };
                        let raw = b64(&initial);
                        let mut parts = raw.split('\0').skip(1);
                        (
                            parts.next().unwrap_or("").to_string(),
                            parts.next().unwrap_or("").to_string(),
                        )
                    }
                    Some("LOGIN") => {
                        let user = match words.get(2) {
                            Some(u) => b64(u),
                            None => {
                                io.write_all(b"334 VXNlcm5hbWU6\r\n").await?;
                                b64(&read_line(&mut io).await?.unwrap_or_default())
                            }
                        };
                        io.write_all(b"334 UGFzc3dvcmQ6\r\n").await?;
                        let pass = b64(&read_line(&mut io).await?.unwrap_or_default());
                        (user, pass)
                    }
                    _ => {
                        io.write_all(b"504 5.5.4 mechanism not supported\r\n")
                            .await?;
                        continue;
                    }
                };
                let ok = match &st.options.credentials {
                    Some((u, p)) => creds.0 == *u && creds.1 == *p,
                    None => true,
                };
                if ok {
                    auth_user = Some(creds.0);
                    io.write_all(b"235 2.7.0 authenticated\r\n").await?;
                } else {
                    io.write_all(b"535 5.7.8 authentication credentials invalid\r\n")
                        .await?;
                }
            }
            "MAIL" => {
                if st.options.credentials.is_some() && auth_user.is_none() {
                    io.write_all(b"530 5.7.0 authentication required\r\n")
                        .await?;
                } else {
                    from = Some(address(&line));
                    to.clear();
                    io.write_all(b"250 2.1.0 ok\r\n").await?;
                }
            }
            "RCPT" => {
                if from.is_none() {
                    io.write_all(b"503 5.5.1 MAIL first\r\n").await?;
                } else {
                    to.push(address(&line));
                    io.write_all(b"250 2.1.5 ok\r\n").await?;
                }
            }
            "DATA" => {
                if to.is_empty() {
                    io.write_all(b"503 5.5.1 RCPT first\r\n").await?;
                    continue;
                }
                io.write_all(b"354 end data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                io.flush().await?;
                let mut data = String::new();
                loop {
                    let Some(l) = read_line(&mut io).await? else {
                        return Ok(None);
                    };
                    if l == "." {
                        break;
                    }
                    data.push_str(l.strip_prefix('.').unwrap_or(&l));
                    data.push_str("\r\n");
                }
                st.mails.lock().unwrap().push(ReceivedMail {
                    from: from.take().unwrap_or_default(),
                    to: std::mem::take(&mut to),
                    data,
                    auth_user: auth_user.clone(),
                    tls,
                    received: Instant::now(),
                });
                st.arrived.notify_waiters();
                io.write_all(b"250 2.0.0 ok: queued\r\n").await?;
            }
            "RSET" => {
                from = None;
                to.clear();
                io.write_all(b"250 2.0.0 ok\r\n").await?;
            }
            "NOOP" => io.write_all(b"250 2.0.0 ok\r\n").await?,
            "QUIT" => {
                io.write_all(b"221 2.0.0 bye\r\n").await?;
                io.flush().await?;
                return Ok(None);
            }
            _ => {
                io.write_all(b"502 5.5.2 command not recognized\r\n")
                    .await?
            }
        }
        io.flush().await?;
    }
}

async fn read_line<R: AsyncBufReadExt + Unpin>(io: &mut R) -> std::io::Result<Option<String>> {
    let mut line = String::new();
    if io.read_line(&mut line).await? == 0 {
        return Ok(None);
    }
    Ok(Some(line.trim_end_matches(['\r', '\n']).to_string()))
}

fn b64(s: &str) -> String {
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(s.trim())
        .unwrap_or_default();
    String::from_utf8_lossy(&bytes).into_owned()
}

/// `MAIL FROM:<a@b> SIZE=…` → `a@b`.
fn address(line: &str) -> String {
    let start = line.find('<').map_or(0, |i| i + 1);
    let end = line[start..].find('>').map_or(line.len(), |i| start + i);
    line[start..end].to_string()
}

#[cfg(test)]
mod tests {
    #[test]
    fn decodes_quoted_printable() {
        assert_eq!(
            super::quoted_printable("a=3Db=\r\nc --=20\r\n"),
            "a=bc -- \r\n"
        );
    }
}
