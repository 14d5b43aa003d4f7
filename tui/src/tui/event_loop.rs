//! The event loop: owns the terminal, turns key presses into [`Action`]s via [`App`], and runs
//! all network work in background tasks that post messages back (ListScripts once, the chosen
//! script every refresh interval).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Local;
use crossterm::clipboard::CopyToClipboard;
use crossterm::event::{DisableMouseCapture, EnableMouseCapture, Event, EventStream};
use futures::{FutureExt, StreamExt};
use pxtop_proto::v1::ScriptInfo;
use ratatui::DefaultTerminal;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::app::{Action, App, RefreshInfo};
use super::render::{render, table_body_area};
use super::views::Args;
use crate::client::{Client, QueryResult, ScriptSource};
use crate::cluster::commands::connect_context;
use crate::cluster::kube::ClusterRoute;
use crate::theme::Theme;

/// How the TUI starts.
#[derive(Debug, Clone)]
pub struct TuiConfig {
    /// Colours.
    pub theme: Theme,
    /// Time between refreshes.
    pub refresh: Duration,
    /// Run this script right away instead of opening the picker.
    pub initial_script: Option<String>,
    /// The namespace pxtop is deployed in, for `:ctx` (`--namespace`).
    pub namespace: String,
}

/// Failures of the terminal itself (network failures show in the status bar instead).
#[derive(Debug, thiserror::Error)]
pub enum TuiError {
    /// The terminal could not be set up, drawn to or read from.
    #[error("terminal error: {0} (is stdout a terminal? use `pxtop run` for scripts and pipes)")]
    Terminal(#[from] std::io::Error),
}

/// What background tasks report.
#[derive(Debug)]
enum Message {
    Scripts(Result<Vec<ScriptInfo>, String>),
    /// A run of the script started (the loop times it to show progress when slow).
    Started {
        script: String,
    },
    Result {
        script: String,
        result: Result<QueryResult, String>,
        info: RefreshInfo,
        /// After a failure: failures in a row and the wait before the next try.
        retry: Option<(u32, Duration)>,
        /// An incremental refresh: the rows from this time on (ns), to add to those shown.
        since: Option<i64>,
    },
    /// The run in flight was cancelled (`Esc`).
    Cancelled {
        script: String,
    },
    /// `:ctx` connected (the client, the port-forward it needs) or why it could not.
    Context(Result<Box<(Client, ClusterRoute)>, String>),
}

/// The refresh task of the current script and its controls.
struct Refresher {
    task: Option<JoinHandle<()>>,
    paused: watch::Sender<bool>,
    now: Arc<Notify>,
    cancel: Arc<Notify>,
    /// Where the next run starts ([`App::refresh_from`]) and whether it follows.
    poll: watch::Sender<Poll>,
    /// The event loop has applied the last result: the refresh loop waits for this before
    /// its next run, so results never queue up (each can be a whole table).
    applied: Arc<Notify>,
    /// A (re)started loop has not delivered a whole result yet: no incremental runs until
    /// then (after `:ctx`, the rows shown are another cluster's).
    whole_first: bool,
}

/// The first wait after a failed refresh; it doubles per failure in a row up to
/// [`MAX_BACKOFF`], and never goes below the refresh interval.
const FIRST_BACKOFF: Duration = Duration::from_secs(1);
/// The longest wait between tries while the backend is down.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// A query running this long shows progress (and `Esc` cancels it).
const SLOW_QUERY: Duration = Duration::from_millis(500);

/// The wait before the next try after `failures` failures in a row.
fn backoff(failures: u32, every: Duration) -> Duration {
    let doubled = FIRST_BACKOFF.saturating_mul(1 << failures.saturating_sub(1).min(16));
    doubled.min(MAX_BACKOFF).max(every)
}

impl Refresher {
    fn new() -> Self {
        Refresher {
            task: None,
            paused: watch::Sender::new(false),
            now: Arc::new(Notify::new()),
            cancel: Arc::new(Notify::new()),
            poll: watch::Sender::new(Poll::default()),
            applied: Arc::new(Notify::new()),
            whole_first: true,
        }
    }

    /// Tells the loop where its next run starts (`None`: whole) and whether it follows.
    /// Starting to follow polls at once rather than after the refresh interval.
    fn set_poll(&self, from: Option<i64>, follow: bool) {
        let from = from.filter(|_| !self.whole_first);
        let was = self.poll.send_replace(Poll { from, follow });
        if follow && !was.follow && from.is_some() {
            self.now.notify_one();
        }
    }

