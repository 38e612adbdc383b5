use std::collections::HashMap;

use super::*;

/// A scratch directory with the secret files a config refers to, and an environment.
struct Fixture {
    dir: tempfile::TempDir,
    env: HashMap<String, String>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().unwrap();
        for (name, text) in [
            ("db1.pass", "s3cret\n"),
            ("main.pass", "passphrase\n"),
            ("db2.cnf", "[client]\nuser=backup\npassword=pw\n"),
            ("state.pass", "pg\n"),
        ] {
            std::fs::write(dir.path().join(name), text).unwrap();
        }
        let mut env = HashMap::new();
        env.insert("DB3_PASSWORD".to_string(), "from-env".to_string());
        env.insert("MYSQL_PWD".to_string(), "the-daemons-own".to_string());
        Fixture { dir, env }
    }

    fn path(&self, name: &str) -> String {
        self.dir.path().join(name).display().to_string()
    }

    /// A valid config; `edit` changes its text before parsing.
    fn text(&self) -> String {
        format!(
            r#"
[daemon]
listen = "127.0.0.1:9187"
state = "{state}"
timezone = "Europe/Berlin"

[[repository]]
name = "main"
url = "file://{dir}/repo"
passphrase_file = "{main_pass}"

[[repository]]
name = "offsite"
url = "s3://bucket/prefix?region=eu-1"

[[server]]
name = "db1"
source = "mysql://backup@db1.example.com:3306/"
password_file = "{db1_pass}"
repository = "main"
binlog = true

[[server.schedule]]
job = "backup"
cron = "0 0 2 * * *"

[[server.schedule]]
job = "copy"
cron = "0 0 4 * * *"
to = "offsite"
window = "03:00-06:00"
timezone = "America/New_York"

[[server]]
name = "db2"
source = "mysql://db2.example.com/"
defaults_file = "{db2_cnf}"
repository = "main"

[[server]]
name = "db-3"
source = "mysql://backup@127.0.0.1:3307/"
password_env = "DB3_PASSWORD"
repository = "offsite"

[[notifier]]
kind = "webhook"
url = "http://127.0.0.1:9999/hook"
"#,
            state = self.path("state.db"),
            dir = self.dir.path().display(),
            main_pass = self.path("main.pass"),
            db1_pass = self.path("db1.pass"),
            db2_cnf = self.path("db2.cnf"),
        )
    }

    fn check(&self, text: &str) -> Result<Config, ConfigError> {
        let file = self.dir.path().join("holdfast.toml");
        std::fs::write(&file, text).unwrap();
        let env = |name: &str| self.env.get(name).cloned();
        load_with_env(&file, &env)
    }
}

#[test]
fn a_valid_config_loads_with_typed_accessors() {
    let fx = Fixture::new();
    let config = fx.check(&fx.text()).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.daemon.listen_addr().to_string(), "127.0.0.1:9187");
    assert_eq!(config.daemon.lease_ms(), 60_000);
    assert_eq!(config.daemon.shutdown_grace_ms(), 300_000);
    assert_eq!(
        config.daemon.state(),
        StateLocation::Sqlite(fx.dir.path().join("state.db"))
    );
    let schedules = config.schedules();
    let keys: Vec<&str> = schedules.iter().map(|(_, _, s)| s.key.as_str()).collect();
    assert_eq!(keys, ["db1/0:backup", "db1/1:copy"]);
    assert_eq!(
        schedules[0].2.tz,
        chrono_tz::Europe::Berlin,
        "the default zone"
    );
    assert_eq!(schedules[1].2.tz, chrono_tz::America::New_York);
    assert!(schedules[1].2.window.is_some());
    assert_eq!(config.server("db2").unwrap().host(), "db2.example.com");
    for (source, host) in [
        ("mysql://backup@db1:3306/", "db1"),
        ("mysql://backup@[::1]:3306/", "::1"),
        ("mysql://root@%2Frun%2Fmysqld%2Fmysqld.sock/", "localhost"),
        ("mysql://root@localhost/?socket=/x.sock", "localhost"),
        ("mysql://root@/?socket=/x.sock", "localhost"),
    ] {
        let mut s = config.server("db2").unwrap().clone();
        s.source = source.into();
        assert_eq!(s.host(), host, "{source}");
    }
}

