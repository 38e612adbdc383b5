//! [`Notifications`]: the handle the daemon emits alerts through.
//!
//! ```text
//! emit ─▶ [queue, drop-oldest] ─▶ dispatcher task: dedup ─┬▶ [channel queue] ─▶ worker: rate limit, deliver, retry
//!                                                          └▶ [channel queue] ─▶ worker: …
//! ```
//! `emit` takes a lock for a moment and returns: it never waits for a network. When a queue is
//! full its oldest entry is dropped and counted (a stuck channel loses old alerts rather than
//! stopping jobs or growing without bound). Each channel has its own worker, so a slow or dead
//! channel delays only itself. Dropping the last handle stops the tasks; call
//! [`Notifications::drain`] first to let queued messages go out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use super::dedup::{Decision, Incidents};
use super::ratelimit::TokenBucket;
use super::{build_channel, Alert, Channel, Delivery, NotifyError};
use crate::config::{parse_duration_ms, AlertsSection, NotifierConfig};
use crate::jobs::retry::backoff;
use crate::time::{now_millis, Millis};

/// Queue sizes and the repeat interval.
#[derive(Clone, Debug)]
pub struct NotifyOptions {
    /// Alerts waiting for the dispatcher.
    pub queue: usize,
    /// Messages waiting per channel.
    pub channel_queue: usize,
    /// An open incident is notified again after this long; 0 = never.
    pub repeat_ms: Millis,
}

impl Default for NotifyOptions {
    fn default() -> Self {
        NotifyOptions {
            queue: 1024,
            channel_queue: 256,
            repeat_ms: 4 * 3_600_000,
        }
    }
}

impl NotifyOptions {
    /// From `[alerts]`.
    pub fn from_config(alerts: &AlertsSection) -> Result<NotifyOptions, String> {
        let repeat_ms = parse_duration_ms(&alerts.repeat_interval)
            .map_err(|e| format!("[alerts] repeat_interval: {e}"))?;
        Ok(NotifyOptions {
            repeat_ms,
            ..NotifyOptions::default()
        })
    }
}

/// The counters of all channels, for metrics.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Counters {
    /// Alerts emitted.
    pub emitted: u64,
    /// Alerts dropped because the queue was full.
    pub dropped: u64,
    /// Alerts not sent because their incident was open and notified recently.
    pub duplicates: u64,
    /// Resolving alerts not sent because nothing was open.
    pub nothing_open: u64,
    pub channels: Vec<ChannelCounters>,
}

/// One channel's counters.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ChannelCounters {
    pub name: String,
    pub kind: String,
    /// Messages delivered.
    pub sent: u64,
    /// Messages given up on (a permanent error, or the last attempt failed).
    pub failed: u64,
    /// Attempts repeated after a transient error.
    pub retries: u64,
    /// Messages dropped because the channel's queue was full.
    pub dropped: u64,
    /// The last error, if the last message failed.
    pub last_error: Option<String>,
}

/// A queue that drops its oldest entry when full. One consumer.
struct DropOldest<T> {
    items: Mutex<VecDeque<T>>,
    capacity: usize,
    ready: Notify,
}

impl<T> DropOldest<T> {
    fn new(capacity: usize) -> DropOldest<T> {
        DropOldest {
            items: Mutex::new(VecDeque::new()),
            capacity: capacity.max(1),
            ready: Notify::new(),
        }
    }

    /// Adds `item`; returns the entry dropped to make room, if any.
    fn push(&self, item: T) -> Option<T> {
        let dropped = {
            let mut items = self.items.lock().unwrap_or_else(|p| p.into_inner());
            let dropped = if items.len() >= self.capacity {
                items.pop_front()
            } else {
                None
            };
            items.push_back(item);
            dropped
        };
        self.ready.notify_one();
        dropped
    }

    async fn pop(&self) -> T {
        loop {
            if let Some(item) = self
                .items
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .pop_front()
            {
                return item;
            }
            // `notify_one` leaves a permit when nobody waits, so a push between the check and
            // here is not missed.
            self.ready.notified().await;
        }
    }
}

struct ChannelState {
    delivery: Delivery,
    channel: Box<dyn Channel>,
    queue: DropOldest<Alert>,
    sent: AtomicU64,
    failed: AtomicU64,
    retries: AtomicU64,
    dropped: AtomicU64,
    last_error: Mutex<Option<String>>,
}

