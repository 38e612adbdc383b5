//! [`FaultProxy`]: a TCP proxy on loopback that breaks connections on purpose.
//!
//! Tests point holdfast at the proxy instead of the server (MariaDB, MySQL or Garage's S3 port)
//! and choose a [`Fault`]: cut a connection after N bytes in one direction (FIN both ways),
//! reset it (RST, through `SO_LINGER 0`), stall it (stop forwarding without closing, as a
//! server that hangs or a dropped route does), or slow it to a byte rate. A fault can be
//! switched while connections are open: byte counts start again from the switch, a stalled
//! connection resumes when the fault becomes [`Fault::Pass`], and a one-shot fault
//! ([`FaultProxy::set_fault_once`]) trips on the first connection that reaches it and then
//! turns itself back to `Pass` (a single cut in the middle of an upload, then clean retries).
//! A client that closes a stalled connection (it gave up on a silent peer) ends that connection
//! in the proxy too: a stalled connection nobody uses any more never takes a later fault.
//! [`Fault::from_seed`] picks a fault and an offset from a seed, so a failing case replays.
//!
//! The proxy runs on its own small tokio runtime, so sync and async tests can use it alike;
//! dropping it closes the listener and every connection.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

/// Which way bytes flow through the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Direction {
    /// From the client (holdfast) to the server.
    Upstream,
    /// From the server to the client.
    Downstream,
}

/// What the proxy does to a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward everything.
    Pass,
    /// Forward `after` bytes in `direction` (counted from when the fault was set), then close
    /// both sides with a FIN.
    Cut { direction: Direction, after: u64 },
    /// As `Cut`, but close both sides with a RST (`SO_LINGER 0`).
    Reset { direction: Direction, after: u64 },
    /// Forward `after` bytes in `direction`, then forward nothing more either way and keep
    /// both sockets open (until the fault is switched or the proxy dropped).
    Stall { direction: Direction, after: u64 },
    /// Forward the client's first `nth - 1` writes (counted from when the fault was set), then
    /// stall as `Stall` does from its `nth` on: the server never sees that request, and the
    /// client waits for an answer that never comes. The proxy counts its reads of the client's
    /// bytes, which for a request/response protocol with small requests on loopback (MySQL's
    /// commands) is one per request: `nth: 2` lets a MySQL client connect and log in and
    /// stalls its first query. A connection that sends nothing (a binlog dump after its
    /// request) is never stalled by it.
    StallRequest { nth: u64 },
    /// Forward at most `bytes_per_sec` in each direction.
    Slow { bytes_per_sec: u64 },
}

