//! Checking a parsed [`Config`] before it runs: every value parses, every reference resolves,
//! every secret source exists; all problems are collected, each with its key path.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;

use holdfast::source::conn::redact_url;

use super::{
    parse_duration_ms, Config, ConfigError, NotifierConfig, Problem, RepositoryConfig,
    ScheduleConfig, ServerConfig, StateLocation,
};
use crate::jobs::JobKind;
use crate::scheduler::{parse_cron, parse_timezone, Window};

/// The environment as validation sees it (injected in tests).
pub type Env<'a> = &'a dyn Fn(&str) -> Option<String>;

/// Names of servers, repositories and notifiers: `[a-z0-9_-]+`, at most this long.
pub const MAX_NAME_LEN: usize = 64;

/// The notifier kinds the daemon knows.
pub const NOTIFIER_KINDS: &[&str] = &[
    "webhook",
    "alertmanager",
    "slack",
    "dingtalk",
    "wecom",
    "feishu",
    "email",
];

struct Check<'a> {
    problems: Vec<Problem>,
    env: Env<'a>,
}

impl Check<'_> {
    fn add(&mut self, key: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem::new(key, message));
    }

    fn name(&mut self, key: &str, name: &str, what: &str) {
        let ok = !name.is_empty()
            && name.len() <= MAX_NAME_LEN
            && name
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-');
        if !ok {
            self.add(
                key,
                format!(
                    "the {what} name `{name}` must be 1 to {MAX_NAME_LEN} characters of a-z, 0-9, \
                     `_` and `-` (it is used in metrics labels, job records and file names)"
                ),
            );
        }
    }

    fn duration(&mut self, key: &str, value: &str, min_ms: i64) -> Option<i64> {
        match parse_duration_ms(value) {
            Ok(ms) if ms >= min_ms => Some(ms),
            Ok(_) => {
                self.add(
                    key,
                    format!("`{value}` is too short; at least {}", human_ms(min_ms)),
                );
                None
            }
            Err(e) => {
                self.add(key, e);
                None
            }
        }
    }

    /// A secret file: must exist and be readable by this process.
    fn readable(&mut self, key: &str, path: &Path, what: &str) {
        match std::fs::File::open(path) {
            Ok(f) => {
                if f.metadata().is_ok_and(|m| m.is_dir()) {
                    self.add(
                        key,
                        format!("{} is a directory, not the {what} file", path.display()),
                    );
                }
            }
            Err(e) => self.add(
                key,
                format!(
                    "cannot read the {what} file {}: {e}; create it (mode 0600, owned by the \
                     daemon's user) or fix the path, and run the check as the daemon's user",
                    path.display()
                ),
            ),
        }
    }

    /// An environment variable that must be set (non-empty) for the daemon.
    fn env_set(&mut self, key: &str, name: &str, what: &str) {
        if name.is_empty() || (self.env)(name).is_none_or(|v| v.is_empty()) {
            self.add(
                key,
                format!(
                    "the environment variable `{name}` ({what}) is not set for this process; set \
                     it in the daemon's environment (systemd: Environment= or \
                     EnvironmentFile=), or name a file instead"
                ),
            );
        }
    }
}

fn human_ms(ms: i64) -> String {
    if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    }
}

