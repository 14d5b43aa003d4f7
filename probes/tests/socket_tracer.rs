//! Loads the real socket tracer into this kernel and checks what it reports for loopback
//! traffic this test makes. Needs root: skipped with a reason outside CI, a failure in CI.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    io::{IoSlice, Read, Write},
    net::{TcpListener, TcpStream},
    time::Duration,
};

use pxtop_probes::{Direction, Event, Role, SocketTracer, TracerConfig};

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

#[derive(Default, Debug)]
struct Seen {
    client_open: Option<(u16, u16, Role)>,
    server_open: Option<(u16, u16, Role)>,
    egress: Vec<u8>,
    ingress: Vec<u8>,
    big_sizes: Vec<(u64, usize)>,
    closes: usize,
}

// NB: one test running the exchange twice, one tracer after the other: two tracers at once in
// one process would each see the other's traffic under the same pid.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn captures_loopback_tcp_with_roles_positions_writev_and_truncation() {
    if !may_run() {
        return;
    }
    // Every byte, from both ends.
    let seen = exchange(false).await;
    // Both ends are this process: each message is seen leaving one socket and entering another.
    assert_eq!(seen.egress, b"helloworldvector");
    assert_eq!(seen.ingress, b"helloworldvector");
    assert!(seen.big_sizes.len() >= 2, "{:?}", seen.big_sizes);

    // The client end of a loopback connection skipped: only the server's side of each message.
    let seen = exchange(true).await;
    assert_eq!(seen.egress, b"world");
    assert_eq!(seen.ingress, b"hellovector");
    assert!(!seen.big_sizes.is_empty(), "{:?}", seen.big_sizes);
}

/// Loopback traffic between a client and a server thread of this process, traced; checks what
/// both modes share (opens with roles and ports, closes, truncation, no loss) and returns the
/// data seen.
async fn exchange(skip_loopback_clients: bool) -> Seen {
    // NB: self_tgid 0 so this test process's own traffic is traced.
    let cfg = TracerConfig {
        capture_bytes: 4096,
        ring_bytes: 8 << 20,
        self_tgid: 0,
        skip_loopback_clients,
    };
    let mut tracer = SocketTracer::load(&cfg).expect("load the socket tracer");
    assert!(
        tracer.attachments().iter().all(|a| a.error.is_none()),
        "{:?}",
        tracer.attachments()
    );

    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let server = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().unwrap();
        let mut buf = [0u8; 5];
        s.read_exact(&mut buf).unwrap();
        s.write_all(b"world").unwrap();
        let mut v = [0u8; 6];
        s.read_exact(&mut v).unwrap();
        let mut big = vec![0u8; 100_000];
        s.read_exact(&mut big).unwrap();
    });
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let client_port = c.local_addr().unwrap().port();
    c.write_all(b"hello").unwrap();
    let mut buf = [0u8; 5];
    c.read_exact(&mut buf).unwrap();
    // writev: two iovecs, captured as two events at consecutive positions.
    let n = c
        .write_vectored(&[IoSlice::new(b"vec"), IoSlice::new(b"tor")])
        .unwrap();
    assert_eq!(n, 6);
    c.write_all(&vec![b'x'; 100_000]).unwrap();
    server.join().unwrap();
    drop(c);

    let mut seen = Seen::default();
    let me = std::process::id();
    for _ in 0..20 {
        tracer
            .next_batch(Duration::from_millis(50), usize::MAX, |ev| match ev {
                Event::Open(o) if o.tgid == me => {
                    let t = (o.local.port(), o.remote.port(), o.role);
                    if o.local.port() == client_port {
                        seen.client_open = Some(t);
                    } else if o.local.port() == port {
                        seen.server_open = Some(t);
                    }
                }
                Event::Data(d) if d.tgid == me => {
                    // The 100 kB message of x's is read in chunks whose sizes the kernel
                    // picks (some under 10 kB): tell it by its content, not only its size.
                    if d.size >= 10_000 || d.data.first() == Some(&b'x') {
                        seen.big_sizes.push((d.size, d.data.len()));
                    } else if d.dir == Direction::Egress {
                        seen.egress.extend_from_slice(d.data);
                    } else {
                        seen.ingress.extend_from_slice(d.data);
                    }
                }
                Event::Close(c) if c.tgid == me => seen.closes += 1,
                _ => {}
            })
            .await
            .unwrap();
        if seen.closes >= 1 && seen.client_open.is_some() && seen.server_open.is_some() {
            break;
        }
    }
    assert_eq!(
        seen.client_open,
        Some((client_port, port, Role::Client)),
        "{seen:?}"
    );
    assert_eq!(
        seen.server_open,
        Some((port, client_port, Role::Server)),
        "{seen:?}"
    );
    assert!(
        seen.big_sizes
            .iter()
            .all(|(size, got)| *got as u64 <= 4096 && *got as u64 <= *size),
        "{:?}",
        seen.big_sizes
    );
    assert!(seen.closes >= 1);
    let counters = tracer.counters();
    assert!(counters.truncated >= 1, "{counters:?}");
    assert_eq!(counters.lost, 0, "{counters:?}");
    assert_eq!(counters.malformed, 0, "{counters:?}");
    seen
}