#[test]
fn every_problem_is_reported_with_its_key() {
    let fx = Fixture::new();
    let base = fx.text();
    // (what to replace, with what, the key expected, a piece of the message)
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "name = \"db2\"",
            "name = \"db1\"",
            "server[1].name",
            "defined twice",
        ),
        (
            "name = \"db2\"",
            "name = \"DB 2\"",
            "server[1].name",
            "a-z, 0-9",
        ),
        (
            "name = \"offsite\"",
            "name = \"main\"",
            "repository[1].name",
            "defined twice",
        ),
        (
            "repository = \"offsite\"",
            "repository = \"nowhere\"",
            "server[2].repository",
            "no repository named `nowhere`",
        ),
        (
            "to = \"offsite\"",
            "to = \"main\"",
            "server[0].schedule[1].to",
            "own repository",
        ),
        (
            "to = \"offsite\"",
            "to = \"elsewhere\"",
            "server[0].schedule[1].to",
            "no repository",
        ),
        (
            "to = \"offsite\"\n",
            "",
            "server[0].schedule[1].to",
            "a copy needs `to`",
        ),
        (
            "job = \"backup\"\n",
            "job = \"backup\"\nto = \"offsite\"\n",
            "server[0].schedule[0].to",
            "only for copy",
        ),
        (
            "cron = \"0 0 2 * * *\"",
            "cron = \"0 2 * * *\"",
            "server[0].schedule[0].cron",
            "6",
        ),
        (
            "cron = \"0 0 2 * * *\"",
            "cron = \"0 0 26 * * *\"",
            "server[0].schedule[0].cron",
            "not a cron",
        ),
        (
            "timezone = \"America/New_York\"",
            "timezone = \"America/Springfield\"",
            "server[0].schedule[1].timezone",
            "unknown time zone",
        ),
        (
            "timezone = \"Europe/Berlin\"",
            "timezone = \"CET+1\"",
            "daemon.timezone",
            "IANA",
        ),
        (
            "window = \"03:00-06:00\"",
            "window = \"3-6\"",
            "server[0].schedule[1].window",
            "HH:MM",
        ),
        (
            "job = \"backup\"\n",
            "job = \"backup\"\ntimeout = \"6 hours\"\n",
            "server[0].schedule[0].timeout",
            "unknown duration unit",
        ),
        (
            "job = \"backup\"\n",
            "job = \"backup\"\nbackoff = \"10m\"\nbackoff_cap = \"1m\"\n",
            "server[0].schedule[0].backoff_cap",
            "below the first delay",
        ),
        (
            "job = \"backup\"\n",
            "job = \"backup\"\nattempts = 0\n",
            "server[0].schedule[0].attempts",
            "1 (no retries)",
        ),
        (
            "listen = \"127.0.0.1:9187\"",
            "listen = \"0.0.0.0:9187\"",
            "daemon.listen",
            "allow_plain_http",
        ),
        (
            "listen = \"127.0.0.1:9187\"",
            "listen = \"my-host\"",
            "daemon.listen",
            "IP:PORT",
        ),
        (
            "source = \"mysql://backup@db1.example.com:3306/\"",
            "source = \"mysql://backup:hunter2@db1.example.com:3306/\"",
            "server[0].source",
            "password_file",
        ),
        (
            "source = \"mysql://db2.example.com/\"",
            "source = \"postgres://db2.example.com/\"",
            "server[1].source",
            "unsupported scheme",
        ),
        (
            "db1.pass\"",
            "missing.pass\"",
            "server[0].password_file",
            "cannot read the password file",
        ),
        (
            "db2.cnf\"",
            "missing.cnf\"",
            "server[1].defaults_file",
            "cannot read the option file",
        ),
        (
            "main.pass\"",
            "nope.pass\"",
            "repository[0].passphrase_file",
            "cannot read",
        ),
        (
            "password_env = \"DB3_PASSWORD\"",
            "password_env = \"UNSET_VARIABLE\"",
            "server[2].password_env",
            "not set",
        ),
        (
            "url = \"s3://bucket/prefix?region=eu-1\"",
            "url = \"s3://bucket/prefix?region=eu-1&secret_access_key=x\"",
            "repository[1].url",
            "secret_access_key",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\nnice = 25\n",
            "daemon.nice",
            "0 (normal) to 19",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\nionice = \"low\"\n",
            "daemon.ionice",
            "idle",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\nlease = \"1s\"\n",
            "daemon.lease",
            "at least 3s",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\nmax_jobs = 0\n",
            "daemon.max_jobs",
            "at least 1",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\ncpu_max = \"half\"\n",
            "daemon.cpu_max",
            "cpu.max",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\nio_max = \"sda 50MB\"\n",
            "daemon.io_max",
            "io.max",
        ),
        (
            "timezone = \"Europe/Berlin\"\n",
            "timezone = \"Europe/Berlin\"\nstate_password_file = \"/nonexistent/pg.pass\"\n",
            "daemon.state_password_file",
            "cannot read",
        ),
        (
            "state.db\"",
            "nodir/state.db\"",
            "daemon.state",
            "does not exist",
        ),
        (
            "kind = \"webhook\"",
            "kind = \"pager\"",
            "notifier[0].kind",
            "unknown variant `pager`, expected one of `webhook`",
        ),
    ];
    for (from, to, key, piece) in cases {
        assert!(base.contains(from), "fixture lacks {from:?}");
        let text = base.replacen(from, to, 1);
        let err = match fx.check(&text) {
            Ok(_) => panic!("{key}: {to:?} was accepted"),
            Err(e) => e,
        };
        let problems = err.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.key == *key && p.message.contains(piece)),
            "{key} / {piece:?}: got {problems:#?}"
        );
        // One mistake, one problem (renaming `offsite` to `main` also leaves its references
        // dangling, rightly reported too).
        if *key != "repository[1].name" {
            assert_eq!(problems.len(), 1, "one mistake, one problem: {problems:#?}");
        }
        // The error says which file.
        assert!(err.to_string().contains("holdfast.toml"), "{err}");
    }
}

