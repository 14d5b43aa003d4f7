//! Redis (RESP2 and RESP3): commands stitched to their replies in order (pipelining), with
//! pub/sub pushes told apart from replies.
//!
//! The RESP scanner is written here rather than taken from `redis-protocol`: that crate decodes
//! complete frames into owned frame trees, while the agent needs to render straight into row
//! text with caps on depth, element count and text size, and to resynchronise after the gaps
//! and mid-stream joins of captured traffic. RESP's grammar is small (a type byte, a line, and
//! for bulk types a length-prefixed payload), so the scanner is too.
//!
//! Rendering, after Pixie's `redis_events`: `req_cmd` is the upper-cased command, two words for
//! container commands (`CONFIG GET`, `CLIENT SETNAME`); `req_args` the remaining words as a JSON
//! array of strings; `resp` a simple string or integer as is, an error with its `-` (`-ERR
//! ...`), a bulk string's text, `<NULL>` for nulls, aggregates as JSON arrays (maps as JSON
//! objects). Pub/sub messages (RESP2 `message`/`pmessage`/`smessage` arrays, RESP3 `>` pushes,
//! and subscribe confirmations beyond the first) are counted in [`Stats::pushes`] and produce no
//! record.
//!
//! After a gap or garbage, a direction drops its buffer and waits for a chunk that parses from
//! its first byte to its last (replies and commands nearly always arrive in whole syscalls); a
//! gap on the reply side also drops the pending commands, whose replies are gone.

use std::collections::VecDeque;

use crate::Chunk;

/// Bounds on what one connection may hold and render.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes buffered per direction waiting for a frame to complete; beyond, the frame is
    /// dropped (counted) and the direction resynchronises.
    pub max_buffer: usize,
    /// Characters of rendered text per field; longer text is cut with `...`.
    pub max_text: usize,
    /// Aggregate nesting depth at most; deeper is a parse error.
    pub max_depth: usize,
    /// Commands waiting for a reply, at most; older ones are dropped and counted.
    pub max_pending: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_buffer: 1 << 20,
            max_text: 1024,
            max_depth: 16,
            max_pending: 1024,
        }
    }
}

/// Aggregates longer than this render their first elements and a count of the rest.
const MAX_RENDERED_ELEMENTS: usize = 64;
/// Redis's own cap on a bulk string (512 MB); a larger length field is garbage.
const MAX_BULK: i64 = 512 << 20;
/// Longest line (type byte + text) accepted before the bytes are called garbage.
const MAX_LINE: usize = 64 * 1024;

/// A command and its reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// The command, upper-cased (`req_cmd`).
    pub cmd: String,
    /// The remaining words as a JSON array of strings (`req_args`).
    pub args: String,
    /// The reply, rendered (`resp`).
    pub resp: String,
    /// When the command's first byte moved (ns).
    pub start_ts: u64,
    /// When the reply's last byte moved (ns).
    pub end_ts: u64,
    /// What went wrong around it, if anything.
    pub notes: Vec<String>,
}

impl Record {
    /// From the command's first byte to the reply's last, in ns.
    pub fn latency_ns(&self) -> u64 {
        self.end_ts.saturating_sub(self.start_ts)
    }
}

/// Parser counters of one connection.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Commands parsed.
    pub requests: u64,
    /// Replies parsed (pushes not included).
    pub responses: u64,
    /// Records emitted.
    pub records: u64,
    /// Frames that did not parse, or did not fit the limits.
    pub parse_errors: u64,
    /// Times a direction dropped its bytes to resynchronise (gaps included).
    pub resyncs: u64,
    /// Replies with no command to match, and commands dropped unanswered.
    pub unmatched: u64,
    /// Pub/sub messages and other pushes.
    pub pushes: u64,
}

#[derive(Debug, Default)]
struct Dir {
    buf: Vec<u8>,
    /// When the first buffered byte moved.
    start_ts: u64,
    /// Waiting for a chunk that parses whole.
    broken: bool,
}

#[derive(Debug)]
struct Pending {
    cmd: String,
    args: String,
    start_ts: u64,
}

/// One connection's Redis state.
#[derive(Debug)]
pub struct Conn {
    limits: Limits,
    req: Dir,
    resp: Dir,
    pending: VecDeque<Pending>,
    out: Vec<Record>,
    stats: Stats,
}

