//! The test kit's HTTP and SMTP receivers, spoken to by hand over real sockets: the parts the
//! alert tests' clients (reqwest, lettre) do not use, such as chunked bodies, AUTH LOGIN and
//! dot-stuffing.

use std::time::Duration;

use holdfast_testkit::{HttpReceiver, Reply, SmtpOptions, SmtpReceiver, SmtpTls};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;

#[tokio::test]
async fn http_receiver_reads_chunked_bodies_and_follows_its_script_on_one_connection() {
    let rx = HttpReceiver::start().await;
    rx.script([Reply::status(500), Reply::json(201, "{\"a\":1}")]);
    let mut s = TcpStream::connect(rx.addr()).await.unwrap();
    let requests = "POST /one?x=a%2Bb HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n\
                    3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n\
                    POST /two HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi\
                    GET /three HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n";
    s.write_all(requests.as_bytes()).await.unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).await.unwrap();
    // Bodies have no line end, so a status line may follow a body on the same line.
    let statuses: Vec<&str> = answer
        .split("HTTP/1.1 ")
        .skip(1)
        .map(|part| part.lines().next().unwrap_or(""))
        .collect();
    assert_eq!(
        statuses,
        vec!["500 Internal Server Error", "201 Status", "200 OK"]
    );
    let got = rx.wait_for(3, Duration::from_secs(5)).await;
    assert_eq!(got[0].body, b"abcde");
    assert_eq!(got[0].query("x").as_deref(), Some("a+b"));
    assert_eq!(got[1].body, b"hi");
    assert_eq!(
        (got[2].method.as_str(), got[2].path.as_str()),
        ("GET", "/three")
    );
    assert_eq!(got[2].header("HOST"), Some("t"));
}

async fn expect(r: &mut BufReader<TcpStream>, code: &str) -> String {
    let mut last = String::new();
    loop {
        let mut line = String::new();
        r.read_line(&mut line).await.unwrap();
        assert!(line.starts_with(code), "expected {code}, got {line:?}");
        last.push_str(&line);
        if line.as_bytes().get(3) == Some(&b' ') {
            return last;
        }
    }
}

async fn send(r: &mut BufReader<TcpStream>, line: &str) {
    r.get_mut()
        .write_all(format!("{line}\r\n").as_bytes())
        .await
        .unwrap();
}

#[tokio::test]
async fn smtp_receiver_speaks_auth_login_and_unstuffs_dots() {
    let rx = SmtpReceiver::start(SmtpOptions {
        tls: SmtpTls::None,
        credentials: Some(("u".into(), "p".into())),
    })
    .await;
    let mut r = BufReader::new(TcpStream::connect(("127.0.0.1", rx.port())).await.unwrap());
    expect(&mut r, "220").await;
    send(&mut r, "EHLO client").await;
    let ehlo = expect(&mut r, "250").await;
    assert!(
        ehlo.contains("AUTH PLAIN LOGIN") && !ehlo.contains("STARTTLS"),
        "{ehlo}"
    );
    send(&mut r, "MAIL FROM:<a@example.com>").await;
    expect(&mut r, "530").await; // authentication first
    send(&mut r, "AUTH LOGIN").await;
    expect(&mut r, "334").await;
    send(&mut r, "dQ==").await; // "u"
    expect(&mut r, "334").await;
    send(&mut r, "eA==").await; // "x": wrong
    expect(&mut r, "535").await;
    send(&mut r, "AUTH LOGIN dQ==").await;
    expect(&mut r, "334").await;
    send(&mut r, "cA==").await; // "p"
    expect(&mut r, "235").await;
    send(&mut r, "MAIL FROM:<a@example.com> SIZE=100").await;
    expect(&mut r, "250").await;
    send(&mut r, "RCPT TO:<b@example.com>").await;
    expect(&mut r, "250").await;
    send(&mut r, "DATA").await;
    expect(&mut r, "354").await;
    send(
        &mut r,
        "Subject: hello\r\n\r\nline one\r\n..starts with a dot\r\n.",
    )
    .await;
    expect(&mut r, "250").await;
    send(&mut r, "QUIT").await;
    expect(&mut r, "221").await;
    let mails = rx.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(mails.len(), 1);
    let m = &mails[0];
    assert_eq!(
        (m.from.as_str(), m.to.clone()),
        ("a@example.com", vec!["b@example.com".to_string()])
    );
    assert_eq!(m.auth_user.as_deref(), Some("u"));
    assert!(!m.tls);
    assert_eq!(m.header("subject").as_deref(), Some("hello"));
    assert_eq!(m.text(), "line one\r\n.starts with a dot\r\n");
}
