//! PostgreSQL from Debian: a throwaway cluster (trust auth, no fsync) in a temporary directory,
//! on a loopback port, run as the `postgres` user.

use std::{
    net::TcpStream,
    path::PathBuf,
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// A running postgres; stopped on drop.
pub struct Postgres {
    /// The port it listens on (127.0.0.1).
    pub port: u16,
    dir: PathBuf,
    child: Child,
}

/// The newest installed server's bin directory (`/usr/lib/postgresql/N/bin`).
fn bin_dir() -> anyhow::Result<PathBuf> {
    let mut versions: Vec<u32> = std::fs::read_dir("/usr/lib/postgresql")
        .context("postgresql is not installed: run tools/setup-debian.sh")?
        .filter_map(|e| e.ok()?.file_name().to_str()?.parse().ok())
        .collect();
    versions.sort_unstable();
    let v = versions
        .last()
        .context("no server under /usr/lib/postgresql: run tools/setup-debian.sh")?;
    Ok(PathBuf::from(format!("/usr/lib/postgresql/{v}/bin")))
}

impl Postgres {
    /// Creates a cluster and starts the server in the foreground; waits until it accepts.
    pub fn start() -> anyhow::Result<Self> {
        let bin = bin_dir()?;
        let dir = std::env::temp_dir().join(format!("pxtop-pg-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        let chown = Command::new("chown")
            .args(["-R", "postgres:postgres"])
            .arg(&dir)
            .status()?;
        if !chown.success() {
            bail!("chown {} to postgres failed", dir.display());
        }
        let data = dir.join("data");
        let init = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("initdb"))
            .args(["--auth=trust", "--no-sync", "-U", "postgres", "-D"])
            .arg(&data)
            .stdout(Stdio::null())
            .output()
            .context("running initdb as postgres")?;
        if !init.status.success() {
            bail!("initdb failed: {}", String::from_utf8_lossy(&init.stderr));
        }
        let port = crate::nginx::free_port()?;
        let child = Command::new("runuser")
            .args(["-u", "postgres", "--"])
            .arg(bin.join("postgres"))
            .arg("-D")
            .arg(&data)
            .args(["-p", &port.to_string(), "-k"])
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1", "-c", "fsync=off"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .context("starting postgres")?;
        let mut pg = Self { port, dir, child };
        let deadline = Instant::now() + Duration::from_secs(30);
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            if let Some(status) = pg.child.try_wait()? {
                bail!("postgres exited at start: {status}");
            }
            if Instant::now() > deadline {
                bail!("postgres did not listen on {port} within 30 s");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        Ok(pg)
    }

    /// `psql` as the postgres user over TCP, one `-c` per statement; its stdout.
    pub fn psql(&self, statements: &[&str]) -> anyhow::Result<String> {
        let mut cmd = Command::new("psql");
        cmd.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            "postgres",
        ])
        .args(["-X", "-q", "-A", "-t"]);
        for s in statements {
            cmd.args(["-c", s]);
        }
        let out = cmd
            .output()
            .context("psql is installed by tools/setup-debian.sh")?;
        Ok(String::from_utf8_lossy(&out.stdout).into_owned())
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT: fast shutdown (the runuser child passes it on).
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
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