/// Validates `config` against `env`; `file` is named in the error.
pub(super) fn validate(config: &Config, file: &Path, env: Env<'_>) -> Result<(), ConfigError> {
    let mut c = Check {
        problems: Vec::new(),
        env,
    };
    daemon(&mut c, config);
    let mut repos: HashMap<&str, usize> = HashMap::new();
    for (i, r) in config.repository.iter().enumerate() {
        let key = format!("repository[{i}]");
        c.name(&format!("{key}.name"), &r.name, "repository");
        if let Some(first) = repos.insert(&r.name, i) {
            c.add(
                format!("{key}.name"),
                format!(
                    "repository `{}` is defined twice (also repository[{first}]); names must be \
                     unique",
                    r.name
                ),
            );
        }
        repository(&mut c, &key, r);
    }
    let mut servers: HashMap<&str, usize> = HashMap::new();
    for (i, s) in config.server.iter().enumerate() {
        let key = format!("server[{i}]");
        c.name(&format!("{key}.name"), &s.name, "server");
        if let Some(first) = servers.insert(&s.name, i) {
            c.add(
                format!("{key}.name"),
                format!(
                    "server `{}` is defined twice (also server[{first}]); names must be unique",
                    s.name
                ),
            );
        }
        server(&mut c, config, &key, s);
    }
    let mut notifiers: HashMap<String, usize> = HashMap::new();
    for (i, n) in config.notifier.iter().enumerate() {
        let key = format!("notifier[{i}]");
        let name = n.name();
        c.name(&format!("{key}.name"), name, "notifier");
        if let Some(first) = notifiers.insert(name.to_string(), i) {
            c.add(
                format!("{key}.name"),
                format!(
                    "notifier `{name}` is defined twice (also notifier[{first}]); names must be \
                     unique (a notifier without `name` is named after its kind)"
                ),
            );
        }
        if let Err(e) = crate::notify::Delivery::from_config(n) {
            c.add(key.clone(), e.message);
        }
        if let (Some(_), true) = n.clear_url() {
            c.add(
                format!("{key}.url"),
                format!(
                    "a {} URL carries its access token, so it must not be in the config file in \
                     clear: put it in a file (url_file) or an environment variable (url_env)",
                    n.kind()
                ),
            );
        }
        for secret in n.secrets() {
            let what = secret.what;
            match (secret.file, secret.env) {
                (Some(_), Some(_)) => c.add(
                    format!("{key}.{what}_file"),
                    format!("both {what}_file and {what}_env are set; keep one"),
                ),
                (Some(path), None) => c.readable(&format!("{key}.{what}_file"), path, what),
                (None, Some(var)) => c.env_set(&format!("{key}.{what}_env"), var, what),
                (None, None) if secret.required => c.add(
                    format!("{key}.{what}_file"),
                    format!("set {what}_file or {what}_env"),
                ),
                (None, None) => {}
            }
        }
        if let NotifierConfig::Email(e) = n {
            let tls = e.tls.as_deref().unwrap_or("starttls");
            if !matches!(tls, "starttls" | "tls" | "none") {
                c.add(
                    format!("{key}.tls"),
                    format!("`{tls}` is not one of \"starttls\", \"tls\", \"none\""),
                );
            }
            if tls == "none" && (e.password_file.is_some() || e.password_env.is_some()) {
                c.add(
                    format!("{key}.tls"),
                    "tls = \"none\" with a password would send it in clear; use \"starttls\" or \"tls\"",
                );
            }
            if e.to.is_empty() {
                c.add(format!("{key}.to"), "name at least one recipient");
            }
        }
    }
    c.duration("alerts.repeat_interval", &config.alerts.repeat_interval, 0);
    c.duration("alerts.archive_lag", &config.alerts.archive_lag, 1_000);
    let ratio = config.alerts.size_warn_ratio;
    if !(ratio > 0.0 && ratio <= 1.0) {
        c.add(
            "alerts.size_warn_ratio",
            format!("{ratio} is not a share; give a number above 0 and at most 1, e.g. 0.9"),
        );
    }
    if c.problems.is_empty() {
        Ok(())
    } else {
        Err(ConfigError::Invalid {
            file: file.to_path_buf(),
            problems: c.problems,
        })
    }
}

