//! `holdfast daemon`: the loop that runs everything by itself.
//!
//! Every second (or as soon as a job ends) the daemon
//! 1. fires due schedules into the job store ([`scheduling`]); a schedule fires once across
//!    all daemons sharing the store, and after downtime it catches up once;
//! 2. rescues jobs whose worker stopped heartbeating;
//! 3. claims and starts jobs while its limits allow ([`worker`]).
//!
//! Beside it: one supervised binlog archiver per server with `binlog = true`, the metrics
//! refresh from each repository, and the HTTP endpoints. SIGHUP reloads the config (a bad file
//! keeps the old one and says why); SIGTERM stops scheduling and claiming, lets running jobs
//! finish up to `shutdown_grace`, then cancels them (each `holdfast` child stops cleanly:
//! nothing partial is listed) and returns.

mod prune;
mod refresh;
mod scheduling;
mod worker;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{watch, Notify};
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use crate::alerts::Alerts;
use crate::config::Config;
use crate::http::Health;
use crate::runner::process::IoClass;
use crate::runner::Isolation;
use crate::store::{AccessStore, JobStore};
use crate::time::now_millis;

/// Why the daemon could not start (or had to stop).
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error("{0}")]
    Config(String),
    #[error(transparent)]
    Store(#[from] crate::store::StoreError),
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
}

/// Wraps the daemon's whole HTTP router (the authentication layer goes here).
pub type RouterLayer = Box<dyn FnOnce(axum::Router) -> axum::Router + Send>;

/// How the daemon is started.
pub struct Options {
    pub config_path: PathBuf,
    /// The `holdfast` binary jobs run (normally the daemon's own executable).
    pub program: PathBuf,
    /// Applied to the HTTP router (metrics, probes and `/api/v1`) before it serves.
    pub layer: Option<RouterLayer>,
    /// Where mutating API requests are reported (default: the daemon's log).
    pub audit: Option<Arc<dyn crate::api::AuditSink>>,
    /// Stops the daemon like SIGTERM does (for embedding it; signals still work).
    pub stop: CancellationToken,
}

impl Options {
    pub fn new(config_path: PathBuf, program: PathBuf) -> Options {
        Options {
            config_path,
            program,
            layer: None,
            audit: None,
            stop: CancellationToken::new(),
        }
    }
}

fn load(path: &std::path::Path) -> Result<Config, String> {
    crate::config::load(path).map_err(|e| e.to_string())
}

/// What the daemon's tasks share.
pub struct Shared {
    pub store: Arc<dyn JobStore>,
    /// The same database's users, tokens, sessions and audit log.
    pub access: Arc<dyn AccessStore>,
    pub config: watch::Receiver<Arc<Config>>,
    pub program: PathBuf,
    pub worker: String,
    pub isolation: Isolation,
    pub alerts: Alerts,
    /// Wakes the main loop early (a job ended: a slot is free).
    pub wake: Notify,
    /// Wakes the metrics refresh early (a job ended: job counts and perhaps the repository
    /// changed).
    pub refresh: Notify,
    pub health: Arc<Health>,
    /// Each repository's facts, kept by the refresh, read by the API.
    pub fleet: Arc<crate::fleet::Fleet>,
    /// Wakes the refresh early (a job succeeded: the repository changed).
    pub refresh_now: Notify,
    /// The jobs this daemon runs, by id: cancelling a token stops that job's child at once (an
    /// API cancel; another daemon's jobs stop at their next heartbeat).
    pub running: std::sync::Mutex<std::collections::HashMap<crate::jobs::JobId, CancellationToken>>,
}

impl Shared {
    /// Stops a job this daemon runs (after its cancel was recorded); `false` when it runs
    /// elsewhere or not at all.
    pub fn stop_job(&self, id: crate::jobs::JobId) -> bool {
        let running = self.running.lock().unwrap_or_else(|e| e.into_inner());
        match running.get(&id) {
            Some(token) => {
                token.cancel();
                true
            }
            None => false,
        }
    }
}

/// This daemon's id in the store: the configured one, or host name and pid.
fn worker_id(config: &Config) -> String {
    config.daemon.worker_id.clone().unwrap_or_else(|| {
        let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_string())
            .unwrap_or_else(|_| "localhost".into());
        format!("{host}:{}", std::process::id())
    })
}

fn isolation(config: &Config) -> Isolation {
    Isolation {
        nice: config.daemon.nice,
        ionice: IoClass::parse(&config.daemon.ionice).unwrap_or_default(),
        cgroup: crate::runner::process::prepare_cgroup(
            config.daemon.cpu_max.as_deref(),
            config.daemon.io_max.as_deref(),
        ),
    }
}

/// The store's password for a PostgreSQL store: the first line of `state_password_file`, or
/// `HOLDFAST_STATE_PASSWORD` (the CLI's `user`, `token` and `audit` commands use the same).
pub fn store_password(config: &Config) -> Result<Option<String>, String> {
    Ok(match &config.daemon.state_password_file {
        Some(f) => Some(
            std::fs::read_to_string(f)
                .map_err(|e| format!("cannot read {}: {e}", f.display()))?
                .lines()
                .next()
                .unwrap_or("")
                .to_string(),
        ),
        None => std::env::var("HOLDFAST_STATE_PASSWORD").ok(),
    })
}

