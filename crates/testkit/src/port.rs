//! Choosing a free TCP port for a test server.
//!
//! Ports handed out by `bind(127.0.0.1:0)` come from the kernel's ephemeral range, which is
//! also where outgoing connections get their local ports; while a server is down (between
//! `kill` and `restart`) such a port can be taken by any client socket. So we prefer a random
//! port below the ephemeral range that we can bind right now, and only fall back to port 0.
//! A race with another process remains possible; the server start retries on "address in use".

use rand::Rng;
use std::net::{Ipv4Addr, TcpListener};

const LOWEST: u16 = 20000;

pub fn free_port() -> u16 {
    let ephemeral_low = std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse::<u16>().ok())
        .unwrap_or(32768);
    if ephemeral_low > LOWEST + 1000 {
        let mut rng = rand::thread_rng();
        for _ in 0..100 {
            let port = rng.gen_range(LOWEST..ephemeral_low);
            if is_free(port) {
                return port;
            }
        }
    }
    TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("holdfast-testkit: cannot bind any TCP port on 127.0.0.1")
}

pub(crate) fn is_free(port: u16) -> bool {
    TcpListener::bind((Ipv4Addr::LOCALHOST, port)).is_ok()
}