struct Shared {
    queue: DropOldest<Alert>,
    channels: Vec<Arc<ChannelState>>,
    incidents: Mutex<Incidents>,
    emitted: AtomicU64,
    dropped: AtomicU64,
    duplicates: AtomicU64,
    nothing_open: AtomicU64,
    /// Alerts and messages not yet finished (queued, being decided or being delivered).
    pending: AtomicUsize,
    idle: Notify,
}

impl Shared {
    fn done(&self, n: usize) {
        if n > 0 && self.pending.fetch_sub(n, Ordering::AcqRel) == n {
            self.idle.notify_waiters();
        }
    }
}

/// Stops the tasks when the last handle goes.
struct Tasks(Vec<JoinHandle<()>>);

impl Drop for Tasks {
    fn drop(&mut self) {
        for t in &self.0 {
            t.abort();
        }
    }
}

/// The alert dispatcher (cheap to clone; all clones share it).
#[derive(Clone)]
pub struct Notifications {
    shared: Arc<Shared>,
    _tasks: Arc<Tasks>,
}

impl Notifications {
    /// Builds every `[[notifier]]` (reading their secrets) and starts the background tasks.
    /// Must be called inside a tokio runtime.
    pub fn start(
        configs: &[NotifierConfig],
        options: NotifyOptions,
    ) -> Result<Notifications, NotifyError> {
        let mut channels = Vec::new();
        for config in configs {
            let name = config.name();
            if configs.iter().filter(|c| c.name() == name).count() > 1 {
                return Err(NotifyError::new(
                    name,
                    "two notifiers have this name; give each a unique `name`",
                ));
            }
            channels.push(build_channel(config)?);
        }
        Ok(Notifications::with_channels(channels, options))
    }

    /// For a reload (SIGHUP): a new dispatcher with `configs` that keeps this one's open
    /// incidents (so a reload neither re-sends them nor forgets to resolve them). Let this one
    /// [`drain`](Notifications::drain) before dropping it; a config that does not build leaves
    /// this one as it is.
    pub fn reload(
        &self,
        configs: &[NotifierConfig],
        options: NotifyOptions,
    ) -> Result<Notifications, NotifyError> {
        let repeat_ms = options.repeat_ms;
        let next = Notifications::start(configs, options)?;
        let mut incidents = self
            .shared
            .incidents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        incidents.set_repeat_ms(repeat_ms);
        *next
            .shared
            .incidents
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = incidents;
        Ok(next)
    }

    /// Starts with channels built elsewhere.
    pub fn with_channels(
        channels: Vec<(Delivery, Box<dyn Channel>)>,
        options: NotifyOptions,
    ) -> Notifications {
        let channels: Vec<Arc<ChannelState>> = channels
            .into_iter()
            .map(|(delivery, channel)| {
                Arc::new(ChannelState {
                    delivery,
                    channel,
                    queue: DropOldest::new(options.channel_queue),
                    sent: AtomicU64::new(0),
                    failed: AtomicU64::new(0),
                    retries: AtomicU64::new(0),
                    dropped: AtomicU64::new(0),
                    last_error: Mutex::new(None),
                })
            })
            .collect();
        let shared = Arc::new(Shared {
            queue: DropOldest::new(options.queue),
            channels: channels.clone(),
            incidents: Mutex::new(Incidents::new(options.repeat_ms)),
            emitted: AtomicU64::new(0),
            dropped: AtomicU64::new(0),
            duplicates: AtomicU64::new(0),
            nothing_open: AtomicU64::new(0),
            pending: AtomicUsize::new(0),
            idle: Notify::new(),
        });
        let mut tasks = vec![tokio::spawn(dispatch(shared.clone()))];
        for channel in channels {
            tasks.push(tokio::spawn(work(shared.clone(), channel)));
        }
        Notifications {
            shared,
            _tasks: Arc::new(Tasks(tasks)),
        }
    }

    /// Queues an alert and returns at once (never waits for the network or a full queue).
    pub fn emit(&self, alert: Alert) {
        let s = &self.shared;
        s.emitted.fetch_add(1, Ordering::Relaxed);
        s.pending.fetch_add(1, Ordering::AcqRel);
        if let Some(old) = s.queue.push(alert) {
            s.dropped.fetch_add(1, Ordering::Relaxed);
            tracing::warn!(key = %old.key, "alert queue full: dropped the oldest alert");
            s.done(1);
        }
    }