/// A scanned value: its rendering and, for requests, its words.
struct Scanned {
    text: String,
    /// The top-level array's bulk strings (or an inline command's words).
    words: Vec<Vec<u8>>,
    /// The first element of a top-level aggregate, lower-cased, if a string.
    head: Option<String>,
    push: bool,
    /// Whether to render text (replies); commands need only their words.
    render: bool,
}

enum Scan {
    Done(Scanned, usize),
    Incomplete,
    Garbage,
}

impl Conn {
    /// A connection with `limits`.
    pub fn new(limits: Limits) -> Self {
        Self {
            limits,
            req: Dir::default(),
            resp: Dir::default(),
            pending: VecDeque::new(),
            out: Vec::new(),
            stats: Stats::default(),
        }
    }

    /// Bytes the client sent.
    pub fn push_requests(&mut self, chunk: Chunk<'_>) {
        self.push(chunk, true);
    }

    /// Bytes the server sent.
    pub fn push_responses(&mut self, chunk: Chunk<'_>) {
        self.push(chunk, false);
    }

    /// Moves the finished records to `out`.
    pub fn drain(&mut self, out: &mut Vec<Record>) {
        out.append(&mut self.out);
    }

    /// The connection closed: commands still waiting are counted as unanswered.
    pub fn close(&mut self) {
        self.stats.unmatched += self.pending.len() as u64;
        self.pending.clear();
        self.req = Dir::default();
        self.resp = Dir::default();
    }

    /// Counters so far.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Bytes held waiting for frames to complete.
    pub fn buffered_bytes(&self) -> usize {
        self.req.buf.len() + self.resp.buf.len()
    }

    fn push(&mut self, chunk: Chunk<'_>, requests: bool) {
        match chunk {
            Chunk::Gap { .. } => {
                self.stats.resyncs += 1;
                let dir = if requests {
                    &mut self.req
                } else {
                    &mut self.resp
                };
                dir.buf.clear();
                dir.broken = true;
                if !requests {
                    // Their replies are (partly) gone: nothing after can be matched to them.
                    self.stats.unmatched += self.pending.len() as u64;
                    self.pending.clear();
                }
            }
            Chunk::Data {
                bytes,
                first_ts,
                last_ts,
            } => {
                let dir = if requests {
                    &mut self.req
                } else {
                    &mut self.resp
                };
                if dir.broken {
                    // Only a chunk that parses whole puts the direction back in step.
                    if !whole(bytes, requests, &self.limits) {
                        self.stats.resyncs += 1;
                        return;
                    }
                    dir.broken = false;
                }
                if dir.buf.is_empty() {
                    dir.start_ts = first_ts;
                }
                dir.buf.extend_from_slice(bytes);
                self.parse(requests, first_ts, last_ts);
            }
        }
    }

    fn parse(&mut self, requests: bool, first_ts: u64, last_ts: u64) {
        let mut at = 0;
        loop {
            let dir = if requests { &self.req } else { &self.resp };
            if at >= dir.buf.len() {
                break;
            }
            let start_ts = if at == 0 { dir.start_ts } else { first_ts };
            match scan_top(&dir.buf[at..], requests, &self.limits) {
                Scan::Done(v, used) => {
                    at += used;
                    if requests {
                        self.on_request(v, start_ts);
                    } else {
                        self.on_response(v, last_ts);
                    }
                }
                Scan::Incomplete => {
                    if dir.buf.len() - at > self.limits.max_buffer {
                        self.stats.parse_errors += 1;
                        self.break_dir(requests);
                        return;
                    }
                    break;
                }
                Scan::Garbage => {
                    self.stats.parse_errors += 1;
                    self.break_dir(requests);
                    return;
                }
            }
        }
        let dir = if requests {
            &mut self.req
        } else {
            &mut self.resp
        };
        dir.buf.drain(..at);
        if at > 0 && !dir.buf.is_empty() {
            dir.start_ts = first_ts;
        }
    }

    fn break_dir(&mut self, requests: bool) {
        self.stats.resyncs += 1;
        let dir = if requests {
            &mut self.req
        } else {
            &mut self.resp
        };
        dir.buf.clear();
        dir.broken = true;
    }

