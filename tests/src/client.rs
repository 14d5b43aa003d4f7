//! A raw-socket HTTP/1.1 client whose every byte is known: keep-alive and pipelined runs,
//! each request timed from just before its bytes are written to just after its response is
//! read (the bound a captured latency must stay within).
//!
//! Written by hand on purpose: the test must control exactly when bytes hit the socket
//! (pipelining, connection reuse), which HTTP client crates hide.

use std::{
    io::{BufRead, BufReader, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use anyhow::{Context, bail};

/// One request to send.
#[derive(Debug, Clone)]
pub struct Request {
    /// GET, POST, ...
    pub method: String,
    /// Path with query.
    pub path: String,
    /// Extra headers.
    pub headers: Vec<(String, String)>,
    /// Body (sent with Content-Length when non-empty or the method is POST/PUT).
    pub body: Vec<u8>,
}

impl Request {
    /// A request without a body.
    pub fn new(method: &str, path: impl Into<String>) -> Self {
        Self {
            method: method.to_string(),
            path: path.into(),
            headers: Vec::new(),
            body: Vec::new(),
        }
    }

    /// With a body.
    pub fn body(mut self, body: Vec<u8>) -> Self {
        self.body = body;
        self
    }

    /// With a header.
    pub fn header(mut self, k: &str, v: &str) -> Self {
        self.headers.push((k.to_string(), v.to_string()));
        self
    }

    fn bytes(&self, port: u16) -> Vec<u8> {
        let mut out = format!(
            "{} {} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n",
            self.method, self.path
        );
        for (k, v) in &self.headers {
            out.push_str(&format!("{k}: {v}\r\n"));
        }
        if !self.body.is_empty() || matches!(self.method.as_str(), "POST" | "PUT") {
            out.push_str(&format!("Content-Length: {}\r\n", self.body.len()));
        }
        out.push_str("\r\n");
        let mut bytes = out.into_bytes();
        bytes.extend_from_slice(&self.body);
        bytes
    }
}

/// What was sent and what came back.
#[derive(Debug, Clone)]
pub struct Exchange {
    /// The request's method.
    pub method: String,
    /// The request's path.
    pub path: String,
    /// Request body bytes.
    pub req_body_size: usize,
    /// The response status.
    pub status: u16,
    /// Response body bytes (decoded size for chunked).
    pub resp_body_size: usize,
    /// Wall time from before the request's first byte was written to after its response's
    /// last byte was read.
    pub elapsed: Duration,
}

/// Sends `reqs` one after another on one keep-alive connection.
pub fn keep_alive(port: u16, reqs: &[Request]) -> anyhow::Result<Vec<Exchange>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the server")?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut out = Vec::new();
    for r in reqs {
        let t0 = Instant::now();
        writer.write_all(&r.bytes(port))?;
        let (status, size) = read_response(&mut reader, r.method == "HEAD")?;
        out.push(exchange(r, status, size, t0.elapsed()));
    }
    Ok(out)
}

/// Writes all of `reqs` back to back on one connection, then reads the responses.
pub fn pipelined(port: u16, reqs: &[Request]) -> anyhow::Result<Vec<Exchange>> {
    let stream = TcpStream::connect(("127.0.0.1", port)).context("connecting to the server")?;
    stream.set_read_timeout(Some(Duration::from_secs(20)))?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut all = Vec::new();
    for r in reqs {
        all.extend_from_slice(&r.bytes(port));
    }
    let t0 = Instant::now();
    writer.write_all(&all)?;
    let mut out = Vec::new();
    for r in reqs {
        let (status, size) = read_response(&mut reader, r.method == "HEAD")?;
        out.push(exchange(r, status, size, t0.elapsed()));
    }
    Ok(out)
}

fn exchange(r: &Request, status: u16, resp_body_size: usize, elapsed: Duration) -> Exchange {
    Exchange {
        method: r.method.clone(),
        path: r.path.clone(),
        req_body_size: r.body.len(),
        status,
        resp_body_size,
        elapsed,
    }
}

fn read_line(r: &mut impl BufRead) -> anyhow::Result<String> {
    let mut line = String::new();
    if r.read_line(&mut line)? == 0 {
        bail!("connection closed mid-response");
    }
    Ok(line.trim_end().to_string())
}

/// Reads one response; returns its status and decoded body size.
fn read_response(r: &mut impl BufRead, head: bool) -> anyhow::Result<(u16, usize)> {
    loop {
        let status_line = read_line(r)?;
        let status: u16 = status_line
            .split_whitespace()
            .nth(1)
            .and_then(|s| s.parse().ok())
            .with_context(|| format!("bad status line {status_line:?}"))?;
        let mut length = None;
        let mut chunked = false;
        loop {
            let line = read_line(r)?;
            if line.is_empty() {
                break;
            }
            let (k, v) = line.split_once(':').unwrap_or((&line, ""));
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse::<usize>().ok();
            } else if k.eq_ignore_ascii_case("transfer-encoding")
                && v.to_ascii_lowercase().contains("chunked")
            {
                chunked = true;
            }
        }
        if (100..200).contains(&status) {
            continue;
        }
        if head || status == 204 || status == 304 {
            return Ok((status, 0));
        }
        if chunked {
            let mut total = 0;
            loop {
                let size_line = read_line(r)?;
                let size =
                    usize::from_str_radix(size_line.split(';').next().unwrap_or("").trim(), 16)
                        .with_context(|| format!("bad chunk size {size_line:?}"))?;
                if size == 0 {
                    while !read_line(r)?.is_empty() {}
                    return Ok((status, total));
                }
                let mut buf = vec![0u8; size];
                r.read_exact(&mut buf)?;
                total += size;
                read_line(r)?;
            }
        }
        let n = length.context("response without length")?;
        let mut buf = vec![0u8; n];
        r.read_exact(&mut buf)?;
        return Ok((status, n));
    }
}