fn daemon(c: &mut Check<'_>, config: &Config) {
    let d = &config.daemon;
    match super::parse_listen(&d.listen) {
        Ok(addr) => {
            let tls = d.tls_cert.is_some() || d.tls_key.is_some();
            if !addr.ip().is_loopback() && !d.allow_plain_http && !tls {
                c.add(
                    "daemon.listen",
                    format!(
                        "`{}` is not a loopback address, and the daemon serves plain HTTP; give \
                         `tls_cert` and `tls_key` (HTTPS), listen on 127.0.0.1 (and put a TLS \
                         proxy in front), or set `allow_plain_http = true` if the network is \
                         trusted",
                        d.listen
                    ),
                );
            }
        }
        Err(e) => c.add("daemon.listen", e),
    }
    match (&d.tls_cert, &d.tls_key) {
        (Some(cert), Some(key)) => {
            if let Err(e) = crate::tls::server_config(cert, key) {
                c.add("daemon.tls_cert", e);
            }
        }
        (Some(_), None) => c.add(
            "daemon.tls_key",
            "missing: `tls_cert` needs its private key file (PEM) too",
        ),
        (None, Some(_)) => c.add(
            "daemon.tls_cert",
            "missing: `tls_key` needs its certificate chain file (PEM) too",
        ),
        (None, None) => {}
    }
    match d.state() {
        StateLocation::Postgres(url) => {
            if redact_url(&url) != url {
                c.add(
                    "daemon.state",
                    "the PostgreSQL URL holds a password; remove it from the URL and put it in \
                     the file named by `state_password_file` (first line, mode 0600) or in the \
                     environment variable HOLDFAST_STATE_PASSWORD",
                );
            }
        }
        StateLocation::Sqlite(path) => {
            if path.as_os_str().is_empty() {
                c.add(
                    "daemon.state",
                    "empty; give a SQLite file path or a postgres:// URL",
                );
            } else if let Some(dir) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                if !dir.is_dir() {
                    c.add(
                        "daemon.state",
                        format!(
                            "the directory {} of the state database does not exist; create it \
                             (owned by the daemon's user; systemd's StateDirectory= does)",
                            dir.display()
                        ),
                    );
                }
            }
        }
    }
    if let Some(f) = &d.state_password_file {
        c.readable("daemon.state_password_file", f, "store password");
    }
    if let Some(w) = &d.worker_id {
        if w.trim().is_empty() || w.len() > 200 {
            c.add(
                "daemon.worker_id",
                "give a non-empty name up to 200 characters, or leave it out (host name and pid)",
            );
        }
    }
    if d.max_jobs == 0 {
        c.add("daemon.max_jobs", "must be at least 1");
    }
    if d.max_jobs_per_host == 0 {
        c.add("daemon.max_jobs_per_host", "must be at least 1");
    }
    c.duration("daemon.lease", &d.lease, 3_000);
    c.duration("daemon.shutdown_grace", &d.shutdown_grace, 0);
    if let Err(e) = parse_timezone(&d.timezone) {
        c.add("daemon.timezone", e);
    }
    if !(0..=19).contains(&d.nice) {
        c.add(
            "daemon.nice",
            format!(
                "{} is out of range; CPU niceness of heavy jobs is 0 (normal) to 19 (lowest)",
                d.nice
            ),
        );
    }
    if !matches!(d.ionice.as_str(), "idle" | "best-effort" | "none") {
        c.add(
            "daemon.ionice",
            format!(
                "unknown I/O class `{}`; use \"idle\", \"best-effort\" or \"none\"",
                d.ionice
            ),
        );
    }
    if let Some(v) = &d.cpu_max {
        if !valid_cpu_max(v) {
            c.add(
                "daemon.cpu_max",
                format!(
                    "`{v}` is not a cgroup v2 cpu.max value; write \"QUOTA PERIOD\" in \
                     microseconds (\"50000 100000\" = half a core) or \"max\""
                ),
            );
        }
    }
    if let Some(v) = &d.io_max {
        if !valid_io_max(v) {
            c.add(
                "daemon.io_max",
                format!(
                    "`{v}` is not a cgroup v2 io.max line; write \"MAJOR:MINOR key=value…\" with \
                     keys rbps, wbps, riops, wiops (e.g. \"8:0 wbps=52428800\")"
                ),
            );
        }
    }
    if let Some(bin) = &d.holdfast_binary {
        match std::fs::metadata(bin) {
            Ok(m) if m.is_file() && is_executable(&m) => {}
            Ok(_) => c.add(
                "daemon.holdfast_binary",
                format!("{} is not an executable file", bin.display()),
            ),
            Err(e) => c.add(
                "daemon.holdfast_binary",
                format!(
                    "{}: {e}; give the path of the holdfast binary, or leave it out to use the \
                     daemon's own",
                    bin.display()
                ),
            ),
        }
    }
}

#[cfg(unix)]
fn is_executable(m: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::PermissionsExt;
    m.permissions().mode() & 0o111 != 0
}

#[cfg(not(unix))]
fn is_executable(_m: &std::fs::Metadata) -> bool {
    true
}

fn valid_cpu_max(v: &str) -> bool {
    let parts: Vec<&str> = v.split_whitespace().collect();
    let quota_ok = |q: &str| q == "max" || q.parse::<u64>().is_ok_and(|n| n >= 1000);
    match parts.as_slice() {
        [q] => quota_ok(q),
        [q, p] => {
            quota_ok(q)
                && p.parse::<u64>()
                    .is_ok_and(|n| (1000..=1_000_000).contains(&n))
        }
        _ => false,
    }
}