/// Removes ended sessions every few minutes (they are refused anyway; this keeps the table
/// small).
async fn sweep_sessions(auth: Arc<crate::auth::Auth>, stop: CancellationToken) {
    loop {
        match auth
            .store
            .end_expired_sessions(now_millis(), auth.settings.session_idle_ms)
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::debug!(sessions = n, "ended expired sessions"),
            Err(e) => tracing::warn!(error = %e, "cannot remove expired sessions"),
        }
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(Duration::from_secs(300)) => {}
        }
    }
}

/// Opens the job store `config` names, with its password from [`store_password`].
pub async fn open_store(config: &Config) -> Result<Box<dyn JobStore>, DaemonError> {
    let password = store_password(config).map_err(DaemonError::Config)?;
    Ok(crate::store::open(&config.daemon.state, password).await?)
}

/// Runs the daemon until SIGTERM/SIGINT.
pub async fn run(mut opts: Options) -> Result<(), DaemonError> {
    let config = Arc::new(load(&opts.config_path).map_err(DaemonError::Config)?);
    let password = store_password(&config).map_err(DaemonError::Config)?;
    let (store, access) = crate::store::open_both(&config.daemon.state, password).await?;
    let worker = worker_id(&config);
    let metrics = crate::metrics::install();
    let health = Arc::new(Health::default());
    health.store_ok.store(true, Ordering::Relaxed);

    let addr = config.daemon.listen_addr();
    let tls = match (&config.daemon.tls_cert, &config.daemon.tls_key) {
        (Some(cert), Some(key)) => {
            Some(crate::tls::server_config(cert, key).map_err(DaemonError::Config)?)
        }
        _ => None,
    };
    let tcp = crate::http::bind(addr)
        .await
        .map_err(|source| DaemonError::Listen {
            addr: addr.to_string(),
            source,
        })?;
    let listener = match tls.clone() {
        Some(tls) => crate::http::Listening::Tls(crate::tls::TlsListener::new(tcp, tls).map_err(
            |source| DaemonError::Listen {
                addr: addr.to_string(),
                source,
            },
        )?),
        None => {
            if !addr.ip().is_loopback() {
                tracing::warn!(
                    listen = %addr,
                    "SERVING PLAIN HTTP ON A NON-LOOPBACK ADDRESS (allow_plain_http = true): \
                     passwords, session cookies and API tokens cross the network in clear; \
                     give [daemon] tls_cert and tls_key"
                );
            }
            crate::http::Listening::Plain(tcp)
        }
    };
    match access.users().await {
        Ok(users) if users.is_empty() => tracing::info!(
            "no API users yet: add one with `holdfast user add NAME --role admin --config FILE`"
        ),
        Ok(_) => {}
        Err(e) => tracing::warn!(error = %e, "cannot list the API users"),
    }
    let auth = crate::auth::Auth::new(
        access.clone(),
        crate::auth::Settings {
            secure_cookies: tls.is_some(),
            ..crate::auth::Settings::default()
        },
    );
    let (config_tx, config_rx) = watch::channel(config.clone());
    let shared = Arc::new(Shared {
        store,
        access,
        config: config_rx,
        program: config
            .daemon
            .holdfast_binary
            .clone()
            .unwrap_or_else(|| opts.program.clone()),
        worker: worker.clone(),
        isolation: isolation(&config),
        alerts: crate::alerts::from_config(&config),
        wake: Notify::new(),
        refresh: Notify::new(),
        health: health.clone(),
        fleet: Arc::new(crate::fleet::Fleet::default()),
        refresh_now: Notify::new(),
        running: Default::default(),
    });
    let audit = opts
        .audit
        .clone()
        .unwrap_or_else(|| Arc::new(crate::api::StoreAudit(shared.access.clone())));
    let mut router = crate::http::router(metrics, health.clone())
        .nest(
            "/api/v1",
            crate::api::router(crate::api::ApiState::new(shared.clone(), audit)),
        )
        .merge(crate::auth::routes(auth.clone()));
    if let Some(layer) = opts.layer.take() {
        router = layer(router);
    }
    let router = router.layer(crate::auth::layer(auth.clone()));
    let stop_http = CancellationToken::new();
    let http = tokio::spawn(crate::http::serve(listener, router, stop_http.clone()));
    let sweeper = tokio::spawn(sweep_sessions(auth.clone(), stop_http.clone()));
    tracing::info!(
        worker,
        listen = %addr,
        servers = config.server.len(),
        state = ?config.daemon.state(),
        "holdfast daemon started"
    );

    // Binlog archivers, one per server; new ones on reload.
    let stop_all = CancellationToken::new();
    let mut archivers: BTreeMap<String, tokio::task::JoinHandle<()>> = BTreeMap::new();
    start_archivers(&shared, &mut archivers, &stop_all);
    let refresher = tokio::spawn(refresh::run(shared.clone(), stop_all.clone()));
    let pruner = tokio::spawn(prune::run(shared.clone(), stop_all.clone()));

    // Signals.
    use tokio::signal::unix::{signal, SignalKind};
    let mut hup = signal(SignalKind::hangup()).expect("signal handler");
    let mut term = signal(SignalKind::terminate()).expect("signal handler");
    let mut int = signal(SignalKind::interrupt()).expect("signal handler");

    let mut jobs: JoinSet<()> = JoinSet::new();
    let jobs_cancel = CancellationToken::new();
    let mut schedule_state = scheduling::State::default();
    loop {
        let now = now_millis();
        let cfg = shared.config.borrow().clone();
        // Wake at the next planned time (schedules start on time, not up to a second late), and
        // at least every second (rescues, retries coming due, claims).
        let mut wake_in = Duration::from_secs(1);
        match scheduling::pass(&shared, &cfg, &mut schedule_state, now).await {
            Ok(next) => {
                if let Some(next) = next {
                    let until = (next - now_millis()).clamp(5, 1000) as u64;
                    wake_in = wake_in.min(Duration::from_millis(until));
                }
                health.scheduled.store(true, Ordering::Relaxed);
                health.store_ok.store(true, Ordering::Relaxed);
            }
            Err(e) => {
                health.store_ok.store(false, Ordering::Relaxed);
                tracing::error!(error = %e, "scheduler pass failed; retrying");
            }
        }
        if let Err(e) = dispatch(&shared, &cfg, &mut jobs, &jobs_cancel).await {
            health.store_ok.store(false, Ordering::Relaxed);
            tracing::error!(error = %e, "cannot claim jobs; retrying");
        }
        tokio::select! {
            _ = tokio::time::sleep(wake_in) => {}
            _ = shared.wake.notified() => {}
            Some(_) = jobs.join_next(), if !jobs.is_empty() => {}
            _ = hup.recv() => {
                match load(&opts.config_path) {
                    Ok(new) => {
                        tracing::info!(servers = new.server.len(), "config reloaded");
                        let _ = config_tx.send(Arc::new(new));
                        start_archivers(&shared, &mut archivers, &stop_all);
                    }
                    Err(e) => tracing::error!(
                        "config reload refused, keeping the running config: {e}"
                    ),
                }
            }
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = opts.stop.cancelled() => break,
        }
    }

    // Shutdown: no new work; running jobs get the grace, then are cancelled cleanly.
    let grace = Duration::from_millis(config.daemon.shutdown_grace_ms().max(0) as u64);
    tracing::info!(running = jobs.len(), grace = ?grace, "stopping: no new jobs; waiting for running ones");
    stop_all.cancel();
    let deadline = tokio::time::sleep(grace);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            r = jobs.join_next() => if r.is_none() { break },
            _ = &mut deadline, if !jobs_cancel.is_cancelled() => {
                tracing::warn!(running = jobs.len(), "grace over: cancelling running jobs");
                jobs_cancel.cancel();
            }
        }
    }
    for (_, a) in archivers {
        let _ = a.await;
    }
    let _ = refresher.await;
    let _ = pruner.await;
    stop_http.cancel();
    let _ = http.await;
    let _ = sweeper.await;
    tracing::info!("holdfast daemon stopped");
    Ok(())
}

