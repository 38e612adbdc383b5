//! Alert channels against real receivers on loopback (testkit's HTTP and SMTP servers): each
//! channel's format, signatures recomputed here, retries, de-duplication, rate limits, a queue
//! that never blocks, and delivery latency.

use std::time::{Duration, Instant};

use base64::Engine;
use hmac::{Hmac, Mac};
use holdfast_daemon::config::{Config, NotifierConfig};
use holdfast_daemon::jobs::JobKind;
use holdfast_daemon::notify::{Alert, Notifications, NotifyOptions};
use holdfast_testkit::{HttpReceiver, Reply, SmtpOptions, SmtpReceiver, SmtpTls};
use sha2::Sha256;

const WAIT: Duration = Duration::from_secs(10);

/// The `[[notifier]]` entries of a config text, through the daemon's own config type.
fn notifiers(text: &str) -> Vec<NotifierConfig> {
    let config: Config = toml::from_str(text).unwrap_or_else(|e| panic!("{e}\n{text}"));
    config.notifier
}

fn start(text: &str, options: NotifyOptions) -> Notifications {
    Notifications::start(&notifiers(text), options).expect("notifiers build")
}

fn options() -> NotifyOptions {
    NotifyOptions::default()
}

fn failed() -> Alert {
    Alert::job_failed(
        "db1",
        "main",
        JobKind::Backup,
        42,
        "exit 11: access denied for user 'backup'",
    )
}

fn recovered() -> Alert {
    Alert::job_recovered("db1", "main", JobKind::Backup, 43)
}

fn write(dir: &tempfile::TempDir, name: &str, content: &str) -> String {
    let path = dir.path().join(name);
    std::fs::write(&path, format!("{content}\n")).unwrap();
    path.display().to_string()
}

