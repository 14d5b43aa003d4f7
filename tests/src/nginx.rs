//! nginx from Debian on a loopback port, with a config written by the test.

use std::{
    net::TcpStream,
    path::{Path, PathBuf},
    process::{Child, Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// Static files the config serves under `/files/`, by size in bytes.
pub const FILE_SIZES: &[usize] = &[0, 1, 1024, 16 * 1024, 100_000, 1 << 20];

/// A running nginx; stopped on drop.
pub struct Nginx {
    /// The port it listens on (127.0.0.1), HTTP/1.x in clear text.
    pub port: u16,
    /// The same locations over TLS (a self-signed certificate for `localhost`), HTTP/1.1 or
    /// HTTP/2 by ALPN.
    pub tls_port: u16,
    /// The same locations over HTTP/2 in clear text (prior knowledge, h2c).
    pub h2c_port: u16,
    dir: PathBuf,
    child: Child,
}

impl Nginx {
    /// Writes a config and files into a fresh directory and starts nginx in the foreground.
    ///
    /// Locations: `/status/CODE` answers CODE with a small body (`return`), `/redirect` 301,
    /// `/files/NAME` static files with sendfile (the body never passes through user memory,
    /// so the capture sees a gap of its true size), `/copy/NAME` the same files written from
    /// user memory, `/gzip/NAME` gzipped on the fly (chunked transfer encoding).
    pub fn start() -> anyhow::Result<Self> {
        let bin = ["/usr/sbin/nginx", "/usr/bin/nginx"]
            .into_iter()
            .find(|p| Path::new(p).exists())
            .context("nginx is not installed: run tools/setup-debian.sh")?;
        let dir = std::env::temp_dir().join(format!("pxtop-nginx-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("files"))?;
        std::fs::create_dir_all(dir.join("logs"))?;
        for &size in FILE_SIZES {
            let body: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
            std::fs::write(dir.join("files").join(format!("{size}.txt")), body)?;
        }
        let port = free_port()?;
        let tls_port = free_port()?;
        let h2c_port = free_port()?;
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        let out = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost", "-keyout"])
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .stdin(Stdio::null())
            .output()
            .context("openssl is not installed: run tools/setup-debian.sh")?;
        if !out.status.success() {
            bail!(
                "openssl req failed: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let locations = format!(
            r#"
        location /files/ {{ alias {dir}/files/; sendfile on; }}
        location /copy/ {{ alias {dir}/files/; sendfile off; }}
        location /gzip/ {{ alias {dir}/files/; sendfile off; gzip on; gzip_types text/plain; gzip_min_length 0; }}
        location = /redirect {{ return 301 /status/200; }}
        location ~ ^/status/200 {{ return 200 "ok\n"; }}
        location ~ ^/status/201 {{ return 201 "created\n"; }}
        location ~ ^/status/204 {{ return 204; }}
        location ~ ^/status/404 {{ return 404 "not found\n"; }}
        location ~ ^/status/500 {{ return 500 "boom\n"; }}"#,
            dir = dir.display()
        );
        let conf = format!(
            r#"
daemon off;
master_process off;
worker_processes 1;
error_log {dir}/logs/error.log warn;
pid {dir}/nginx.pid;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {dir}/body;
    proxy_temp_path {dir}/proxy;
    fastcgi_temp_path {dir}/fastcgi;
    uwsgi_temp_path {dir}/uwsgi;
    scgi_temp_path {dir}/scgi;
    client_max_body_size 4m;
    keepalive_requests 100000;
    default_type text/plain;
    server {{
        listen 127.0.0.1:{port};{locations}
    }}
    server {{
        # NB: Debian's nginx 1.22 takes http2 on the listen line (`http2 on;` is 1.25+).
        listen 127.0.0.1:{tls_port} ssl http2;
        ssl_certificate {cert};
        ssl_certificate_key {key};{locations}
    }}
    server {{
        listen 127.0.0.1:{h2c_port} http2;{locations}
    }}
}}
"#,
            dir = dir.display(),
            cert = cert.display(),
            key = key.display(),
        );
        let conf_path = dir.join("nginx.conf");
        std::fs::write(&conf_path, conf)?;
        let child = Command::new(bin)
            .arg("-c")
            .arg(&conf_path)
            .arg("-p")
            .arg(&dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {bin}"))?;
        let mut nginx = Nginx {
            port,
            tls_port,
            h2c_port,
            dir,
            child,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        while [port, tls_port, h2c_port]
            .iter()
            .any(|p| TcpStream::connect(("127.0.0.1", *p)).is_err())
        {
            if let Some(status) = nginx.child.try_wait()? {
                let log =
                    std::fs::read_to_string(nginx.dir.join("logs/error.log")).unwrap_or_default();
                bail!("nginx exited with {status}: {log}");
            }
            if Instant::now() > deadline {
                bail!("nginx did not listen on 127.0.0.1:{port} within 10 s");
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(nginx)
    }

    /// nginx's process id (the one that serves: master_process is off).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A port nothing listens on now (127.0.0.1).
pub(crate) fn free_port() -> anyhow::Result<u16> {
    let l = std::net::TcpListener::bind("127.0.0.1:0")?;
    Ok(l.local_addr()?.port())
}