/// Claims and starts jobs while this daemon's limits allow.
async fn dispatch(
    shared: &Arc<Shared>,
    cfg: &Config,
    jobs: &mut JoinSet<()>,
    cancel: &CancellationToken,
) -> Result<(), crate::store::StoreError> {
    let now = now_millis();
    for id in shared.store.rescue_expired(now).await? {
        tracing::warn!(
            job_id = id,
            "rescued a job whose worker stopped heartbeating"
        );
    }
    let limits = cfg.daemon.limits();
    while jobs.len() < limits.global {
        let claimed = shared
            .store
            .claim(
                &shared.worker,
                jobs.len(),
                &limits,
                now_millis(),
                cfg.daemon.lease_ms(),
            )
            .await?;
        let Some(job) = claimed else { break };
        jobs.spawn(worker::run_job(shared.clone(), job, cancel.child_token()));
    }
    Ok(())
}

/// Starts an archiver for every server with `binlog = true` that has none running.
fn start_archivers(
    shared: &Arc<Shared>,
    archivers: &mut BTreeMap<String, tokio::task::JoinHandle<()>>,
    stop: &CancellationToken,
) {
    archivers.retain(|_, h| !h.is_finished());
    let cfg = shared.config.borrow().clone();
    for server in cfg.server.iter().filter(|s| s.binlog) {
        if archivers.contains_key(&server.name) {
            continue;
        }
        let handle = tokio::spawn(crate::supervisor::supervise(
            shared.program.clone(),
            shared.config.clone(),
            server.name.clone(),
            shared.alerts.clone(),
            stop.clone(),
        ));
        archivers.insert(server.name.clone(), handle);
    }
}