#[test]
fn all_problems_at_once_not_only_the_first() {
    let fx = Fixture::new();
    let text = fx
        .text()
        .replacen("cron = \"0 0 2 * * *\"", "cron = \"bad\"", 1)
        .replacen("repository = \"offsite\"", "repository = \"nowhere\"", 1)
        .replacen(
            "listen = \"127.0.0.1:9187\"",
            "listen = \"10.0.0.1:9187\"",
            1,
        );
    let err = fx.check(&text).unwrap_err();
    let keys: Vec<String> = err.problems().into_iter().map(|p| p.key).collect();
    assert_eq!(
        keys,
        [
            "daemon.listen",
            "server[0].schedule[0].cron",
            "server[2].repository"
        ],
        "{err}"
    );
    // One line per problem, each naming the file.
    assert_eq!(err.to_string().lines().count(), 3, "{err}");
}

#[test]
fn plain_http_elsewhere_only_when_allowed() {
    let fx = Fixture::new();
    let text = fx.text().replacen(
        "listen = \"127.0.0.1:9187\"",
        "listen = \"0.0.0.0:9187\"\nallow_plain_http = true",
        1,
    );
    let config = fx.check(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.daemon.listen_addr().to_string(), "0.0.0.0:9187");
    let text = fx
        .text()
        .replacen("listen = \"127.0.0.1:9187\"", "listen = \"[::1]:9187\"", 1);
    fx.check(&text)
        .unwrap_or_else(|e| panic!("loopback v6: {e}"));
}

