//! The MySQL parser over real MariaDB 10.11 traffic recorded through a loopback proxy
//! (`fixtures/mysql/proxy.py`): the `mariadb` command-line client's text queries (one failing),
//! and server-side prepared statements over the raw protocol (`fixtures/mysql/driver.py`,
//! pymysql's handshake with CLIENT_DEPRECATE_EOF) with typed parameters, multi-results and a
//! LOCAL INFILE. Fed whole, byte by byte and split at every offset, the records are the same.
#![allow(clippy::unwrap_used, clippy::expect_used, reason = "tests fail loudly")]

use pxtop_protocols::{
    Chunk,
    mysql::{Conn, Limits, Record, RespStatus, command},
};

const CLI_REQ: &[u8] = include_bytes!("fixtures/mysql/mariadb_client.req");
const CLI_RESP: &[u8] = include_bytes!("fixtures/mysql/mariadb_client.resp");
const PREP_REQ: &[u8] = include_bytes!("fixtures/mysql/prepared_deprecate_eof.req");
const PREP_RESP: &[u8] = include_bytes!("fixtures/mysql/prepared_deprecate_eof.resp");

fn feed(reqs: &[&[u8]], resps: &[&[u8]]) -> (Vec<Record>, Conn) {
    let mut c = Conn::new(Limits::default());
    let mut ts = 1_000;
    for p in reqs {
        c.push_requests(Chunk::Data {
            bytes: p,
            first_ts: ts,
            last_ts: ts + 1,
        });
        ts += 2;
    }
    for p in resps {
        c.push_responses(Chunk::Data {
            bytes: p,
            first_ts: ts,
            last_ts: ts + 1,
        });
        ts += 2;
    }
    c.close();
    let mut out = Vec::new();
    c.drain(&mut out);
    (out, c)
}

type Row = (u8, String, RespStatus, String, u64);

fn summary(r: &[Record]) -> Vec<Row> {
    r.iter()
        .map(|r| {
            (
                r.cmd,
                r.req_body.clone(),
                r.status,
                r.resp_body.clone(),
                r.rows,
            )
        })
        .collect()
}

/// Packet start offsets of a stream whose sequence id is `seq`.
fn starts(stream: &[u8], seq: u8) -> Vec<usize> {
    let mut at = 0;
    let mut out = Vec::new();
    while at + 4 <= stream.len() {
        let len = usize::from(stream[at])
            | usize::from(stream[at + 1]) << 8
            | usize::from(stream[at + 2]) << 16;
        if stream[at + 3] == seq {
            out.push(at);
        }
        at += 4 + len;
    }
    assert_eq!(at, stream.len());
    out
}

fn cut(stream: &[u8], mut at: Vec<usize>) -> Vec<&[u8]> {
    at.insert(0, 0);
    at.push(stream.len());
    at.windows(2).map(|w| &stream[w[0]..w[1]]).collect()
}

/// The streams cut into exchanges: the handshake, then each command (from its sequence-0
/// packet) with its response (from its sequence-1 packet; none for `COM_QUIT`/`STMT_CLOSE`).
fn exchanges<'a>(reqs: &'a [u8], resps: &'a [u8]) -> Vec<(&'a [u8], &'a [u8])> {
    let q = cut(reqs, starts(reqs, 0));
    let mut s = cut(resps, starts(resps, 1)).into_iter();
    let mut out = Vec::new();
    for (i, part) in q.iter().enumerate() {
        let silent = i > 0 && matches!(part[4], command::QUIT | command::STMT_CLOSE);
        let resp = if silent { &[][..] } else { s.next().unwrap() };
        out.push((*part, resp));
    }
    assert!(s.next().is_none());
    out
}

/// Feeds exchanges in time order, each request before its response.
fn feed_exchanges(ex: &[(&[u8], &[u8])]) -> Vec<Record> {
    let mut c = Conn::new(Limits::default());
    for (i, (q, s)) in ex.iter().enumerate() {
        let ts = 1_000 + 10 * i as u64;
        c.push_requests(Chunk::Data {
            bytes: q,
            first_ts: ts,
            last_ts: ts + 1,
        });
        c.push_responses(Chunk::Data {
            bytes: s,
            first_ts: ts + 5,
            last_ts: ts + 6,
        });
    }
    let mut out = Vec::new();
    c.drain(&mut out);
    assert_eq!(c.stats().parse_errors, 0);
    out
}

