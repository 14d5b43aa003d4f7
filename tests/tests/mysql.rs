//! End to end: MariaDB from Debian on loopback; the `mariadb` client (a few statements, one an
//! error) and a Python driver: pymysql text queries, then server-side prepared statements as
//! raw COM_STMT_PREPARE/EXECUTE/CLOSE packets (pymysql has none), about 2000 commands in all,
//! captured by the real probes in an in-process pxtopd; `pxtop run px/mysql_data -o json` must
//! show each once with its outcome, and `px/mysql_stats` must group them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{collections::HashMap, process::Command, time::Duration};

use pxtop_e2e::{Backend, mariadb::Mariadb, may_use_ebpf, pxtop_bin};

/// The Python driver: argv port, text queries, prepared rounds; prints one JSON line per
/// command sent with what pxtop should record for it (`(*)` where pymysql hides the SQLSTATE).
const DRIVER: &str = r#####"
# Drives MariaDB for pxtop's e2e test: text queries through pymysql, then server-side prepared
# statements as raw COM_STMT_PREPARE/EXECUTE/CLOSE packets on a pymysql-authenticated socket.
# Prints one JSON line per command sent: cmd (the COM_ byte), body (as pxtop renders req_body),
# status (1 none, 2 OK, 3 error) and resp (as pxtop renders resp_body).
import json, struct, sys
import pymysql

port = int(sys.argv[1])
n_text = int(sys.argv[2])
n_prep = int(sys.argv[3])
out = []

def emit(cmd, body, status, resp):
    out.append({"cmd": cmd, "body": body, "status": status, "resp": resp})

conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
cur = conn.cursor()
for i in range(n_text):
    k, j = divmod(i, 4)
    sql = [
        f"INSERT INTO e2e.items VALUES ({k}, 'name{k}')",
        f"SELECT name FROM e2e.items WHERE id = {k}",
        f"UPDATE e2e.items SET name = 'upd{k}' WHERE id = {k}",
        f"SELECT * FROM e2e.nope WHERE id = {k}",
    ][j]
    try:
        cur.execute(sql)
        if cur.description is not None:
            cur.fetchall()
            emit(3, sql, 2, f"Resultset rows = {cur.rowcount}")
        else:
            emit(3, sql, 2, f"Affected rows = {cur.rowcount}, last insert id = {cur.lastrowid}")
    except pymysql.MySQLError as e:
        code, msg = e.args
        emit(3, sql, 3, f"ERROR {code} (*): {msg}")
conn.close()

conn = pymysql.connect(host="127.0.0.1", port=port, user="root", autocommit=True)
sock = conn._sock
sock.settimeout(10)
rfile = sock.makefile("rb")

def send(payload):
    sock.sendall(struct.pack("<I", len(payload))[:3] + b"\x00" + payload)

def packet():
    head = rfile.read(4)
    n = head[0] | head[1] << 8 | head[2] << 16
    return rfile.read(n)

def lenenc(b, i):
    c = b[i]
    if c < 0xfb:
        return c, i + 1
    w = {0xfc: 2, 0xfd: 3, 0xfe: 8}[c]
    return int.from_bytes(b[i + 1:i + 1 + w], "little"), i + 1 + w

def is_eof(p):
    return p[0] == 0xfe and len(p) < 9

def err(p):
    code = struct.unpack("<H", p[1:3])[0]
    return f"ERROR {code} ({p[4:9].decode()}): {p[9:].decode()}"

def ok(p):
    affected, i = lenenc(p, 1)
    last_id, _ = lenenc(p, i)
    return f"Affected rows = {affected}, last insert id = {last_id}"

def prepare(sql):
    send(b"\x16" + sql.encode())
    p = packet()
    if p[0] == 0xff:
        emit(22, sql, 3, err(p))
        return None
    stmt, cols, params = struct.unpack("<IHH", p[1:9])
    for count in (params, cols):
        if count:
            for _ in range(count):
                packet()
            assert is_eof(packet())
    emit(22, sql, 2, f"Statement id = {stmt}, params = {params}, columns = {cols}")
    return stmt

