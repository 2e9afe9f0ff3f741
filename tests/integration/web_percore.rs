//! Proves the per-core HTTP design against the real binary: one connection
//! thread per core the server may run on, and connections held open at once
//! spread over all of them (each thread then spends CPU serving its share).
#![allow(clippy::unwrap_used)] // tests fail loudly on the first surprise

use std::collections::BTreeMap;
use std::net::TcpStream;
use std::time::Duration;

use crate::harness::*;

/// The server's connection threads (named `onebox-http-N`) and the CPU time
/// each has used so far, in nanoseconds, from /proc.
fn connection_threads(pid: u32) -> BTreeMap<String, u64> {
    let mut threads = BTreeMap::new();
    for task in std::fs::read_dir(format!("/proc/{pid}/task")).unwrap() {
        let dir = task.unwrap().path();
        let Ok(name) = std::fs::read_to_string(dir.join("comm")) else {
            continue; // the thread ended meanwhile
        };
        let name = name.trim().to_string();
        if !name.starts_with("onebox-http-") {
            continue;
        }
        let Ok(schedstat) = std::fs::read_to_string(dir.join("schedstat")) else {
            continue;
        };
        let on_cpu = schedstat
            .split_whitespace()
            .next()
            .unwrap()
            .parse()
            .unwrap();
        threads.insert(name, on_cpu);
    }
    threads
}

#[test]
fn each_core_has_a_connection_thread_and_open_connections_spread_over_them() {
    let server = Onebox::start();
    // One thread per core the server may run on; it inherits our CPU affinity.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    // The threads start with the web server, maybe just after the ready line.
    wait_until("the connection threads start", || {
        connection_threads(server.pid).len() >= cores
    });
    let before = connection_threads(server.pid);
    assert_eq!(
        before.len(),
        cores,
        "one connection thread per core: {before:?}"
    );

    // Every connection opens before any is used: the server hands each new one
    // to the thread holding the fewest, so each thread gets two.
    let mut conns: Vec<TcpStream> = (0..2 * cores)
        .map(|_| TcpStream::connect_timeout(&server.http_addr(), Duration::from_secs(5)).unwrap())
        .collect();
    let requests: Vec<String> = (0..50)
        .map(|_| "GET /static/site.css HTTP/1.1\r\nHost: foobar.com\r\n\r\n".to_string())
        .collect();
    for conn in &mut conns {
        let answers = keep_alive_on(conn, &requests);
        assert!(answers.iter().all(|a| a.status == 200), "{answers:?}");
    }

    // A thread with no connection sleeps in epoll and uses no CPU at all; one
    // that served its two connections' 100 requests did.
    let after = connection_threads(server.pid);
    let idle: Vec<&String> = after
        .iter()
        .filter(|(name, on_cpu)| before.get(*name).is_some_and(|b| b >= on_cpu))
        .map(|(name, _)| name)
        .collect();
    assert!(
        idle.is_empty(),
        "threads that served nothing: {idle:?} (before {before:?}, after {after:?})"
    );
}
