//! `holdfast notify test --config FILE`, end to end: the real binary against real HTTP and SMTP
//! receivers on loopback.

use std::time::Duration;

use holdfast_testkit::{HttpReceiver, Reply, SmtpOptions, SmtpReceiver, SmtpTls};

async fn notify_test(config: &std::path::Path, extra: &[&str]) -> std::process::Output {
    tokio::process::Command::new(env!("CARGO_BIN_EXE_holdfast"))
        .args(["notify", "test", "--config"])
        .arg(config)
        .args(extra)
        .env("HOLDFAST_TEST_NOTIFY_SECRET", "SECxyz")
        .output()
        .await
        .expect("run holdfast")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_sends_to_every_channel_and_exits_by_the_outcome() {
    let hook = HttpReceiver::start().await;
    let robot = HttpReceiver::start().await;
    robot.set_default(Reply::json(200, r#"{"errcode":0,"errmsg":"ok"}"#));
    let smtp = SmtpReceiver::start(SmtpOptions {
        tls: SmtpTls::StartTls,
        credentials: None,
    })
    .await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, smtp.ca_pem()).unwrap();
    let robot_url = dir.path().join("dingtalk.url");
    std::fs::write(&robot_url, robot.url("/robot/send?access_token=t")).unwrap();
    let config = dir.path().join("holdfast.toml");
    std::fs::write(
        &config,
        format!(
            "[daemon]\nlisten = \"127.0.0.1:0\"\n\n\
             [[notifier]]\nkind = \"webhook\"\nname = \"hook\"\nurl = \"{}\"\n\n\
             [[notifier]]\nkind = \"dingtalk\"\nurl_file = \"{}\"\nsecret_env = \"HOLDFAST_TEST_NOTIFY_SECRET\"\n\n\
             [[notifier]]\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {}\nca_file = \"{}\"\n\
             from = \"alerts@example.com\"\nto = [\"dba@example.com\"]\n",
            hook.url("/hook"),
            robot_url.display(),
            smtp.port(),
            ca.display()
        ),
    )
    .unwrap();

    let out = notify_test(&config, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{stdout}\nstderr:\n{stderr}"
    );
    for line in [
        "OK    hook (webhook)",
        "OK    dingtalk (dingtalk)",
        "OK    email (email)",
    ] {
        assert!(stdout.contains(line), "{line} in:\n{stdout}");
    }
    let h = hook.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(h.len(), 1);
    assert_eq!(h[0].json()["event"], "test");
    let r = robot.wait_for(1, Duration::from_secs(5)).await;
    assert!(r[0].query("sign").is_some(), "signed: {}", r[0].path);
    let m = smtp.wait_for(1, Duration::from_secs(5)).await;
    assert_eq!(m.len(), 1);
    assert!(m[0].tls);
    assert_eq!(
        m[0].header("Subject").as_deref(),
        Some("[holdfast] [INFO] holdfast test alert")
    );

    // One channel refuses: exit 23, the others still get theirs, and the failure says why.
    hook.script([Reply::json(403, "forbidden: bad token")]);
    let out = notify_test(&config, &["--json"]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(23), "{stdout}");
    let report: serde_json::Value = serde_json::from_str(&stdout).expect("JSON report");
    assert_eq!(report["failed"], 1);
    let hook_result = &report["notifiers"][0];
    assert_eq!(hook_result["name"], "hook");
    assert_eq!(hook_result["ok"], false);
    assert!(
        hook_result["error"].as_str().unwrap().contains("403"),
        "{report}"
    );
    assert_eq!(report["notifiers"][1]["ok"], true);
    assert_eq!(smtp.wait_for(2, Duration::from_secs(5)).await.len(), 2);

    // `--name` picks one.
    let out = notify_test(&config, &["--name", "email"]).await;
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(String::from_utf8_lossy(&out.stdout).lines().count(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notify_test_rejects_a_bad_config_with_exit_2() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("holdfast.toml");
    let cases = [
        ("[[notifier]]\nkind = \"pager\"\n", "pager"),
        (
            "[[notifier]]\nkind = \"webhook\"\nurll = \"http://x/\"\n",
            "urll",
        ),
        ("[daemon]\n", "no [[notifier]]"),
    ];
    for (text, expect) in cases {
        std::fs::write(&config, text).unwrap();
        let out = notify_test(&config, &[]).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{text}: {stderr}");
        assert!(stderr.contains(expect), "{expect} in: {stderr}");
    }
    // A secret in clear is refused per channel (exit 23: that channel cannot be used).
    std::fs::write(
        &config,
        "[[notifier]]\nkind = \"slack\"\nurl = \"https://hooks.slack.com/services/T/B/X\"\n",
    )
    .unwrap();
    let out = notify_test(&config, &[]).await;
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(23), "{stdout}");
    assert!(
        stdout.contains("FAIL  slack (slack): not usable") && stdout.contains("url_file"),
        "{stdout}"
    );
    assert!(
        !stdout.contains("hooks.slack.com"),
        "the secret is not echoed: {stdout}"
    );
}