    fn start(
        &mut self,
        client: Client,
        (script, args): (String, Args),
        every: Duration,
        tx: mpsc::Sender<Message>,
    ) {
        self.stop();
        self.paused.send_replace(false);
        self.poll.send_replace(Poll::default());
        self.whole_first = true;
        self.applied = Arc::new(Notify::new());
        let controls = Controls {
            paused: self.paused.subscribe(),
            now: self.now.clone(),
            cancel: self.cancel.clone(),
            poll: self.poll.subscribe(),
            applied: self.applied.clone(),
        };
        self.task = Some(tokio::spawn(refresh_loop(
            client, script, args, every, tx, controls,
        )));
    }

    fn stop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

impl Drop for Refresher {
    fn drop(&mut self) {
        self.stop();
    }
}

/// How the event loop steers a refresh loop.
struct Controls {
    paused: watch::Receiver<bool>,
    /// Run now, even when paused.
    now: Arc<Notify>,
    /// Drop the request in flight (tonic cancels the call when its future is dropped).
    cancel: Arc<Notify>,
    /// Where the next run starts, and whether it follows.
    poll: watch::Receiver<Poll>,
    /// Notified when the event loop has applied a result.
    applied: Arc<Notify>,
}

/// How the next run of a refresh loop goes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Poll {
    /// Only rows from this time (ns) on, to add to those shown; `None`: the whole result.
    from: Option<i64>,
    /// Follow mode: runs every [`FOLLOW_EVERY`] (or the refresh interval, if shorter).
    follow: bool,
}

/// How often follow mode polls an event table for new rows (or the refresh interval, if
/// shorter).
const FOLLOW_EVERY: Duration = Duration::from_millis(250);

/// Runs `script` with `args` now and then every `every`, unless paused; after failures it
/// waits longer each time ([`backoff`]). `now` forces a run even when paused; `cancel` drops
/// the run in flight and pauses.
async fn refresh_loop(
    mut client: Client,
    script: String,
    args: Args,
    every: Duration,
    tx: mpsc::Sender<Message>,
    mut c: Controls,
) {
    let source = ScriptSource::Name(script.clone());
    let mut failures = 0u32;
    loop {
        let started = Instant::now();
        if tx
            .send(Message::Started {
                script: script.clone(),
            })
            .await
            .is_err()
        {
            return;
        }
        // An Esc that arrived after the last run finished must not cancel this one.
        let _ = c.cancel.notified().now_or_never();
        let Poll {
            from: since,
            follow,
        } = *c.poll.borrow();
        let mut run_args: HashMap<String, String> = args.iter().cloned().collect();
        if let Some(since) = since {
            run_args.insert("start_time".into(), since.to_string());
        }
        let run = client.execute_compact(&source, run_args);
        let result = tokio::select! {
            r = run => r.map_err(|e| e.one_line()),
            () = c.cancel.notified() => {
                if tx.send(Message::Cancelled { script: script.clone() }).await.is_err() {
                    return;
                }
                // Paused until the user resumes or asks for a run.
                wait(&mut c, None).await;
                continue;
            }
        };
        let retry = match &result {
            Ok(_) => {
                failures = 0;
                None
            }
            Err(e) => {
                failures += 1;
                tracing::warn!(script, error = %e, failures, "refresh failed");
                Some((failures, backoff(failures, every)))
            }
        };
        let info = RefreshInfo {
            at: Local::now().naive_local(),
            took: started.elapsed(),
        };
        let message = Message::Result {
            script: script.clone(),
            result,
            info,
            retry,
            since,
        };
        if tx.send(message).await.is_err() {
            return;
        }
        // A slow terminal or a huge result must not let results pile up in the channel.
        c.applied.notified().await;
        let every = if follow {
            every.min(FOLLOW_EVERY)
        } else {
            every
        };
        let sleep = retry.map_or(every, |(_, wait)| wait);
        if !wait(&mut c, Some(sleep)).await {
            return;
        }
    }
}

/// Waits `every` (unless paused; forever when `None` until resumed) or until a run is asked
/// for. `false`: the event loop is gone.
async fn wait(c: &mut Controls, every: Option<Duration>) -> bool {
    let paused_forever = every.is_none();
    if paused_forever {
        // Forget an old resume: only a new change resumes.
        c.paused.borrow_and_update();
    }
    loop {
        let sleep = async {
            match every {
                Some(d) => tokio::time::sleep(d).await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = sleep => if !*c.paused.borrow() { return true },
            () = c.now.notified() => return true,
            changed = c.paused.changed() => {
                if changed.is_err() {
                    return false;
                }
                if !*c.paused.borrow_and_update() {
                    return true;
                }
            }
        }
    }
}

/// Opens the TUI on the terminal and runs until the user quits. The terminal is restored on
/// return, on error and on panic (ratatui's `try_init` installs the panic hook).
pub async fn run(client: Client, config: TuiConfig) -> Result<(), TuiError> {
    let mut terminal = ratatui::try_init()?;
    // Wheel scrolling and click-to-select; Shift-drag still selects text in most terminals.
    let mouse = crossterm::execute!(std::io::stdout(), EnableMouseCapture);
    let result = event_loop(&mut terminal, client, config).await;
    if mouse.is_ok() {
        let _ = crossterm::execute!(std::io::stdout(), DisableMouseCapture);
    }
    ratatui::restore();
    result
}

/// Puts `text` on the terminal's clipboard with OSC 52 (works over SSH and in tmux with
/// `set-clipboard on`); says what happened.
fn copy_to_clipboard(text: &str, what: &str) -> String {
    match crossterm::execute!(
        std::io::stdout(),
        CopyToClipboard::to_clipboard_from(text.as_bytes())
    ) {
        Ok(()) => format!(
            "copied {what} ({} bytes) to the clipboard (OSC 52)",
            text.len()
        ),
        Err(e) => format!("cannot copy: {e}"),
    }
}

/// Asks `client` for its scripts in the background.
fn list_scripts(client: &Client, tx: &mpsc::Sender<Message>) -> JoinHandle<()> {
    let mut client = client.clone();
    let tx = tx.clone();
    tokio::spawn(async move {
        let scripts = client.list_scripts().await.map_err(|e| e.one_line());
        // The receiver only goes away when the TUI is closing.
        let _ = tx.send(Message::Scripts(scripts)).await;
    })
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    mut client: Client,
    config: TuiConfig,
) -> Result<(), TuiError> {
    let offset = *Local::now().offset();
    let mut app = App::new(client.addr(), config.refresh, offset);
    let (tx, mut rx) = mpsc::channel::<Message>(16);

    let mut scripts_task = list_scripts(&client, &tx);
    // After `:ctx`: the port-forward the client goes through (dropping it closes it).
    let mut route: Option<ClusterRoute> = None;
    let mut switching: Option<JoinHandle<()>> = None;

    let mut refresher = Refresher::new();
    if let Some(script) = &config.initial_script
        && let Action::Run(name, args) = app.start_script(script)
    {
        refresher.start(client.clone(), (name, args), config.refresh, tx.clone());
    }

    let mut events = EventStream::new();
    // When the current run started, while it runs (for the slow-query banner).
    let mut running: Option<Instant> = None;
    // A script chosen and not drawn yet: its name and when it was chosen (logged once its
    // first frame is on screen: the time from Enter to data).
    let mut first_frame: Option<(String, Instant)> = None;
    // A result was applied this turn (the refresh loop waits for it).
    let mut applied = false;
    let mut tick = tokio::time::interval(Duration::from_millis(200));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    let result = loop {
        let size = terminal.size()?;
        let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
        app.set_in_flight(running.map(|t| t.elapsed()).filter(|e| *e >= SLOW_QUERY));
        app.set_body_area(table_body_area(area, &app));
        terminal.draw(|frame| render(frame, &app, &config.theme))?;
        if let Some((script, chosen)) = &first_frame
            && app.script.as_deref() == Some(script.as_str())
            && app.last_refresh.is_some()
        {
            tracing::info!(
                script,
                ms = chosen.elapsed().as_secs_f64() * 1e3,
                "first frame after choosing the script"
            );
            first_frame = None;
        }

        let action = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => app.handle_key(key),
                Some(Ok(Event::Mouse(m))) => app.handle_mouse(m),
                Some(Ok(_)) => Action::None,
                Some(Err(e)) => break Err(TuiError::Terminal(e)),
                None => Action::Quit,
            },
            Some(message) = rx.recv() => {
                match message {
                    Message::Scripts(s) => app.set_scripts(s),
                    Message::Started { script } => {
                        if app.script.as_deref() == Some(script.as_str()) {
                            running = Some(Instant::now());
                        }
                    }
                    Message::Result { script, result, info, retry, since } => {
                        if app.script.as_deref() == Some(script.as_str()) {
                            running = None;
                        }
                        applied = true;
                        match since {
                            Some(since) => {
                                let took = info.took;
                                let added = app.append_result(&script, result, since, info);
                                if added > 0 {
                                    tracing::info!(
                                        script,
                                        added,
                                        rows = app.tables.iter().map(|t| t.num_rows()).sum::<usize>(),
                                        ms = took.as_secs_f64() * 1e3,
                                        "incremental refresh brought new rows"
                                    );
                                }
                            }
                            None => {
                                if app.script.as_deref() == Some(script.as_str())
                                    && result.is_ok()
                                {
                                    refresher.whole_first = false;
                                }
                                app.set_result(&script, result, info);
                            }
                        }
                        if let Some((failures, wait)) = retry
                            && app.script.as_deref() == Some(script.as_str())
                        {
                            app.set_retry(failures, wait);
                        }
                    }
                    Message::Cancelled { script } => {
                        if app.script.as_deref() == Some(script.as_str()) {
                            running = None;
                            app.cancelled();
                            refresher.paused.send_replace(true);
                        }
                    }
                    Message::Context(Err(e)) => {
                        app.set_notice(format!("cannot switch cluster: {e}"));
                    }
                    Message::Context(Ok(connected)) => {
                        let (c, r) = *connected;
                        client = c;
                        app.switched_backend(format!("{} ({})", r.context, client.addr()));
                        app.set_notice(format!("connected to context {}", r.context));
                        // The old port-forward closes once nothing uses it.
                        route = Some(r);
                        scripts_task.abort();
                        scripts_task = list_scripts(&client, &tx);
                        running = None;
                        if let Some(script) = app.script.clone() {
                            let args = (script, app.args.clone());
                            refresher.start(client.clone(), args, config.refresh, tx.clone());
                        }
                    }
                }
                Action::None
            }
            // Redraws the elapsed time of a slow query; idle otherwise.
            _ = tick.tick(), if running.is_some() => Action::None,
        };
        match action {
            Action::None => {}
            Action::Quit => break Ok(()),
            Action::Run(name, args) => {
                running = None;
                first_frame = app
                    .last_refresh
                    .is_none()
                    .then(|| (name.clone(), Instant::now()));
                refresher.start(client.clone(), (name, args), config.refresh, tx.clone());
            }
            Action::ExportSvg { name, lines } => {
                let path = format!("{name}-{}.svg", Local::now().format("%Y%m%d-%H%M%S"));
                app.set_notice(export_svg(&path, &name, &lines));
            }
            Action::Copy { text, what } => app.set_notice(copy_to_clipboard(&text, &what)),
            Action::SetPaused(p) => {
                refresher.paused.send_replace(p);
            }
            Action::RefreshNow => refresher.now.notify_one(),
            Action::Cancel => refresher.cancel.notify_one(),
            Action::SwitchContext(context) => {
                if let Some(t) = switching.take() {
                    t.abort();
                }
                let (tx, namespace) = (tx.clone(), config.namespace.clone());
                switching = Some(tokio::spawn(async move {
                    let connected = connect_context(context.as_deref(), &namespace)
                        .await
                        .map(Box::new)
                        .map_err(|e| e.one_line());
                    let _ = tx.send(Message::Context(connected)).await;
                }));
            }
        }
        refresher.set_poll(app.refresh_from(), app.follow);
        if std::mem::take(&mut applied) {
            refresher.applied.notify_one();
        }
    };
    scripts_task.abort();
    if let Some(t) = switching {
        t.abort();
    }
    drop(route);
    refresher.stop();
    result
}

