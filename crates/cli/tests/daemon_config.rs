//! `holdfast daemon --check-config`: the shipped example validates and prints its plan; a bad
//! config lists every problem with its key and exits 2.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const EXAMPLE: &str = include_str!("../../../contrib/holdfast.toml");

/// The example with its /etc/holdfast and /var/lib/holdfast files in a temp dir.
fn example_in(dir: &Path) -> PathBuf {
    let etc = dir.join("etc");
    let var = dir.join("var");
    std::fs::create_dir_all(&etc).unwrap();
    std::fs::create_dir_all(&var).unwrap();
    for (name, text) in [
        ("main.pass", "passphrase\n"),
        ("main.age", "AGE-SECRET-KEY-1EXAMPLE\n"),
        ("db1.pass", "pw1\n"),
        ("db2.cnf", "[client]\nuser=backup\npassword=pw2\n"),
        ("ca.pem", ""),
    ] {
        std::fs::write(etc.join(name), text).unwrap();
    }
    let text = EXAMPLE
        .replace("/etc/holdfast/", &format!("{}/", etc.display()))
        .replace("/var/lib/holdfast/", &format!("{}/", var.display()));
    let file = dir.join("holdfast.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn check(file: &Path, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_holdfast"));
    cmd.args(["daemon", "--check-config", "--config"])
        .arg(file)
        .args(extra)
        .env_remove("HOLDFAST_CONFIG")
        .env_remove("DB3_PASSWORD")
        .env_remove("HOLDFAST_OFFSITE_PASSPHRASE");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

const ENV: &[(&str, &str)] = &[
    ("DB3_PASSWORD", "pw3"),
    ("HOLDFAST_OFFSITE_PASSPHRASE", "offsite"),
];

#[test]
fn the_example_config_validates_and_prints_its_plan() {
    let dir = tempfile::tempdir().unwrap();
    let file = example_in(dir.path());

    let out = check(&file, &["--json", "--next", "2"], ENV);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    let plan: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(plan["schema"], "holdfast/v1");
    assert_eq!(plan["valid"], true);
    assert_eq!(plan["store"]["kind"], "sqlite");
    assert_eq!(plan["binlog_archiving"], serde_json::json!(["db1"]));
    assert_eq!(plan["notifiers"], serde_json::json!({"webhook": 1}));
    let schedules = plan["schedules"].as_array().unwrap();
    let keys: Vec<&str> = schedules
        .iter()
        .map(|s| s["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "db1/0:backup",
            "db1/1:drill",
            "db1/2:copy",
            "db2/0:backup-physical",
            "db2/1:incremental",
            "db2/2:verify",
            "db2/3:expire",
        ]
    );
    for s in schedules {
        assert_eq!(s["next"].as_array().unwrap().len(), 2, "{s}");
    }
    let backup = &schedules[0];
    assert_eq!(backup["timezone"], "Europe/Berlin");
    let first = &backup["next"][0];
    let local = first["planned_local"].as_str().unwrap();
    assert!(
        local.contains(" 02:00:00 CE"),
        "02:00 Berlin time (CET or CEST): {local}"
    );
    assert!(first["planned"].as_str().unwrap().ends_with('Z'));
    assert_eq!(schedules[1]["window"], "01:00-05:00");

    // The same plan as text.
    let out = check(&file, &[], ENV);
    assert_eq!(out.status.code(), Some(0));
    let text = String::from_utf8_lossy(&out.stdout);
    for piece in [
        "the config is valid",
        "binlog archiving: db1",
        "db1/1:drill",
        "window 01:00-05:00",
        "notifiers: webhook 1",
    ] {
        assert!(text.contains(piece), "{piece:?} missing:\n{text}");
    }
    assert!(!text.contains("pw3") && !text.contains("pw1"), "{text}");
}

#[test]
fn a_bad_config_lists_every_problem_and_exits_2() {
    let dir = tempfile::tempdir().unwrap();
    let file = example_in(dir.path());
    let text = std::fs::read_to_string(&file)
        .unwrap()
        .replacen("cron = \"0 0 2 * * *\"", "cron = \"0 2 * * *\"", 1)
        .replacen("to = \"offsite\"", "to = \"main\"", 1)
        .replacen(
            "listen = \"127.0.0.1:9187\"",
            "listen = \"0.0.0.0:9187\"",
            1,
        )
        .replacen(
            "source = \"mysql://db2.example.com/\"",
            "source = \"mysql://backup:secret-pw@db2.example.com/\"",
            1,
        );
    std::fs::write(&file, text).unwrap();

    // DB3_PASSWORD unset: a fifth problem.
    let out = check(&file, &["--json"], &[("HOLDFAST_OFFSITE_PASSPHRASE", "x")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["valid"], false);
    assert_eq!(report["error"]["kind"], "usage");
    let keys: Vec<&str> = report["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["key"].as_str().unwrap())
        .collect();
    assert_eq!(
        keys,
        [
            "daemon.listen",
            "server[0].schedule[0].cron",
            "server[0].schedule[2].to",
            "server[1].source",
            "server[2].password_env",
        ],
        "{stderr}"
    );
    for key in &keys {
        assert!(
            stderr.contains(&format!("holdfast.toml: {key}: ")),
            "{key} on stderr:\n{stderr}"
        );
    }
    assert!(stderr.contains("5 problems"), "{stderr}");
    assert!(
        !stderr.contains("secret-pw")
            && !String::from_utf8_lossy(&out.stdout).contains("secret-pw"),
        "the password in the URL is not echoed:\n{stderr}"
    );
}

#[test]
fn a_syntax_error_names_the_line_and_key() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("holdfast.toml");
    std::fs::write(
        &file,
        "[daemon]\nlisten = \"127.0.0.1:9187\"\nmax_jobz = 3\n",
    )
    .unwrap();
    let out = check(&file, &[], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("holdfast.toml:3: daemon.max_jobz: unknown field `max_jobz`"),
        "{stderr}"
    );

    let out = check(&dir.path().join("absent.toml"), &[], &[]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read the config file"));
}