    /// Waits until everything emitted so far was delivered or given up on, at most `timeout`.
    /// True when it got there.
    pub async fn drain(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let idle = self.shared.idle.notified();
            if self.shared.pending.load(Ordering::Acquire) == 0 {
                return true;
            }
            if tokio::time::timeout_at(deadline, idle).await.is_err() {
                return self.shared.pending.load(Ordering::Acquire) == 0;
            }
        }
    }

    /// The counters, for `/metrics`.
    pub fn counters(&self) -> Counters {
        let s = &self.shared;
        Counters {
            emitted: s.emitted.load(Ordering::Relaxed),
            dropped: s.dropped.load(Ordering::Relaxed),
            duplicates: s.duplicates.load(Ordering::Relaxed),
            nothing_open: s.nothing_open.load(Ordering::Relaxed),
            channels: s
                .channels
                .iter()
                .map(|c| ChannelCounters {
                    name: c.delivery.name.clone(),
                    kind: c.delivery.kind.to_string(),
                    sent: c.sent.load(Ordering::Relaxed),
                    failed: c.failed.load(Ordering::Relaxed),
                    retries: c.retries.load(Ordering::Relaxed),
                    dropped: c.dropped.load(Ordering::Relaxed),
                    last_error: c
                        .last_error
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .clone(),
                })
                .collect(),
        }
    }

    /// Keys of the incidents open now.
    pub fn open_incidents(&self) -> Vec<String> {
        self.shared
            .incidents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .open_keys()
    }
}

/// The dispatcher task: de-duplicates and fans out.
async fn dispatch(s: Arc<Shared>) {
    loop {
        let alert = s.queue.pop().await;
        let decision = s
            .incidents
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .decide(alert, now_millis());
        match decision {
            Decision::Send(alert) => {
                for c in &s.channels {
                    s.pending.fetch_add(1, Ordering::AcqRel);
                    if let Some(old) = c.queue.push(alert.clone()) {
                        c.dropped.fetch_add(1, Ordering::Relaxed);
                        tracing::warn!(
                            notifier = %c.delivery.name,
                            key = %old.key,
                            "notifier queue full: dropped the oldest message"
                        );
                        s.done(1);
                    }
                }
            }
            Decision::Duplicate => {
                s.duplicates.fetch_add(1, Ordering::Relaxed);
            }
            Decision::NothingOpen => {
                s.nothing_open.fetch_add(1, Ordering::Relaxed);
            }
        }
        s.done(1);
    }
}

/// One channel's worker: rate limit, then deliver with retries.
async fn work(s: Arc<Shared>, c: Arc<ChannelState>) {
    let d = &c.delivery;
    let mut bucket = d.rate.map(|r| TokenBucket::new(r, now_millis()));
    loop {
        let alert = c.queue.pop().await;
        if let Some(bucket) = bucket.as_mut() {
            while let Err(wait) = bucket.take(now_millis()) {
                tokio::time::sleep(Duration::from_millis(wait as u64)).await;
            }
        }
        let mut attempt = 1;
        loop {
            // The channel's own timeout covers the request; this one covers the rest (DNS, a
            // channel that ignores it).
            let result = tokio::time::timeout(d.timeout * 2, c.channel.deliver(&alert))
                .await
                .unwrap_or_else(|_| {
                    Err(super::DeliveryError::transient(format!(
                        "no answer within {:?}",
                        d.timeout * 2
                    )))
                });
            match result {
                Ok(()) => {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                    *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) = None;
                    tracing::debug!(notifier = %d.name, key = %alert.key, attempt, "alert delivered");
                    break;
                }
                Err(e) if e.transient && attempt < d.attempts => {
                    c.retries.fetch_add(1, Ordering::Relaxed);
                    let delay =
                        backoff(d.backoff_ms, d.backoff_cap_ms, attempt + 1, rand::random());
                    tracing::warn!(
                        notifier = %d.name, key = %alert.key, attempt, error = %e,
                        retry_in_ms = delay, "alert delivery failed; retrying"
                    );
                    tokio::time::sleep(Duration::from_millis(delay as u64)).await;
                    attempt += 1;
                }
                Err(e) => {
                    c.failed.fetch_add(1, Ordering::Relaxed);
                    tracing::error!(
                        notifier = %d.name, key = %alert.key, attempt, error = %e,
                        "alert not delivered; giving up"
                    );
                    *c.last_error.lock().unwrap_or_else(|p| p.into_inner()) = Some(e.message);
                    break;
                }
            }
        }
        s.done(1);
    }
}