fn valid_io_max(v: &str) -> bool {
    let mut parts = v.split_whitespace();
    let dev_ok = parts
        .next()
        .and_then(|d| d.split_once(':'))
        .is_some_and(|(a, b)| a.parse::<u32>().is_ok() && b.parse::<u32>().is_ok());
    let mut any = false;
    for kv in parts {
        any = true;
        let Some((k, val)) = kv.split_once('=') else {
            return false;
        };
        if !matches!(k, "rbps" | "wbps" | "riops" | "wiops")
            || !(val == "max" || val.parse::<u64>().is_ok_and(|n| n > 0))
        {
            return false;
        }
    }
    dev_ok && any
}

fn repository(c: &mut Check<'_>, key: &str, r: &RepositoryConfig) {
    let url = r.url.trim();
    if url.is_empty() {
        c.add(
            format!("{key}.url"),
            "empty; give the repository location as for --repo (file:///path, s3://bucket/prefix?…)",
        );
    } else if redact_url(url) != url {
        c.add(
            format!("{key}.url"),
            "the URL holds a password; object-store credentials come from the environment \
             (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, …) or the store's own credential files, \
             never from this file",
        );
    } else if let Some(secret) = secret_query_param(url) {
        c.add(
            format!("{key}.url"),
            format!(
                "the URL carries the secret `{secret}`; remove it and give it in the daemon's \
                 environment (e.g. AWS_SECRET_ACCESS_KEY) instead"
            ),
        );
    }
    if let Some(f) = &r.passphrase_file {
        c.readable(&format!("{key}.passphrase_file"), f, "passphrase");
    }
    if let Some(name) = &r.passphrase_env {
        c.env_set(
            &format!("{key}.passphrase_env"),
            name,
            "the repository passphrase",
        );
    }
    if r.passphrase_file.is_some() && r.passphrase_env.is_some() {
        c.add(
            format!("{key}.passphrase_env"),
            "give either passphrase_file or passphrase_env, not both",
        );
    }
    for (j, f) in r.identity_file.iter().enumerate() {
        c.readable(&format!("{key}.identity_file[{j}]"), f, "age identity");
    }
    if let Some(v) = &r.max_rate {
        if let Err(e) = holdfast::units::parse_rate(v) {
            c.add(format!("{key}.max_rate"), e);
        }
    }
    if let Some(v) = &r.size_limit {
        match holdfast::units::parse_size(v) {
            Ok(0) => c.add(format!("{key}.size_limit"), "must be above 0"),
            Ok(_) => {}
            Err(e) => c.add(format!("{key}.size_limit"), e),
        }
    }
}

/// A query parameter that carries a secret (`secret_access_key=…`, `password=…`), if any.
fn secret_query_param(url: &str) -> Option<String> {
    let query = url.split_once('?')?.1;
    query.split('&').find_map(|pair| {
        let name = pair.split('=').next().unwrap_or("").to_ascii_lowercase();
        let secret = ["secret", "password", "token", "credential", "sas"]
            .iter()
            .any(|s| name.contains(s));
        secret.then_some(name)
    })
}

fn server(c: &mut Check<'_>, config: &Config, key: &str, s: &ServerConfig) {
    let source = s.source.trim();
    if source.is_empty() {
        c.add(
            format!("{key}.source"),
            "empty; give the server as mysql://user@host:port/ (no password)",
        );
    } else if redact_url(source) != source {
        c.add(
            format!("{key}.source"),
            format!(
                "the URL holds a password ({}); remove it and give the password in a file named \
                 by `password_file` (first line, mode 0600), an option file named by \
                 `defaults_file` ([client] password=…), or an environment variable named by \
                 `password_env`",
                redact_url(source)
            ),
        );
    }
    let before = c.problems.len();
    if let Some(f) = &s.defaults_file {
        c.readable(&format!("{key}.defaults_file"), f, "option");
    }
    if let Some(f) = &s.password_file {
        c.readable(&format!("{key}.password_file"), f, "password");
    }
    if let Some(name) = &s.password_env {
        c.env_set(&format!("{key}.password_env"), name, "the server password");
    }
    if s.password_file.is_some() && s.password_env.is_some() {
        c.add(
            format!("{key}.password_env"),
            "give either password_file or password_env, not both",
        );
    }
    if c.problems.len() == before && !source.is_empty() && redact_url(source) == source {
        // Resolve like the CLI would (URL syntax, option files, the password file), once the
        // files are known to be there (else their problem would be reported twice).
        if let Err(e) = super::credentials::resolve_connection(s, c.env) {
            c.add(format!("{key}.source"), e.to_string());
        }
    }
    if config.repository(&s.repository).is_none() {
        c.add(
            format!("{key}.repository"),
            format!(
                "no repository named `{}`; define it under [[repository]] or use one of: {}",
                s.repository,
                names(config.repository.iter().map(|r| r.name.as_str()))
            ),
        );
    }
    for (j, sch) in s.schedule.iter().enumerate() {
        schedule(c, config, &format!("{key}.schedule[{j}]"), s, sch);
    }
}