const OK0: &str = "Affected rows = 0, last insert id = 0";

#[test]
fn mariadb_client_queries_and_an_error() {
    let (r, c) = feed(&[CLI_REQ], &[CLI_RESP]);
    use RespStatus as R;
    let want = [
        (
            command::QUERY,
            "INSERT INTO items (name, price, created) VALUES ('apple', 1.25, \
             '2024-01-02 03:04:05.000006'), ('pear', 2.5, NULL)",
            R::Ok,
            "Affected rows = 2, last insert id = 1",
            0,
        ),
        (
            command::QUERY,
            "SELECT id, name, price FROM items ORDER BY id",
            R::Ok,
            "Resultset rows = 2",
            2,
        ),
        (
            command::QUERY,
            "SELECT * FROM nope",
            R::Err,
            "ERROR 1146 (42S02): Table 'test.nope' doesn't exist",
            0,
        ),
        (
            command::QUERY,
            "UPDATE items SET price = price * 2 WHERE id = 1",
            R::Ok,
            "Affected rows = 1, last insert id = 0",
            0,
        ),
        (
            command::QUERY,
            "SELECT COUNT(*) FROM items WHERE name LIKE 'p%'",
            R::Ok,
            "Resultset rows = 1",
            1,
        ),
        (command::QUIT, "", R::None, "", 0),
    ];
    let want: Vec<_> = want
        .iter()
        .map(|(c, q, st, s, n)| (*c, q.to_string(), *st, s.to_string(), *n))
        .collect();
    assert_eq!(summary(&r), want);
    let s = c.stats();
    assert_eq!((s.parse_errors, s.resyncs, s.unmatched), (0, 0, 0), "{s:?}");
    assert_eq!((r[0].status.as_i64(), r[2].status.as_i64()), (2, 3));
}

#[test]
fn prepared_statements_over_deprecate_eof() {
    let (r, c) = feed(&[PREP_REQ], &[PREP_RESP]);
    use RespStatus as R;
    let sel = "SELECT id, name, price FROM items WHERE id > ? AND name <> ?";
    let ins = "INSERT INTO items (name, price, created, note) VALUES (?, ?, ?, ?)";
    let want = [
        (
            command::QUERY,
            "SET AUTOCOMMIT = 0".to_string(),
            R::Ok,
            OK0.to_string(),
            0,
        ),
        (
            command::QUERY,
            "SELECT id, name FROM items ORDER BY id".into(),
            R::Ok,
            "Resultset rows = 2".into(),
            2,
        ),
        (
            command::STMT_PREPARE,
            sel.into(),
            R::Ok,
            "Statement id = 1, params = 2, columns = 3".into(),
            0,
        ),
        (
            command::STMT_EXECUTE,
            format!("query=[{sel}] params=[0, 'zzz']"),
            R::Ok,
            "Resultset rows = 2".into(),
            2,
        ),
        (
            command::STMT_EXECUTE,
            format!("query=[{sel}] params=[1, 'x']"),
            R::Ok,
            "Resultset rows = 1".into(),
            1,
        ),
        (
            command::STMT_PREPARE,
            ins.into(),
            R::Ok,
            "Statement id = 2, params = 4, columns = 0".into(),
            0,
        ),
        (
            command::STMT_EXECUTE,
            format!("query=[{ins}] params=['fig', 3.75, '2024-05-06 07:08:09.123456', NULL]"),
            R::Ok,
            "Affected rows = 1, last insert id = 3".into(),
            0,
        ),
        (
            command::STMT_PREPARE,
            "SELECT * FROM nope WHERE id = ?".into(),
            R::Err,
            "ERROR 1146 (42S02): Table 'test.nope' doesn't exist".into(),
            0,
        ),
        (command::STMT_RESET, sel.into(), R::Ok, OK0.into(), 0),
        (command::STMT_CLOSE, sel.into(), R::None, String::new(), 0),
        (command::INIT_DB, "test".into(), R::Ok, OK0.into(), 0),
        (command::PING, String::new(), R::Ok, OK0.into(), 0),
        (
            command::QUERY,
            "SELECT 1; SELECT 2, 'two'".into(),
            R::Ok,
            "Resultset rows = 2".into(),
            2,
        ),
        (
            command::QUERY,
            "LOAD DATA LOCAL INFILE '/tmp/mysql-fx/infile.csv' INTO TABLE items (name)".into(),
            R::Ok,
            "Affected rows = 2, last insert id = 0".into(),
            0,
        ),
        (command::QUIT, String::new(), R::None, String::new(), 0),
    ];
    assert_eq!(summary(&r), want);
    let s = c.stats();
    assert_eq!((s.parse_errors, s.resyncs, s.unmatched), (0, 0, 0), "{s:?}");
}

