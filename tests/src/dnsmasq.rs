//! dnsmasq from Debian as an authoritative-only DNS server on a loopback port (UDP and TCP),
//! no upstream, no /etc/hosts, no config file, with fixed records:
//! - `www.e2e.test`: A 10.1.2.3, AAAA fd00::1;
//! - `alias.e2e.test`: CNAME www.e2e.test;
//! - `e2e.test`: MX 10 mail.e2e.test;
//! - any other name under `e2e.test`: NXDOMAIN (local-only domain);
//! - any name under `pxtop.test`: A 10.9.8.7 (for bursts of unique names).

use std::{
    net::UdpSocket,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A running dnsmasq; stopped on drop.
pub struct Dnsmasq {
    /// The port it answers on (127.0.0.1, UDP and TCP).
    pub port: u16,
    child: Child,
}

/// The address every `*.pxtop.test` name resolves to.
pub const BURST_ADDR: &str = "10.9.8.7";

impl Dnsmasq {
    /// Starts dnsmasq in the foreground and waits until it answers a query.
    pub fn start() -> anyhow::Result<Self> {
        let bin = ["/usr/sbin/dnsmasq", "/usr/bin/dnsmasq"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .context("dnsmasq is not installed: run tools/setup-debian.sh")?;
        // NB: a free TCP port; dnsmasq binds the same number for UDP, checked below.
        let port = crate::nginx::free_port()?;
        let child = Command::new(bin)
            .args([
                "--no-daemon",
                "--conf-file=/dev/null",
                "--no-resolv",
                "--no-hosts",
            ])
            .args([
                "--pid-file=",
                "--listen-address=127.0.0.1",
                "--bind-interfaces",
            ])
            .arg(format!("--port={port}"))
            .arg(format!("--address=/pxtop.test/{BURST_ADDR}"))
            .args([
                "--host-record=www.e2e.test,10.1.2.3,fd00::1",
                "--cname=alias.e2e.test,www.e2e.test",
                "--mx-host=e2e.test,mail.e2e.test,10",
                "--local=/e2e.test/",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting dnsmasq")?;
        let mut d = Self { port, child };
        let deadline = Instant::now() + Duration::from_secs(10);
        while !d.answers() {
            if let Some(status) = d.child.try_wait()? {
                bail!("dnsmasq exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("dnsmasq did not answer on {port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(d)
    }

    /// Whether a UDP query for `ready.pxtop.test` gets an answer.
    fn answers(&self) -> bool {
        let Ok(sock) = UdpSocket::bind("127.0.0.1:0") else {
            return false;
        };
        let _ = sock.set_read_timeout(Some(Duration::from_millis(200)));
        let query = crate::dnsmasq::query(0x5eed, "ready.pxtop.test", 1);
        if sock.send_to(&query, ("127.0.0.1", self.port)).is_err() {
            return false;
        }
        let mut buf = [0u8; 512];
        matches!(sock.recv_from(&mut buf), Ok((n, _)) if n >= 12 && buf[..2] == [0x5e, 0xed])
    }

    /// `dig @127.0.0.1 -p PORT` with `args` (e.g. `["+tcp", "www.e2e.test", "AAAA"]`); stdout.
    pub fn dig(&self, args: &[&str]) -> anyhow::Result<String> {
        let out = Command::new("dig")
            .args(["@127.0.0.1", "-p", &self.port.to_string()])
            .args(["+tries=1", "+time=5"])
            .args(args)
            .output()
            .context("dig is installed by tools/setup-debian.sh (dnsutils)")?;
        if !out.status.success() {
            bail!(
                "dig {args:?} failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

/// A DNS query message: id `txid`, recursion desired, one question `name` of type `qtype`
/// (1 A, 28 AAAA, 5 CNAME, 15 MX), class IN.
pub fn query(txid: u16, name: &str, qtype: u16) -> Vec<u8> {
    let mut m = Vec::with_capacity(12 + name.len() + 6);
    m.extend_from_slice(&txid.to_be_bytes());
    m.extend_from_slice(&[0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.').filter(|l| !l.is_empty()) {
        m.push(u8::try_from(label.len()).unwrap_or(63).min(63));
        m.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    m.push(0);
    m.extend_from_slice(&qtype.to_be_bytes());
    m.extend_from_slice(&1u16.to_be_bytes());
    m
}

impl Drop for Dnsmasq {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