    fn on_request(&mut self, v: Scanned, start_ts: u64) {
        self.stats.requests += 1;
        let mut words = v.words.into_iter();
        let Some(first) = words.next() else {
            return;
        };
        let mut cmd = String::from_utf8_lossy(&first).to_ascii_uppercase();
        let mut rest: Vec<Vec<u8>> = words.collect();
        if is_container(&cmd) && !rest.is_empty() {
            let sub = rest.remove(0);
            cmd.push(' ');
            cmd.push_str(&String::from_utf8_lossy(&sub).to_ascii_uppercase());
        }
        let mut args = String::from("[");
        for (i, w) in rest.iter().enumerate() {
            if i > 0 {
                args.push(',');
            }
            if i >= MAX_RENDERED_ELEMENTS {
                args.push_str(&format!("\"...({} more)\"", rest.len() - i));
                break;
            }
            json_string(&mut args, w, self.limits.max_text);
        }
        args.push(']');
        if self.pending.len() >= self.limits.max_pending {
            self.pending.pop_front();
            self.stats.unmatched += 1;
        }
        self.pending.push_back(Pending {
            cmd,
            args,
            start_ts,
        });
    }

    fn on_response(&mut self, v: Scanned, end_ts: u64) {
        let head = v.head.as_deref();
        let head_is_sub = self
            .pending
            .front()
            .is_some_and(|p| p.cmd.ends_with("SUBSCRIBE"));
        let is_push = v.push
            || matches!(head, Some("message" | "pmessage" | "smessage"))
            || (matches!(
                head,
                Some(
                    "subscribe"
                        | "psubscribe"
                        | "ssubscribe"
                        | "unsubscribe"
                        | "punsubscribe"
                        | "sunsubscribe"
                )
            ) && !head_is_sub);
        if is_push {
            self.stats.pushes += 1;
            return;
        }
        self.stats.responses += 1;
        let Some(p) = self.pending.pop_front() else {
            self.stats.unmatched += 1;
            return;
        };
        self.stats.records += 1;
        self.out.push(Record {
            cmd: p.cmd,
            args: p.args,
            resp: v.text,
            start_ts: p.start_ts,
            end_ts,
            notes: Vec::new(),
        });
    }
}

/// Commands whose first argument is a subcommand (`CONFIG GET`).
fn is_container(cmd: &str) -> bool {
    matches!(
        cmd,
        "ACL"
            | "CLIENT"
            | "CLUSTER"
            | "COMMAND"
            | "CONFIG"
            | "DEBUG"
            | "FUNCTION"
            | "LATENCY"
            | "MEMORY"
            | "MODULE"
            | "OBJECT"
            | "PUBSUB"
            | "SCRIPT"
            | "SLOWLOG"
            | "XGROUP"
            | "XINFO"
    )
}

/// Whether `bytes` is a sequence of whole frames, nothing more or less.
fn whole(bytes: &[u8], requests: bool, limits: &Limits) -> bool {
    let mut at = 0;
    while at < bytes.len() {
        match scan_top(&bytes[at..], requests, limits) {
            Scan::Done(_, used) => at += used,
            _ => return false,
        }
    }
    at > 0
}

fn scan_top(buf: &[u8], requests: bool, limits: &Limits) -> Scan {
    if buf.is_empty() {
        return Scan::Incomplete;
    }
    if requests && buf[0].is_ascii_alphabetic() {
        return scan_inline(buf);
    }
    let mut s = Scanned {
        text: String::new(),
        words: Vec::new(),
        head: None,
        push: buf[0] == b'>',
        render: !requests,
    };
    match scan(buf, 0, &mut s, limits, requests) {
        Ok(Some(used)) => Scan::Done(s, used),
        Ok(None) => Scan::Incomplete,
        Err(()) => Scan::Garbage,
    }
}

/// An inline command (`PING\r\n`, as typed into telnet).
fn scan_inline(buf: &[u8]) -> Scan {
    let Some(nl) = buf.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_LINE {
            Scan::Garbage
        } else {
            Scan::Incomplete
        };
    };
    let line = &buf[..nl];
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    if !line
        .iter()
        .all(|&b| b.is_ascii_graphic() || b == b' ' || b == b'\t')
    {
        return Scan::Garbage;
    }
    let words: Vec<Vec<u8>> = line
        .split(|b| b.is_ascii_whitespace())
        .filter(|w| !w.is_empty())
        .map(<[u8]>::to_vec)
        .collect();
    Scan::Done(
        Scanned {
            text: String::new(),
            words,
            head: None,
            push: false,
            render: false,
        },
        nl + 1,
    )
}

