//! Telling when a starting server accepts connections, without leaving traces in it.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

/// True once the server accepts connections: it has sent its initial handshake on the socket
/// (a connection queued during startup waits in the backlog until then). The probe then logs
/// in as root with an empty password and quits cleanly, so readiness checks leave no "Aborted
/// connection" warnings in the error log and do not count in `Aborted_connects`.
pub fn handshake_received(socket: &Path) -> bool {
    let Ok(mut stream) = UnixStream::connect(socket) else {
        return false;
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    let _ = stream.set_write_timeout(Some(Duration::from_secs(5)));
    // Protocol version 10; 0xff would be an error packet such as "too many connections".
    match read_packet(&mut stream) {
        Some((_, payload)) if payload.first() == Some(&10) => {}
        _ => return false,
    }
    let _ = login_and_quit(&mut stream);
    true
}

/// Best effort: HandshakeResponse41 for root with an empty password, then COM_QUIT.
fn login_and_quit(stream: &mut UnixStream) -> Option<()> {
    const CAPS: u32 = 0x0000_0001 // CLIENT_LONG_PASSWORD
        | 0x0000_0200 // CLIENT_PROTOCOL_41
        | 0x0000_8000 // CLIENT_SECURE_CONNECTION
        | 0x0008_0000; // CLIENT_PLUGIN_AUTH
    let mut response = Vec::with_capacity(64);
    response.extend_from_slice(&CAPS.to_le_bytes());
    response.extend_from_slice(&(16u32 << 20).to_le_bytes()); // max packet
    response.push(45); // utf8mb4_general_ci
    response.extend_from_slice(&[0; 23]);
    response.extend_from_slice(b"root\0");
    response.push(0); // empty auth response
    response.extend_from_slice(b"mysql_native_password\0");
    write_packet(stream, 1, &response)?;
    let (mut seq, mut reply) = read_packet(stream)?;
    if reply.first() == Some(&0xfe) {
        // Auth switch request: still an empty password.
        write_packet(stream, seq.wrapping_add(1), &[])?;
        (seq, reply) = read_packet(stream)?;
    }
    let _ = seq;
    if reply.first() == Some(&0x00) {
        write_packet(stream, 0, &[0x01])?; // COM_QUIT
    }
    Some(())
}

fn read_packet(stream: &mut UnixStream) -> Option<(u8, Vec<u8>)> {
    let mut header = [0u8; 4];
    stream.read_exact(&mut header).ok()?;
    let len = u32::from_le_bytes([header[0], header[1], header[2], 0]) as usize;
    let mut payload = vec![0u8; len];
    stream.read_exact(&mut payload).ok()?;
    Some((header[3], payload))
}

fn write_packet(stream: &mut UnixStream, seq: u8, payload: &[u8]) -> Option<()> {
    let len = (payload.len() as u32).to_le_bytes();
    let mut packet = vec![len[0], len[1], len[2], seq];
    packet.extend_from_slice(payload);
    stream.write_all(&packet).ok()
}