impl Fault {
    /// A cut, reset or stall at a random offset below `max_bytes` in a random direction
    /// (mostly downstream, where the bulk of a dump or a binlog stream flows), from `seed`.
    pub fn from_seed(seed: u64, max_bytes: u64) -> Fault {
        let mut rng = StdRng::seed_from_u64(seed);
        let direction = if rng.gen_bool(0.75) {
            Direction::Downstream
        } else {
            Direction::Upstream
        };
        let after = rng.gen_range(0..max_bytes.max(1));
        match rng.gen_range(0..3) {
            0 => Fault::Cut { direction, after },
            1 => Fault::Reset { direction, after },
            _ => Fault::Stall { direction, after },
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Setting {
    /// Bumped on every switch; connections restart their byte counts when it changes.
    generation: u64,
    fault: Fault,
    once: bool,
    /// This `Pass` came from a one-shot fault turning itself off: a connection it stalled
    /// stays stalled (only an explicit switch releases it).
    auto: bool,
}

#[derive(Debug)]
struct Shared {
    setting: Mutex<Setting>,
    changed: watch::Sender<u64>,
    connections: AtomicU64,
    /// Connections being relayed now.
    open: AtomicU64,
    tripped: AtomicU64,
    /// When a fault last tripped.
    last_trip: Mutex<Option<std::time::Instant>>,
    upstream: AtomicU64,
    downstream: AtomicU64,
    target: Mutex<SocketAddr>,
}

impl Shared {
    fn set(&self, fault: Fault, once: bool) {
        let mut s = self.setting.lock().unwrap();
        s.generation += 1;
        s.fault = fault;
        s.once = once;
        s.auto = false;
        let generation = s.generation;
        drop(s);
        self.changed.send_replace(generation);
    }

    fn current(&self) -> Setting {
        *self.setting.lock().unwrap()
    }

    /// A connection reached a fault of `generation`: counts it, and turns a one-shot fault
    /// off. False when another connection consumed the one-shot fault first.
    fn trip(&self, generation: u64) -> bool {
        let mut s = self.setting.lock().unwrap();
        if s.generation != generation {
            return false;
        }
        *self.last_trip.lock().unwrap() = Some(std::time::Instant::now());
        self.tripped.fetch_add(1, Ordering::SeqCst);
        if s.once {
            s.generation += 1;
            s.fault = Fault::Pass;
            s.once = false;
            s.auto = true;
            let generation = s.generation;
            drop(s);
            self.changed.send_replace(generation);
        }
        true
    }
}

/// A fault-injecting TCP proxy listening on `127.0.0.1`; see the module docs.
pub struct FaultProxy {
    addr: SocketAddr,
    shared: Arc<Shared>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::fmt::Debug for FaultProxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaultProxy")
            .field("addr", &self.addr)
            .field("target", &*self.shared.target.lock().unwrap())
            .field("fault", &self.shared.current().fault)
            .finish()
    }
}

impl FaultProxy {
    /// Starts a proxy to `target` that passes everything until told otherwise.
    pub fn start(target: SocketAddr) -> FaultProxy {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("fault-proxy")
            .enable_all()
            .build()
            .expect("fault proxy runtime");
        // Bound without entering the runtime, so that async tests can start a proxy too.
        let listener =
            std::net::TcpListener::bind(("127.0.0.1", 0)).expect("fault proxy: bind 127.0.0.1");
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (changed, _) = watch::channel(0);
        let shared = Arc::new(Shared {
            setting: Mutex::new(Setting {
                generation: 0,
                fault: Fault::Pass,
                once: false,
                auto: false,
            }),
            changed,
            connections: AtomicU64::new(0),
            open: AtomicU64::new(0),
            tripped: AtomicU64::new(0),
            last_trip: Mutex::new(None),
            upstream: AtomicU64::new(0),
            downstream: AtomicU64::new(0),
            target: Mutex::new(target),
        });
        let s = shared.clone();
        runtime.spawn(async move {
            let listener = TcpListener::from_std(listener).expect("fault proxy: listen");
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    continue;
                };
                s.connections.fetch_add(1, Ordering::SeqCst);
                let s = s.clone();
                tokio::spawn(async move {
                    let target = *s.target.lock().unwrap();
                    let Ok(server) = TcpStream::connect(target).await else {
                        // The server is down: the client sees the connection refused-like close.
                        reset_on_close(&client);
                        return;
                    };
                    relay(client, server, s).await;
                });
            }
        });
        FaultProxy {
            addr,
            shared,
            runtime: Some(runtime),
        }
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn port(&self) -> u16 {
        self.addr.port()
    }

    /// Where new connections go (a restarted server on another port).
    pub fn set_target(&self, target: SocketAddr) {
        *self.shared.target.lock().unwrap() = target;
    }

    /// Applies `fault` to every open and every new connection from now on.
    pub fn set_fault(&self, fault: Fault) {
        self.shared.set(fault, false);
    }

    /// Applies `fault` until one connection trips it; then everything passes again.
    pub fn set_fault_once(&self, fault: Fault) {
        self.shared.set(fault, true);
    }

    /// The fault now in force (`Pass` once a one-shot fault has tripped).
    pub fn fault(&self) -> Fault {
        self.shared.current().fault
    }

    /// How many times a cut, reset or stall was applied to a connection.
    pub fn tripped(&self) -> u64 {
        self.shared.tripped.load(Ordering::SeqCst)
    }

    /// When a cut, reset or stall was last applied (for a stall: the moment the connection
    /// stopped forwarding).
    pub fn last_trip(&self) -> Option<std::time::Instant> {
        *self.shared.last_trip.lock().unwrap()
    }

    /// Connections accepted so far.
    pub fn connections(&self) -> u64 {
        self.shared.connections.load(Ordering::SeqCst)
    }

    /// Connections being relayed now (accepted and not yet ended by either side or a fault).
    pub fn open_connections(&self) -> u64 {
        self.shared.open.load(Ordering::SeqCst)
    }

    /// Waits up to `timeout` until at most `n` connections are open.
    pub fn wait_open_at_most(&self, n: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.open_connections() > n {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }

    /// Bytes forwarded so far in `direction`.
    pub fn bytes(&self, direction: Direction) -> u64 {
        match direction {
            Direction::Upstream => self.shared.upstream.load(Ordering::SeqCst),
            Direction::Downstream => self.shared.downstream.load(Ordering::SeqCst),
        }
    }

    /// Waits up to `timeout` until a fault has tripped `n` times in total.
    pub fn wait_tripped(&self, n: u64, timeout: Duration) -> bool {
        let deadline = std::time::Instant::now() + timeout;
        while self.tripped() < n {
            if std::time::Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        true
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// How a connection ends when a fault trips.
enum End {
    Fin,
    Rst,
}

/// Most bytes a stalled connection reads from its client and holds back (beyond this it stops
/// reading, as a full TCP window would).
const HOLD_LIMIT: usize = 1 << 20;

/// Counts a connection as open while it lives.
struct OpenGuard(Arc<Shared>);

impl Drop for OpenGuard {
    fn drop(&mut self) {
        self.0.open.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Forwards between `client` and `server` under the shared fault until either side closes or
/// a fault ends the connection.
///
/// While stalled it forwards nothing, but it still reads what the client sends (held back
/// until the fault switches), so it notices a client that gives up and closes: the connection
/// then ends. (It once stopped reading both sides while stalled and so lived on after its
/// client had gone; the next fault, set for another connection, could then trip on this dead
/// one instead, and the connection it was meant for never saw it.)
async fn relay(mut client: TcpStream, mut server: TcpStream, shared: Arc<Shared>) {
    shared.open.fetch_add(1, Ordering::SeqCst);
    let _open = OpenGuard(shared.clone());
    let _ = client.set_nodelay(true);
    let _ = server.set_nodelay(true);
    let mut changed = shared.changed.subscribe();
    let mut setting = shared.current();
    // Bytes forwarded per direction since `setting` took effect.
    let mut counted = [0u64; 2];
    // Reads from the client since `setting` took effect (for `StallRequest`).
    let mut requests = 0u64;
    let mut stalled = false;
    // Bytes read but held back by a stall, per direction; delivered when the fault switches.
    let mut held: [Vec<u8>; 2] = [Vec::new(), Vec::new()];
    let mut up_open = true;
    let mut down_open = true;
    let mut up_buf = vec![0u8; 16 * 1024];
    let mut down_buf = vec![0u8; 16 * 1024];
    let end = loop {
        if !up_open && !down_open {
            return;
        }
        let fresh = shared.current();
        if fresh.generation != setting.generation {
            setting = fresh;
            counted = [0, 0];
            requests = 0;
            if stalled && fresh.auto {
                // Stalled by a one-shot fault that has now turned itself off: stay stalled.
                continue;
            }
            stalled = false;
            for direction in [Direction::Upstream, Direction::Downstream] {
                let data = std::mem::take(&mut held[direction as usize]);
                if data.is_empty() {
                    continue;
                }
                let to = match direction {
                    Direction::Upstream => &mut server,
                    Direction::Downstream => &mut client,
                };
                match forward(to, &data, direction, &mut setting, &mut counted, &shared).await {
                    Step::Go => {}
                    Step::Stall(rest) => {
                        held[direction as usize] = rest;
                        stalled = true;
                    }
                    Step::End(e) => return finish(client, server, e).await,
                    Step::Closed => return,
                }
            }
        }
        if let Fault::Stall { direction, after } = setting.fault {
            if counted[direction as usize] >= after && !stalled {
                if shared.trip(setting.generation) {
                    stalled = true;
                } else {
                    continue;
                }
            }
        }
        tokio::select! {
            _ = changed.changed() => continue,
            r = client.read(&mut up_buf), if up_open && (!stalled || held[0].len() < HOLD_LIMIT) => {
                match r {
                    // The client gave up on the stalled connection: nothing will use it again.
                    Ok(0) | Err(_) if stalled => return,
                    Ok(n) if stalled => held[0].extend_from_slice(&up_buf[..n]),
                    Ok(n) if matches!(setting.fault, Fault::StallRequest { nth } if requests + 1 >= nth)
                        && shared.trip(setting.generation) =>
                    {
                        held[0].extend_from_slice(&up_buf[..n]);
                        stalled = true;
                    }
                    Ok(0) | Err(_) => {
                        up_open = false;
                        let _ = server.shutdown().await;
                    }
                    Ok(n) => {
                        requests += 1;
                        match forward(&mut server, &up_buf[..n], Direction::Upstream, &mut setting, &mut counted, &shared).await {
                            Step::Go => {}
                            Step::Stall(rest) => {
                                held[0] = rest;
                                stalled = true;
                            }
                            Step::End(e) => break e,
                            Step::Closed => return,
                        }
                    }
                }
            }
            r = server.read(&mut down_buf), if down_open && !stalled => {
                match r {
                    Ok(0) | Err(_) => {
                        down_open = false;
                        let _ = client.shutdown().await;
                    }
                    Ok(n) => match forward(&mut client, &down_buf[..n], Direction::Downstream, &mut setting, &mut counted, &shared).await {
                        Step::Go => {}
                        Step::Stall(rest) => {
                            held[1] = rest;
                            stalled = true;
                        }
                        Step::End(e) => break e,
                        Step::Closed => return,
                    },
                }
            }
        }
    };
    finish(client, server, end).await;
}

async fn finish(mut client: TcpStream, mut server: TcpStream, end: End) {
    if let End::Rst = end {
        reset_on_close(&client);
        reset_on_close(&server);
    } else {
        let _ = client.shutdown().await;
        let _ = server.shutdown().await;
    }
}

/// `SO_LINGER` 0: closing the socket sends a RST instead of a FIN. (tokio deprecates its
/// `set_linger` because a non-zero linger blocks on drop; zero never does.)
fn reset_on_close(s: &TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket descriptor and a correctly sized option value.
    unsafe {
        libc::setsockopt(
            s.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            &linger as *const libc::linger as *const libc::c_void,
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
}

enum Step {
    Go,
    /// Stalled; the bytes not delivered.
    Stall(Vec<u8>),
    End(End),
    Closed,
}

/// Writes `data` to `to` under the fault: all of it, the part before the fault's offset, or
/// slowly.
async fn forward(
    to: &mut TcpStream,
    data: &[u8],
    direction: Direction,
    setting: &mut Setting,
    counted: &mut [u64; 2],
    shared: &Shared,
) -> Step {
    let fresh = shared.current();
    if fresh.generation != setting.generation {
        *setting = fresh;
        *counted = [0, 0];
    }
    let total = match direction {
        Direction::Upstream => &shared.upstream,
        Direction::Downstream => &shared.downstream,
    };
    let (limit, then) = match setting.fault {
        Fault::Pass => (None, None),
        Fault::Slow { bytes_per_sec } => {
            let rate = bytes_per_sec.max(1);
            for piece in data.chunks((rate / 10).clamp(1, 16 * 1024) as usize) {
                if to.write_all(piece).await.is_err() {
                    return Step::Closed;
                }
                total.fetch_add(piece.len() as u64, Ordering::SeqCst);
                tokio::time::sleep(Duration::from_secs_f64(piece.len() as f64 / rate as f64)).await;
            }
            counted[direction as usize] += data.len() as u64;
            return Step::Go;
        }
        Fault::Cut {
            direction: d,
            after,
        } if d == direction => (Some(after), Some(Step::End(End::Fin))),
        Fault::Reset {
            direction: d,
            after,
        } if d == direction => (Some(after), Some(Step::End(End::Rst))),
        Fault::Stall {
            direction: d,
            after,
        } if d == direction => (Some(after), Some(Step::Stall(Vec::new()))),
        _ => (None, None),
    };
    let seen = counted[direction as usize];
    let pass = match limit {
        Some(after) => (after.saturating_sub(seen) as usize).min(data.len()),
        None => data.len(),
    };
    if pass > 0 {
        if to.write_all(&data[..pass]).await.is_err() {
            return Step::Closed;
        }
        total.fetch_add(pass as u64, Ordering::SeqCst);
        counted[direction as usize] += pass as u64;
    }
    if pass == data.len() && limit.is_none_or(|after| counted[direction as usize] < after) {
        return Step::Go;
    }
    // The fault's offset is reached: apply it, unless a one-shot fault was consumed by another
    // connection meanwhile (then send the rest and go on).
    if shared.trip(setting.generation) {
        if let Some(Step::Stall(_)) = then {
            // The bytes after the offset are held back until the fault switches.
            return Step::Stall(data[pass..].to_vec());
        }
        return then.unwrap_or(Step::Go);
    }
    if pass < data.len() {
        if to.write_all(&data[pass..]).await.is_err() {
            return Step::Closed;
        }
        total.fetch_add((data.len() - pass) as u64, Ordering::SeqCst);
        counted[direction as usize] += (data.len() - pass) as u64;
    }
    Step::Go
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};

    /// An echo server on loopback: returns its address.
    fn echo() -> SocketAddr {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for s in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut s = s;
                    let mut buf = [0u8; 4096];
                    while let Ok(n) = s.read(&mut buf) {
                        if n == 0 || s.write_all(&buf[..n]).is_err() {
                            break;
                        }
                    }
                });
            }
        });
        addr
    }

    fn read_until_closed(
        s: &mut std::net::TcpStream,
        want: usize,
    ) -> (Vec<u8>, std::io::Result<()>) {
        let mut got = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return (got, Ok(())),
                Ok(n) => {
                    got.extend_from_slice(&buf[..n]);
                    if got.len() >= want {
                        return (got, Ok(()));
                    }
                }
                Err(e) => return (got, Err(e)),
            }
        }
    }

    #[test]
    fn passes_then_cuts_after_n_bytes_downstream() {
        let proxy = FaultProxy::start(echo());
        let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        s.write_all(b"hello").unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"hello");
        proxy.set_fault(Fault::Cut {
            direction: Direction::Downstream,
            after: 1000,
        });
        s.write_all(&[7u8; 3000]).unwrap();
        let (got, _) = read_until_closed(&mut s, 5000);
        assert_eq!(got.len(), 1000, "exactly the bytes before the cut");
        assert_eq!(proxy.tripped(), 1);
    }