fn hmac_b64(key: &[u8], message: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    mac.update(message);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_posts_the_alert_json_with_its_bearer_token() {
    let rx = HttpReceiver::start().await;
    let dir = tempfile::tempdir().unwrap();
    let token = write(&dir, "token", "s3cr3t-token");
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\nbearer_token_file = \"{token}\"\n",
            rx.url("/hook")
        ),
        options(),
    );
    n.emit(failed());
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert_eq!(r.method, "POST");
    assert_eq!(r.path, "/hook");
    assert_eq!(r.header("authorization"), Some("Bearer s3cr3t-token"));
    assert_eq!(r.header("content-type"), Some("application/json"));
    let j = r.json();
    assert_eq!(j["version"], 1);
    assert_eq!(j["status"], "firing");
    assert_eq!(j["key"], "job-failed/db1/backup");
    assert_eq!(j["event"], "job-failed");
    assert_eq!(j["severity"], "critical");
    assert_eq!(j["labels"]["server"], "db1");
    assert_eq!(j["labels"]["job_id"], "42");
    assert!(j["text"].as_str().unwrap().contains("access denied"), "{j}");
    assert!(n.drain(WAIT).await);
    assert_eq!(n.counters().channels[0].sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn alertmanager_payload_is_version_4_firing_then_resolved() {
    let rx = HttpReceiver::start().await;
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"alertmanager\"\nname = \"am\"\nurl = \"{}\"\n",
            rx.url("/api/alerts")
        ),
        options(),
    );
    n.emit(failed());
    rx.wait_for(1, WAIT).await;
    n.emit(recovered());
    let got = rx.wait_for(2, WAIT).await;
    assert_eq!(got.len(), 2);
    let firing = got[0].json();
    assert_eq!(firing["version"], "4");
    assert_eq!(firing["status"], "firing");
    assert_eq!(firing["receiver"], "am");
    assert_eq!(firing["truncatedAlerts"], 0);
    assert!(firing["groupKey"]
        .as_str()
        .unwrap()
        .contains("job-failed/db1/backup"));
    let a = &firing["alerts"][0];
    assert_eq!(a["status"], "firing");
    assert_eq!(a["labels"]["alertname"], "job-failed");
    assert_eq!(a["labels"]["severity"], "critical");
    assert_eq!(a["labels"]["server"], "db1");
    assert_eq!(a["endsAt"], "0001-01-01T00:00:00Z");
    assert!(a["annotations"]["summary"]
        .as_str()
        .unwrap()
        .contains("backup of db1"));
    let resolved = got[1].json();
    assert_eq!(resolved["status"], "resolved");
    let b = &resolved["alerts"][0];
    assert_eq!(b["status"], "resolved");
    assert_eq!(
        b["fingerprint"], a["fingerprint"],
        "same incident, same fingerprint"
    );
    assert_eq!(
        b["startsAt"], a["startsAt"],
        "resolved keeps the incident's start"
    );
    assert_ne!(b["endsAt"], "0001-01-01T00:00:00Z");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_url_comes_from_a_file_and_never_from_the_config() {
    let rx = HttpReceiver::start().await;
    rx.set_default(Reply::json(200, "ok"));
    let dir = tempfile::tempdir().unwrap();
    let url = write(&dir, "slack.url", &rx.url("/services/T000/B000/XXXX"));

    let clear = notifiers(&format!(
        "[[notifier]]\nkind = \"slack\"\nurl = \"{}\"\n",
        rx.url("/x")
    ));
    let err = Notifications::start(&clear, options())
        .err()
        .expect("clear URL refused");
    assert!(err.to_string().contains("url_file"), "{err}");

    let n = start(
        &format!("[[notifier]]\nkind = \"slack\"\nurl_file = \"{url}\"\n"),
        options(),
    );
    n.emit(failed());
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].path, "/services/T000/B000/XXXX");
    let j = got[0].json();
    assert_eq!(j["text"], "[CRITICAL] backup of db1 failed");
    assert_eq!(j["attachments"][0]["color"], "danger");
    assert!(j["attachments"][0]["text"]
        .as_str()
        .unwrap()
        .contains("Job 42"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_signs_each_request_as_dingtalk_documents() {
    let rx = HttpReceiver::start().await;
    rx.set_default(Reply::json(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    let dir = tempfile::tempdir().unwrap();
    let secret = "SEC0123456789abcdef";
    let secret_file = write(&dir, "dt.secret", secret);
    std::env::set_var(
        "HOLDFAST_TEST_DT_URL",
        rx.url("/robot/send?access_token=abc123"),
    );
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"dingtalk\"\nurl_env = \"HOLDFAST_TEST_DT_URL\"\n\
             secret_file = \"{secret_file}\"\n"
        ),
        options(),
    );
    n.emit(failed());
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let r = &got[0];
    assert!(r.path.starts_with("/robot/send?"), "{}", r.path);
    assert_eq!(r.query("access_token").as_deref(), Some("abc123"));
    let timestamp: i64 = r.query("timestamp").unwrap().parse().unwrap();
    let now = holdfast_daemon::time::now_millis();
    assert!(
        (now - timestamp).abs() < 60_000,
        "timestamp {timestamp} is in milliseconds, now"
    );
    // Recompute: base64(HMAC-SHA256(secret, "timestamp\nsecret")), sent URL-encoded.
    let expected = hmac_b64(
        secret.as_bytes(),
        format!("{timestamp}\n{secret}").as_bytes(),
    );
    assert_eq!(r.query("sign").as_deref(), Some(expected.as_str()));
    let raw_sign = r.path.split("sign=").nth(1).unwrap();
    assert!(!raw_sign.contains('+') && !raw_sign.contains('/') && !raw_sign.contains('='));
    let j = r.json();
    assert_eq!(j["msgtype"], "markdown");
    assert_eq!(j["markdown"]["title"], "[CRITICAL] backup of db1 failed");
    let text = j["markdown"]["text"].as_str().unwrap();
    assert!(
        text.contains("holdfast") && text.contains("**server**: db1"),
        "{text}"
    );
    assert!(n.drain(WAIT).await);
    assert_eq!(n.counters().channels[0].sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dingtalk_error_code_fails_the_delivery_and_busy_is_retried() {
    let rx = HttpReceiver::start().await;
    rx.script([
        Reply::json(200, r#"{"errcode":130101,"errmsg":"send too fast"}"#),
        Reply::json(200, r#"{"errcode":0,"errmsg":"ok"}"#),
        Reply::json(200, r#"{"errcode":310000,"errmsg":"sign not match"}"#),
    ]);
    let dir = tempfile::tempdir().unwrap();
    let url = write(&dir, "dt.url", &rx.url("/robot/send?access_token=t"));
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"dingtalk\"\nurl_file = \"{url}\"\nbackoff = \"20ms\"\n\
             rate = \"unlimited\"\n"
        ),
        options(),
    );
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    n.emit(Alert::drill_failed(
        Some("db1"),
        "main",
        "b1",
        "row count differs",
    ));
    assert!(n.drain(WAIT).await);
    let c = &n.counters().channels[0];
    assert_eq!(
        rx.requests().len(),
        3,
        "busy retried once, sign error not retried"
    );
    assert_eq!((c.sent, c.failed, c.retries), (1, 1, 1));
    assert!(c.last_error.as_deref().unwrap().contains("310000"), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wecom_sends_markdown() {
    let rx = HttpReceiver::start().await;
    rx.set_default(Reply::json(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    let dir = tempfile::tempdir().unwrap();
    let url = write(&dir, "wecom.url", &rx.url("/cgi-bin/webhook/send?key=k-1"));
    let n = start(
        &format!("[[notifier]]\nkind = \"wecom\"\nurl_file = \"{url}\"\n"),
        options(),
    );
    n.emit(Alert::archive_lag("db1", "main", 600_000, 300_000));
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].query("key").as_deref(), Some("k-1"));
    let j = got[0].json();
    assert_eq!(j["msgtype"], "markdown");
    let content = j["markdown"]["content"].as_str().unwrap();
    assert!(
        content.contains("[WARNING] binlog archive of db1 lags 10m00s"),
        "{content}"
    );
    assert!(content.contains("threshold 5m00s"), "{content}");
    assert!(n.drain(WAIT).await);
    assert_eq!(n.counters().channels[0].sent, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn feishu_signs_the_body_as_feishu_documents() {
    let rx = HttpReceiver::start().await;
    rx.set_default(Reply::json(200, r#"{"code":0,"msg":"success","data":{}}"#));
    let dir = tempfile::tempdir().unwrap();
    let url = write(
        &dir,
        "feishu.url",
        &rx.url("/open-apis/bot/v2/hook/hook-id"),
    );
    std::env::set_var("HOLDFAST_TEST_FEISHU_SECRET", "feishu-secret");
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"feishu\"\nurl_file = \"{url}\"\n\
             secret_env = \"HOLDFAST_TEST_FEISHU_SECRET\"\n"
        ),
        options(),
    );
    n.emit(Alert::repository_size("main", 950, 1000));
    let got = rx.wait_for(1, WAIT).await;
    assert_eq!(got.len(), 1);
    let j = got[0].json();
    let timestamp: i64 = j["timestamp"].as_str().unwrap().parse().unwrap();
    let now_s = holdfast_daemon::time::now_millis() / 1000;
    assert!((now_s - timestamp).abs() < 60, "timestamp in seconds");
    // Recompute: key = "timestamp\nsecret", message empty.
    let expected = hmac_b64(format!("{timestamp}\nfeishu-secret").as_bytes(), b"");
    assert_eq!(j["sign"], expected.as_str());
    assert_eq!(j["msg_type"], "post");
    assert_eq!(
        j["content"]["post"]["zh_cn"]["title"],
        "[WARNING] repository main is 95% full"
    );
    assert!(n.drain(WAIT).await);
    assert_eq!(n.counters().channels[0].sent, 1);
}

async fn email_case(tls: SmtpTls, mode: &str) {
    let rx = SmtpReceiver::start(SmtpOptions {
        tls,
        credentials: Some(("alerts".into(), "p4ss word".into())),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(&dir, "ca.pem", rx.ca_pem());
    let pass = write(&dir, "smtp.pass", "p4ss word");
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {}\ntls = \"{mode}\"\n\
             ca_file = \"{ca}\"\nusername = \"alerts\"\npassword_file = \"{pass}\"\n\
             from = \"holdfast <alerts@example.com>\"\n\
             to = [\"dba@example.com\", \"oncall@example.com\"]\n",
            rx.port()
        ),
        options(),
    );
    n.emit(failed());
    let got = rx.wait_for(1, WAIT).await;
    assert!(n.drain(WAIT).await);
    assert_eq!(got.len(), 1, "{:?}", n.counters());
    let m = &got[0];
    assert!(m.tls, "the session was encrypted");
    assert_eq!(m.auth_user.as_deref(), Some("alerts"));
    assert_eq!(m.from, "alerts@example.com");
    assert_eq!(m.to, vec!["dba@example.com", "oncall@example.com"]);
    assert_eq!(
        m.header("Subject").as_deref(),
        Some("[holdfast] [CRITICAL] backup of db1 failed")
    );
    let body = m.text();
    assert!(body.contains("access denied for user 'backup'"), "{body}");
    assert!(body.contains("incident: job-failed/db1/backup"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_starttls_with_auth() {
    email_case(SmtpTls::StartTls, "starttls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_over_implicit_tls_with_auth() {
    email_case(SmtpTls::Implicit, "tls").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_starttls_required_but_not_offered_is_an_error_not_a_downgrade() {
    let rx = SmtpReceiver::start(SmtpOptions {
        tls: SmtpTls::None,
        credentials: None,
    })
    .await;
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {}\n\
             from = \"alerts@example.com\"\nto = [\"dba@example.com\"]\nattempts = 1\n",
            rx.port()
        ),
        options(),
    );
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    assert!(rx.mails().is_empty());
    assert_eq!(n.counters().channels[0].failed, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn email_wrong_password_is_permanent() {
    let rx = SmtpReceiver::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        credentials: Some(("alerts".into(), "right".into())),
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = write(&dir, "ca.pem", rx.ca_pem());
    std::env::set_var("HOLDFAST_TEST_SMTP_PASS", "wrong");
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{ca}\"\n\
             username = \"alerts\"\npassword_env = \"HOLDFAST_TEST_SMTP_PASS\"\n\
             from = \"alerts@example.com\"\nto = [\"dba@example.com\"]\nbackoff = \"10ms\"\n",
            rx.port()
        ),
        options(),
    );
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    let c = &n.counters().channels[0];
    assert_eq!((c.sent, c.failed, c.retries), (0, 1, 0), "{c:?}");
    assert!(rx.mails().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_5xx_is_retried_with_backoff_until_delivered() {
    let rx = HttpReceiver::start().await;
    rx.script([Reply::status(500), Reply::status(503)]);
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\nbackoff = \"50ms\"\nbackoff_cap = \"200ms\"\n",
            rx.url("/h")
        ),
        options(),
    );
    n.emit(failed());
    let got = rx.wait_for(3, WAIT).await;
    assert!(n.drain(WAIT).await);
    let statuses: Vec<u16> = got.iter().map(|r| r.answered).collect();
    assert_eq!(statuses, vec![500, 503, 200]);
    assert_eq!(got[0].body, got[2].body, "the same alert each time");
    let c = &n.counters().channels[0];
    assert_eq!((c.sent, c.failed, c.retries), (1, 0, 2));
    assert_eq!(rx.requests().len(), 3, "nothing after the success");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_4xx_is_not_retried_and_the_retries_give_up_at_attempts() {
    let rx = HttpReceiver::start().await;
    rx.script([Reply::json(400, "invalid_payload")]);
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\nbackoff = \"10ms\"\nattempts = 3\n",
            rx.url("/h")
        ),
        options(),
    );
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    assert_eq!(rx.requests().len(), 1, "a 400 is not retried");
    let c = n.counters().channels[0].clone();
    assert_eq!((c.sent, c.failed, c.retries), (0, 1, 0));
    assert!(c.last_error.as_deref().unwrap().contains("400"), "{c:?}");
    assert!(
        !c.last_error.as_deref().unwrap().contains("127.0.0.1"),
        "no URL in errors"
    );

    // A server that keeps failing: exactly `attempts` tries, then given up.
    rx.set_default(Reply::status(502));
    n.emit(Alert::drill_failed(Some("db1"), "main", "b1", "checksum"));
    assert!(n.drain(WAIT).await);
    assert_eq!(rx.requests().len(), 1 + 3);
    let c = n.counters().channels[0].clone();
    assert_eq!((c.sent, c.failed, c.retries), (0, 2, 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_refused_is_retried() {
    // A port nobody listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"http://127.0.0.1:{port}/h\"\n\
             backoff = \"10ms\"\nattempts = 3\n"
        ),
        options(),
    );
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    let c = &n.counters().channels[0];
    assert_eq!((c.sent, c.failed, c.retries), (0, 1, 2), "{c:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_message_per_incident_and_one_when_it_resolves() {
    let rx = HttpReceiver::start().await;
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\n",
            rx.url("/h")
        ),
        options(),
    );
    n.emit(recovered()); // nothing open: says nothing
    n.emit(failed());
    n.emit(failed()); // same incident
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    assert_eq!(
        n.open_incidents(),
        vec!["job-failed/db1/backup".to_string()]
    );
    n.emit(recovered());
    n.emit(recovered()); // already resolved
    assert!(n.drain(WAIT).await);
    let got = rx.requests();
    let statuses: Vec<String> = got
        .iter()
        .map(|r| r.json()["status"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(statuses, vec!["firing", "resolved"]);
    assert_eq!(got[1].json()["event"], "job-recovered");
    let c = n.counters();
    assert_eq!((c.emitted, c.duplicates, c.nothing_open), (6, 2, 2));
    assert!(n.open_incidents().is_empty());

    // A new failure is a new incident.
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    assert_eq!(rx.requests().len(), 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reload_keeps_open_incidents() {
    let old_rx = HttpReceiver::start().await;
    let new_rx = HttpReceiver::start().await;
    let config = |rx: &HttpReceiver| {
        format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\n",
            rx.url("/h")
        )
    };
    let n = start(&config(&old_rx), options());
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    let bad =
        notifiers("[[notifier]]\nkind = \"slack\"\nurl_env = \"HOLDFAST_TEST_SURELY_UNSET\"\n");
    assert!(
        n.reload(&bad, options()).is_err(),
        "a bad config does not build"
    );
    let next = n.reload(&notifiers(&config(&new_rx)), options()).unwrap();
    drop(n);
    next.emit(failed()); // still open: not sent again
    next.emit(recovered()); // resolved through the new channels
    assert!(next.drain(WAIT).await);
    let got = new_rx.requests();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].json()["status"], "resolved");
    assert_eq!(old_rx.requests().len(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_open_incident_is_repeated_after_the_repeat_interval() {
    let rx = HttpReceiver::start().await;
    let mut o = options();
    o.repeat_ms = 300;
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\nrate = \"unlimited\"\n",
            rx.url("/h")
        ),
        o,
    );
    n.emit(failed());
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    assert_eq!(rx.requests().len(), 1);
    tokio::time::sleep(Duration::from_millis(350)).await;
    n.emit(failed());
    n.emit(failed());
    assert!(n.drain(WAIT).await);
    let got = rx.requests();
    assert_eq!(got.len(), 2, "one reminder after the interval");
    assert_eq!(got[1].json()["started_at"], got[0].json()["started_at"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_rate_limit_spaces_messages_per_channel_and_loses_none() {
    let slow = HttpReceiver::start().await;
    let fast = HttpReceiver::start().await;
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nname = \"slow\"\nurl = \"{}\"\nrate = \"2/s\"\n\
             [[notifier]]\nkind = \"webhook\"\nname = \"fast\"\nurl = \"{}\"\nrate = \"unlimited\"\n",
            slow.url("/h"),
            fast.url("/h")
        ),
        options(),
    );
    let t0 = Instant::now();
    for i in 0..5 {
        n.emit(Alert::schedule_missed(
            "db1",
            "db1/0:backup",
            1_000 * i,
            "daemon was down",
        ));
    }
    let fast_got = fast.wait_for(5, WAIT).await;
    assert_eq!(fast_got.len(), 5);
    let got = slow.wait_for(5, WAIT).await;
    assert_eq!(got.len(), 5, "over the limit waits, nothing is dropped");
    assert!(
        fast_got[4].received < got[2].received,
        "an unlimited channel is not held up by a limited one"
    );
    // A burst of 2, then one every 500 ms (lower bounds are the bucket's guarantee; 100 ms of
    // slack for the bucket starting before t0).
    let at: Vec<Duration> = got.iter().map(|r| r.received - t0).collect();
    assert!(at[1] < Duration::from_millis(450), "a burst of two: {at:?}");
    assert!(at[2] >= Duration::from_millis(400), "{at:?}");
    assert!(at[3] >= Duration::from_millis(900), "{at:?}");
    assert!(at[4] >= Duration::from_millis(1_400), "{at:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn emit_never_blocks_and_a_full_queue_drops_the_oldest() {
    let rx = HttpReceiver::start().await;
    rx.set_default(Reply::status(200).delayed(Duration::from_millis(300)));
    let o = NotifyOptions {
        queue: 8,
        channel_queue: 4,
        ..options()
    };
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\nrate = \"unlimited\"\n",
            rx.url("/h")
        ),
        o,
    );
    let t0 = Instant::now();
    for i in 0..500 {
        n.emit(Alert::schedule_missed("db1", "db1/0:backup", i, "down"));
    }
    let spent = t0.elapsed();
    assert!(
        spent < Duration::from_millis(200),
        "500 emits took {spent:?}"
    );
    assert!(n.drain(Duration::from_secs(30)).await);
    let c = n.counters();
    let ch = &c.channels[0];
    assert_eq!(c.emitted, 500);
    assert!(c.dropped + ch.dropped > 0, "{c:?}");
    assert_eq!(
        c.dropped + ch.dropped + ch.sent,
        500,
        "every alert is accounted for: {c:?}"
    );
    // The newest survives a full queue.
    let last = rx.requests().last().unwrap().json();
    assert_eq!(last["key"], "schedule-missed/db1/0:backup/499");
}

/// Delivery latency (emit → the receiver has the whole request) over `HOLDFAST_NOTIFY_LATENCY_N`
/// alerts (default 200), one after the other, printed as p50/p99.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_latency_to_a_webhook() {
    let count: usize = std::env::var("HOLDFAST_NOTIFY_LATENCY_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let rx = HttpReceiver::start().await;
    let n = start(
        &format!(
            "[[notifier]]\nkind = \"webhook\"\nurl = \"{}\"\nrate = \"unlimited\"\n",
            rx.url("/h")
        ),
        options(),
    );
    let mut latencies = Vec::with_capacity(count);
    for i in 0..count {
        let t0 = Instant::now();
        n.emit(Alert::schedule_missed(
            "db1",
            "db1/0:backup",
            i as i64,
            "latency probe",
        ));
        let got = rx.wait_for(i + 1, WAIT).await;
        assert_eq!(got.len(), i + 1, "alert {i} arrived");
        latencies.push(got[i].received - t0);
    }
    latencies.sort();
    let p = |q: f64| {
        latencies[((latencies.len() as f64 * q).ceil() as usize).clamp(1, latencies.len()) - 1]
    };
    println!(
        "alert delivery latency over {count} alerts: p50 {:?}, p99 {:?}, max {:?}",
        p(0.50),
        p(0.99),
        latencies[latencies.len() - 1]
    );
    assert!(p(0.50) < Duration::from_secs(1), "p50 {:?}", p(0.50));
}
