//! Loads the real TCP health probe into this kernel and checks the state changes it reports for
//! a loopback connection this test makes, and which process it names. Needs root: skipped
//! with a reason outside CI, a failure in CI. (Retransmits and drops are induced in network
//! namespaces by `backend/pem/tests/tcp_stats.rs`.)
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    io::{Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use pxtop_probes::{TcpEventKind, TcpStatsConfig, TcpStatsProbe, tcp_stats::tcp_state_name};

fn may_run() -> bool {
    match pxtop_probes::preflight() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            false
        }
        Err(e) => panic!("CI must run the eBPF tests: {e}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reports_the_state_changes_of_a_loopback_connection_with_its_owner() {
    if !may_run() {
        return;
    }
    let mut probe = TcpStatsProbe::load(&TcpStatsConfig::default()).expect("load the probe");

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let server_port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"world").unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", server_port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    server.join().unwrap();
    drop(c);

    let me = std::process::id();
    // (local port, old state, new state, owner)
    let mut seen: Vec<(u16, &str, &str, Option<u32>)> = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    let done = |seen: &[(u16, &str, &str, Option<u32>)]| {
        seen.iter()
            .any(|s| s.0 == client_port && s.2 == "CLOSE" && s.1 != "CLOSE")
            && seen
                .iter()
                .any(|s| s.0 == server_port && s.2 == "CLOSE" && s.1 != "LISTEN")
    };
    while tokio::time::Instant::now() < deadline && !done(&seen) {
        probe
            .next_batch(Duration::from_millis(20), 4096, |e| {
                if e.kind != TcpEventKind::StateChange || !e.local.ip().is_loopback() {
                    return;
                }
                // NB: connect moves the socket to SYN_SENT before it picks its local port, so
                // that event carries local port 0.
                let client_end = e.remote.port() == server_port
                    && (e.local.port() == client_port || e.local.port() == 0);
                let server_end = e.local.port() == server_port && e.remote.port() == client_port;
                if client_end || server_end {
                    seen.push((
                        e.local.port(),
                        tcp_state_name(e.old_state),
                        tcp_state_name(e.state),
                        e.tgid,
                    ));
                }
            })
            .await
            .unwrap();
    }
    let client: Vec<_> = seen.iter().filter(|s| s.0 != server_port).collect();
    let server: Vec<_> = seen.iter().filter(|s| s.0 == server_port).collect();
    // The connecting end: set up by this process's connect, so it is named throughout.
    assert_eq!(
        client.first().map(|s| (s.1, s.2, s.3)),
        Some(("CLOSE", "SYN_SENT", Some(me))),
        "{seen:?}"
    );
    assert!(
        client
            .iter()
            .any(|s| (s.1, s.2) == ("SYN_SENT", "ESTABLISHED")),
        "{seen:?}"
    );
    assert!(client.iter().all(|s| s.3 == Some(me)), "{seen:?}");
    // The accepted end: born in softirq (no owner yet), named once accept returned it.
    assert!(
        server
            .iter()
            .any(|s| (s.1, s.2) == ("SYN_RECV", "ESTABLISHED")),
        "{seen:?}"
    );
    let closing: Vec<_> = server
        .iter()
        .filter(|s| s.1 != "LISTEN" && s.1 != "SYN_RECV")
        .collect();
    assert!(!closing.is_empty(), "{seen:?}");
    assert!(closing.iter().all(|s| s.3 == Some(me)), "{seen:?}");
    assert_eq!(probe.counters().lost, 0);
    assert_eq!(probe.counters().malformed, 0);
}
