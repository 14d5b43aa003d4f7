//! MariaDB from Debian: a throwaway datadir (`mariadb-install-db`, root without a password) in
//! a temporary directory, the server on a loopback port with its socket in that directory, run
//! as root with `--no-defaults` so the system instance and its config are never touched.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A running mariadbd; stopped on drop.
pub struct Mariadb {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

impl Mariadb {
    /// Creates a datadir and starts the server in the foreground; waits until it accepts.
    pub fn start() -> anyhow::Result<Self> {
        let bin = ["/usr/sbin/mariadbd", "/usr/bin/mariadbd"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.exists())
            .context("mariadbd is not installed: run tools/setup-debian.sh")?;
        let dir = std::env::temp_dir().join(format!("pxtop-mariadb-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let data = dir.join("data");
        let init = Command::new("mariadb-install-db")
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .args([
                "--user=root",
                "--auth-root-authentication-method=normal",
                "--skip-test-db",
            ])
            .stdout(Stdio::null())
            .output()
            .context("running mariadb-install-db (tools/setup-debian.sh installs it)")?;
        if !init.status.success() {
            bail!(
                "mariadb-install-db failed: {}",
                String::from_utf8_lossy(&init.stderr)
            );
        }
        let port = crate::nginx::free_port()?;
        // NB: --no-defaults must come first; no binary log, no fsync per commit, a small pool.
        let child = Command::new(bin)
            .arg("--no-defaults")
            .arg(format!("--datadir={}", data.display()))
            .arg(format!("--socket={}", dir.join("sock").display()))
            .arg(format!("--pid-file={}", dir.join("pid").display()))
            .arg(format!("--log-error={}", dir.join("error.log").display()))
            .arg(format!("--port={port}"))
            .args([
                "--bind-address=127.0.0.1",
                "--user=root",
                "--skip-log-bin",
                "--innodb-flush-log-at-trx-commit=0",
                "--innodb-buffer-pool-size=32M",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting mariadbd")?;
        let mut db = Self { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = db.child.try_wait()? {
                let log = std::fs::read_to_string(db.dir.join("error.log")).unwrap_or_default();
                bail!("mariadbd exited at start: {status}\n{log}");
            }
            if Instant::now() > deadline {
                bail!("mariadbd did not listen on {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(db)
    }

    /// The `mariadb` client as root over TCP (no TLS), statements fed on stdin, `--force` so
    /// an error does not stop the rest; its exit status, stdout and stderr.
    pub fn client(&self, sql: &str) -> anyhow::Result<std::process::Output> {
        use std::io::Write as _;
        let mut child = Command::new("mariadb")
            .args([
                "--no-defaults",
                "-h",
                "127.0.0.1",
                "-P",
                &self.port.to_string(),
            ])
            .args(["-u", "root", "--skip-ssl", "--force", "--batch"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .context("mariadb (the client) is installed by tools/setup-debian.sh")?;
        child
            .stdin
            .take()
            .context("stdin")?
            .write_all(sql.as_bytes())?;
        Ok(child.wait_with_output()?)
    }
}

impl Drop for Mariadb {
    fn drop(&mut self) {
        // SIGTERM: a normal shutdown.
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