#[test]
fn tls_needs_both_files_and_allows_any_address() {
    let fx = Fixture::new();
    let c = rcgen::generate_simple_self_signed(vec!["localhost".to_string()]).unwrap();
    std::fs::write(fx.dir.path().join("cert.pem"), c.cert.pem()).unwrap();
    std::fs::write(fx.dir.path().join("key.pem"), c.key_pair.serialize_pem()).unwrap();
    let listen = |extra: &str| {
        fx.text().replacen(
            "listen = \"127.0.0.1:9187\"",
            &format!("listen = \"0.0.0.0:9187\"\n{extra}"),
            1,
        )
    };
    let both = format!(
        "tls_cert = \"{}\"\ntls_key = \"{}\"",
        fx.path("cert.pem"),
        fx.path("key.pem")
    );
    let config = fx.check(&listen(&both)).unwrap_or_else(|e| panic!("{e}"));
    assert!(config.daemon.tls_cert.is_some());
    let cases = [
        (
            format!("tls_cert = \"{}\"", fx.path("cert.pem")),
            "daemon.tls_key",
            "missing",
        ),
        (
            format!("tls_key = \"{}\"", fx.path("key.pem")),
            "daemon.tls_cert",
            "missing",
        ),
        (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                fx.path("key.pem"),
                fx.path("key.pem")
            ),
            "daemon.tls_cert",
            "certificate",
        ),
        (
            format!(
                "tls_cert = \"{}\"\ntls_key = \"{}\"",
                fx.path("cert.pem"),
                fx.path("none.pem")
            ),
            "daemon.tls_cert",
            "none.pem",
        ),
    ];
    for (extra, key, says) in cases {
        let err = fx.check(&listen(&extra)).unwrap_err();
        let problems = err.problems();
        assert!(
            problems
                .iter()
                .any(|p| p.key == key && p.message.contains(says)),
            "{extra}: {err}"
        );
    }
}

#[test]
fn syntax_errors_name_the_key_and_line() {
    let fx = Fixture::new();
    let text = fx
        .text()
        .replacen("job = \"backup\"", "job = \"backups\"", 1);
    match fx.check(&text).unwrap_err() {
        ConfigError::Syntax {
            key, line, message, ..
        } => {
            assert_eq!(
                key,
                "server.schedule.job"
                    .replace("server", "server[0]")
                    .replace("schedule", "schedule[0]")
            );
            assert!(message.contains("backups"), "{message}");
            let want = text.lines().position(|l| l.contains("backups")).unwrap() + 1;
            assert_eq!(line, Some(want));
        }
        other => panic!("{other:?}"),
    }
    let text = fx
        .text()
        .replacen("binlog = true", "binlog = true\nbinlgo = false", 1);
    let err = fx.check(&text).unwrap_err();
    assert!(err.to_string().contains("binlgo"), "{err}");
    assert!(err.to_string().contains("server[0]"), "{err}");
    let err = fx.check("[daemon\n").unwrap_err();
    assert!(
        matches!(err, ConfigError::Syntax { line: Some(1), .. }),
        "{err:?}"
    );
    let err = load(&fx.dir.path().join("absent.toml")).unwrap_err();
    assert!(matches!(err, ConfigError::Read { .. }), "{err:?}");
}

