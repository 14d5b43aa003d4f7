//! The event loop: owns the terminal, turns key presses into [`Action`]s via [`App`], and runs
//! all network work in background tasks that post messages back (ListScripts once, the chosen
//! script every refresh interval).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::Local;
use crossterm::event::{Event, EventStream};
use futures::StreamExt;
use pxtop_proto::v1::ScriptInfo;
use ratatui::DefaultTerminal;
use tokio::sync::{Notify, mpsc, watch};
use tokio::task::JoinHandle;

use super::app::{Action, App, RefreshInfo};
use super::render::{render, table_body_rows};
use super::views::Args;
use crate::client::{Client, QueryResult, ScriptSource};
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
    Result {
        script: String,
        result: Result<QueryResult, String>,
        info: RefreshInfo,
    },
}

/// The refresh task of the current script and its controls.
struct Refresher {
    task: Option<JoinHandle<()>>,
    paused: watch::Sender<bool>,
    now: Arc<Notify>,
}

impl Refresher {
    fn new() -> Self {
        Refresher {
            task: None,
            paused: watch::Sender::new(false),
            now: Arc::new(Notify::new()),
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
        let paused = self.paused.subscribe();
        let now = self.now.clone();
        self.task = Some(tokio::spawn(refresh_loop(
            client, script, args, every, tx, paused, now,
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

/// Runs `script` with `args` now and then every `every`, unless paused; `now` forces a run
/// even then.
async fn refresh_loop(
    mut client: Client,
    script: String,
    args: Args,
    every: Duration,
    tx: mpsc::Sender<Message>,
    mut paused: watch::Receiver<bool>,
    now: Arc<Notify>,
) {
    let source = ScriptSource::Name(script.clone());
    loop {
        let started = Instant::now();
        let result = client
            .execute(&source, args.iter().cloned().collect::<HashMap<_, _>>())
            .await
            .map_err(|e| e.one_line());
        if let Err(e) = &result {
            tracing::warn!(script, error = %e, "refresh failed");
        }
        let info = RefreshInfo {
            at: Local::now().naive_local(),
            took: started.elapsed(),
        };
        let message = Message::Result {
            script: script.clone(),
            result,
            info,
        };
        if tx.send(message).await.is_err() {
            return;
        }
        loop {
            tokio::select! {
                () = tokio::time::sleep(every) => if !*paused.borrow() { break },
                () = now.notified() => break,
                changed = paused.changed() => {
                    if changed.is_err() {
                        return;
                    }
                    if !*paused.borrow_and_update() {
                        break;
                    }
                }
            }
        }
    }
}

/// Opens the TUI on the terminal and runs until the user quits. The terminal is restored on
/// return, on error and on panic (ratatui's `try_init` installs the panic hook).
pub async fn run(client: Client, config: TuiConfig) -> Result<(), TuiError> {
    let mut terminal = ratatui::try_init()?;
    let result = event_loop(&mut terminal, client, config).await;
    ratatui::restore();
    result
}

async fn event_loop(
    terminal: &mut DefaultTerminal,
    client: Client,
    config: TuiConfig,
) -> Result<(), TuiError> {
    let offset = *Local::now().offset();
    let mut app = App::new(client.addr(), config.refresh, offset);
    let (tx, mut rx) = mpsc::channel::<Message>(16);

    let scripts_task = {
        let mut client = client.clone();
        let tx = tx.clone();
        tokio::spawn(async move {
            let scripts = client.list_scripts().await.map_err(|e| e.one_line());
            // The receiver only goes away when the TUI is closing.
            let _ = tx.send(Message::Scripts(scripts)).await;
        })
    };

    let mut refresher = Refresher::new();
    if let Some(script) = &config.initial_script
        && let Action::Run(name, args) = app.start_script(script)
    {
        refresher.start(client.clone(), (name, args), config.refresh, tx.clone());
    }

    let mut events = EventStream::new();
    let result = loop {
        let size = terminal.size()?;
        let area = ratatui::layout::Rect::new(0, 0, size.width, size.height);
        app.set_viewport_rows(table_body_rows(area, &app));
        terminal.draw(|frame| render(frame, &app, &config.theme))?;

        let action = tokio::select! {
            event = events.next() => match event {
                Some(Ok(Event::Key(key))) => app.handle_key(key),
                Some(Ok(_)) => Action::None,
                Some(Err(e)) => break Err(TuiError::Terminal(e)),
                None => Action::Quit,
            },
            Some(message) = rx.recv() => {
                match message {
                    Message::Scripts(s) => app.set_scripts(s),
                    Message::Result { script, result, info } => app.set_result(&script, result, info),
                }
                Action::None
            }
        };
        match action {
            Action::None => {}
            Action::Quit => break Ok(()),
            Action::Run(name, args) => {
                refresher.start(client.clone(), (name, args), config.refresh, tx.clone());
            }
            Action::ExportSvg { name, lines } => {
                let path = format!("{name}-{}.svg", Local::now().format("%Y%m%d-%H%M%S"));
                app.set_notice(export_svg(&path, &name, &lines));
            }
            Action::SetPaused(p) => {
                refresher.paused.send_replace(p);
            }
            Action::RefreshNow => refresher.now.notify_one(),
        }
    };
    scripts_task.abort();
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