def execute(stmt, sql, params):
    types, values, shown = b"", b"", []
    for v in params:
        if isinstance(v, int):
            types += b"\x08\x00"
            values += struct.pack("<q", v)
            shown.append(str(v))
        else:
            b = v.encode()
            types += b"\xfd\x00"
            values += bytes([len(b)]) + b
            shown.append(f"'{v}'")
    bitmap = bytes((len(params) + 7) // 8)
    send(b"\x17" + struct.pack("<IBI", stmt, 0, 1) + bitmap + b"\x01" + types + values)
    body = f"query=[{sql}] params=[{', '.join(shown)}]"
    p = packet()
    if p[0] == 0xff:
        emit(23, body, 3, err(p))
    elif p[0] == 0x00:
        emit(23, body, 2, ok(p))
    else:
        cols, _ = lenenc(p, 0)
        for _ in range(cols):
            packet()
        assert is_eof(packet())
        rows = 0
        while True:
            p = packet()
            if is_eof(p):
                break
            assert p[0] == 0x00, p
            rows += 1
        emit(23, body, 2, f"Resultset rows = {rows}")

ins_sql = "INSERT INTO e2e.items2 VALUES (?, ?)"
sel_sql = "SELECT id, name FROM e2e.items2 WHERE id = ?"
ins = prepare(ins_sql)
sel = prepare(sel_sql)
assert prepare("SELECT * FROM e2e.nope2 WHERE id = ?") is None
for k in range(n_prep):
    execute(ins, ins_sql, [k, f"p{k}"])
    execute(sel, sel_sql, [k])
execute(ins, ins_sql, [0, "dup"])
for stmt, sql in ((ins, ins_sql), (sel, sel_sql)):
    send(b"\x19" + struct.pack("<I", stmt))
    emit(25, sql, 1, "")
send(b"\x0e")
p = packet()
emit(14, "", 2, ok(p))
send(b"\x01")
sock.close()
for o in out:
    print(json.dumps(o))
"#####;

/// Runs the driver; what it sent, as `{cmd, body, status, resp}` objects.
fn drive(port: u16, n_text: usize, n_prep: usize) -> Vec<serde_json::Value> {
    let script = std::env::temp_dir().join(format!("pxtop-mysql-driver-{}.py", std::process::id()));
    std::fs::write(&script, DRIVER).unwrap();
    // NB: Debian's python3 (python3-pymysql), not whatever python3 is first on PATH.
    let python = if std::path::Path::new("/usr/bin/python3").exists() {
        "/usr/bin/python3"
    } else {
        "python3"
    };
    let out = Command::new(python)
        .arg(&script)
        .args([port.to_string(), n_text.to_string(), n_prep.to_string()])
        .output()
        .expect("python3 is installed by tools/setup-debian.sh");
    let _ = std::fs::remove_file(&script);
    assert!(
        out.status.success(),
        "driver failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

fn pxtop_run(backend: &Backend, script: &str) -> Vec<serde_json::Value> {
    let out = Command::new(pxtop_bin())
        .args(["--addr", &backend.url, "run", script])
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
        "pxtop run {script} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout)
        .expect("utf-8")
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mysql_commands_are_captured_exactly_and_served_by_pxtop_run() {
    if !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    let db = Mariadb::start().expect("start mariadbd");
    let cli = db
        .client(
            "CREATE DATABASE e2e;\n\
             CREATE TABLE e2e.items (id INT PRIMARY KEY, name VARCHAR(64));\n\
             CREATE TABLE e2e.items2 (id INT PRIMARY KEY, name VARCHAR(64));\n\
             SELECT * FROM e2e.nope_cli;\n\
             SELECT 40 + 2;\n",
        )
        .unwrap();
    let stdout = String::from_utf8_lossy(&cli.stdout);
    assert!(stdout.contains("42"), "{stdout}");
    assert!(
        String::from_utf8_lossy(&cli.stderr).contains("ERROR 1146 (42S02)"),
        "{cli:?}"
    );

    let (n_text, n_prep) = (1000, 500);
    let port = db.port;
    let sent = tokio::task::spawn_blocking(move || drive(port, n_text, n_prep))
        .await
        .expect("join");
    // Text queries, 3 prepares, 2 executes per round and a duplicate, 2 closes, a ping.
    assert_eq!(sent.len(), n_text + 3 + 2 * n_prep + 1 + 2 + 1);

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rows = pxtop_run(&backend, "px/mysql_data");
    // Only mariadbd's side: the client ends of loopback connections are not captured.
    assert!(rows.iter().all(|r| r["trace_role"] == 2), "{rows:?}");
    let mut by_cmd_body: HashMap<(i64, &str), Vec<&serde_json::Value>> = HashMap::new();
    for r in &rows {
        by_cmd_body
            .entry((
                r["req_cmd"].as_i64().unwrap(),
                r["req_body"].as_str().unwrap(),
            ))
            .or_default()
            .push(r);
    }
    let one = |cmd: i64, body: &str| -> &serde_json::Value {
        let got = by_cmd_body.get(&(cmd, body)).cloned().unwrap_or_default();
        assert_eq!(got.len(), 1, "command {cmd} {body:?}: {got:?}");
        got[0]
    };
    // The mariadb client's statements (COM_QUERY = 3), the error with its SQLSTATE.
    let create = one(3, "CREATE DATABASE e2e");
    assert_eq!(create["resp_status"], 2);
    assert_eq!(create["resp_body"], "Affected rows = 1, last insert id = 0");
    let nope = one(3, "SELECT * FROM e2e.nope_cli");
    assert_eq!(nope["resp_status"], 3);
    assert_eq!(
        nope["resp_body"],
        "ERROR 1146 (42S02): Table 'e2e.nope_cli' doesn't exist"
    );
    assert_eq!(one(3, "SELECT 40 + 2")["resp_body"], "Resultset rows = 1");

    // Every command the driver sent exactly once, with its status and outcome.
    let mut captured = 0;
    for s in &sent {
        let cmd = s["cmd"].as_i64().unwrap();
        let body = s["body"].as_str().unwrap();
        let Some(got) = by_cmd_body.get(&(cmd, body)) else {
            continue;
        };
        assert_eq!(got.len(), 1, "sent {s}: {got:?}");
        captured += 1;
        let r = got[0];
        assert_eq!(r["resp_status"], s["status"], "sent {s}: {r}");
        let want = s["resp"].as_str().unwrap();
        let resp = r["resp_body"].as_str().unwrap();
        match want.split_once("(*)") {
            // pymysql's errors: code and message; the SQLSTATE in between is the server's.
            Some((code, msg)) => assert!(
                resp.starts_with(&format!("{code}(")) && resp.ends_with(msg),
                "sent {s}: {r}"
            ),
            None => assert_eq!(resp, want, "sent {s}: {r}"),
        }
        if cmd != 25 {
            assert!(r["latency"].as_i64().unwrap() > 0, "{r}");
        }
    }
    eprintln!(
        "mysql fidelity: {captured}/{} commands captured ({:.2}%)",
        sent.len(),
        100.0 * captured as f64 / sent.len() as f64
    );
    assert_eq!(captured, sent.len(), "every command captured");

    // px/mysql_stats groups executions by statement, parameters left out.
    let stats = pxtop_run(&backend, "px/mysql_stats");
    let group = |cmd: i64, query: &str| -> &serde_json::Value {
        stats
            .iter()
            .find(|r| r["req_cmd"] == cmd && r["query"] == query)
            .unwrap_or_else(|| panic!("no mysql_stats row for {cmd} {query:?}: {stats:?}"))
    };
    let ins = group(23, "INSERT INTO e2e.items2 VALUES (?, ?)");
    assert_eq!(ins["requests"], n_prep as i64 + 1, "{ins}");
    assert_eq!(ins["errors"], 1, "{ins}");
    let sel = group(23, "SELECT id, name FROM e2e.items2 WHERE id = ?");
    assert_eq!(sel["requests"], n_prep as i64, "{sel}");
    assert_eq!(sel["errors"], 0, "{sel}");
    let nope = group(3, "SELECT * FROM e2e.nope WHERE id = ?");
    assert_eq!(nope["requests"], n_text as i64 / 4, "{nope}");
    assert_eq!(nope["errors"], n_text as i64 / 4, "{nope}");
    drop(db);
    backend.stop().await.expect("pxtopd stopped cleanly");
}