#[test]
fn byte_by_byte_exchange_by_exchange_and_every_split_give_the_same_records() {
    for (q, s) in [(CLI_REQ, CLI_RESP), (PREP_REQ, PREP_RESP)] {
        let want = summary(&feed(&[q], &[s]).0);
        let qb: Vec<&[u8]> = q.chunks(1).collect();
        let sb: Vec<&[u8]> = s.chunks(1).collect();
        assert_eq!(summary(&feed(&qb, &sb).0), want);
        assert_eq!(summary(&feed_exchanges(&exchanges(q, s))), want);
        for at in 0..=q.len() {
            let (a, b) = q.split_at(at);
            assert_eq!(summary(&feed(&[a, b], &[s]).0), want, "request split {at}");
        }
        for at in 0..=s.len() {
            let (a, b) = s.split_at(at);
            assert_eq!(summary(&feed(&[q], &[a, b]).0), want, "response split {at}");
        }
    }
}

#[test]
fn joining_mid_stream_anywhere_gives_only_right_records() {
    for (q, s) in [(CLI_REQ, CLI_RESP), (PREP_REQ, PREP_RESP)] {
        let ex = exchanges(q, s);
        let want = summary(&feed_exchanges(&ex));
        // Exchange 0 is the handshake; exchange j > 0 gives record j - 1.
        for j in 0..ex.len() {
            let (eq, es) = ex[j];
            for a in 1..eq.len() {
                for b in [0, es.len() / 2, es.len().saturating_sub(1)] {
                    let mut parts = vec![(&eq[a..], &es[b.min(es.len())..])];
                    parts.extend_from_slice(&ex[j + 1..]);
                    let got = summary(&feed_exchanges(&parts));
                    // A cut handshake loses nothing; a cut command loses its record.
                    let from = j.saturating_sub(1) + usize::from(j > 0);
                    // Statements prepared before the join show as such, nothing else differs.
                    let known = |g: &Row, w: &Row| {
                        g == w
                            || (g.1.contains("prepared before capture>")
                                && (g.0, g.2, &g.3, g.4) == (w.0, w.2, &w.3, w.4))
                    };
                    assert!(
                        got.len() == want.len() - from
                            && got.iter().zip(&want[from..]).all(|(g, w)| known(g, w)),
                        "exchange {j}, cut {a}/{b}: {got:?}"
                    );
                }
            }
        }
    }
}

/// The fuzz target's body (`mysql::fuzz_one`) over the real traffic cut into alternating
/// chunks, mutated, and over noise: never panics (it asserts its own memory bound).
#[test]
fn fuzz_one_survives_mutated_real_traffic_and_noise() {
    let mut seed = Vec::new();
    for (q, s) in exchanges(PREP_REQ, PREP_RESP) {
        seed.extend_from_slice(q);
        seed.push(0xff);
        seed.extend_from_slice(s);
        seed.push(0xff);
    }
    let mut x: u64 = 0x2545_f491_4f6c_dd1d;
    let mut next = || {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        x
    };
    pxtop_protocols::mysql::fuzz_one(&seed);
    for round in 0..3000 {
        let data: Vec<u8> = if round % 4 == 3 {
            (0..next() % 600).map(|_| next() as u8).collect()
        } else {
            let mut d = seed.clone();
            for _ in 0..1 + next() % 6 {
                let i = (next() as usize) % d.len();
                d[i] = next() as u8;
            }
            d
        };
        pxtop_protocols::mysql::fuzz_one(&data);
    }
}