/// Writes the flame graph to `path` (as `pxtop run -o svg` does); says what happened.
fn export_svg(path: &str, title: &str, lines: &[String]) -> String {
    let written = std::fs::File::create(path)
        .map_err(crate::output::OutputError::Io)
        .and_then(|f| {
            let mut out = std::io::BufWriter::new(f);
            crate::output::write_flamegraph_svg(&mut out, title, lines)?;
            std::io::Write::flush(&mut out).map_err(crate::output::OutputError::Io)
        });
    match written {
        Ok(()) => format!("flame graph written to {path}"),
        Err(e) => format!("cannot write {path}: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loop's controls, and the ends the tests pull: paused, now, cancel, applied.
    fn controls() -> (
        Controls,
        watch::Sender<bool>,
        Arc<Notify>,
        Arc<Notify>,
        Arc<Notify>,
    ) {
        let paused = watch::Sender::new(false);
        let now = Arc::new(Notify::new());
        let cancel = Arc::new(Notify::new());
        let applied = Arc::new(Notify::new());
        let c = Controls {
            paused: paused.subscribe(),
            now: now.clone(),
            cancel: cancel.clone(),
            poll: watch::Sender::new(Poll::default()).subscribe(),
            applied: applied.clone(),
        };
        (c, paused, now, cancel, applied)
    }

    /// A client of a loopback port nothing listens on: every run fails at once.
    fn refused() -> Client {
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        Client::new(&format!("http://127.0.0.1:{port}"), None).unwrap()
    }

    /// A refresh loop against [`refused`] every 10 ms: its task, its messages, the notify
    /// that says its last result was applied, and its pause switch (the loop ends when that
    /// is dropped).
    fn refused_loop() -> (
        JoinHandle<()>,
        mpsc::Receiver<Message>,
        Arc<Notify>,
        watch::Sender<bool>,
    ) {
        let (tx, rx) = mpsc::channel(16);
        let (c, paused, _now, _cancel, applied) = controls();
        let every = Duration::from_millis(10);
        let task = tokio::spawn(refresh_loop(
            refused(),
            "s".into(),
            Vec::new(),
            every,
            tx,
            c,
        ));
        (task, rx, applied, paused)
    }

    #[tokio::test]
    async fn a_backend_that_is_down_is_retried_with_growing_waits() {
        let (task, mut rx, applied, _paused) = refused_loop();
        let mut retries = Vec::new();
        while retries.len() < 2 {
            match rx.recv().await.unwrap() {
                Message::Result { result, retry, .. } => {
                    assert!(result.unwrap_err().contains("connection refused"));
                    retries.push(retry.unwrap());
                    applied.notify_one();
                }
                Message::Started { .. } => {}
                other => panic!("{other:?}"),
            }
        }
        task.abort();
        assert_eq!(
            retries,
            [(1, Duration::from_secs(1)), (2, Duration::from_secs(2))]
        );
    }

    #[tokio::test]
    async fn no_run_starts_until_the_last_result_is_applied() {
        let (task, mut rx, applied, _paused) = refused_loop();
        assert!(matches!(rx.recv().await, Some(Message::Started { .. })));
        assert!(matches!(rx.recv().await, Some(Message::Result { .. })));
        // The first retry is due 1 s after the failure; unapplied, it does not come.
        let waited = tokio::time::timeout(Duration::from_millis(1500), rx.recv()).await;
        assert!(
            waited.is_err(),
            "a run started before the result was applied"
        );
        applied.notify_one();
        assert!(matches!(rx.recv().await, Some(Message::Started { .. })));
        task.abort();
    }

    #[tokio::test]
    async fn cancel_drops_the_run_in_flight_and_waits_for_a_resume() {
        // A server that accepts and never answers: the run hangs until cancelled.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let _accepting = tokio::spawn(async move {
            let mut held = Vec::new();
            while let Ok((s, _)) = listener.accept().await {
                held.push(s);
            }
        });
        let client = Client::new(&format!("http://{addr}"), None).unwrap();
        let (tx, mut rx) = mpsc::channel(16);
        let (c, paused, now, cancel, _applied) = controls();
        let task = tokio::spawn(refresh_loop(
            client,
            "slow".into(),
            Vec::new(),
            Duration::from_millis(10),
            tx,
            c,
        ));
        assert!(matches!(rx.recv().await, Some(Message::Started { .. })));
        cancel.notify_one();
        assert!(matches!(rx.recv().await, Some(Message::Cancelled { .. })));
        // Paused now: the loop waits; the event loop marks it paused, then `r` runs again.
        paused.send_replace(true);
        now.notify_one();
        assert!(matches!(rx.recv().await, Some(Message::Started { .. })));
        task.abort();
    }

    #[test]
    fn backoff_doubles_up_to_the_cap_and_never_beats_the_interval() {
        let s = Duration::from_secs;
        let one = s(1);
        let waits: Vec<_> = (1..=7).map(|n| backoff(n, one)).collect();
        assert_eq!(waits, [s(1), s(2), s(4), s(8), s(16), s(30), s(30)]);
        assert_eq!(
            backoff(1, s(5)),
            s(5),
            "not faster than the refresh interval"
        );
        assert_eq!(backoff(u32::MAX, one), s(30));
    }

    #[test]
    fn flame_graph_export_writes_an_svg_and_says_where() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("cpu.svg");
        let path = path.to_str().unwrap();
        let lines = vec!["main;run;hot_loop 90".to_owned(), "main;gc 8".to_owned()];
        assert_eq!(
            export_svg(path, "perf_flamegraph", &lines),
            format!("flame graph written to {path}")
        );
        let svg = std::fs::read_to_string(path).unwrap();
        assert!(
            svg.contains("<svg") && svg.contains("hot_loop"),
            "{svg:.200}"
        );
        let bad = dir.path().join("no/such/dir/x.svg");
        let msg = export_svg(bad.to_str().unwrap(), "t", &lines);
        assert!(msg.starts_with("cannot write "), "{msg}");
    }
}
