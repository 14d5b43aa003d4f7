//! End to end: PostgreSQL from Debian on loopback; psql (simple queries, an error, the SSL
//! request it tries first) and tokio-postgres (a real driver: named prepared statements over
//! the extended protocol, binary parameters) drive a burst of 2000 executions, captured by the
//! real probes in an in-process pxtopd; `pxtop run px/pgsql_data -o json` must show each once.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]

use std::{collections::HashMap, process::Command, time::Duration};

use pxtop_e2e::{Backend, may_use_ebpf, postgres::Postgres, pxtop_bin};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_statements_are_captured_exactly_and_served_by_pxtop_run() {
    if !may_use_ebpf() {
        return;
    }
    let backend = Backend::start().await.expect("start pxtopd with capture");
    let pg = Postgres::start().expect("start postgres");
    let out = pg
        .psql(&[
            "CREATE TABLE items (id int PRIMARY KEY, name text)",
            "SELECT * FROM nope",
            "SELECT 40 + 2",
        ])
        .unwrap();
    assert!(out.contains("42"), "{out}");

    let (client, conn) = tokio_postgres::connect(
        &format!("host=127.0.0.1 port={} user=postgres", pg.port),
        tokio_postgres::NoTls,
    )
    .await
    .expect("connect with tokio-postgres");
    let driver = tokio::spawn(conn);
    let insert = client
        .prepare("INSERT INTO items VALUES ($1, $2)")
        .await
        .unwrap();
    let select = client
        .prepare("SELECT name FROM items WHERE id = $1")
        .await
        .unwrap();
    let n = 1000;
    for i in 0..n {
        client
            .execute(&insert, &[&i, &format!("name{i}")])
            .await
            .unwrap();
    }
    for i in 0..n {
        let rows = client.query(&select, &[&i]).await.unwrap();
        assert_eq!(rows.len(), 1);
    }
    let dup = client.execute(&insert, &[&0i32, &"again"]).await;
    assert!(dup.is_err(), "duplicate key");
    drop(client);
    let _ = driver.await;

    tokio::time::sleep(Duration::from_millis(1500)).await;
    let out = Command::new(pxtop_bin())
        .args(["--addr", &backend.url, "run", "px/pgsql_data"])
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
        "pxtop run failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).expect("utf-8");
    let rows: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).expect("each line is JSON"))
        .collect();
    assert!(rows.iter().all(|r| r["trace_role"] == 2), "{stdout}");
    let find = |cmd: &str, req_part: &str| -> Vec<&serde_json::Value> {
        rows.iter()
            .filter(|r| r["req_cmd"] == cmd && r["req"].as_str().unwrap().contains(req_part))
            .collect()
    };
    // psql's simple queries, after its SSL request was refused.
    let create = find("QUERY", "CREATE TABLE items");
    assert_eq!(create.len(), 1, "{stdout}");
    assert_eq!(create[0]["resp"], "CREATE TABLE");
    let nope = find("QUERY", "SELECT * FROM nope");
    assert_eq!(nope.len(), 1);
    assert!(
        nope[0]["resp"].as_str().unwrap().contains("42P01"),
        "{:?}",
        nope[0]
    );
    assert_eq!(find("QUERY", "SELECT 40 + 2")[0]["resp"], "SELECT 1");
    // The driver's executions: each statement text with its parameters, exactly once.
    let mut inserts: HashMap<String, usize> = HashMap::new();
    for r in find("EXECUTE", "INSERT INTO items VALUES ($1, $2)") {
        *inserts
            .entry(r["req"].as_str().unwrap().to_string())
            .or_default() += 1;
        if r["resp"] != "INSERT 0 1" {
            assert!(r["resp"].as_str().unwrap().contains("23505"), "{r:?}");
        }
    }
    let mut selects: HashMap<String, usize> = HashMap::new();
    for r in find("EXECUTE", "SELECT name FROM items WHERE id = $1") {
        assert_eq!(r["resp"], "SELECT 1", "{r:?}");
        *selects
            .entry(r["req"].as_str().unwrap().to_string())
            .or_default() += 1;
    }
    for i in 0..n {
        let ins = format!("query=[INSERT INTO items VALUES ($1, $2)] params=[{i}, 'name{i}']");
        assert_eq!(inserts.get(&ins), Some(&1), "{ins}");
        let sel = format!("query=[SELECT name FROM items WHERE id = $1] params=[{i}]");
        assert_eq!(selects.get(&sel), Some(&1), "{sel}");
    }
    let dup = "query=[INSERT INTO items VALUES ($1, $2)] params=[0, 'again']";
    assert_eq!(inserts.get(dup), Some(&1), "the failed insert");
    drop(pg);
    backend.stop().await.expect("pxtopd stopped cleanly");
}