    #[test]
    fn reset_gives_the_client_a_connection_reset() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault(Fault::Reset {
            direction: Direction::Downstream,
            after: 10,
        });
        let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        s.write_all(&[1u8; 100]).unwrap();
        let (got, r) = read_until_closed(&mut s, 1000);
        assert_eq!(got.len(), 10);
        assert_eq!(
            r.expect_err("a reset, not a clean close").kind(),
            std::io::ErrorKind::ConnectionReset
        );
    }

    #[test]
    fn stall_holds_the_connection_open_until_switched_back() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault(Fault::Stall {
            direction: Direction::Downstream,
            after: 3,
        });
        let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        s.write_all(b"abcdef").unwrap();
        let mut buf = [0u8; 16];
        let n = s.read(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"abc");
        let e = s
            .read(&mut buf)
            .expect_err("stalled: nothing more, no close");
        assert!(matches!(
            e.kind(),
            std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
        ));
        proxy.set_fault(Fault::Pass);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.write_all(b"g").unwrap();
        let mut rest = Vec::new();
        while rest.len() < 4 {
            let n = s.read(&mut buf).unwrap();
            assert!(n > 0);
            rest.extend_from_slice(&buf[..n]);
        }
        assert_eq!(rest, b"defg", "the held bytes follow once it resumes");
    }

    #[test]
    fn a_one_shot_fault_trips_once_then_passes() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault_once(Fault::Cut {
            direction: Direction::Downstream,
            after: 2,
        });
        let mut a = std::net::TcpStream::connect(proxy.addr()).unwrap();
        a.write_all(b"xyz").unwrap();
        let (got, _) = read_until_closed(&mut a, 100);
        assert_eq!(got, b"xy");
        assert_eq!(proxy.fault(), Fault::Pass);
        let mut b = std::net::TcpStream::connect(proxy.addr()).unwrap();
        b.write_all(b"xyz").unwrap();
        let mut buf = [0u8; 3];
        b.read_exact(&mut buf).unwrap();
        assert_eq!(&buf, b"xyz");
        assert_eq!(proxy.tripped(), 1);
    }

    #[test]
    fn a_one_shot_stall_keeps_its_connection_stalled() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault_once(Fault::Stall {
            direction: Direction::Downstream,
            after: 1,
        });
        let mut a = std::net::TcpStream::connect(proxy.addr()).unwrap();
        a.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        a.write_all(b"ab").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 1);
        assert!(proxy.wait_tripped(1, Duration::from_secs(5)));
        assert_eq!(proxy.fault(), Fault::Pass);
        a.write_all(b"c").unwrap();
        assert!(a.read(&mut buf).is_err(), "still stalled");
        // Other connections pass.
        let mut b = std::net::TcpStream::connect(proxy.addr()).unwrap();
        b.write_all(b"xyz").unwrap();
        let mut three = [0u8; 3];
        b.read_exact(&mut three).unwrap();
        assert_eq!(&three, b"xyz");
    }

    /// A client that closes a stalled connection ends it, so the next fault is taken by a
    /// live connection (a dead stalled one used to linger and take it: the stream test that
    /// stalls an idle stream after a reconnect then saw no stall at all).
    #[test]
    fn a_client_closing_a_stalled_connection_ends_it() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault_once(Fault::Stall {
            direction: Direction::Downstream,
            after: 1,
        });
        let mut a = std::net::TcpStream::connect(proxy.addr()).unwrap();
        a.write_all(b"ab").unwrap();
        let mut buf = [0u8; 8];
        assert_eq!(a.read(&mut buf).unwrap(), 1);
        assert!(proxy.wait_tripped(1, Duration::from_secs(5)));
        assert_eq!(proxy.open_connections(), 1);
        a.write_all(b"held while stalled").unwrap();
        drop(a);
        assert!(
            proxy.wait_open_at_most(0, Duration::from_secs(5)),
            "a stalled connection outlived its client"
        );
        // The next one-shot stall is taken by the live connection.
        let mut b = std::net::TcpStream::connect(proxy.addr()).unwrap();
        b.write_all(b"x").unwrap();
        b.read_exact(&mut buf[..1]).unwrap();
        proxy.set_fault_once(Fault::Stall {
            direction: Direction::Downstream,
            after: 0,
        });
        assert!(proxy.wait_tripped(2, Duration::from_secs(5)));
        b.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        b.write_all(b"y").unwrap();
        assert!(b.read(&mut buf).is_err(), "the live connection is stalled");
    }

    #[test]
    fn stall_request_passes_the_first_requests_and_holds_the_nth() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault(Fault::StallRequest { nth: 2 });
        let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        s.set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        let mut buf = [0u8; 8];
        s.write_all(b"one").unwrap();
        s.read_exact(&mut buf[..3]).unwrap();
        assert_eq!(&buf[..3], b"one");
        s.write_all(b"two").unwrap();
        assert!(s.read(&mut buf).is_err(), "the second request is held");
        assert_eq!(proxy.tripped(), 1);
        proxy.set_fault(Fault::Pass);
        s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        s.read_exact(&mut buf[..3]).unwrap();
        assert_eq!(&buf[..3], b"two", "delivered once the fault switches");
    }

    #[test]
    fn slow_limits_the_rate() {
        let proxy = FaultProxy::start(echo());
        proxy.set_fault(Fault::Slow {
            bytes_per_sec: 20_000,
        });
        let mut s = std::net::TcpStream::connect(proxy.addr()).unwrap();
        let t = std::time::Instant::now();
        s.write_all(&[0u8; 10_000]).unwrap();
        let mut got = vec![0u8; 10_000];
        s.read_exact(&mut got).unwrap();
        // 10 kB up and 10 kB down at 20 kB/s each: about half a second at least.
        assert!(
            t.elapsed() >= Duration::from_millis(400),
            "{:?}",
            t.elapsed()
        );
    }

    #[test]
    fn faults_from_the_same_seed_are_the_same() {
        for seed in 0..50 {
            assert_eq!(
                Fault::from_seed(seed, 1 << 20),
                Fault::from_seed(seed, 1 << 20)
            );
        }
        let kinds: std::collections::HashSet<_> = (0..50)
            .map(|s| std::mem::discriminant(&Fault::from_seed(s, 100)))
            .collect();
        assert_eq!(kinds.len(), 3, "cut, reset and stall all occur");
    }
}