fn schedule(c: &mut Check<'_>, config: &Config, key: &str, s: &ServerConfig, sch: &ScheduleConfig) {
    if let Err(e) = parse_cron(&sch.cron) {
        c.add(format!("{key}.cron"), e);
    }
    if let Some(tz) = &sch.timezone {
        if let Err(e) = parse_timezone(tz) {
            c.add(format!("{key}.timezone"), e);
        }
    }
    if let Some(w) = &sch.window {
        if let Err(e) = w.parse::<Window>() {
            c.add(format!("{key}.window"), e);
        }
    }
    if let Some(t) = &sch.timeout {
        c.duration(&format!("{key}.timeout"), t, 1_000);
    }
    let base = sch
        .backoff
        .as_deref()
        .and_then(|b| c.duration(&format!("{key}.backoff"), b, 100));
    let cap = sch
        .backoff_cap
        .as_deref()
        .and_then(|b| c.duration(&format!("{key}.backoff_cap"), b, 100));
    let (base_ms, cap_ms) = (base.unwrap_or(30_000), cap.unwrap_or(900_000));
    if (sch.backoff.is_some() || sch.backoff_cap.is_some()) && base_ms > cap_ms {
        c.add(
            format!("{key}.backoff_cap"),
            format!(
                "the cap ({}) is below the first delay ({}); raise backoff_cap or lower backoff",
                human_ms(cap_ms),
                human_ms(base_ms)
            ),
        );
    }
    if let Some(a) = sch.attempts {
        if !(1..=100).contains(&a) {
            c.add(
                format!("{key}.attempts"),
                format!("{a} attempts; give 1 (no retries) to 100"),
            );
        }
    }
    match (sch.job, &sch.to) {
        (JobKind::Copy, None) => c.add(
            format!("{key}.to"),
            "a copy needs `to`, the name of the repository to copy to",
        ),
        (JobKind::Copy, Some(to)) => {
            if config.repository(to).is_none() {
                c.add(
                    format!("{key}.to"),
                    format!(
                        "no repository named `{to}`; define it under [[repository]] or use one \
                         of: {}",
                        names(config.repository.iter().map(|r| r.name.as_str()))
                    ),
                );
            } else if *to == s.repository {
                c.add(
                    format!("{key}.to"),
                    format!("`{to}` is this server's own repository; a copy goes to another one"),
                );
            }
        }
        (kind, Some(_)) => c.add(
            format!("{key}.to"),
            format!("`to` is only for copy jobs, not `{kind}`; remove it"),
        ),
        (_, None) => {}
    }
}

fn names<'a>(it: impl Iterator<Item = &'a str>) -> String {
    let mut v: Vec<&str> = Vec::new();
    for name in it {
        if !v.contains(&name) {
            v.push(name);
        }
    }
    if v.is_empty() {
        "(none defined)".to_string()
    } else {
        v.join(", ")
    }
}

/// Parses `IP:PORT` (or `localhost:PORT`, read as 127.0.0.1).
pub(super) fn parse_listen(text: &str) -> Result<SocketAddr, String> {
    let t = text.trim();
    if let Some(port) = t.strip_prefix("localhost:") {
        if let Ok(port) = port.parse::<u16>() {
            return Ok(SocketAddr::from(([127, 0, 0, 1], port)));
        }
    }
    t.parse::<SocketAddr>().map_err(|_| {
        format!(
            "`{text}` is not an address to listen on; write IP:PORT, e.g. 127.0.0.1:9187 or \
             [::1]:9187"
        )
    })
}