/// The line starting at `at` (after its type byte), and where the next byte is.
fn line(buf: &[u8], at: usize) -> Result<Option<(&[u8], usize)>, ()> {
    let rest = &buf[at..];
    match rest.windows(2).position(|w| w == b"\r\n") {
        Some(i) => Ok(Some((&rest[..i], at + i + 2))),
        None if rest.len() > MAX_LINE => Err(()),
        None => Ok(None),
    }
}

fn int(b: &[u8]) -> Result<i64, ()> {
    std::str::from_utf8(b)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(())
}

/// Scans one value at `buf[0..]` at nesting `depth`, rendering into `s.text` and, at the top
/// level of a request, collecting its words. Ok(None): incomplete.
fn scan(
    buf: &[u8],
    depth: usize,
    s: &mut Scanned,
    limits: &Limits,
    collect: bool,
) -> Result<Option<usize>, ()> {
    if depth > limits.max_depth {
        return Err(());
    }
    let Some(&t) = buf.first() else {
        return Ok(None);
    };
    let Some((l, next)) = line(buf, 1)? else {
        return Ok(None);
    };
    match t {
        b'+' | b':' | b',' | b'(' | b'#' => {
            if l.contains(&b'\r') {
                return Err(());
            }
            // NB: a big number (`(`) may exceed i64; it must still be digits.
            let numeric = l.strip_prefix(b"-").unwrap_or(l);
            if (t == b':' && int(l).is_err())
                || (t == b'(' && (numeric.is_empty() || !numeric.iter().all(u8::is_ascii_digit)))
            {
                return Err(());
            }
            let text = match (t, l) {
                (b'#', b"t") => "true",
                (b'#', b"f") => "false",
                (b'#', _) => return Err(()),
                _ => "",
            };
            if !s.render {
            } else if text.is_empty() {
                push_text(&mut s.text, l, limits.max_text);
            } else {
                s.text.push_str(text);
            }
            Ok(Some(next))
        }
        b'-' => {
            s.text.push('-');
            push_text(&mut s.text, l, limits.max_text);
            Ok(Some(next))
        }
        b'_' => {
            if !l.is_empty() {
                return Err(());
            }
            s.text.push_str("<NULL>");
            Ok(Some(next))
        }
        b'$' | b'!' | b'=' => {
            let n = int(l)?;
            if n == -1 && t == b'$' {
                s.text.push_str("<NULL>");
                return Ok(Some(next));
            }
            if !(0..=MAX_BULK).contains(&n) {
                return Err(());
            }
            let n = n as usize;
            if buf.len() < next + n + 2 {
                return Ok(None);
            }
            if &buf[next + n..next + n + 2] != b"\r\n" {
                return Err(());
            }
            let payload = &buf[next..next + n];
            if t == b'!' {
                s.text.push('-');
            }
            // NB: verbatim strings start with a 3-letter format and a colon.
            let shown = if t == b'=' && n >= 4 {
                &payload[4..]
            } else {
                payload
            };
            push_text(&mut s.text, shown, limits.max_text);
            if collect {
                s.words.push(payload.to_vec());
            }
            Ok(Some(next + n + 2))
        }
        b'*' | b'~' | b'>' | b'%' | b'|' => {
            let n = int(l)?;
            if n == -1 && t == b'*' {
                s.text.push_str("<NULL>");
                return Ok(Some(next));
            }
            if n < 0 || n as usize > limits.max_buffer {
                return Err(());
            }
            let is_map = t == b'%' || t == b'|';
            let items = if is_map { 2 * n as usize } else { n as usize };
            let mut at = next;
            let mut text = std::mem::take(&mut s.text);
            text.push(if is_map { '{' } else { '[' });
            for i in 0..items {
                // Each element renders on its own, then joins the aggregate's text (capped).
                let mut elem = Scanned {
                    text: String::new(),
                    words: Vec::new(),
                    head: None,
                    push: false,
                    render: s.render,
                };
                let collect_elem = collect && depth == 0;
                let Some(used) = scan(&buf[at..], depth + 1, &mut elem, limits, collect_elem)?
                else {
                    return Ok(None);
                };
                if depth == 0 && i == 0 {
                    s.head = Some(elem.text.to_ascii_lowercase());
                }
                if collect_elem {
                    s.words.append(&mut elem.words);
                }
                at += used;
                if !s.render {
                } else if i < MAX_RENDERED_ELEMENTS * if is_map { 2 } else { 1 } {
                    if i > 0 {
                        text.push(if is_map && i % 2 == 1 { ':' } else { ',' });
                    }
                    json_string(&mut text, elem.text.as_bytes(), limits.max_text);
                } else if i == MAX_RENDERED_ELEMENTS * if is_map { 2 } else { 1 } {
                    text.push_str(&format!(",\"...({} more)\"", items - i));
                }
            }
            text.push(if is_map { '}' } else { ']' });
            if t == b'|' {
                // An attribute annotates the value that follows: render that value.
                let mut inner = Scanned {
                    text: String::new(),
                    words: Vec::new(),
                    head: None,
                    push: false,
                    render: s.render,
                };
                let Some(used) = scan(&buf[at..], depth, &mut inner, limits, collect)? else {
                    return Ok(None);
                };
                s.text = inner.text;
                s.head = inner.head;
                s.words = inner.words;
                return Ok(Some(at + used));
            }
            s.text = text;
            Ok(Some(at))
        }
        _ => Err(()),
    }
}

