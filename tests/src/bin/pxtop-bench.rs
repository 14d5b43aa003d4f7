//! `pxtop-bench`: capture cost figures, measured in one run with the modes alternating.
//!
//! - `overhead`: a loopback TCP request/response ping-pong (HTTP-shaped messages, so pxtopd
//!   really parses them) timed with nothing attached, with bpftrace attaching empty programs
//!   to the same syscall tracepoints (the floor any tracepoint design pays), and with pxtopd
//!   capturing. Figure: pxtopd's added time per round trip / the floor's. Pin it
//!   (`taskset -c 1`): pxtopd then runs on the other CPUs. Also times getpid(2), a syscall
//!   nobody traces, in each mode.
//! - `wrk`: wrk → nginx on loopback, requests/s in the same three modes; with pxtopd, its CPU
//!   seconds per captured request and captured / sent.
//! - `fleet`: query latency through a real `pxtopd kelvin` fanning out to 1, 3 and 50
//!   in-process PEMs (real gRPC on loopback) against the same script on one PEM's engine
//!   directly, and Kelvin's memory with the fleet registered (issue 6).
//! - `pem-memory`: pxtopd's RSS, sampled every second, under sustained wrk → nginx load with a
//!   small `--node-budget`, against that budget (issue 6).
//! - `pingpong`, `getpid`: the timed workloads themselves (run as children so pxtopd traces
//!   them).
//!
//! Run as root after `cargo build --release --workspace --bins`:
//! `target/release/pxtop-bench overhead` and `target/release/pxtop-bench wrk`.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{TcpListener, TcpStream},
    path::PathBuf,
    process::{Child, Command, Stdio},
    sync::Arc,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};
use arrow::array::AsArray;
use pxtop_e2e::nginx::Nginx;
use pxtop_engine::{Engine, EngineConfig};
use pxtop_metadata::{CtxKey, Metadata};
use pxtop_store::{Store, StoreConfig, fixtures};

const REQ: &[u8] = b"GET /ping HTTP/1.1\r\nHost: bench\r\n\r\n";
const RESP: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\npong";

/// The syscall tracepoints pxtopd attaches, for the bpftrace floor.
const SYSCALLS: &[&str] = pxtop_probes::socket::TRACEPOINTS;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    let arg = |name: &str, default: u64| -> u64 {
        args.iter()
            .position(|a| a == name)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    match args.get(1).map(String::as_str) {
        Some("pingpong") => {
            let ns = pingpong(arg("--iters", 20_000))?;
            println!("{ns:.1}");
            Ok(())
        }
        Some("getpid") => {
            println!("{:.1}", getpid_loop(arg("--iters", 1_000_000)));
            Ok(())
        }
        Some("overhead") => overhead(arg("--rounds", 7) as usize, arg("--iters", 20_000)),
        Some("wrk") => wrk(arg("--rounds", 3) as usize, arg("--seconds", 8)),
        Some("wrk-tls") => wrk_tls(arg("--rounds", 3) as usize, arg("--seconds", 8)),
        Some("fleet") => {
            let sizes: Vec<usize> = args
                .iter()
                .position(|a| a == "--pems")
                .and_then(|i| args.get(i + 1))
                .map_or("1,3,50", String::as_str)
                .split(',')
                .filter_map(|v| v.parse().ok())
                .collect();
            fleet(
                &sizes,
                arg("--rows", 10_000) as usize,
                arg("--queries", 15) as usize,
            )
        }
        Some("pem-memory") => pem_memory(arg("--budget-mib", 64), arg("--seconds", 180)),
        _ => {
            eprintln!(
                "usage: pxtop-bench overhead [--rounds 7] [--iters 20000]\n       \
                 pxtop-bench wrk [--rounds 3] [--seconds 8]\n       \
                 pxtop-bench wrk-tls [--rounds 3] [--seconds 8]\n       \
                 pxtop-bench fleet [--pems 1,3,50] [--rows 10000] [--queries 15]\n       \
                 pxtop-bench pem-memory [--budget-mib 64] [--seconds 180]\n       \
                 pxtop-bench pingpong [--iters 20000]\n       \
                 pxtop-bench getpid [--iters 1000000]\n\
                 Run as root after `cargo build --release --workspace --bins`."
            );
            std::process::exit(2);
        }
    }
}

