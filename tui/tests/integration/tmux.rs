//! One run of the real binary: `pxtop --local` (the embedded backend capturing with eBPF) in a
//! tmux pane, a Python `http.server` answering real `curl` requests, keys sent with
//! `send-keys` and the screen read back with `capture-pane`. Needs root and BTF (skipped with a
//! reason outside CI, a failure in CI) and tmux (tools/setup-debian.sh installs it).

use std::net::TcpListener;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn may_run() -> bool {
    match pxtopd::preflight() {
        Ok(()) => true,
        Err(e) if std::env::var_os("CI").is_none() => {
            eprintln!("skipped: {e}");
            false
        }
        Err(e) => panic!("CI must run the tmux test against the real backend: {e}"),
    }
}

/// A tmux server of our own (its own socket), killed on drop.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(command: &str, width: u16, height: u16) -> Tmux {
        let socket = format!("pxtop-test-{}", std::process::id());
        let tmux = Tmux { socket };
        tmux.run(&[
            "new-session",
            "-d",
            "-s",
            "t",
            "-x",
            &width.to_string(),
            "-y",
            &height.to_string(),
            command,
        ]);
        tmux
    }

    fn run(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .arg("-L")
            .arg(&self.socket)
            .args(args)
            .output()
            .unwrap_or_else(|e| panic!("tmux: {e} (install it with tools/setup-debian.sh)"));
        assert!(
            out.status.success(),
            "tmux {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn screen(&self) -> String {
        self.run(&["capture-pane", "-p", "-t", "t"])
    }

    /// Types `text` literally.
    fn type_text(&self, text: &str) {
        self.run(&["send-keys", "-t", "t", "-l", text]);
    }

    /// Sends a named key (`Enter`, `Escape`, `C-c`).
    fn key(&self, key: &str) {
        self.run(&["send-keys", "-t", "t", key]);
    }

    /// Waits until the screen satisfies `ok` (while `meanwhile` runs each round), or fails
    /// showing the last screen.
    fn wait_for(&self, what: &str, mut ok: impl FnMut(&str) -> bool, mut meanwhile: impl FnMut()) {
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            meanwhile();
            let screen = self.screen();
            if ok(&screen) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

/// A child process killed on drop.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn curl(url: &str) {
    let status = Command::new("curl")
        .args(["-s", "-o", "/dev/null", url])
        .status()
        .expect("curl (tools/setup-debian.sh installs it)");
    assert!(status.success(), "curl {url}: {status}");
}

/// The rows of the table body (lines between the header row and the bottom border).
fn body_rows(screen: &str) -> Vec<&str> {
    screen
        .lines()
        .skip_while(|l| !l.contains("req_path"))
        .skip(1)
        .take_while(|l| !l.starts_with('└'))
        .filter(|l| l.trim_matches(['│', ' ', '▶']).len() > 1)
        .collect()
}

#[test]
fn pxtop_local_in_tmux_shows_captured_requests_and_answers_keys() {
    if !may_run() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().join("home");
    let www = dir.path().join("www");
    std::fs::create_dir_all(&home).unwrap();
    std::fs::create_dir_all(&www).unwrap();
    std::fs::write(www.join("index.html"), "hello\n").unwrap();
    // One context, "lab", on a port nothing listens on.
    std::fs::write(
        home.join("kubeconfig"),
        "apiVersion: v1\nkind: Config\ncurrent-context: lab\n\
         clusters: [{name: lab, cluster: {server: 'https://127.0.0.1:1'}}]\n\
         users: [{name: lab, user: {token: t}}]\n\
         contexts: [{name: lab, context: {cluster: lab, user: lab}}]\n",
    )
    .unwrap();
    let port = free_port();
    let _server = Proc(
        Command::new("python3")
            .args([
                "-m",
                "http.server",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
            ])
            .current_dir(&www)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("python3 (tools/setup-debian.sh installs it)"),
    );
    let bin = env!("CARGO_BIN_EXE_pxtop");
    // The pane stays after pxtop exits so its exit status can be read.
    let command = format!(
        "env HOME={home} XDG_CONFIG_HOME={home} XDG_CACHE_HOME={home} PXTOP_LOG=pxtop=info \
         KUBECONFIG={home}/kubeconfig TERM=xterm-256color {bin} --local --refresh 1; echo PXTOP-EXIT=$?; sleep 600",
        home = home.display()
    );
    let tmux = Tmux::start(&command, 100, 30);

    tmux.wait_for(
        "the script palette",
        |s| s.contains("pick a script") && s.contains("px/http_data"),
        || {},
    );
    // Fuzzy: "httpdata" finds px/http_data first.
    tmux.type_text("httpdata");
    tmux.wait_for("the match", |s| s.contains("▶ px/http_data"), || {});
    tmux.key("Enter");
    let mut n = 0;
    let base = format!("http://127.0.0.1:{port}");
    tmux.wait_for(
        "captured requests in px/http_data",
        |s| s.contains("/tmux-probe-") && s.contains("python3"),
        || {
            n += 1;
            curl(&format!("{base}/tmux-probe-{n}"));
        },
    );
    curl(&format!("{base}/"));
    tmux.wait_for("the 200 for /", |s| s.contains(" 200 "), || {});

    // Filter: only the probe rows stay.
    tmux.type_text("/");
    tmux.type_text("tmux-probe");
    tmux.key("Enter");
    tmux.wait_for("the filter", |s| s.contains("/tmux-probe "), || {});
    let screen = tmux.screen();
    let rows = body_rows(&screen);
    assert!(!rows.is_empty(), "{screen}");
    assert!(
        rows.iter().all(|r| r.contains("/tmux-probe-")),
        "filtered rows:\n{screen}"
    );

    // Detail pane of the selected row, then back.
    tmux.key("Enter");
    tmux.wait_for(
        "the detail pane",
        |s| s.contains("┌ row 1/") && s.contains("req_path  /tmux-probe-"),
        || {},
    );
    // J scrolls the pane down, past the (wrapped) 404 page, to the headers curl sent.
    tmux.wait_for(
        "the headers",
        |s| s.contains("curl/"),
        || tmux.type_text("J"),
    );
    tmux.key("Escape");
    tmux.wait_for("the detail closing", |s| !s.contains("┌ row 1/"), || {});

    // Help from the key map.
    tmux.type_text("?");
    tmux.wait_for(
        "help",
        |s| s.contains("Keys") && s.contains("next row"),
        || {},
    );
    tmux.key("Escape");
    tmux.wait_for("help closing", |s| !s.contains("next row"), || {});

    // `:ctx` to a context the kubeconfig lacks: the error names it, the data stays.
    tmux.type_text(":");
    tmux.type_text("ctx nosuch");
    tmux.wait_for(
        "the ctx hint",
        |s| s.contains("Enter: switch to context nosuch"),
        || {},
    );
    tmux.key("Enter");
    tmux.wait_for(
        "the ctx error",
        |s| s.contains("cannot switch cluster") && s.contains("nosuch"),
        || {},
    );
    assert!(tmux.screen().contains("/tmux-probe-"), "{}", tmux.screen());

    // Follow: F keeps the newest row selected (first: newest first), and new requests come
    // in by follow polls that fetch only the rows not shown yet.
    tmux.type_text("F");
    tmux.wait_for("FOLLOW", |s| s.contains("FOLLOW"), || {});
    curl(&format!("{base}/tmux-probe-followed"));
    tmux.wait_for(
        "the new row, selected",
        |s| {
            s.lines()
                .any(|l| l.contains('▶') && l.contains("/tmux-probe-followed"))
        },
        || {},
    );

    // Pause shows in the status bar; q quits cleanly.
    tmux.type_text("p");
    tmux.wait_for("PAUSED", |s| s.contains("PAUSED"), || {});
    tmux.type_text("q");
    tmux.wait_for("pxtop to exit", |s| s.contains("PXTOP-EXIT="), || {});
    let screen = tmux.screen();
    assert!(screen.contains("PXTOP-EXIT=0"), "{screen}");

    // The TUI logged the time from Enter to the first frame with data.
    let log = std::fs::read_to_string(Path::new(&home).join("pxtop/pxtop.log")).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("first frame after choosing the script"))
        .unwrap_or_else(|| panic!("no first-frame line in the log:\n{log}"));
    eprintln!("{line}");
    let line = log
        .lines()
        .find(|l| l.contains("incremental refresh brought new rows"))
        .unwrap_or_else(|| panic!("no incremental refresh brought rows:\n{log}"));
    eprintln!("{line}");
}
