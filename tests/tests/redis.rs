//! End to end: redis-server from Debian on loopback, redis-cli for a few commands and a raw
//! client pipelining a burst of a few thousand, captured by the real probes in an in-process
//! pxtopd; the rows `pxtop run px/redis_data -o json` prints must match what was sent.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::Command,
    time::Duration,
};

use pxtop_e2e::{Backend, may_use_ebpf, pxtop_bin, redis::Redis};

/// One command of the burst: its words, and what its reply starts with.
struct Sent {
    words: Vec<String>,
}

fn encode(words: &[String]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", words.len()).into_bytes();
    for w in words {
        out.extend_from_slice(format!("${}\r\n{w}\r\n", w.len()).as_bytes());
    }
    out
}

/// Reads one RESP2 reply (any type, nested arrays included).
fn read_reply(r: &mut BufReader<TcpStream>) -> String {
    let mut line = String::new();
    r.read_line(&mut line).unwrap();
    let line = line.trim_end().to_string();
    match line.as_bytes().first() {
        Some(b'$') => {
            let n: i64 = line[1..].parse().unwrap();
            if n < 0 {
                return "(nil)".into();
            }
            let mut buf = vec![0u8; n as usize + 2];
            r.read_exact(&mut buf).unwrap();
            String::from_utf8_lossy(&buf[..n as usize]).into_owned()
        }
        Some(b'*') => {
            let n: i64 = line[1..].parse().unwrap();
            (0..n.max(0))
                .map(|_| read_reply(r))
                .collect::<Vec<_>>()
                .join(",")
        }
        _ => line,
    }
}

/// A burst of `n` commands pipelined 100 at a time over one connection: SET, GET, INCR, DEL
/// and an unknown command (an error reply) in turn, every key unique.
fn burst(port: u16, n: usize) -> Vec<(Sent, String)> {
    let s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    s.set_nodelay(true).unwrap();
    let mut w = s.try_clone().unwrap();
    let mut r = BufReader::new(s);
    let cmd = |i: usize| -> Vec<String> {
        let k = format!("pxtop:k{i}");
        match i % 5 {
            0 => vec!["SET".into(), k, format!("v{i}")],
            1 => vec!["GET".into(), k],
            2 => vec!["INCR".into(), k],
            3 => vec!["DEL".into(), k],
            _ => vec!["NOSUCHCMD".into(), k],
        }
    };
    let mut out = Vec::new();
    for start in (0..n).step_by(100) {
        let batch: Vec<Vec<String>> = (start..(start + 100).min(n)).map(cmd).collect();
        let bytes: Vec<u8> = batch.iter().flat_map(|c| encode(c)).collect();
        w.write_all(&bytes).unwrap();
        for words in batch {
            let reply = read_reply(&mut r);
            out.push((Sent { words }, reply));
        }
    }
    out
}

fn redis_cli(port: u16, args: &[&str]) -> String {
    let out = Command::new("redis-cli")
        .args(["-p", &port.to_string()])
        .args(args)
        .output()
        .expect("redis-cli is installed by tools/setup-debian.sh");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).trim().to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_commands_are_captured_exactly_and_served_by_pxtop_run() {
    if !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    let redis = Redis::start().expect("start redis-server");
    let port = redis.port;
    assert_eq!(redis_cli(port, &["SET", "pxtop:cli", "hello world"]), "OK");
    assert_eq!(redis_cli(port, &["GET", "pxtop:cli"]), "hello world");
    assert_eq!(
        redis_cli(port, &["RPUSH", "pxtop:list", "a", "b", "c"]),
        "3"
    );
    let sent = tokio::task::spawn_blocking(move || burst(port, 3000))
        .await
        .expect("join");
    assert_eq!(sent.len(), 3000);
    assert!(sent[4].1.starts_with("-ERR"), "{}", sent[4].1);

    // Rows are flushed every 100 ms; give the agent a moment.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = Command::new(pxtop_bin())
        .args(["--addr", &backend.url, "run", "px/redis_data"])
        .args([
            "--arg",
            "start_time=-10m",
            "--arg",
            "max_rows=100000",
            "-o",
            "json",
        ])
        .env("PXTOP_TOKEN", &backend.token)
        .output()
        .expect("run pxtop");
    assert!(
        out.status.success(),
        "pxtop run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    // Only redis-server's side: the client ends of loopback connections are not captured.
    assert!(rows.iter().all(|r| r["trace_role"] == 2), "{stdout}");
    let mut by_key: HashMap<String, Vec<&serde_json::Value>> = HashMap::new();
    for r in &rows {
        let args = r["req_args"].as_str().unwrap_or_default();
        if let Some(i) = args.find("pxtop:") {
            let key: String = args[i..]
                .chars()
                .take_while(|c| c.is_ascii_alphanumeric() || *c == ':')
                .collect();
            by_key.entry(key).or_default().push(r);
        }
    }
    // redis-cli's commands.
    let cli = &by_key["pxtop:cli"];
    let cmds: Vec<&str> = cli.iter().map(|r| r["req_cmd"].as_str().unwrap()).collect();
    assert!(cmds.contains(&"SET") && cmds.contains(&"GET"), "{cli:?}");
    assert!(
        cli.iter()
            .any(|r| r["resp"].as_str().unwrap().contains("hello world")),
        "{cli:?}"
    );
    // Every command of the burst exactly once, with its command name and reply.
    for (i, (s, reply)) in sent.iter().enumerate() {
        let key = &s.words[1];
        let got: Vec<&&serde_json::Value> = by_key
            .get(key.as_str())
            .map(|v| {
                v.iter()
                    .filter(|r| r["req_cmd"] == s.words[0].as_str())
                    .collect()
            })
            .unwrap_or_default();
        assert_eq!(got.len(), 1, "command {i} {:?}: {got:?}", s.words);
        let resp = got[0]["resp"].as_str().unwrap();
        let want = match reply.as_str() {
            "(nil)" => "", // rendered as the parser renders a null bulk string
            r if r.starts_with("-ERR") => "unknown command",
            r => r.trim_start_matches(['+', ':']),
        };
        assert!(
            resp.contains(want),
            "command {i} {:?}: resp {resp:?}, sent reply {reply:?}",
            s.words
        );
        assert!(got[0]["latency"].as_i64().unwrap() > 0);
    }
    drop(redis);
    backend.stop().await.expect("pxtopd stopped cleanly");
}