/// Median ns per round trip of `iters` request/response exchanges over loopback TCP.
fn pingpong(iters: u64) -> anyhow::Result<f64> {
    let listener = TcpListener::bind("127.0.0.1:0")?;
    let addr = listener.local_addr()?;
    let server = std::thread::spawn(move || -> anyhow::Result<()> {
        let (mut s, _) = listener.accept()?;
        s.set_nodelay(true)?;
        let mut buf = [0u8; 256];
        loop {
            let mut got = 0;
            while got < REQ.len() {
                let n = s.read(&mut buf[got..])?;
                if n == 0 {
                    return Ok(());
                }
                got += n;
            }
            s.write_all(RESP)?;
        }
    });
    let mut c = TcpStream::connect(addr)?;
    c.set_nodelay(true)?;
    let mut buf = [0u8; 256];
    let mut one = |c: &mut TcpStream| -> anyhow::Result<()> {
        c.write_all(REQ)?;
        let mut got = 0;
        while got < RESP.len() {
            got += c.read(&mut buf[got..])?;
        }
        Ok(())
    };
    for _ in 0..1000 {
        one(&mut c)?;
    }
    // Median of 20 slices, to shed the noise of a shared machine.
    let slices = 20;
    let per = (iters / slices).max(1);
    let mut samples = Vec::new();
    for _ in 0..slices {
        let t0 = Instant::now();
        for _ in 0..per {
            one(&mut c)?;
        }
        samples.push(t0.elapsed().as_nanos() as f64 / per as f64);
    }
    drop(c);
    let _ = server.join();
    Ok(median(&mut samples))
}

fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    if v.is_empty() { 0.0 } else { v[v.len() / 2] }
}

fn sibling(name: &str) -> anyhow::Result<PathBuf> {
    let exe = std::env::current_exe()?;
    let p = exe.with_file_name(name);
    if !p.exists() {
        bail!(
            "{} not found: run `cargo build --release --workspace --bins` first",
            p.display()
        );
    }
    Ok(p)
}

/// Median ns per getpid(2): a syscall pxtopd does not trace, so this is what capture costs
/// every other syscall on the host (the raw tracepoints run for all of them).
fn getpid_loop(iters: u64) -> f64 {
    let slices = 20;
    let per = (iters / slices).max(1);
    let mut samples = Vec::new();
    let mut sink = 0u32;
    for _ in 0..slices {
        let t0 = Instant::now();
        for _ in 0..per {
            // NB: std::process::id is getpid(2) each time (glibc no longer caches it).
            sink = sink.wrapping_add(std::process::id());
        }
        samples.push(t0.elapsed().as_nanos() as f64 / per as f64);
    }
    std::hint::black_box(sink);
    median(&mut samples)
}