#[test]
fn credentials_for_children_carry_no_secret_in_argv() {
    let fx = Fixture::new();
    let config = fx.check(&fx.text()).unwrap();
    let env = |name: &str| fx.env.get(name).cloned();

    let db1 = config
        .resolve_server_with_env(config.server("db1").unwrap(), &env)
        .unwrap();
    assert_eq!(db1.connection.password(), Some("s3cret"));
    let args: Vec<String> = db1
        .child
        .args
        .iter()
        .map(|a| a.to_string_lossy().into())
        .collect();
    assert_eq!(
        args,
        [
            "--source".to_string(),
            "mysql://backup@db1.example.com:3306/".into(),
            "--password-file".into(),
            fx.path("db1.pass"),
        ]
    );
    assert!(db1.child.env.is_empty());

    // The daemon's own MYSQL_PWD does not reach a server without a password source.
    let db2 = config
        .resolve_server_with_env(config.server("db2").unwrap(), &env)
        .unwrap();
    assert_eq!(
        db2.connection.password(),
        Some("pw"),
        "from its defaults_file"
    );
    assert_eq!(db2.connection.user, "backup");

    let db3 = config
        .resolve_server_with_env(config.server("db-3").unwrap(), &env)
        .unwrap();
    assert_eq!(db3.connection.password(), Some("from-env"));
    assert_eq!(db3.connection.password_source(), Some("$DB3_PASSWORD"));
    assert_eq!(
        db3.child.env,
        [("HOLDFAST_PASSWORD".to_string(), "from-env".to_string())]
    );
    assert!(!db3
        .child
        .args
        .iter()
        .any(|a| a.to_string_lossy().contains("from-env")));
    assert!(
        !format!("{:?}", db3.child).contains("from-env"),
        "Debug redacts"
    );

    let main = config.repository("main").unwrap();
    let to = main.child_credentials(RepoRole::To, &env);
    let args: Vec<String> = to.args.iter().map(|a| a.to_string_lossy().into()).collect();
    assert_eq!(args[0], "--to");
    assert_eq!(args[2], "--to-passphrase-file");
}

#[test]
fn the_lead_s_accessors_keep_their_meaning() {
    let fx = Fixture::new();
    let text = fx.text().replacen(
        "job = \"backup\"\n",
        "job = \"backup\"\ntimeout = \"2h\"\nattempts = 5\nbackoff = \"10s\"\nbackoff_cap = \"2m\"\npriority = 7\n",
        1,
    );
    let config = fx.check(&text).unwrap_or_else(|e| panic!("{e}"));
    let db1 = config.server("db1").unwrap();
    let spec = config.scheduled_job(db1, 0, crate::jobs::Trigger::CatchUp, 1_000);
    assert_eq!(spec.timeout_ms, 2 * 3_600_000);
    assert_eq!(spec.max_attempts, 5);
    assert_eq!(spec.backoff_base_ms, 10_000);
    assert_eq!(spec.backoff_cap_ms, 120_000);
    assert_eq!(spec.priority, 7);
    assert_eq!(spec.schedule.as_deref(), Some("db1/0:backup"));
    assert_eq!(schedule_key(db1, 1), "db1/1:copy");
    assert_eq!(parse_duration_ms("2d"), Ok(172_800_000));
    assert_eq!(config.daemon.limits().global, 2);
}

/// The keys a section accepts, read from serde's own "unknown field" error.
fn keys_of(probe: &str) -> Vec<String> {
    let err = Config::parse(probe, Path::new("probe.toml")).unwrap_err();
    let text = err.to_string();
    let list = text
        .split("expected ")
        .nth(1)
        .unwrap_or_else(|| panic!("{text}"));
    let list = list.strip_prefix("one of ").unwrap_or(list);
    list.split(", ")
        .flat_map(|k| k.split(" or "))
        .map(|k| k.trim().trim_matches('`').to_string())
        .collect()
}

#[test]
fn the_example_config_shows_every_key() {
    let example = include_str!("../../../../contrib/holdfast.toml");
    let shown = |key: &str| {
        example.lines().any(|l| {
            let l = l.trim_start_matches('#').trim_start();
            l.starts_with(&format!("{key} ="))
                || l.starts_with(&format!("[[{key}]]"))
                || l.starts_with(&format!("[{key}]"))
                || l.starts_with(&format!("[[server.{key}]]"))
        })
    };
    for probe in [
        "__probe = 1",
        "[daemon]\n__probe = 1",
        "[alerts]\n__probe = 1",
        "[[repository]]\n__probe = 1",
        "[[server]]\n__probe = 1",
        "[[server]]\n[[server.schedule]]\n__probe = 1",
    ] {
        let keys = keys_of(probe);
        assert!(keys.len() >= 2, "{probe}: {keys:?}");
        for key in keys {
            assert!(
                shown(&key),
                "contrib/holdfast.toml does not show `{key}` ({probe})"
            );
        }
    }
    for kind in crate::jobs::JobKind::ALL {
        assert!(example.contains(kind.as_str()), "job kind {kind}");
    }
}