/// `bytes` as text (lossy UTF-8), cut at `max` characters with `...`.
fn push_text(out: &mut String, bytes: &[u8], max: usize) {
    let s = String::from_utf8_lossy(bytes);
    // NB: no more bytes than `max` means no more characters: skip the count.
    if bytes.len() > max && s.chars().count() > max {
        out.extend(s.chars().take(max));
        out.push_str("...");
    } else {
        out.push_str(&s);
    }
}

/// `bytes` as a JSON string (lossy UTF-8, escaped), cut at `max` characters.
fn json_string(out: &mut String, bytes: &[u8], max: usize) {
    out.push('"');
    let plain = bytes.len() <= max
        && bytes
            .iter()
            .all(|&b| (0x20..0x7f).contains(&b) && b != b'"' && b != b'\\');
    if plain {
        // NB: the common case (printable ASCII, short): copied as is.
        out.extend(bytes.iter().map(|&b| char::from(b)));
        out.push('"');
        return;
    }
    let mut text = String::new();
    push_text(&mut text, bytes, max);
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// Feeds `data` to a connection as alternating request/response chunks split at the bytes'
/// values, for fuzzing: must never panic, whatever the input.
pub fn fuzz_one(data: &[u8]) -> Stats {
    let mut c = Conn::new(Limits {
        max_buffer: 4096,
        ..Limits::default()
    });
    let mut out = Vec::new();
    for (i, part) in data.split(|&b| b == 0xff).enumerate() {
        let chunk = if part.first() == Some(&0xfe) {
            Chunk::Gap {
                len: part.len() as u64,
                ts: i as u64,
            }
        } else {
            Chunk::Data {
                bytes: part,
                first_ts: i as u64,
                last_ts: i as u64,
            }
        };
        if i % 2 == 0 {
            c.push_requests(chunk);
        } else {
            c.push_responses(chunk);
        }
        c.drain(&mut out);
    }
    c.close();
    c.stats().clone()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(b: &[u8], ts: u64) -> Chunk<'_> {
        Chunk::Data {
            bytes: b,
            first_ts: ts,
            last_ts: ts + 1,
        }
    }

    fn run(reqs: &[u8], resps: &[u8]) -> (Vec<Record>, Stats) {
        let mut c = Conn::new(Limits::default());
        c.push_requests(data(reqs, 100));
        c.push_responses(data(resps, 200));
        let mut out = Vec::new();
        c.drain(&mut out);
        (out, c.stats().clone())
    }

    fn resp_of(reply: &[u8]) -> String {
        let (r, _) = run(b"*1\r\n$4\r\nPING\r\n", reply);
        assert_eq!(r.len(), 1, "{reply:?}");
        r[0].resp.clone()
    }

    #[test]
    fn renders_every_resp_type() {
        assert_eq!(resp_of(b"+OK\r\n"), "OK");
        assert_eq!(resp_of(b"-ERR unknown command\r\n"), "-ERR unknown command");
        assert_eq!(resp_of(b":42\r\n"), "42");
        assert_eq!(resp_of(b"$5\r\nhello\r\n"), "hello");
        assert_eq!(resp_of(b"$-1\r\n"), "<NULL>");
        assert_eq!(resp_of(b"*-1\r\n"), "<NULL>");
        assert_eq!(resp_of(b"*2\r\n$1\r\na\r\n:1\r\n"), r#"["a","1"]"#);
        assert_eq!(resp_of(b"*0\r\n"), "[]");
        // RESP3.
        assert_eq!(resp_of(b"_\r\n"), "<NULL>");
        assert_eq!(resp_of(b"#t\r\n"), "true");
        assert_eq!(resp_of(b",3.14\r\n"), "3.14");
        assert_eq!(
            resp_of(b"(12345678901234567890\r\n"),
            "12345678901234567890"
        );
        assert_eq!(resp_of(b"!9\r\nERR oops!\r\n"), "-ERR oops!");
        assert_eq!(resp_of(b"=8\r\ntxt:abcd\r\n"), "abcd");
        assert_eq!(
            resp_of(b"%2\r\n+a\r\n:1\r\n+b\r\n:2\r\n"),
            r#"{"a":"1","b":"2"}"#
        );
        assert_eq!(resp_of(b"~2\r\n+x\r\n+y\r\n"), r#"["x","y"]"#);
        assert_eq!(resp_of(b"|1\r\n+ttl\r\n:3\r\n+OK\r\n"), "OK");
        assert_eq!(
            resp_of(b"*2\r\n*1\r\n+in\r\n$2\r\n\"q\r\n"),
            r#"["[\"in\"]","\"q"]"#
        );
    }

    #[test]
    fn commands_have_upper_case_names_json_args_and_container_subcommands() {
        let (r, s) = run(
            b"*3\r\n$3\r\nset\r\n$1\r\nk\r\n$3\r\nv\"1\r\n*3\r\n$6\r\nconfig\r\n$3\r\nget\r\n$6\r\nmaxmem\r\nPING\r\n",
            b"+OK\r\n*0\r\n+PONG\r\n",
        );
        assert_eq!(s.requests, 3);
        let got: Vec<(&str, &str, &str)> = r
            .iter()
            .map(|r| (r.cmd.as_str(), r.args.as_str(), r.resp.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("SET", r#"["k","v\"1"]"#, "OK"),
                ("CONFIG GET", r#"["maxmem"]"#, "[]"),
                ("PING", "[]", "PONG"),
            ]
        );
        assert_eq!(r[0].latency_ns(), 101);
    }

    #[test]
    fn pipelined_commands_split_at_every_offset_give_the_same_records() {
        let reqs: Vec<u8> = (0..20)
            .flat_map(|i| format!("*2\r\n$3\r\nGET\r\n$2\r\nk{}\r\n", i % 10).into_bytes())
            .collect();
        let resps: Vec<u8> = (0..20)
            .flat_map(|i| {
                if i % 3 == 0 {
                    b"$-1\r\n".to_vec()
                } else {
                    format!("${}\r\nv{i}\r\n", format!("v{i}").len()).into_bytes()
                }
            })
            .collect();
        let (want, _) = run(&reqs, &resps);
        assert_eq!(want.len(), 20);
        for cut in 0..reqs.len().max(resps.len()) {
            let mut c = Conn::new(Limits::default());
            let (a, b) = reqs.split_at(cut.min(reqs.len()));
            c.push_requests(data(a, 100));
            c.push_requests(data(b, 100));
            let (a, b) = resps.split_at(cut.min(resps.len()));
            c.push_responses(data(a, 200));
            c.push_responses(data(b, 200));
            let mut got = Vec::new();
            c.drain(&mut got);
            let texts = |v: &[Record]| -> Vec<(String, String, String)> {
                v.iter()
                    .map(|r| (r.cmd.clone(), r.args.clone(), r.resp.clone()))
                    .collect()
            };
            assert_eq!(texts(&got), texts(&want), "cut at {cut}");
            assert_eq!(c.stats().parse_errors, 0);
        }
    }

    #[test]
    fn pubsub_messages_are_pushes_not_replies() {
        let mut c = Conn::new(Limits::default());
        c.push_requests(data(b"*3\r\n$9\r\nSUBSCRIBE\r\n$1\r\na\r\n$1\r\nb\r\n", 1));
        c.push_responses(data(
            b"*3\r\n$9\r\nsubscribe\r\n$1\r\na\r\n:1\r\n*3\r\n$9\r\nsubscribe\r\n$1\r\nb\r\n:2\r\n",
            2,
        ));
        c.push_responses(data(b"*3\r\n$7\r\nmessage\r\n$1\r\na\r\n$2\r\nhi\r\n", 3));
        c.push_responses(data(b">3\r\n$7\r\nmessage\r\n$1\r\nb\r\n$2\r\nyo\r\n", 4));
        c.push_requests(data(b"*1\r\n$4\r\nPING\r\n", 5));
        c.push_responses(data(b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", 6));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|r| (r.cmd.as_str(), r.resp.as_str()))
            .collect();
        assert_eq!(
            got,
            [
                ("SUBSCRIBE", r#"["subscribe","a","1"]"#),
                ("PING", r#"["pong",""]"#)
            ]
        );
        assert_eq!(c.stats().pushes, 3);
    }

    #[test]
    fn gaps_and_garbage_resync_without_wrong_records() {
        let mut c = Conn::new(Limits::default());
        c.push_requests(data(b"*1\r\n$4\r\nPING\r\n", 1));
        c.push_responses(Chunk::Gap { len: 7, ts: 2 });
        // The tail of the lost reply: not whole, dropped.
        c.push_responses(data(b"NG\r\n", 3));
        c.push_requests(data(b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n", 4));
        c.push_responses(data(b"$1\r\nv\r\n", 5));
        // Garbage on the request side, then a whole command.
        c.push_requests(data(b"\x00\x01garbage\r\n", 6));
        c.push_requests(data(b"*1\r\n$4\r\nPING\r\n", 7));
        c.push_responses(data(b"+PONG\r\n", 8));
        let mut out = Vec::new();
        c.drain(&mut out);
        let got: Vec<(&str, &str)> = out
            .iter()
            .map(|r| (r.cmd.as_str(), r.resp.as_str()))
            .collect();
        assert_eq!(got, [("GET", "v"), ("PING", "PONG")]);
        assert!(c.stats().resyncs >= 2 && c.stats().parse_errors >= 1);
        assert_eq!(c.stats().unmatched, 1);
    }

    #[test]
    fn huge_lengths_and_deep_nesting_are_errors_not_allocations() {
        let (r, s) = run(b"*1\r\n$999999999999\r\n", b"");
        assert!(r.is_empty() && s.parse_errors == 1);
        let deep: Vec<u8> = b"*1\r\n".repeat(100);
        let (r, s) = run(b"*1\r\n$4\r\nPING\r\n", &deep);
        assert!(r.is_empty() && s.parse_errors == 1, "{s:?}");
        let (r, s) = run(b"*1\r\n$4\r\nPING\r\n", b"*99999999999\r\n");
        assert!(r.is_empty() && s.parse_errors == 1, "{s:?}");
    }

    #[test]
    fn an_unfinished_frame_beyond_the_buffer_limit_is_dropped() {
        let mut c = Conn::new(Limits {
            max_buffer: 64,
            ..Limits::default()
        });
        c.push_requests(data(b"*2\r\n$3\r\nSET\r\n$1000\r\n", 1));
        c.push_requests(data(&[b'x'; 100], 2));
        assert_eq!(c.stats().parse_errors, 1);
        assert_eq!(c.buffered_bytes(), 0);
    }

    #[test]
    fn fuzz_one_survives_mutations() {
        let seed = b"*2\r\n$3\r\nGET\r\n$1\r\nk\r\n\xff$1\r\nv\r\n\xff%1\r\n+a\r\n*1\r\n_\r\n";
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..3000 {
            let mut d = seed.to_vec();
            for _ in 0..4 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let i = (x as usize) % d.len();
                d[i] = (x >> 32) as u8;
            }
            fuzz_one(&d);
        }
    }
}