fn run_getpid() -> anyhow::Result<f64> {
    let out = Command::new(std::env::current_exe()?)
        .args(["getpid", "--iters", "1000000"])
        .output()?;
    if !out.status.success() {
        bail!("getpid failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

fn run_pingpong(iters: u64) -> anyhow::Result<f64> {
    let out = Command::new(std::env::current_exe()?)
        .args(["pingpong", "--iters", &iters.to_string()])
        .output()?;
    if !out.status.success() {
        bail!("pingpong failed: {}", String::from_utf8_lossy(&out.stderr));
    }
    Ok(String::from_utf8_lossy(&out.stdout).trim().parse()?)
}

/// bpftrace with empty programs on the enter and exit tracepoints of the syscalls pxtopd
/// traces (the floor); returns once they are attached.
fn start_bpftrace() -> anyhow::Result<Child> {
    start_bpftrace_on(false)
}

/// bpftrace with empty programs on syscall tracepoints; returns once they are attached.
/// `exits_only`: only the tracepoints pxtopd itself attaches (the exits of the data syscalls
/// and sys_enter_close) instead of the enter/exit pair the floor is defined with.
fn start_bpftrace_on(exits_only: bool) -> anyhow::Result<Child> {
    let mut probes: Vec<String> = SYSCALLS
        .iter()
        .flat_map(|s| {
            let enter = (!exits_only).then(|| format!("tracepoint:syscalls:sys_enter_{s}"));
            enter
                .into_iter()
                .chain([format!("tracepoint:syscalls:sys_exit_{s}")])
        })
        .collect();
    probes.push("tracepoint:syscalls:sys_enter_close".into());
    let prog = format!("{} {{ }}", probes.join(",\n"));
    let mut child = Command::new("bpftrace")
        .args(["-e", &prog])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .context("bpftrace is not installed: run tools/setup-debian.sh")?;
    let stdout = child.stdout.take().context("bpftrace stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    while let Some(line) = lines.next().transpose()? {
        if line.starts_with("Attaching") {
            std::thread::sleep(Duration::from_millis(500));
            std::thread::spawn(move || for _ in lines {});
            return Ok(child);
        }
    }
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    bail!("bpftrace did not attach: {err}")
}

struct Pxtopd {
    child: Child,
    addr: String,
    token: String,
}

fn start_pxtopd() -> anyhow::Result<Pxtopd> {
    start_pxtopd_with(&[])
}

/// pxtopd with extra flags.
fn start_pxtopd_with(extra: &[&str]) -> anyhow::Result<Pxtopd> {
    let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
    let addr = format!("127.0.0.1:{port}");
    let token = "bench-token".to_string();
    let pxtopd = sibling("pxtopd")?;
    let mut cmd = match agent_cpus() {
        // NB: the agent on the CPUs the workload is not pinned to, as on a node where it has
        // its own share of CPU: the round trip then carries the in-kernel capture cost, and
        // the agent's user-space CPU is reported on its own (`wrk`: CPU per captured request).
        Some(cpus) => {
            let mut c = Command::new("taskset");
            c.args(["-c", &cpus]).arg(&pxtopd);
            c
        }
        None => Command::new(&pxtopd),
    };
    let mut child = cmd
        .args(["--listen", &addr])
        .args(extra)
        .env("PXTOP_TOKEN", &token)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()?;
    let stderr = child.stderr.take().context("pxtopd stderr")?;
    let mut lines = BufReader::new(stderr).lines();
    while let Some(line) = lines.next().transpose()? {
        if line.contains("listening on") {
            std::thread::spawn(move || for _ in lines {});
            let px = Pxtopd { child, addr, token };
            // pxtopd serves only once its probes are attached: the first answer means ready.
            px.count_rows(1)?;
            return Ok(px);
        }
    }
    bail!("pxtopd did not start (see its log above)")
}

/// CPUs as a set from a kernel list like `0-3,6`.
fn parse_cpu_list(s: &str) -> Vec<u32> {
    let mut v = Vec::new();
    for part in s.trim().split(',').filter(|p| !p.is_empty()) {
        let (a, b) = part.split_once('-').unwrap_or((part, part));
        if let (Ok(a), Ok(b)) = (a.trim().parse::<u32>(), b.trim().parse::<u32>()) {
            v.extend(a..=b);
        }
    }
    v
}

/// The online CPUs this process is not allowed on, as a `taskset -c` list, when it is pinned
/// to a strict subset (e.g. `taskset -c 1 pxtop-bench overhead`); else None.
fn agent_cpus() -> Option<String> {
    let online = parse_cpu_list(&std::fs::read_to_string("/sys/devices/system/cpu/online").ok()?);
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let allowed = status
        .lines()
        .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
        .map(parse_cpu_list)?;
    let rest: Vec<String> = online
        .iter()
        .filter(|c| !allowed.contains(c))
        .map(u32::to_string)
        .collect();
    (!rest.is_empty()).then(|| rest.join(","))
}

impl Pxtopd {
    fn cpu_seconds(&self) -> f64 {
        let stat =
            std::fs::read_to_string(format!("/proc/{}/stat", self.child.id())).unwrap_or_default();
        let after = stat.rsplit_once(')').map(|x| x.1).unwrap_or("");
        let f: Vec<&str> = after.split_whitespace().collect();
        let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
        // Fields 14 and 15 (utime, stime) are 12 and 13 after the comm.
        (ticks(11) + ticks(12)) / 100.0
    }

    fn stop(mut self) {
        // SIGTERM for a graceful stop, then make sure.
        let _ = Command::new("kill")
            .arg(self.child.id().to_string())
            .status();
        std::thread::sleep(Duration::from_millis(500));
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Rows captured for server port `port`, counted by the engine.
    fn count_rows(&self, port: u16) -> anyhow::Result<i64> {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        rt.block_on(async {
            use pxtop_proto::v1::{
                ExecuteScriptRequest, execute_script_response::Result as R,
                pxtop_client::PxtopClient,
            };
            let mut client = PxtopClient::connect(format!("http://{}", self.addr)).await?;
            let source = format!(
                "let df = px::DataFrame(\"http_events\", \"\");\n\
                 df = df.filter(df.local_port == {port});\n\
                 px::display(df.agg(#{{ n: [\"latency\", \"count\"] }}), \"n\");\n"
            );
            let mut req = tonic::Request::new(ExecuteScriptRequest {
                source,
                ..Default::default()
            });
            req.metadata_mut()
                .insert("authorization", format!("Bearer {}", self.token).parse()?);
            let mut stream = client.execute_script(req).await?.into_inner();
            while let Some(msg) = stream.message().await? {
                if let Some(R::Batch(b)) = msg.result {
                    let reader = arrow::ipc::reader::StreamReader::try_new(
                        std::io::Cursor::new(b.arrow_ipc),
                        None,
                    )?;
                    for batch in reader {
                        let batch = batch?;
                        if batch.num_rows() > 0 {
                            let col = arrow::compute::cast(
                                batch.column(0),
                                &arrow::datatypes::DataType::Int64,
                            )?;
                            return Ok(col.as_primitive::<arrow::datatypes::Int64Type>().value(0));
                        }
                    }
                }
            }
            Ok(0)
        })
    }
}

fn overhead(rounds: usize, iters: u64) -> anyhow::Result<()> {
    match agent_cpus() {
        Some(cpus) => eprintln!("pxtopd runs on CPUs {cpus}, away from the timed workload"),
        None => eprintln!(
            "pxtopd shares the workload's CPUs: its user-space work lands in the round trip \
             (pin the bench, e.g. `taskset -c 1`, to measure the capture cost alone)"
        ),
    }
    // NB: each round brackets the two attached modes between two unattached runs and takes
    // differences against their mean, so a slow drift of the shared host cancels out of the
    // figures instead of landing in one mode's median.
    let (mut a, mut b, mut c) = (Vec::new(), Vec::new(), Vec::new());
    let (mut floor, mut added) = (Vec::new(), Vec::new());
    let (mut g_none, mut g_bt, mut g_px) = (Vec::new(), Vec::new(), Vec::new());
    let mut floor_exits = Vec::new();
    let mut added_all = Vec::new();
    for round in 0..rounds {
        let a1 = run_pingpong(iters)?;
        g_none.push(run_getpid()?);
        let mut bt = start_bpftrace()?;
        let bv = run_pingpong(iters)?;
        g_bt.push(run_getpid()?);
        let _ = bt.kill();
        let _ = bt.wait();
        let mut bt = start_bpftrace_on(true)?;
        let ev = run_pingpong(iters)?;
        let _ = bt.kill();
        let _ = bt.wait();
        let px = start_pxtopd()?;
        let cv = run_pingpong(iters)?;
        g_px.push(run_getpid()?);
        px.stop();
        // Every syscall of both ends captured, as for traffic from clients on other hosts.
        let px = start_pxtopd_with(&["--client-records", "all"])?;
        let dv = run_pingpong(iters)?;
        px.stop();
        let a2 = run_pingpong(iters)?;
        let base = (a1 + a2) / 2.0;
        eprintln!(
            "round {}: none {a1:.0}/{a2:.0} ns, bpftrace-empty {bv:.0} ns (+{:.0}), \
             pxtopd {cv:.0} ns (+{:.0}), pxtopd capturing both ends {dv:.0} ns (+{:.0})",
            round + 1,
            bv - base,
            cv - base,
            dv - base
        );
        a.push(base);
        b.push(bv);
        c.push(cv);
        floor.push(bv - base);
        floor_exits.push(ev - base);
        added.push(cv - base);
        added_all.push(dv - base);
    }
    let (ma, mb, mc) = (median(&mut a), median(&mut b), median(&mut c));
    let (floor, added) = (median(&mut floor), median(&mut added));
    println!("round trip (median of {rounds} rounds, {iters} round trips per run):");
    println!("  nothing attached         {ma:>8.0} ns");
    println!("  bpftrace empty programs  {mb:>8.0} ns  (floor: +{floor:.0} ns, paired median)");
    println!("  pxtopd capturing         {mc:>8.0} ns  (added: +{added:.0} ns, paired median)");
    println!("  added / floor            {:>8.2}", added / floor);
    let all = median(&mut added_all);
    println!(
        "  pxtopd --client-records all (both ends of the loopback connection captured): \
         +{all:.0} ns; added / floor {:.2}",
        all / floor
    );
    let fe = median(&mut floor_exits);
    println!(
        "  floor on pxtopd's own tracepoints only (exits + close): +{fe:.0} ns; \
         added / that {:.2}",
        added / fe
    );
    let (gn, gb, gp) = (median(&mut g_none), median(&mut g_bt), median(&mut g_px));
    println!("untraced syscall (getpid, median of {rounds} runs):");
    println!("  nothing attached         {gn:>8.1} ns");
    println!(
        "  bpftrace empty programs  {gb:>8.1} ns  (+{:.1} ns)",
        gb - gn
    );
    println!(
        "  pxtopd capturing         {gp:>8.1} ns  (+{:.1} ns)",
        gp - gn
    );
    Ok(())
}

fn run_wrk(port: u16, seconds: u64) -> anyhow::Result<(f64, u64)> {
    run_wrk_url(&format!("http://127.0.0.1:{port}/status/200"), seconds)
}

fn run_wrk_url(url: &str, seconds: u64) -> anyhow::Result<(f64, u64)> {
    let out = Command::new("wrk")
        .args(["-t2", "-c32", &format!("-d{seconds}s")])
        .arg(url)
        .output()
        .context("wrk is not installed: run tools/setup-debian.sh")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let rps = text
        .lines()
        .find_map(|l| l.strip_prefix("Requests/sec:"))
        .and_then(|v| v.trim().parse().ok())
        .with_context(|| format!("wrk output: {text}"))?;
    let total = text
        .lines()
        .find(|l| l.contains("requests in"))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0);
    Ok((rps, total))
}

/// wrk over HTTPS (HTTP/1.1 keep-alive over TLS) against nginx: nothing attached, pxtopd
/// without TLS probes (`--tls-scan-interval 0`: syscalls only, ciphertext), and pxtopd with its
/// TLS uprobes on libssl (both nginx's and wrk's calls hit them), in alternating rounds.
fn wrk_tls(rounds: usize, seconds: u64) -> anyhow::Result<()> {
    let nginx = Nginx::start()?;
    let url = format!("https://127.0.0.1:{}/status/200", nginx.tls_port);
    let (mut a, mut b, mut c, mut cpu_per_req, mut fidelity) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        let none = run_wrk_url(&url, seconds)?.0;
        let px = start_pxtopd_with(&["--tls-scan-interval", "0"])?;
        let plain = run_wrk_url(&url, seconds)?.0;
        px.stop();
        let px = start_pxtopd()?;
        // NB: the first scan for libssl runs at start; give the probes a moment to attach.
        std::thread::sleep(Duration::from_millis(500));
        let cpu0 = px.cpu_seconds();
        let (rps, sent) = run_wrk_url(&url, seconds)?;
        std::thread::sleep(Duration::from_millis(1500));
        let cpu = px.cpu_seconds() - cpu0;
        let captured = px.count_rows(nginx.tls_port)?;
        px.stop();
        a.push(none);
        b.push(plain);
        c.push(rps);
        if captured > 0 {
            cpu_per_req.push(cpu / captured as f64 * 1e6);
        }
        fidelity.push(captured as f64 / sent.max(1) as f64);
        eprintln!(
            "round {}: none {none:.0} req/s, pxtopd without TLS probes {plain:.0}, \
             pxtopd with TLS probes {rps:.0} (sent {sent}, captured {captured}, cpu {cpu:.2} s)",
            round + 1
        );
    }
    let (ma, mb, mc) = (median(&mut a), median(&mut b), median(&mut c));
    println!(
        "wrk -t2 -c32 -> nginx over HTTPS on loopback (median of {rounds} alternating rounds of \
         {seconds} s):"
    );
    println!("  nothing attached              {ma:>10.0} req/s");
    println!(
        "  pxtopd, no TLS probes         {mb:>10.0} req/s  ({:.1}% of none)",
        mb / ma * 100.0
    );
    println!(
        "  pxtopd, TLS probes (capture)  {mc:>10.0} req/s  ({:.1}% of none)",
        mc / ma * 100.0
    );
    println!(
        "  pxtopd CPU per captured request  {:.2} us",
        median(&mut cpu_per_req)
    );
    println!(
        "  captured / sent                  {:.4}",
        median(&mut fidelity)
    );
    Ok(())
}

fn wrk(rounds: usize, seconds: u64) -> anyhow::Result<()> {
    let nginx = Nginx::start()?;
    let (mut a, mut b, mut c, mut cpu_per_req, mut fidelity) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    for round in 0..rounds {
        a.push(run_wrk(nginx.port, seconds)?.0);
        let mut bt = start_bpftrace()?;
        b.push(run_wrk(nginx.port, seconds)?.0);
        let _ = bt.kill();
        let _ = bt.wait();
        let px = start_pxtopd()?;
        let cpu0 = px.cpu_seconds();
        let (rps, sent) = run_wrk(nginx.port, seconds)?;
        // Let the last drain and flush land.
        std::thread::sleep(Duration::from_millis(1500));
        let cpu = px.cpu_seconds() - cpu0;
        let captured = px.count_rows(nginx.port)?;
        px.stop();
        c.push(rps);
        if captured > 0 {
            cpu_per_req.push(cpu / captured as f64 * 1e6);
        }
        fidelity.push(captured as f64 / sent.max(1) as f64);
        eprintln!(
            "round {}: none {:.0} req/s, bpftrace-empty {:.0}, pxtopd {rps:.0} \
             (sent {sent}, captured {captured}, pxtopd cpu {cpu:.2} s)",
            round + 1,
            a[round],
            b[round]
        );
    }
    let (ma, mb, mc) = (median(&mut a), median(&mut b), median(&mut c));
    println!(
        "wrk -t2 -c32 -> nginx on loopback (median of {rounds} alternating rounds of {seconds} s):"
    );
    println!("  nothing attached         {ma:>10.0} req/s");
    println!(
        "  bpftrace empty programs  {mb:>10.0} req/s  ({:.1}% of none)",
        mb / ma * 100.0
    );
    println!(
        "  pxtopd capturing         {mc:>10.0} req/s  ({:.1}% of none)",
        mc / ma * 100.0
    );
    println!(
        "  pxtopd CPU per captured request  {:.2} us",
        median(&mut cpu_per_req)
    );
    println!(
        "  captured / sent                  {:.4}",
        median(&mut fidelity)
    );
    Ok(())
}

/// The four fixture services, as the fleet's PEMs name their rows' processes.
#[derive(Debug)]
struct FixtureServices;

impl Metadata for FixtureServices {
    fn ctx(&self, upid: &str, key: CtxKey) -> Option<String> {
        let i = (0..4).find(|i| fixtures::upid(*i) == upid)?;
        let name = ["frontend", "cart", "checkout", "users"][i as usize];
        match key {
            CtxKey::Service => Some(name.to_string()),
            CtxKey::Pod => Some(format!("{name}-{}", 1001 + i)),
            CtxKey::Pid => Some((1001 + i).to_string()),
            CtxKey::Namespace => Some("bench".to_string()),
            _ => None,
        }
    }
}

/// `VmRSS` and `VmHWM` of `pid`, bytes.
fn rss_hwm(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let kib = |key: &str| -> u64 {
        status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (kib("VmRSS:") * 1024, kib("VmHWM:") * 1024)
}

fn mib(b: u64) -> f64 {
    b as f64 / (1u64 << 20) as f64
}

/// A gRPC request with the bench's bearer token.
fn authed<T>(msg: T, token: &str) -> anyhow::Result<tonic::Request<T>> {
    let mut r = tonic::Request::new(msg);
    r.metadata_mut()
        .insert("authorization", format!("Bearer {token}").parse()?);
    Ok(r)
}

/// Runs the bundled `px/http_request_stats` through pxtop's API at `client`: (requests summed
/// over the output, warnings).
async fn http_request_stats(
    client: &mut pxtop_proto::v1::pxtop_client::PxtopClient<tonic::transport::Channel>,
    token: &str,
) -> anyhow::Result<(u64, Vec<String>)> {
    use pxtop_proto::v1::{ExecuteScriptRequest, execute_script_response::Result as R};
    let req = ExecuteScriptRequest {
        name: "px/http_request_stats".into(),
        ..Default::default()
    };
    let mut stream = client
        .execute_script(authed(req, token)?)
        .await?
        .into_inner();
    let (mut requests, mut warnings) = (0u64, Vec::new());
    while let Some(msg) = stream.message().await? {
        match msg.result {
            Some(R::Batch(b)) => {
                for batch in pxtop_engine::ipc_decode(&b.arrow_ipc)? {
                    if let Some(c) = batch.column_by_name("requests") {
                        let c = arrow::compute::cast(c, &arrow::datatypes::DataType::Int64)?;
                        requests += c
                            .as_primitive::<arrow::datatypes::Int64Type>()
                            .values()
                            .iter()
                            .sum::<i64>() as u64;
                    }
                }
            }
            Some(R::Stats(s)) => warnings = s.warnings,
            _ => {}
        }
    }
    Ok((requests, warnings))
}

/// One in-process PEM: its engine (over a store of fixture rows) served on a loopback port,
/// heartbeating Kelvin.
struct FleetPem {
    engine: Arc<Engine>,
    stop: tokio::sync::oneshot::Sender<()>,
    served: tokio::task::JoinHandle<()>,
    beat: tokio::task::JoinHandle<()>,
}

async fn start_fleet_pem(
    i: usize,
    rows: usize,
    kelvin: &str,
    token: &str,
) -> anyhow::Result<FleetPem> {
    let store = Arc::new(Store::new(StoreConfig::default()));
    // Rows over the last 200 s, inside px/http_request_stats' default `-5m`.
    let now = now_ns();
    let step = 200_000_000_000 / rows.max(1) as i64;
    for b in fixtures::http_events_every(rows, now - 200_000_000_000, step, i as u64 + 1) {
        store.append("http_events", b)?;
    }
    let engine = Arc::new(Engine::new(
        store,
        Arc::new(FixtureServices),
        EngineConfig::default(),
    ));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?.to_string();
    let (stop, rx) = tokio::sync::oneshot::channel();
    let svc =
        pxtop_kelvin::cluster::pem_server(engine.clone(), Arc::new(pxtop_kelvin::NoProbes), token);
    let served = tokio::spawn(async move {
        let _ = tonic::transport::Server::builder()
            .add_service(svc)
            .serve_with_incoming_shutdown(pxtop_kelvin::incoming(listener), async {
                let _ = rx.await;
            })
            .await;
    });
    let beat = tokio::spawn(pxtop_kelvin::cluster::heartbeat_loop(
        kelvin.to_string(),
        token.to_string(),
        None,
        pxtop_kelvin::cluster::PemIdentity {
            name: format!("pem-{i:02}"),
            addr,
            started_ns: now,
        },
    ));
    Ok(FleetPem {
        engine,
        stop,
        served,
        beat,
    })
}

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as i64)
}

/// `fleet`: for each fleet size, a real `pxtopd kelvin` process and that many in-process PEMs
/// (real gRPC on loopback, each with its own store of `rows` fixture `http_events` rows)
/// heartbeating it. Times `px/http_request_stats` through Kelvin, alternating with the same
/// script run directly on one PEM's engine (no Kelvin, no gRPC); reads Kelvin's RSS idle, with
/// the fleet registered, and after the queries.
fn fleet(sizes: &[usize], rows: usize, queries: usize) -> anyhow::Result<()> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let token = "bench-token";
    let pxtopd = sibling("pxtopd")?;
    let mut report = Vec::new();
    for &n in sizes {
        let port = TcpListener::bind("127.0.0.1:0")?.local_addr()?.port();
        let addr = format!("127.0.0.1:{port}");
        let mut kelvin = Command::new(&pxtopd)
            .args(["kelvin", "--listen", &addr])
            .env("PXTOP_TOKEN", token)
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let kpid = kelvin.id();
        let result = rt.block_on(async {
            use pxtop_proto::v1::pxtop_client::PxtopClient;
            let mut client = None;
            for _ in 0..100 {
                if let Ok(c) = PxtopClient::connect(format!("http://{addr}")).await {
                    client = Some(c);
                    break;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            let mut client = client
                .context("pxtopd kelvin did not come up")?
                .max_decoding_message_size(64 << 20);
            // Idle: serving, nothing registered (one query answered with a warning).
            let _ = http_request_stats(&mut client, token).await;
            let idle = rss_hwm(kpid);
            let mut pems = Vec::new();
            for i in 0..n {
                pems.push(start_fleet_pem(i, rows, &addr, token).await?);
            }
            // Until every PEM answers, without warnings.
            let want = (n * rows) as u64;
            let mut whole = false;
            for _ in 0..200 {
                if let Ok((got, w)) = http_request_stats(&mut client, token).await
                    && got == want
                    && w.is_empty()
                {
                    whole = true;
                    break;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            anyhow::ensure!(whole, "{n} PEMs never all answered");
            let registered = rss_hwm(kpid);
            let direct = pems[0].engine.clone();
            let source = direct.script_source("px/http_request_stats")?.to_string();
            let (mut t_direct, mut t_kelvin) = (Vec::new(), Vec::new());
            for q in 0..queries {
                // Alternate which goes first, so drift cancels.
                for k in 0..2 {
                    if (q + k) % 2 == 0 {
                        let t = Instant::now();
                        let compiled = direct.compile(&source, &Default::default())?;
                        let out = direct.execute(compiled).await?;
                        t_direct.push(t.elapsed().as_secs_f64() * 1e3);
                        anyhow::ensure!(!out.is_empty());
                    } else {
                        let t = Instant::now();
                        let (got, w) = http_request_stats(&mut client, token).await?;
                        t_kelvin.push(t.elapsed().as_secs_f64() * 1e3);
                        anyhow::ensure!(got == want && w.is_empty(), "{got} of {want}: {w:?}");
                    }
                }
            }
            let after = rss_hwm(kpid);
            for p in pems {
                p.beat.abort();
                let _ = p.stop.send(());
                let _ = p.served.await;
            }
            Ok::<_, anyhow::Error>((idle, registered, after, t_direct, t_kelvin))
        });
        let _ = Command::new("kill").arg(kpid.to_string()).status();
        let _ = kelvin.wait();
        let (idle, registered, after, mut td, mut tk) = result?;
        let (md, mk) = (median(&mut td), median(&mut tk));
        eprintln!(
            "{n} PEMs: direct {md:.2} ms, through Kelvin {mk:.2} ms; Kelvin RSS idle {:.1} MiB, \
             registered {:.1} MiB, after queries {:.1} MiB (peak {:.1} MiB)",
            mib(idle.0),
            mib(registered.0),
            mib(after.0),
            mib(after.1)
        );
        report.push((n, md, mk, idle, registered, after));
    }
    println!(
        "px/http_request_stats, {rows} http_events rows per PEM, median of {queries} queries each \
         way, alternating; PEMs in this process, Kelvin a `pxtopd kelvin` process:"
    );
    println!(
        "| PEMs | direct, one PEM's engine | through Kelvin | added by Kelvin | Kelvin RSS idle | \
         registered | after queries | Kelvin peak (VmHWM) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for (n, md, mk, idle, reg, after) in report {
        println!(
            "| {n} | {md:.2} ms | {mk:.2} ms | {:+.2} ms | {:.1} MiB | {:.1} MiB | {:.1} MiB | \
             {:.1} MiB |",
            mk - md,
            mib(idle.0),
            mib(reg.0),
            mib(after.0),
            mib(after.1)
        );
    }
    Ok(())
}

/// Table bytes and budgets summed, from pxtopd's `ListTables`.
fn table_bytes(px: &Pxtopd) -> anyhow::Result<(u64, u64, u64)> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    rt.block_on(async {
        use pxtop_proto::v1::{ListTablesRequest, pxtop_client::PxtopClient};
        let mut client = PxtopClient::connect(format!("http://{}", px.addr)).await?;
        let tables = client
            .list_tables(authed(ListTablesRequest {}, &px.token)?)
            .await?
            .into_inner()
            .tables;
        Ok((
            tables.iter().map(|t| t.bytes).sum(),
            tables.iter().map(|t| t.budget_bytes).sum(),
            tables.iter().map(|t| t.dropped_rows).sum(),
        ))
    })
}

/// `pem-memory`: pxtopd (capturing, all-in-one) with `--node-budget BUDGET_MIB` MiB under wrk →
/// nginx for `seconds`, its RSS sampled every second, the tables' bytes every 10 s.
fn pem_memory(budget_mib: u64, seconds: u64) -> anyhow::Result<()> {
    let nginx = Nginx::start()?;
    let budget = format!("{budget_mib}MiB");
    let px = start_pxtopd_with(&["--node-budget", &budget])?;
    let pid = px.child.id();
    let start = rss_hwm(pid).0;
    let url = format!("http://127.0.0.1:{}/status/200", nginx.port);
    let wrk = std::thread::spawn(move || run_wrk_url(&url, seconds));
    let t0 = Instant::now();
    let mut samples = Vec::new();
    let mut last_tables = (0, 0, 0);
    while t0.elapsed() < Duration::from_secs(seconds) {
        std::thread::sleep(Duration::from_secs(1));
        let (rss, _) = rss_hwm(pid);
        samples.push(rss);
        let s = samples.len();
        if s % 10 == 0 {
            last_tables = table_bytes(&px)?;
            eprintln!(
                "{s:>4} s: RSS {:.1} MiB, tables {:.1} MiB of {:.1} MiB budget, {} rows dropped",
                mib(rss),
                mib(last_tables.0),
                mib(last_tables.1),
                last_tables.2
            );
        }
    }
    let (rps, sent) = wrk.join().map_err(|_| anyhow::anyhow!("wrk thread"))??;
    let captured = px.count_rows(nginx.port)?;
    let (end_rss, hwm) = rss_hwm(pid);
    let tables = table_bytes(&px)?;
    px.stop();
    let max = samples.iter().copied().max().unwrap_or(0);
    let half = samples.len() / 2;
    let mut second_half: Vec<f64> = samples[half..].iter().map(|b| mib(*b)).collect();
    println!(
        "pxtopd --node-budget {budget} under wrk -t2 -c32 -> nginx for {seconds} s \
         ({rps:.0} req/s, {sent} sent, {captured} rows still held for nginx's port):"
    );
    println!(
        "  RSS at start (probes attached, idle)   {:.1} MiB",
        mib(start)
    );
    println!(
        "  RSS median over the second half        {:.1} MiB",
        median(&mut second_half)
    );
    println!(
        "  RSS max of 1 s samples                 {:.1} MiB",
        mib(max)
    );
    println!(
        "  VmHWM (peak) at the end                {:.1} MiB",
        mib(hwm)
    );
    println!(
        "  RSS at the end                         {:.1} MiB",
        mib(end_rss)
    );
    println!(
        "  tables at the end: {:.1} MiB held of {:.1} MiB budgets, {} rows dropped \
         (last 10 s sample: {:.1} MiB)",
        mib(tables.0),
        mib(tables.1),
        tables.2,
        mib(last_tables.0)
    );
    println!(
        "  peak - budget (the overhead)           {:+.1} MiB",
        mib(hwm) - budget_mib as f64
    );
    Ok(())
}
