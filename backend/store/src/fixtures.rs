//! Deterministic, realistic `http_events` rows for tests and benchmarks (feature `fixtures`):
//! four services (upids of pids 1001..=1004), a dozen endpoints, mostly 2xx with some 3xx, 4xx
//! and 5xx, and a long-tailed latency, one row per millisecond from `start_ns`.

use arrow::array::RecordBatch;

use crate::{
    rows::{HttpEvent, HttpEventsBuilder},
    schema::{content_type, format_upid, trace_role},
};

/// Rows per batch, as the store seals them.
const BATCH_ROWS: usize = 8192;

const PATHS: &[(&str, &str)] = &[
    ("GET", "/api/users"),
    ("GET", "/api/users/42"),
    ("POST", "/api/users"),
    ("GET", "/api/orders"),
    ("PUT", "/api/orders/7"),
    ("DELETE", "/api/orders/7"),
    ("GET", "/healthz"),
    ("GET", "/static/app.js"),
    ("GET", "/search?q=rust"),
    ("POST", "/checkout"),
    ("GET", "/cart"),
    ("PATCH", "/api/users/42"),
];

/// A xorshift64* generator: deterministic, no dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

/// The upid fixtures use for service `i` (0..4).
pub fn upid(i: u32) -> String {
    format_upid(1, 1001 + i, 5000 + u64::from(i))
}

/// `n` rows, one per millisecond from `start_ns`, in batches of up to 8192 rows.
pub fn http_events(n: usize, start_ns: i64, seed: u64) -> Vec<RecordBatch> {
    let mut rng = Rng(seed | 1);
    let upids: Vec<String> = (0..4).map(upid).collect();
    let mut out = Vec::with_capacity(n / BATCH_ROWS + 1);
    let mut b = HttpEventsBuilder::with_capacity(BATCH_ROWS.min(n));
    for i in 0..n {
        let r = rng.next();
        let (method, path) = PATHS[(r % PATHS.len() as u64) as usize];
        let status = match (r >> 8) % 100 {
            0..=79 => 200,
            80..=84 => 201,
            85..=87 => 204,
            88..=89 => 301,
            90..=95 => 404,
            _ => 500,
        };
        // Long tail: most requests take ~1 ms, a few 10-100x longer.
        let base = 200_000 + ((r >> 16) % 1_800_000) as i64;
        let latency = if (r >> 40).is_multiple_of(50) {
            base * 40
        } else {
            base
        };
        let body_size = if method == "POST" || method == "PUT" {
            ((r >> 24) % 2048) as i64
        } else {
            0
        };
        let resp_size = if status == 204 {
            0
        } else {
            ((r >> 32) % 8192) as i64
        };
        b.append(&HttpEvent {
            time_ns: start_ns + i as i64 * 1_000_000,
            upid: upids[((r >> 48) % 4) as usize].as_str().into(),
            remote_addr: format!("10.0.0.{}", (r >> 52) % 32 + 1).into(),
            remote_port: 30_000 + ((r >> 20) % 20_000) as i64,
            local_addr: "10.0.1.1".into(),
            local_port: 8080,
            trace_role: trace_role::SERVER,
            encrypted: false,
            major_version: 1,
            minor_version: 1,
            content_type: content_type::JSON,
            req_headers: r#"{"Host":"shop","User-Agent":"curl/8.0"}"#.into(),
            req_method: method.into(),
            req_path: path.into(),
            req_body: if body_size > 0 {
                r#"{"name":"ada"}"#.into()
            } else {
                "".into()
            },
            req_body_size: body_size,
            resp_headers: r#"{"Content-Type":"application/json"}"#.into(),
            resp_status: status,
            resp_message: match status {
                200 => "OK",
                201 => "Created",
                204 => "No Content",
                301 => "Moved Permanently",
                404 => "Not Found",
                _ => "Internal Server Error",
            }
            .into(),
            resp_body: if resp_size > 0 {
                r#"{"ok":true}"#.into()
            } else {
                "".into()
            },
            resp_body_size: resp_size,
            latency,
            px_info: "".into(),
        });
        if b.len() == BATCH_ROWS {
            out.push(b.finish());
        }
    }
    if !b.is_empty() {
        out.push(b.finish());
    }
    out
}
