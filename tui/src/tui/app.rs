//! The TUI's state and what keys do to it. Pure: no I/O, no clock; the event loop feeds it keys
//! and results and carries out the [`Action`]s it returns.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDateTime};
use crossterm::event::{
    KeyCode, KeyEvent, KeyEventKind, KeyModifiers, MouseButton, MouseEvent, MouseEventKind,
};
use pxtop_proto::v1::{ExecutionStats, ScriptInfo};

use super::data::{Keep, TableData};
use super::keys::{self, Command};
use super::views::{self, Args, KeyOutcome, Widget, WidgetState};
use crate::client::QueryResult;

/// What the event loop must do after a key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Nothing beyond redrawing.
    None,
    /// Leave the TUI.
    Quit,
    /// Start refreshing this script with these arguments (replacing the current one).
    Run(String, Args),
    /// Pause (`true`) or resume the refresh.
    SetPaused(bool),
    /// Refresh now, even when paused.
    RefreshNow,
    /// Stop the query in flight (a slow one the user gave up on).
    Cancel,
    /// Put this text on the clipboard (OSC 52); the label says what it was.
    Copy {
        /// The text.
        text: String,
        /// What was copied, for the status line (`column latency`).
        what: String,
    },
    /// Connect to this kubeconfig context's Kelvin (`None`: the current context) and go on
    /// with the same script there (`:ctx NAME` in the palette).
    SwitchContext(Option<String>),
    /// Write this flame graph (folded lines) as SVG; the name titles it and the file.
    ExportSvg {
        /// The output table's name.
        name: String,
        /// `stack count` lines.
        lines: Vec<String>,
    },
}

/// Which screen is showing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    /// Choosing a script.
    Picker,
    /// Watching a script's tables.
    Live,
}

/// The script palette's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picker {
    /// What was typed.
    pub query: String,
    /// Index into [`App::picker_matches`].
    pub selected: usize,
    /// The arguments form of the selected script, when open (`Tab`).
    pub form: Option<Form>,
}

/// A script's arguments as editable fields, prefilled with the defaults (or the running
/// script's values).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Form {
    /// The script.
    pub script: String,
    /// (name, value, help) per parameter, in the script's order.
    pub fields: Vec<(String, String, String)>,
    /// The field being edited.
    pub focus: usize,
}

/// How `/` matches rows.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filter {
    /// What was typed; a leading `!` keeps the rows that do NOT match the rest.
    pub text: String,
    /// Match the text as a regular expression (case-insensitive) instead of a substring.
    pub regex: bool,
}

impl Filter {
    /// No filter.
    pub fn is_empty(&self) -> bool {
        self.text.is_empty()
    }

    /// How the title shows it: `/x`, `/!x`, `re/x`.
    pub fn label(&self) -> String {
        let kind = if self.regex { "re/" } else { "/" };
        format!("{kind}{}", self.text)
    }

    /// The matcher, or why the regex does not compile.
    pub fn matcher(&self) -> Result<Matcher, String> {
        let (invert, text) = match self.text.strip_prefix('!') {
            Some(rest) => (true, rest),
            None => (false, self.text.as_str()),
        };
        let how = if self.regex {
            let re = regex::RegexBuilder::new(text)
                .case_insensitive(true)
                .build()
                .map_err(|e| {
                    e.to_string()
                        .lines()
                        .last()
                        .unwrap_or("bad regex")
                        .trim()
                        .to_owned()
                })?;
            How::Regex(re)
        } else if text.is_empty() {
            How::Substring(None)
        } else {
            let literal = regex::RegexBuilder::new(&regex::escape(text))
                .case_insensitive(true)
                .build()
                .map_err(|e| e.to_string())?;
            How::Substring(Some(literal))
        };
        Ok(Matcher { how, invert })
    }
}

/// How far back of the newest row shown an incremental refresh starts. Rows are stored
/// slightly out of time order (`time_` is a response's end; the agent stores parsed rows
/// every 100 ms), and the nodes behind Kelvin keep their own clocks.
pub const OVERLAP: Duration = Duration::from_secs(2);

/// The most rows an event table keeps when its script has no `max_rows`.
pub const MAX_EVENT_ROWS: usize = 100_000;

/// A compiled [`Filter`].
#[derive(Debug, Clone)]
pub struct Matcher {
    how: How,
    /// Keep the rows that do not match.
    pub invert: bool,
}

#[derive(Debug, Clone)]
enum How {
    /// Case-insensitive, as an escaped regex: the regex crate's literal search, with no
    /// lowercased copy of every cell. `None`: empty, everything passes.
    Substring(Option<regex::Regex>),
    Regex(regex::Regex),
}

impl Matcher {
    /// Whether every row passes (an empty substring).
    pub fn keeps_all(&self) -> bool {
        matches!(&self.how, How::Substring(None))
    }

    /// Whether one cell's text matches (before inversion: a row passes when any of its
    /// cells hits, or, inverted, when none does).
    pub fn hits(&self, text: &str) -> bool {
        match &self.how {
            How::Substring(None) => true,
            How::Substring(Some(re)) | How::Regex(re) => re.is_match(text),
        }
    }
}

/// A sort: column index and direction.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Sort {
    /// The column.
    pub column: usize,
    /// Largest first.
    pub descending: bool,
}

/// Per output table: how it is viewed. Kept across refreshes for a table of the same name.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct View {
    /// The sort, if any (else arrival order).
    pub sort: Option<Sort>,
    /// Which rows show (`/`).
    pub filter: Filter,
    /// Why the filter shows nothing: its regex does not compile.
    pub filter_error: Option<String>,
    /// The shown columns (table column indices) in display order; hidden ones are absent.
    /// Empty until the first result: then every column in the table's order.
    pub order: Vec<usize>,
    /// The current column: a position in `order` (sort, copy, move and hide act on it).
    pub column: usize,
    /// Selected position in `visible`.
    pub selected: usize,
    /// First visible position (vertical scroll).
    pub offset: usize,
    /// First shown position in `order` (horizontal scroll).
    pub first_column: usize,
    /// Row indices after filtering and sorting, in display order.
    pub visible: Vec<usize>,
    /// Show the raw table even though the table has a widget (`v` toggles).
    pub raw: bool,
    /// The widget's state (selection, zoom, ...).
    pub widget: WidgetState,
}

/// When and how fast the last refresh was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RefreshInfo {
    /// Local wall-clock time the refresh finished.
    pub at: NaiveDateTime,
    /// How long the request took.
    pub took: Duration,
}

/// The whole TUI state.
#[derive(Debug, Clone)]
pub struct App {
    /// The server address, for the status bar.
    pub addr: String,
    /// The screen showing.
    pub screen: Screen,
    /// Scripts from ListScripts.
    pub scripts: Vec<ScriptInfo>,
    /// The picker.
    pub picker: Picker,
    /// The script being refreshed.
    pub script: Option<String>,
    /// Its arguments (from a drill-down; empty: the script's defaults).
    pub args: Args,
    /// Scripts viewed before this one, most recent last (Backspace or `[` goes back).
    pub history: Vec<(String, Args)>,
    /// Scripts gone back from, most recent last (`]` goes forward).
    pub forward: Vec<(String, Args)>,
    /// Keep the newest row selected as rows arrive (`F`), and poll event tables every
    /// [`super::event_loop`]'s follow interval rather than the refresh interval.
    pub follow: bool,
    /// A query has been running this long (set by the event loop once it is slow); `Esc`
    /// cancels it.
    pub in_flight: Option<Duration>,
    /// The backend is failing: refreshes so far that failed in a row, and the wait before the
    /// next try (backoff). The last good data stays on screen under a banner.
    pub retry: Option<(u32, Duration)>,
    /// First line of the help overlay shown (it scrolls on short terminals).
    pub help_scroll: usize,
    /// A one-off message for the status bar (an export written), cleared by the next key.
    pub notice: Option<String>,
    /// The last good result's tables.
    pub tables: Vec<TableData>,
    /// One view per table.
    pub views: Vec<View>,
    /// The table shown.
    pub tab: usize,
    /// The last good result's statistics.
    pub stats: Option<ExecutionStats>,
    /// The help overlay is open.
    pub help: bool,
    /// The detail pane is open.
    pub detail: bool,
    /// First line of the detail pane shown (`J`/`K`); back to the top on another row.
    pub detail_scroll: usize,
    /// The filter being typed (`/`), if any.
    pub filter_input: Option<Filter>,
    /// Refresh is paused.
    pub paused: bool,
    /// The last successful refresh.
    pub last_refresh: Option<RefreshInfo>,
    /// The last error (a failed refresh or ListScripts); cleared by the next success.
    pub error: Option<String>,
    /// How often the script is re-run.
    pub refresh_every: Duration,
    /// Table body rows on screen (for paging), set by the event loop from the terminal size.
    pub viewport_rows: usize,
    /// Table body width in cells (for horizontal scrolling), set with `viewport_rows`.
    pub viewport_width: usize,
    /// Where the table body is on screen (for mouse clicks), set with `viewport_rows`.
    pub body_area: ratatui::layout::Rect,
    /// Offset from UTC for times.
    pub utc_offset: FixedOffset,
    /// Whether the first ListScripts answer arrived.
    pub scripts_loaded: bool,
}

impl App {
    /// A fresh app on the picker.
    pub fn new(addr: impl Into<String>, refresh_every: Duration, utc_offset: FixedOffset) -> Self {
        App {
            addr: addr.into(),
            screen: Screen::Picker,
            scripts: Vec::new(),
            picker: Picker::default(),
            script: None,
            args: Vec::new(),
            history: Vec::new(),
            forward: Vec::new(),
            follow: false,
            in_flight: None,
            retry: None,
            help_scroll: 0,
            notice: None,
            tables: Vec::new(),
            views: Vec::new(),
            tab: 0,
            stats: None,
            help: false,
            detail: false,
            detail_scroll: 0,
            filter_input: None,
            paused: false,
            last_refresh: None,
            error: None,
            refresh_every,
            viewport_rows: 20,
            viewport_width: 120,
            body_area: ratatui::layout::Rect::default(),
            utc_offset,
            scripts_loaded: false,
        }
    }

    /// ListScripts answered.
    pub fn set_scripts(&mut self, scripts: Result<Vec<ScriptInfo>, String>) {
        self.scripts_loaded = true;
        match scripts {
            Ok(mut s) => {
                s.sort_by(|a, b| a.name.cmp(&b.name));
                self.scripts = s;
                if self.script.is_none() {
                    self.error = None;
                }
            }
            Err(e) => self.error = Some(e),
        }
        self.clamp_picker();
    }

    /// Switches to the live view of `name` (as Enter in the picker does) and asks for it to run.
    pub fn start_script(&mut self, name: &str) -> Action {
        self.start_script_with(name, Vec::new())
    }

    /// Switches to the live view of `name` run with `args`, and asks for it to run.
    pub fn start_script_with(&mut self, name: &str, args: Args) -> Action {
        self.screen = Screen::Live;
        if self.script.as_deref() != Some(name) || self.args != args {
            self.script = Some(name.to_owned());
            self.args = args.clone();
            self.tables.clear();
            self.views.clear();
            self.tab = 0;
            self.stats = None;
            self.last_refresh = None;
            self.error = None;
            self.retry = None;
            self.in_flight = None;
            self.detail = false;
        }
        // Choosing a script (again) always runs it, so it is never left paused.
        self.paused = false;
        Action::Run(name.to_owned(), args)
    }

    /// Goes from the current script to `script` with `args` (a drill-down or the palette);
    /// Backspace comes back, and the forward history is dropped, as in a browser.
    pub fn drill(&mut self, script: String, args: Args) -> Action {
        if let Some(current) = self.script.clone()
            && (current != script || self.args != args)
        {
            self.history.push((current, self.args.clone()));
            self.forward.clear();
        }
        self.start_script_with(&script, args)
    }

    /// Back to the script viewed before, if any.
    fn go_back(&mut self) -> Option<Action> {
        let (script, args) = self.history.pop()?;
        if let Some(current) = self.script.clone() {
            self.forward.push((current, self.args.clone()));
        }
        Some(self.start_script_with(&script, args))
    }

    /// Forward again after going back, if any.
    fn go_forward(&mut self) -> Option<Action> {
        let (script, args) = self.forward.pop()?;
        if let Some(current) = self.script.clone() {
            self.history.push((current, self.args.clone()));
        }
        Some(self.start_script_with(&script, args))
    }

    /// The script and its arguments as one line (`px/service service=cart`).
    pub fn script_label(&self) -> Option<String> {
        let script = self.script.as_ref()?;
        let mut out = script.clone();
        for (k, v) in &self.args {
            out.push_str(&format!(" {k}={v}"));
        }
        Some(out)
    }

    /// The widget drawn for the shown table (none when it has none, or `v` chose the table).
    pub fn current_widget(&self) -> Option<(&Widget, &WidgetState)> {
        let (table, view) = self.current()?;
        match &table.widget {
            Some(Ok(w)) if !view.raw => Some((w, &view.widget)),
            _ => None,
        }
    }

    fn flame_active(&self) -> bool {
        matches!(self.current_widget(), Some((Widget::Flame(_), _)))
    }

    /// A key for the shown widget; `None` when the table keys should have it.
    fn widget_key(&mut self, code: KeyCode) -> Option<Action> {
        let table = self.tables.get(self.tab)?;
        let view = self.views.get_mut(self.tab)?;
        let Some(Ok(widget)) = &table.widget else {
            return None;
        };
        if view.raw {
            return None;
        }
        match views::handle_key(widget, &mut view.widget, code) {
            KeyOutcome::Handled => Some(Action::None),
            KeyOutcome::Drill(script, args) => Some(self.drill(script, args)),
            KeyOutcome::ExportSvg => match widget {
                Widget::Flame(f) => Some(Action::ExportSvg {
                    name: table.name.clone(),
                    lines: f.folded_lines(),
                }),
                _ => Some(Action::None),
            },
            KeyOutcome::Ignored => {
                // Table-only keys (sorting, the detail pane, row movement) do nothing here.
                let shared = matches!(
                    code,
                    KeyCode::Char('q' | '?' | ':' | 'p' | 'r' | 'v' | '[' | ']' | '1'..='9')
                        | KeyCode::Esc
                        | KeyCode::Tab
                        | KeyCode::BackTab
                        | KeyCode::Backspace
                ) || (code == KeyCode::Char('/')
                    && matches!(widget, Widget::Flame(_)));
                (!shared).then_some(Action::None)
            }
        }
    }

    /// Shows a message in the status bar until the next key.
    pub fn set_notice(&mut self, notice: impl Into<String>) {
        self.notice = Some(notice.into());
    }

    /// A refresh of `script` finished. Results of a script no longer shown are dropped; a
    /// failure keeps the last good data and shows the error.
    pub fn set_result(
        &mut self,
        script: &str,
        result: Result<QueryResult, String>,
        info: RefreshInfo,
    ) {
        if self.script.as_deref() != Some(script) {
            return;
        }
        self.in_flight = None;
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        self.error = None;
        self.retry = None;
        self.last_refresh = Some(info);
        let shown = self.tables.get(self.tab).map(|t| t.name.clone());
        let old: Vec<(String, View)> = self
            .tables
            .drain(..)
            .map(|t| t.name)
            .zip(self.views.drain(..))
            .collect();
        for table in &result.tables {
            let data = TableData::from_result(table, self.utc_offset);
            let view = match old.iter().find(|(n, _)| *n == data.name) {
                Some((_, v)) => View {
                    visible: Vec::new(),
                    ..v.clone()
                },
                None => View {
                    sort: data
                        .default_sort
                        .map(|(column, descending)| Sort { column, descending }),
                    ..View::default()
                },
            };
            self.tables.push(data);
            self.views.push(view);
        }
        self.tab = shown
            .and_then(|n| self.tables.iter().position(|t| t.name == n))
            .unwrap_or(0);
        self.stats = result.stats;
        for i in 0..self.tables.len() {
            self.recompute(i);
        }
        if self.follow {
            self.select_newest();
        }
    }

    /// Where the next refresh of the current script starts (ns since the epoch), or `None`
    /// when it runs whole. Event scripts refresh incrementally: every table of the script is
    /// an event table ([`TableData::is_event_log`]: shown as a table, sorted by its `time_`)
    /// and the script takes `start_time`. The refresh asks for rows from the newest shown on,
    /// less [`OVERLAP`] (rows already shown are recognised and dropped), so a refresh
    /// brings only new rows and the table is never held twice.
    pub fn refresh_from(&self) -> Option<i64> {
        if self.tables.is_empty() {
            return None;
        }
        self.script_param("start_time")?;
        let mut newest = i64::MAX;
        for table in &self.tables {
            if !table.is_event_log() {
                return None;
            }
            newest = newest.min(table.newest_time()?);
        }
        Some(newest.saturating_sub(OVERLAP.as_nanos() as i64))
    }

    /// The current script's parameter `name`, if it takes one.
    fn script_param(&self, name: &str) -> Option<&pxtop_proto::v1::ScriptParam> {
        let script = self
            .scripts
            .iter()
            .find(|s| Some(&s.name) == self.script.as_ref())?;
        script.params.iter().find(|p| p.name == name)
    }

    /// The current value of the script's parameter `name`: the argument given, else its
    /// default.
    fn param_value(&self, name: &str) -> Option<String> {
        match self.args.iter().find(|(k, _)| k == name) {
            Some((_, v)) => Some(v.clone()),
            None => Some(self.script_param(name)?.default_value.clone()),
        }
    }

    /// What an incrementally refreshed table keeps, as a whole run would return it: the
    /// newest `max_rows` (argument or default; else [`MAX_EVENT_ROWS`]), none older than
    /// `start_time` resolved at `now_ns` (this machine's clock).
    pub fn keep(&self, now_ns: i64) -> Keep {
        let newest = self
            .param_value("max_rows")
            .and_then(|v| v.trim().parse().ok())
            .filter(|&n: &usize| n > 0)
            .unwrap_or(MAX_EVENT_ROWS);
        let not_before = self
            .param_value("start_time")
            .and_then(|v| pxtop_engine::parse_time(&v, now_ns).ok());
        Keep { newest, not_before }
    }

    /// An incremental refresh of `script` from `since` finished: its new rows join the
    /// tables shown and rows out of the script's window or count leave (see
    /// [`TableData::append`]). A table that does not match is replaced instead. Returns the
    /// rows added.
    pub fn append_result(
        &mut self,
        script: &str,
        result: Result<QueryResult, String>,
        since: i64,
        info: RefreshInfo,
    ) -> usize {
        if self.script.as_deref() != Some(script) {
            return 0;
        }
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.set_result(script, Err(e), info);
                return 0;
            }
        };
        let now_ns = chrono::Utc::now().timestamp_nanos_opt().unwrap_or(i64::MAX);
        let keep = self.keep(now_ns);
        let mut updated = Vec::new();
        let mut added = 0;
        for table in &result.tables {
            let appended = self
                .tables
                .iter()
                .position(|t| t.name == table.name)
                .and_then(|i| {
                    let shown = self.tables.get_mut(i)?;
                    let before = shown.num_rows();
                    let n = shown.append(table, since, keep)?;
                    Some((i, n, n > 0 || shown.num_rows() != before))
                });
            match appended {
                Some((i, n, changed)) => {
                    // Unchanged (no traffic): no re-filtering and re-sorting of every row.
                    if changed {
                        updated.push(i);
                    }
                    added += n;
                }
                None => {
                    let n = result.num_rows();
                    self.set_result(script, Ok(result), info);
                    return n;
                }
            }
        }
        self.in_flight = None;
        self.error = None;
        self.retry = None;
        self.last_refresh = Some(info);
        self.stats = result.stats;
        for i in updated {
            self.recompute(i);
        }
        if self.follow {
            self.select_newest();
        }
        added
    }

    /// Whether the current table shows its newest rows first (sorted by `time_`, descending):
    /// then follow mode keeps the first row selected, else the last.
    fn newest_first(&self) -> bool {
        self.current().is_some_and(|(table, view)| {
            view.sort
                .is_some_and(|s| s.descending && Some(s.column) == table.time_column())
        })
    }

    /// Selects the newest row: the first when newest come first, else the last.
    fn select_newest(&mut self) {
        let end = !self.newest_first();
        self.select_at(end);
    }

    /// A refresh failed and the next try is `wait` away (`failures` in a row so far).
    pub fn set_retry(&mut self, failures: u32, wait: Duration) {
        self.retry = Some((failures, wait));
    }

    /// A query has been running for `elapsed` (`None`: none is, or it is not slow yet).
    pub fn set_in_flight(&mut self, elapsed: Option<Duration>) {
        self.in_flight = elapsed;
    }

    /// The query in flight was cancelled: refreshing pauses so it does not start again.
    pub fn cancelled(&mut self) {
        self.in_flight = None;
        self.paused = true;
        self.notice = Some("query cancelled; refresh paused (p resumes, r runs it again)".into());
    }

    /// The table shown and its view.
    pub fn current(&self) -> Option<(&TableData, &View)> {
        Some((self.tables.get(self.tab)?, self.views.get(self.tab)?))
    }

    /// The selected row's index in its table, if any.
    pub fn selected_index(&self) -> Option<usize> {
        let (_, view) = self.current()?;
        view.visible.get(view.selected).copied()
    }

    /// The selected row's cells, formatted, if any.
    pub fn selected_row(&self) -> Option<Vec<super::data::Cell>> {
        let (table, _) = self.current()?;
        table.row(self.selected_index()?)
    }

    /// The current column's table index.
    pub fn current_column(&self) -> Option<usize> {
        let (_, view) = self.current()?;
        view.order.get(view.column).copied()
    }

    /// The selected row's cell in the current column, with the column's name.
    pub fn selected_cell(&self) -> Option<(&str, super::data::Cell)> {
        let (table, _) = self.current()?;
        let column = self.current_column()?;
        let cell = table.cell(self.selected_index()?, column)?;
        Some((table.columns.get(column)?.name.as_str(), cell))
    }

    /// Scripts matching the picker's query, best first: substring matches of the name
    /// (earliest first), then of the description, then of an argument's name, then fuzzy
    /// (in-order) matches of the name.
    pub fn picker_matches(&self) -> Vec<&ScriptInfo> {
        let query = self.picker.query.to_lowercase();
        let mut ranked: Vec<(usize, usize, &ScriptInfo)> = self
            .scripts
            .iter()
            .enumerate()
            .filter_map(|(i, s)| match_rank(&query, s).map(|r| (r, i, s)))
            .collect();
        ranked.sort_by_key(|(r, i, _)| (*r, *i));
        ranked.into_iter().map(|(_, _, s)| s).collect()
    }

    /// `ctx NAME` typed in the palette: the context to switch to (`Some(None)`: the
    /// kubeconfig's current one). `None`: the query is a script search.
    pub fn context_command(&self) -> Option<Option<String>> {
        let q = self.picker.query.trim_start();
        let rest = q.strip_prefix("ctx")?;
        if !(rest.is_empty() || rest.starts_with(' ')) {
            return None;
        }
        let name = rest.trim();
        Some((!name.is_empty()).then(|| name.to_owned()))
    }

    /// Now talking to another backend (after `:ctx`): the status bar names it, its scripts
    /// are asked for again, and the old backend's failures are forgotten.
    pub fn switched_backend(&mut self, label: impl Into<String>) {
        self.addr = label.into();
        self.scripts_loaded = false;
        self.error = None;
        self.retry = None;
    }

    /// The script under the picker's cursor.
    pub fn picker_selected(&self) -> Option<&ScriptInfo> {
        self.picker_matches().get(self.picker.selected).copied()
    }

    fn clamp_picker(&mut self) {
        let n = self.picker_matches().len();
        self.picker.selected = self.picker.selected.min(n.saturating_sub(1));
    }

    /// Opens the picker (`:` / Ctrl-P).
    pub fn open_picker(&mut self) {
        self.screen = Screen::Picker;
        self.picker = Picker::default();
        // Start on the running script so Enter goes straight back.
        if let Some(script) = &self.script
            && let Some(i) = self.picker_matches().iter().position(|s| &s.name == script)
        {
            self.picker.selected = i;
        }
        self.help = false;
    }

    /// Sets how many table rows fit on screen (for paging and scrolling).
    pub fn set_viewport_rows(&mut self, rows: usize) {
        self.viewport_rows = rows.max(1);
        let tab = self.tab;
        self.scroll_into_view(tab);
    }

    /// Sets the table body's place on screen: rows for paging, width for horizontal
    /// scrolling, the whole area for mouse clicks.
    pub fn set_body_area(&mut self, area: ratatui::layout::Rect) {
        self.body_area = area;
        self.viewport_width = usize::from(area.width)
            .saturating_sub(super::data::MARKER_WIDTH)
            .max(1);
        self.set_viewport_rows(usize::from(area.height));
    }

    /// Re-filters and re-sorts table `i`, keeping the selection in range.
    fn recompute(&mut self, i: usize) {
        let (Some(table), Some(view)) = (self.tables.get(i), self.views.get_mut(i)) else {
            return;
        };
        let n_columns = table.columns.len();
        if view.order.is_empty() || view.order.iter().any(|&c| c >= n_columns) {
            view.order = (0..n_columns).collect();
        }
        match view.filter.matcher() {
            Ok(m) => {
                view.visible = visible_rows(table, view.sort, &m);
                view.filter_error = None;
            }
            Err(e) => {
                view.visible.clear();
                view.filter_error = Some(e);
            }
        }
        let n = view.visible.len();
        view.selected = view.selected.min(n.saturating_sub(1));
        view.column = view.column.min(view.order.len().saturating_sub(1));
        view.first_column = view.first_column.min(view.column);
        self.scroll_into_view(i);
    }

    /// Scrolls columns so the current one shows.
    fn column_into_view(&mut self) {
        let width = self.viewport_width;
        let (Some(table), Some(view)) = (self.tables.get(self.tab), self.views.get_mut(self.tab))
        else {
            return;
        };
        if view.column < view.first_column {
            view.first_column = view.column;
        }
        let natural = |from: usize| {
            super::data::columns_in_view(table, &view.order, view.sort, from, usize::MAX)
                .first()
                .map_or(0, |c| c.1)
        };
        let want = natural(view.column);
        while view.first_column < view.column {
            let shown = super::data::columns_in_view(
                table,
                &view.order,
                view.sort,
                view.first_column,
                width,
            );
            // Done once the current column shows whole (or is cut only by the screen).
            let at = view.column - view.first_column;
            if shown.get(at).is_some_and(|c| c.1 >= want.min(width)) {
                break;
            }
            view.first_column += 1;
        }
    }

    fn move_column_cursor(&mut self, delta: isize) {
        if let Some(v) = self.view_mut() {
            let last = v.order.len().saturating_sub(1);
            v.column = v.column.saturating_add_signed(delta).min(last);
        }
        self.column_into_view();
    }

    /// `<` / `>`: the current column swaps places with its neighbour and stays current.
    fn move_column(&mut self, delta: isize) {
        if let Some(v) = self.view_mut() {
            let to = v.column.saturating_add_signed(delta);
            if to < v.order.len() && to != v.column {
                v.order.swap(v.column, to);
                v.column = to;
            }
        }
        self.column_into_view();
    }

    /// `-`: hides the current column (the last one stays).
    fn hide_column(&mut self) -> Option<String> {
        let tab = self.tab;
        let name = {
            let (table, view) = self.current()?;
            if view.order.len() <= 1 {
                return Some("the last column stays shown".into());
            }
            table
                .columns
                .get(*view.order.get(view.column)?)?
                .name
                .clone()
        };
        let v = self.view_mut()?;
        v.order.remove(v.column);
        self.recompute(tab);
        self.column_into_view();
        Some(format!("column {name} hidden (+ shows it again)"))
    }

    /// `+`: shows hidden columns again, after the shown ones, in the table's order.
    fn show_columns(&mut self) {
        let n = self.current().map_or(0, |(t, _)| t.columns.len());
        if let Some(v) = self.view_mut() {
            for c in 0..n {
                if !v.order.contains(&c) {
                    v.order.push(c);
                }
            }
        }
    }

    fn scroll_into_view(&mut self, i: usize) {
        let rows = self.viewport_rows;
        let Some(view) = self.views.get_mut(i) else {
            return;
        };
        let n = view.visible.len();
        if view.selected < view.offset {
            view.offset = view.selected;
        } else if view.selected >= view.offset + rows {
            view.offset = view.selected + 1 - rows;
        }
        // Don't leave blank space below the last row when rows could fill it.
        view.offset = view.offset.min(n.saturating_sub(rows));
    }

    fn view_mut(&mut self) -> Option<&mut View> {
        self.views.get_mut(self.tab)
    }

    fn move_selection(&mut self, delta: isize) {
        self.detail_scroll = 0;
        let Some(view) = self.view_mut() else {
            return;
        };
        let last = view.visible.len().saturating_sub(1);
        view.selected = view.selected.saturating_add_signed(delta).min(last);
        let tab = self.tab;
        self.scroll_into_view(tab);
    }

    fn select_at(&mut self, end: bool) {
        self.detail_scroll = 0;
        let Some(view) = self.view_mut() else {
            return;
        };
        view.selected = if end {
            view.visible.len().saturating_sub(1)
        } else {
            0
        };
        let tab = self.tab;
        self.scroll_into_view(tab);
    }

    /// `s`: sort by the current column (ascending); again on the same column: descending;
    /// a third time: arrival order.
    pub fn cycle_sort(&mut self) {
        let tab = self.tab;
        let Some(column) = self.current_column() else {
            return;
        };
        let Some(view) = self.view_mut() else {
            return;
        };
        view.sort = match view.sort {
            Some(s) if s.column == column && !s.descending => Some(Sort {
                column,
                descending: true,
            }),
            Some(s) if s.column == column => None,
            _ => Some(Sort {
                column,
                descending: false,
            }),
        };
        self.recompute(tab);
    }

    /// `S`: reverse the sort (sorting by the current column when there was none).
    pub fn reverse_sort(&mut self) {
        let tab = self.tab;
        let Some(column) = self.current_column() else {
            return;
        };
        let Some(view) = self.view_mut() else {
            return;
        };
        view.sort = Some(match view.sort {
            Some(s) => Sort {
                descending: !s.descending,
                ..s
            },
            None => Sort {
                column,
                descending: true,
            },
        });
        self.recompute(tab);
    }

    fn set_filter(&mut self, filter: Filter) {
        let tab = self.tab;
        if self.flame_active() {
            if let Some(view) = self.view_mut() {
                view.widget.flame.search = filter.text;
            }
            return;
        }
        if let Some(view) = self.view_mut() {
            view.filter = filter;
        }
        self.recompute(tab);
    }

    fn switch_tab(&mut self, forward: bool) {
        let n = self.tables.len();
        if n > 1 {
            self.tab = if forward {
                (self.tab + 1) % n
            } else {
                (self.tab + n - 1) % n
            };
        }
    }

    /// Handles one key; returns what the event loop must do.
    pub fn handle_key(&mut self, key: KeyEvent) -> Action {
        // Key releases and repeats on terminals that report them are not presses.
        if key.kind == KeyEventKind::Release {
            return Action::None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Action::Quit;
        }
        // Alt-letters are not bindings; an Esc typed just before a letter can arrive as one,
        // and acting on the letter alone would be a surprise.
        if key.modifiers.contains(KeyModifiers::ALT) {
            return Action::None;
        }
        self.notice = None;
        if self.help {
            match key.code {
                KeyCode::Char('?' | 'q') | KeyCode::Esc | KeyCode::Enter => self.help = false,
                KeyCode::Char('j') | KeyCode::Down => self.help_scroll += 1,
                KeyCode::Char('k') | KeyCode::Up => {
                    self.help_scroll = self.help_scroll.saturating_sub(1);
                }
                KeyCode::PageDown | KeyCode::Char(' ') => self.help_scroll += 10,
                KeyCode::PageUp => self.help_scroll = self.help_scroll.saturating_sub(10),
                KeyCode::Char('g') | KeyCode::Home => self.help_scroll = 0,
                _ => {}
            }
            return Action::None;
        }
        match self.screen {
            Screen::Picker => self.picker_key(key, ctrl),
            Screen::Live => self.live_key(key, ctrl),
        }
    }

    /// A mouse event: the wheel scrolls (rows, or the palette's list), a left click selects
    /// the row and column under it.
    pub fn handle_mouse(&mut self, event: MouseEvent) -> Action {
        const WHEEL_ROWS: isize = 3;
        let wheel = match event.kind {
            MouseEventKind::ScrollDown => Some(WHEEL_ROWS),
            MouseEventKind::ScrollUp => Some(-WHEEL_ROWS),
            _ => None,
        };
        if self.help {
            if let Some(d) = wheel {
                self.help_scroll = self.help_scroll.saturating_add_signed(d);
            }
            return Action::None;
        }
        match (self.screen, wheel) {
            (Screen::Picker, Some(d)) => {
                let n = self.picker_matches().len();
                self.picker.selected = self
                    .picker
                    .selected
                    .saturating_add_signed(d.signum())
                    .min(n.saturating_sub(1));
            }
            (Screen::Live, Some(d)) if self.current_widget().is_none() => {
                if (d < 0) != self.newest_first() {
                    self.follow = false;
                }
                self.move_selection(d);
            }
            (Screen::Live, None)
                if event.kind == MouseEventKind::Down(MouseButton::Left)
                    && self.current_widget().is_none() =>
            {
                self.click(event.column, event.row);
            }
            _ => {}
        }
        Action::None
    }

    /// Selects the row (and column) at screen cell (`x`, `y`), if it is in the table body; a
    /// click on a column's header sorts by it, as `s` does (again: descending, then off).
    fn click(&mut self, x: u16, y: u16) {
        let area = self.body_area;
        let header = area.y.checked_sub(1).is_some_and(|h| h == y)
            && (area.x..area.x.saturating_add(area.width)).contains(&x);
        if !header && !area.contains(ratatui::layout::Position { x, y }) {
            return;
        }
        let width = self.viewport_width;
        let tab = self.tab;
        let (Some(table), Some(view)) = (self.tables.get(tab), self.views.get_mut(tab)) else {
            return;
        };
        // The body starts after the selection marker; columns are one cell apart.
        let mut left = usize::from(area.x) + super::data::MARKER_WIDTH;
        let shown =
            super::data::columns_in_view(table, &view.order, view.sort, view.first_column, width);
        let mut column = None;
        for (position, (_, w)) in (view.first_column..).zip(shown) {
            if usize::from(x) < left + w {
                if usize::from(x) >= left {
                    column = Some(position);
                }
                break;
            }
            left += w + 1;
        }
        if header {
            if let Some(position) = column {
                view.column = position;
                self.cycle_sort();
            }
            return;
        }
        let row = view.offset + usize::from(y - area.y);
        if row < view.visible.len() {
            view.selected = row;
            self.follow = false;
        }
        if let Some(position) = column {
            view.column = position;
        }
        self.scroll_into_view(tab);
    }

    fn picker_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        if self.picker.form.is_some() {
            return self.form_key(key, ctrl);
        }
        let n = self.picker_matches().len();
        match key.code {
            KeyCode::Esc => {
                if self.script.is_some() {
                    self.screen = Screen::Live;
                    Action::None
                } else {
                    Action::Quit
                }
            }
            KeyCode::Enter => {
                if let Some(context) = self.context_command() {
                    let shown = context.as_deref().unwrap_or("the current context");
                    self.notice = Some(format!("connecting to {shown}…"));
                    if self.script.is_some() {
                        self.screen = Screen::Live;
                    }
                    return Action::SwitchContext(context);
                }
                match self.picker_selected().map(|s| s.name.clone()) {
                    Some(name) => self.drill(name, Vec::new()),
                    None => Action::None,
                }
            }
            KeyCode::Tab => {
                self.open_form();
                Action::None
            }
            KeyCode::Up => {
                self.picker.selected = self.picker.selected.saturating_sub(1);
                Action::None
            }
            KeyCode::Char('k' | 'p') if ctrl => {
                self.picker.selected = self.picker.selected.saturating_sub(1);
                Action::None
            }
            KeyCode::Down => {
                self.picker.selected = (self.picker.selected + 1).min(n.saturating_sub(1));
                Action::None
            }
            KeyCode::Char('j' | 'n') if ctrl => {
                self.picker.selected = (self.picker.selected + 1).min(n.saturating_sub(1));
                Action::None
            }
            KeyCode::Home => {
                self.picker.selected = 0;
                Action::None
            }
            KeyCode::End => {
                self.picker.selected = n.saturating_sub(1);
                Action::None
            }
            KeyCode::Backspace => {
                self.picker.query.pop();
                self.picker.selected = 0;
                Action::None
            }
            KeyCode::Char('u') if ctrl => {
                self.picker.query.clear();
                self.picker.selected = 0;
                Action::None
            }
            KeyCode::Char('?') if self.picker.query.is_empty() => {
                self.help = true;
                Action::None
            }
            KeyCode::Char(c) if !ctrl => {
                self.picker.query.push(c);
                self.picker.selected = 0;
                Action::None
            }
            _ => Action::None,
        }
    }

    /// Opens the arguments form of the selected script: its parameters with their defaults,
    /// or the values it runs with now when it is the current script.
    fn open_form(&mut self) {
        let Some(script) = self.picker_selected() else {
            return;
        };
        let current = (self.script.as_deref() == Some(script.name.as_str())).then_some(&self.args);
        let fields = script
            .params
            .iter()
            .map(|p| {
                let value = current
                    .and_then(|a| a.iter().find(|(k, _)| *k == p.name))
                    .map_or_else(|| p.default_value.clone(), |(_, v)| v.clone());
                (p.name.clone(), value, p.help.clone())
            })
            .collect();
        self.picker.form = Some(Form {
            script: script.name.clone(),
            fields,
            focus: 0,
        });
    }

    fn form_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        let Some(form) = self.picker.form.as_mut() else {
            return Action::None;
        };
        let n = form.fields.len();
        match key.code {
            KeyCode::Esc => self.picker.form = None,
            KeyCode::Enter => {
                let Some(form) = self.picker.form.take() else {
                    return Action::None;
                };
                let args = form.fields.into_iter().map(|(k, v, _)| (k, v)).collect();
                return self.drill(form.script, args);
            }
            KeyCode::Tab | KeyCode::Down if n > 0 => form.focus = (form.focus + 1) % n,
            KeyCode::BackTab | KeyCode::Up if n > 0 => form.focus = (form.focus + n - 1) % n,
            KeyCode::Backspace => {
                if let Some(f) = form.fields.get_mut(form.focus) {
                    f.1.pop();
                }
            }
            KeyCode::Char('u') if ctrl => {
                if let Some(f) = form.fields.get_mut(form.focus) {
                    f.1.clear();
                }
            }
            KeyCode::Char(c) if !ctrl => {
                if let Some(f) = form.fields.get_mut(form.focus) {
                    f.1.push(c);
                }
            }
            _ => {}
        }
        Action::None
    }

    fn filter_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        let Some(mut input) = self.filter_input.take() else {
            return Action::None;
        };
        match key.code {
            KeyCode::Esc => {
                self.set_filter(Filter::default());
                return Action::None;
            }
            KeyCode::Enter => return Action::None,
            KeyCode::Backspace => {
                input.text.pop();
            }
            KeyCode::Char('u') if ctrl => input.text.clear(),
            KeyCode::Char('r') if ctrl => input.regex = !input.regex,
            KeyCode::Char(c) if !ctrl => input.text.push(c),
            _ => {}
        }
        self.set_filter(input.clone());
        self.filter_input = Some(input);
        Action::None
    }

    fn live_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        if self.filter_input.is_some() {
            return self.filter_key(key, ctrl);
        }
        if !ctrl && let Some(action) = self.widget_key(key.code) {
            return action;
        }
        let Some(command) = keys::lookup(&key) else {
            return Action::None;
        };
        if let KeyCode::Char(c @ '1'..='9') = key.code {
            let i = (c as usize) - ('1' as usize);
            if i < self.tables.len() {
                self.tab = i;
            }
            return Action::None;
        }
        self.run(command)
    }

    /// Carries out a table-view command.
    fn run(&mut self, command: Command) -> Action {
        let page = self.viewport_rows.max(1) as isize;
        let away = if self.newest_first() {
            matches!(
                command,
                Command::Down | Command::PageDown | Command::HalfDown | Command::Bottom
            )
        } else {
            matches!(
                command,
                Command::Up | Command::PageUp | Command::HalfUp | Command::Top
            )
        };
        if away {
            self.follow = false;
        }
        match command {
            Command::Down => self.move_selection(1),
            Command::Up => self.move_selection(-1),
            Command::PageDown => self.move_selection(page),
            Command::PageUp => self.move_selection(-page),
            Command::HalfDown => self.move_selection((page / 2).max(1)),
            Command::HalfUp => self.move_selection(-(page / 2).max(1)),
            Command::Top => self.select_at(false),
            Command::Bottom => self.select_at(true),
            Command::ColumnLeft => self.move_column_cursor(-1),
            Command::ColumnRight => self.move_column_cursor(1),
            Command::MoveColumnLeft => self.move_column(-1),
            Command::MoveColumnRight => self.move_column(1),
            Command::HideColumn => {
                if let Some(n) = self.hide_column() {
                    self.notice = Some(n);
                }
            }
            Command::ShowColumns => self.show_columns(),
            Command::Detail => {
                self.detail = !self.detail && self.selected_index().is_some();
                self.detail_scroll = 0;
            }
            Command::DetailDown => self.detail_scroll += 1,
            Command::DetailUp => self.detail_scroll = self.detail_scroll.saturating_sub(1),
            Command::Sort => self.cycle_sort(),
            Command::ReverseSort => self.reverse_sort(),
            Command::Filter => {
                let current = if self.flame_active() {
                    self.current().map(|(_, v)| Filter {
                        text: v.widget.flame.search.clone(),
                        regex: false,
                    })
                } else {
                    self.current().map(|(_, v)| v.filter.clone())
                };
                self.filter_input = Some(current.unwrap_or_default());
            }
            Command::Copy => {
                let Some((column, cell)) = self.selected_cell() else {
                    self.notice = Some("nothing to copy".into());
                    return Action::None;
                };
                return Action::Copy {
                    text: cell.text.to_string(),
                    what: format!("column {column}"),
                };
            }
            Command::Follow => {
                self.follow = !self.follow;
                if self.follow {
                    self.select_newest();
                }
            }
            Command::NextTable => self.switch_tab(true),
            Command::PrevTable => self.switch_tab(false),
            Command::Table => {}
            Command::ToggleWidget => {
                if let Some(view) = self.views.get_mut(self.tab)
                    && matches!(
                        self.tables.get(self.tab).map(|t| &t.widget),
                        Some(Some(Ok(_)))
                    )
                {
                    view.raw = !view.raw;
                    self.detail = false;
                }
            }
            Command::Back => return self.go_back().unwrap_or(Action::None),
            Command::Forward => return self.go_forward().unwrap_or(Action::None),
            Command::Pause => {
                self.paused = !self.paused;
                return Action::SetPaused(self.paused);
            }
            Command::Refresh => return Action::RefreshNow,
            Command::Palette => self.open_picker(),
            Command::Help => {
                self.help = true;
                self.help_scroll = 0;
            }
            Command::Escape => {
                let has_filter = self.current().is_some_and(|(_, v)| !v.filter.is_empty());
                if self.detail {
                    self.detail = false;
                } else if self.in_flight.is_some() {
                    return Action::Cancel;
                } else if has_filter {
                    self.set_filter(Filter::default());
                } else if let Some(action) = self.go_back() {
                    return action;
                } else {
                    return Action::Quit;
                }
            }
            Command::Quit => {
                if self.detail {
                    self.detail = false;
                } else {
                    return Action::Quit;
                }
            }
        }
        Action::None
    }
}

/// How well `script` matches `query` (lowercase); lower is better, `None` is no match.
fn match_rank(query: &str, script: &ScriptInfo) -> Option<usize> {
    if query.is_empty() {
        return Some(0);
    }
    let name = script.name.to_lowercase();
    if let Some(pos) = name.find(query) {
        return Some(pos);
    }
    if script.description.to_lowercase().contains(query) {
        return Some(1_000);
    }
    if script
        .params
        .iter()
        .any(|p| p.name.to_lowercase().contains(query))
    {
        return Some(1_500);
    }
    // In-order characters ("hd" finds "http_data"): the usual picker fuzziness, small enough
    // to write here rather than pull in a matcher crate.
    let mut chars = name.chars();
    query
        .chars()
        .all(|q| chars.any(|c| c == q))
        .then_some(2_000)
}

/// Row indices `filter` keeps, in `sort` order (stable: equal keys keep arrival order).
pub fn visible_rows(table: &TableData, sort: Option<Sort>, filter: &Matcher) -> Vec<usize> {
    let mut rows: Vec<usize> = if filter.keeps_all() {
        (0..table.num_rows()).collect()
    } else {
        let hits = table.rows_where_any(|text| filter.hits(text));
        (0..table.num_rows())
            .filter(|&i| hits.get(i).copied().unwrap_or(false) != filter.invert)
            .collect()
    };
    if let Some(sort) = sort
        && sort.column < table.columns.len()
    {
        table.sort_rows(&mut rows, sort.column, sort.descending);
    }
    rows
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, RecordBatch, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use chrono::NaiveDate;

    use super::*;
    use crate::client::ResultTable;

    fn result(names: &[&str], latencies: &[Option<i64>]) -> QueryResult {
        let schema = Arc::new(Schema::new(vec![
            Field::new("req_path", DataType::Utf8, false),
            Field::new("latency", DataType::Int64, true),
        ]));
        let batch = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(StringArray::from(names.to_vec())),
                Arc::new(Int64Array::from(latencies.to_vec())),
            ],
        )
        .unwrap();
        QueryResult {
            tables: vec![ResultTable {
                name: "t".into(),
                widget_json: String::new(),
                schema,
                batches: vec![batch],
            }],
            stats: None,
        }
    }

    fn info() -> RefreshInfo {
        RefreshInfo {
            at: NaiveDate::from_ymd_opt(2024, 1, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap(),
            took: Duration::from_millis(5),
        }
    }

    fn script(name: &str, description: &str) -> ScriptInfo {
        ScriptInfo {
            name: name.into(),
            description: description.into(),
            params: vec![],
        }
    }

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn ctrl(c: char) -> KeyEvent {
        KeyEvent::new(KeyCode::Char(c), KeyModifiers::CONTROL)
    }

    /// An app live on script "s" with rows b(30), a(10), c(null), d(20).
    fn live() -> App {
        let mut app = App::new(
            "http://x",
            Duration::from_secs(2),
            FixedOffset::east_opt(0).unwrap(),
        );
        app.start_script("s");
        app.set_result(
            "s",
            Ok(result(
                &["/b", "/a", "/c", "/d"],
                &[Some(30), Some(10), None, Some(20)],
            )),
            info(),
        );
        app
    }

    fn shown_paths(app: &App) -> Vec<String> {
        let (table, view) = app.current().unwrap();
        view.visible
            .iter()
            .map(|&r| table.text(r, 0).into_owned())
            .collect()
    }

    fn selected_path(app: &App) -> String {
        app.selected_row().unwrap()[0].text.to_string()
    }

    #[test]
    fn s_sorts_the_current_column_and_toggles_direction() {
        let mut app = live();
        assert_eq!(shown_paths(&app), ["/b", "/a", "/c", "/d"]);
        app.handle_key(key(KeyCode::Char('s')));
        assert_eq!(shown_paths(&app), ["/a", "/b", "/c", "/d"]);
        app.handle_key(key(KeyCode::Char('s')));
        assert_eq!(
            shown_paths(&app),
            ["/d", "/c", "/b", "/a"],
            "again: reversed"
        );
        app.handle_key(key(KeyCode::Char('s')));
        assert_eq!(app.current().unwrap().1.sort, None, "a third time: off");
        // l moves to the latency column: numbers sort as numbers, nulls first.
        app.handle_key(key(KeyCode::Char('l')));
        app.handle_key(key(KeyCode::Char('s')));
        assert_eq!(shown_paths(&app), ["/c", "/a", "/d", "/b"]);
        app.handle_key(key(KeyCode::Char('S')));
        assert_eq!(shown_paths(&app), ["/b", "/d", "/a", "/c"]);
        assert_eq!(
            app.current().unwrap().1.sort,
            Some(Sort {
                column: 1,
                descending: true
            })
        );
        // I (htop/btm's invert) reverses too.
        app.handle_key(key(KeyCode::Char('I')));
        assert_eq!(shown_paths(&app), ["/c", "/a", "/d", "/b"]);
    }

    #[test]
    fn columns_move_hide_and_come_back() {
        let mut app = live();
        let names = |app: &App| -> Vec<String> {
            let (t, v) = app.current().unwrap();
            v.order.iter().map(|&c| t.columns[c].name.clone()).collect()
        };
        assert_eq!(names(&app), ["req_path", "latency"]);
        app.handle_key(key(KeyCode::Char('>')));
        assert_eq!(names(&app), ["latency", "req_path"]);
        assert_eq!(
            app.current_column(),
            Some(0),
            "the moved column stays current"
        );
        app.handle_key(key(KeyCode::Char('<')));
        assert_eq!(names(&app), ["req_path", "latency"]);
        app.handle_key(key(KeyCode::Char('-')));
        assert_eq!(names(&app), ["latency"]);
        assert!(app.notice.as_deref().unwrap().contains("req_path hidden"));
        app.handle_key(key(KeyCode::Char('-')));
        assert_eq!(names(&app), ["latency"], "the last column stays");
        // Hidden columns still filter (the row data is unchanged) and survive a refresh.
        app.set_result("s", Ok(result(&["/x"], &[Some(1)])), info());
        assert_eq!(names(&app), ["latency"]);
        app.handle_key(key(KeyCode::Char('+')));
        assert_eq!(names(&app), ["latency", "req_path"]);
    }

    #[test]
    fn regex_and_inverted_filters() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('/')));
        app.handle_key(ctrl('r'));
        for c in "^/[AB]$".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(shown_paths(&app), ["/b", "/a"], "regex, case-insensitive");
        app.handle_key(key(KeyCode::Char('(')));
        assert!(shown_paths(&app).is_empty());
        assert!(
            app.current().unwrap().1.filter_error.is_some(),
            "bad regex said"
        );
        app.handle_key(ctrl('u'));
        for c in "!/[ab]".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(shown_paths(&app), ["/c", "/d"], "! inverts");
        app.handle_key(ctrl('r'));
        assert_eq!(
            shown_paths(&app).len(),
            4,
            "as a substring nothing holds \"/[ab]\""
        );
        app.handle_key(key(KeyCode::Enter));
        assert_eq!(app.current().unwrap().1.filter.label(), "/!/[ab]");
    }

    #[test]
    fn y_copies_the_current_cell() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('j')));
        assert_eq!(
            app.handle_key(key(KeyCode::Char('y'))),
            Action::Copy {
                text: "/a".into(),
                what: "column req_path".into()
            }
        );
        app.handle_key(key(KeyCode::Char('l')));
        assert_eq!(
            app.handle_key(key(KeyCode::Char('y'))),
            Action::Copy {
                text: "10 ns".into(),
                what: "column latency".into()
            }
        );
    }

    #[test]
    fn follow_keeps_the_newest_row_until_moving_up() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('F')));
        assert!(app.follow);
        assert_eq!(selected_path(&app), "/d");
        app.set_result(
            "s",
            Ok(result(&["/a", "/b", "/c", "/d", "/e"], &[None; 5])),
            info(),
        );
        assert_eq!(selected_path(&app), "/e", "new rows: the last is selected");
        app.handle_key(key(KeyCode::Char('k')));
        assert!(!app.follow);
        app.set_result(
            "s",
            Ok(result(&["/a", "/b", "/c", "/d", "/e", "/f"], &[None; 6])),
            info(),
        );
        assert_eq!(selected_path(&app), "/d");
    }

    fn events(rows: &[(i64, &str)]) -> QueryResult {
        QueryResult {
            tables: vec![crate::tui::data::tests::events(rows)],
            stats: None,
        }
    }

    #[test]
    fn event_tables_refresh_with_new_rows_only_and_follow_keeps_the_newest_selected() {
        let mut app = App::new(
            "http://x",
            Duration::from_secs(2),
            FixedOffset::east_opt(0).unwrap(),
        );
        let param = |name: &str, default: &str| pxtop_proto::v1::ScriptParam {
            name: name.into(),
            default_value: default.into(),
            ..Default::default()
        };
        app.set_scripts(Ok(vec![
            ScriptInfo {
                name: "px/http_data".into(),
                description: String::new(),
                params: vec![param("start_time", "-5m"), param("max_rows", "3")],
            },
            ScriptInfo {
                name: "no_window".into(),
                description: String::new(),
                params: vec![],
            },
        ]));
        app.start_script("px/http_data");
        let now = chrono::Utc::now().timestamp_nanos_opt().unwrap();
        let s = now - 60_000_000_000;
        let sec = 1_000_000_000;
        app.set_result(
            "px/http_data",
            Ok(events(&[(s + 2 * sec, "/b"), (s + sec, "/a")])),
            info(),
        );
        let overlap = OVERLAP.as_nanos() as i64;
        assert_eq!(
            app.refresh_from(),
            Some(s + 2 * sec - overlap),
            "an event table: the next refresh brings new rows only"
        );
        assert_eq!(
            app.keep(now),
            Keep {
                newest: 3,
                not_before: Some(now - 300 * sec)
            },
            "the script's max_rows and start_time"
        );
        let added = app.append_result(
            "px/http_data",
            Ok(events(&[(s + 3 * sec, "/c"), (s + 2 * sec, "/b")])),
            s + 2 * sec - overlap,
            info(),
        );
        assert_eq!(added, 1);
        assert_eq!(shown_paths(&app), ["/c", "/b", "/a"]);
        assert_eq!(app.refresh_from(), Some(s + 3 * sec - overlap));

        app.handle_key(key(KeyCode::Char('F')));
        assert_eq!(
            selected_path(&app),
            "/c",
            "newest first: the first row is the newest"
        );
        app.append_result(
            "px/http_data",
            Ok(events(&[(s + 4 * sec, "/d")])),
            s + 3 * sec - overlap,
            info(),
        );
        assert_eq!(
            shown_paths(&app),
            ["/d", "/c", "/b"],
            "max_rows: the oldest left"
        );
        assert_eq!(selected_path(&app), "/d", "the newest row stays selected");
        // Moving down (away from the newest) stops following; refreshes stay incremental.
        app.handle_key(key(KeyCode::Char('j')));
        assert!(!app.follow);
        assert_eq!(app.refresh_from(), Some(s + 4 * sec - overlap));
        // Rows older than the window leave at the next refresh.
        app.args = vec![("start_time".into(), (s + 3 * sec).to_string())];
        app.append_result("px/http_data", Ok(events(&[])), s, info());
        assert_eq!(shown_paths(&app), ["/d", "/c"]);

        // A table with times ranked by something else is refreshed whole.
        let mut ranked = events(&[(s, "/slow")]);
        ranked.tables[0].widget_json = r#"{"widget":"table","sort":"-req_path"}"#.into();
        app.set_result("px/http_data", Ok(ranked), info());
        assert_eq!(app.refresh_from(), None);
        // So is a script without a window to start from.
        app.start_script("no_window");
        app.set_result("no_window", Ok(events(&[(s, "/a")])), info());
        assert_eq!(app.refresh_from(), None);
    }

    #[test]
    fn back_and_forward_through_the_view_history() {
        let mut app = live();
        let to = |app: &mut App, s: &str| app.drill(s.into(), vec![("k".into(), "v".into())]);
        to(&mut app, "t");
        to(&mut app, "u");
        assert_eq!(
            app.handle_key(key(KeyCode::Char('['))),
            Action::Run("t".into(), vec![("k".into(), "v".into())])
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Backspace)),
            Action::Run("s".into(), vec![])
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Char('['))),
            Action::None,
            "no more back"
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Char(']'))),
            Action::Run("t".into(), vec![("k".into(), "v".into())])
        );
        // Going somewhere new drops the forward history, as in a browser.
        to(&mut app, "w");
        assert_eq!(app.handle_key(key(KeyCode::Char(']'))), Action::None);
        assert_eq!(app.script.as_deref(), Some("w"));
    }

    #[test]
    fn palette_ctx_switches_cluster_and_keeps_the_script() {
        let mut app = live();
        app.set_scripts(Ok(vec![
            script("px/http_data", ""),
            script("px/ctx_like", ""),
        ]));
        let typed = |app: &mut App, text: &str| {
            app.handle_key(key(KeyCode::Char(':')));
            for c in text.chars() {
                app.handle_key(key(KeyCode::Char(c)));
            }
            app.handle_key(key(KeyCode::Enter))
        };
        assert_eq!(
            typed(&mut app, "ctx prod-eu"),
            Action::SwitchContext(Some("prod-eu".into()))
        );
        assert_eq!(app.screen, Screen::Live, "the script stays on screen");
        assert_eq!(app.notice.as_deref(), Some("connecting to prod-eu…"));
        assert_eq!(
            typed(&mut app, "ctx"),
            Action::SwitchContext(None),
            "alone: the current context"
        );
        // A script search that starts with the letters is still a search.
        assert!(matches!(typed(&mut app, "ctx_"), Action::Run(name, _) if name == "px/ctx_like"));

        app.error = Some("old backend down".into());
        app.switched_backend("prod-eu (http://127.0.0.1:41234)");
        assert_eq!(app.addr, "prod-eu (http://127.0.0.1:41234)");
        assert!(app.error.is_none() && !app.scripts_loaded);
        assert_eq!(app.script.as_deref(), Some("px/ctx_like"));
    }

    #[test]
    fn palette_form_edits_arguments_and_runs() {
        use pxtop_proto::v1::ScriptParam;
        let mut app = live();
        let mut svc = script("px/service", "one service");
        svc.params = vec![
            ScriptParam {
                name: "start_time".into(),
                default_value: "-5m".into(),
                help: "how far back".into(),
                r#type: "string".into(),
            },
            ScriptParam {
                name: "service".into(),
                default_value: "frontend".into(),
                help: String::new(),
                r#type: "string".into(),
            },
        ];
        app.set_scripts(Ok(vec![svc, script("px/http_data", "")]));
        app.handle_key(key(KeyCode::Char(':')));
        for c in "svc".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.picker_selected().unwrap().name, "px/service", "fuzzy");
        app.handle_key(ctrl('u'));
        for c in "start_t".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(app.picker_matches().len(), 1, "argument names match too");
        app.handle_key(ctrl('u'));
        for c in "svc".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        app.handle_key(key(KeyCode::Tab));
        let form = app.picker.form.clone().unwrap();
        assert_eq!(form.fields[0].1, "-5m", "prefilled with the default");
        app.handle_key(key(KeyCode::Tab));
        app.handle_key(ctrl('u'));
        for c in "cart".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            Action::Run(
                "px/service".into(),
                vec![
                    ("start_time".into(), "-5m".into()),
                    ("service".into(), "cart".into())
                ]
            )
        );
        assert_eq!(app.screen, Screen::Live);
        // Reopened on the running script, the form shows the values it runs with.
        app.handle_key(key(KeyCode::Char(':')));
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(app.picker.form.as_ref().unwrap().fields[1].1, "cart");
        app.handle_key(key(KeyCode::Esc));
        assert!(app.picker.form.is_none(), "Esc closes the form first");
        assert_eq!(app.screen, Screen::Picker);
    }

    #[test]
    fn esc_cancels_a_slow_query_and_pauses() {
        let mut app = live();
        app.set_in_flight(Some(Duration::from_secs(3)));
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::Cancel);
        app.cancelled();
        assert!(app.paused && app.in_flight.is_none());
        assert!(app.notice.as_deref().unwrap().contains("cancelled"));
        assert_eq!(shown_paths(&app).len(), 4, "the last data stays");
        assert_eq!(
            app.handle_key(key(KeyCode::Char('p'))),
            Action::SetPaused(false)
        );
    }

    #[test]
    fn backend_failures_keep_the_data_and_a_success_clears_the_retry() {
        let mut app = live();
        app.set_result("s", Err("cannot connect".into()), info());
        app.set_retry(3, Duration::from_secs(4));
        assert_eq!(app.retry, Some((3, Duration::from_secs(4))));
        assert_eq!(shown_paths(&app).len(), 4);
        app.set_result("s", Ok(result(&["/x"], &[None])), info());
        assert_eq!(app.retry, None);
        assert_eq!(app.error, None);
    }

    #[test]
    fn mouse_wheel_scrolls_and_click_selects() {
        use ratatui::layout::Rect;
        let mut app = live();
        // Body at x 1.., y 3.., 4 rows; columns: marker (1), req_path (8), gap, latency.
        app.set_body_area(Rect::new(1, 3, 40, 4));
        let mouse = |kind, column, row| MouseEvent {
            kind,
            column,
            row,
            modifiers: KeyModifiers::NONE,
        };
        app.handle_mouse(mouse(MouseEventKind::ScrollDown, 5, 5));
        assert_eq!(selected_path(&app), "/d");
        app.handle_mouse(mouse(MouseEventKind::ScrollUp, 5, 5));
        assert_eq!(selected_path(&app), "/b");
        app.handle_mouse(mouse(MouseEventKind::Down(MouseButton::Left), 12, 5));
        assert_eq!(selected_path(&app), "/c");
        assert_eq!(
            app.current_column(),
            Some(1),
            "the click's column is current"
        );
        app.handle_mouse(mouse(MouseEventKind::Down(MouseButton::Left), 3, 0));
        assert_eq!(selected_path(&app), "/c", "outside the body: nothing");
        // The header row (y 2): a click on a column's name sorts by it, then reverses it.
        app.handle_mouse(mouse(MouseEventKind::Down(MouseButton::Left), 3, 2));
        assert_eq!(app.current_column(), Some(0));
        assert_eq!(shown_paths(&app), ["/a", "/b", "/c", "/d"]);
        app.handle_mouse(mouse(MouseEventKind::Down(MouseButton::Left), 3, 2));
        assert_eq!(shown_paths(&app), ["/d", "/c", "/b", "/a"]);
    }

    #[test]
    fn help_scrolls_and_closes() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('?')));
        app.handle_key(key(KeyCode::Char('j')));
        app.handle_key(key(KeyCode::Char('j')));
        assert_eq!(app.help_scroll, 2);
        app.handle_key(key(KeyCode::Char('k')));
        assert_eq!(app.help_scroll, 1);
        app.handle_key(key(KeyCode::Esc));
        assert!(!app.help);
    }

    #[test]
    fn movement_keys_stay_in_range() {
        let mut app = live();
        app.set_viewport_rows(2);
        assert_eq!(selected_path(&app), "/b");
        app.handle_key(key(KeyCode::Char('k')));
        assert_eq!(selected_path(&app), "/b");
        app.handle_key(key(KeyCode::Char('j')));
        app.handle_key(key(KeyCode::Down));
        assert_eq!(selected_path(&app), "/c");
        assert_eq!(
            app.current().unwrap().1.offset,
            1,
            "scrolled to keep it visible"
        );
        app.handle_key(key(KeyCode::Char('G')));
        assert_eq!(selected_path(&app), "/d");
        app.handle_key(key(KeyCode::PageDown));
        assert_eq!(selected_path(&app), "/d");
        app.handle_key(key(KeyCode::PageUp));
        assert_eq!(selected_path(&app), "/a");
        app.handle_key(key(KeyCode::Char('g')));
        assert_eq!(selected_path(&app), "/b");
        assert_eq!(app.current().unwrap().1.offset, 0);
        app.handle_key(key(KeyCode::End));
        app.handle_key(key(KeyCode::Up));
        assert_eq!(selected_path(&app), "/c");
        app.handle_key(key(KeyCode::Home));
        assert_eq!(selected_path(&app), "/b");
    }

    #[test]
    fn filter_typing_narrows_and_esc_clears() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('/')));
        for c in "/A".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(shown_paths(&app), ["/a"], "case-insensitive substring");
        // Keys typed into the filter are not commands.
        assert_eq!(app.handle_key(key(KeyCode::Char('q'))), Action::None);
        assert!(shown_paths(&app).is_empty());
        app.handle_key(key(KeyCode::Backspace));
        app.handle_key(key(KeyCode::Enter));
        assert!(app.filter_input.is_none());
        assert_eq!(app.current().unwrap().1.filter.text, "/A");
        // Esc clears an active filter before it quits.
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::None);
        assert_eq!(shown_paths(&app).len(), 4);
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::Quit);
    }

    #[test]
    fn overlays_close_before_quitting() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('?')));
        assert!(app.help);
        // While help is open, other keys do nothing.
        assert_eq!(app.handle_key(key(KeyCode::Char('p'))), Action::None);
        assert!(!app.paused);
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::None);
        assert!(!app.help);
        app.handle_key(key(KeyCode::Enter));
        assert!(app.detail);
        assert_eq!(app.handle_key(key(KeyCode::Char('q'))), Action::None);
        assert!(!app.detail);
        assert_eq!(app.handle_key(key(KeyCode::Char('q'))), Action::Quit);
        assert_eq!(app.handle_key(ctrl('c')), Action::Quit);
    }

    #[test]
    fn pause_and_refresh_actions() {
        let mut app = live();
        assert_eq!(
            app.handle_key(key(KeyCode::Char('p'))),
            Action::SetPaused(true)
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Char('p'))),
            Action::SetPaused(false)
        );
        assert_eq!(app.handle_key(key(KeyCode::Char('r'))), Action::RefreshNow);
    }

    #[test]
    fn picker_filters_as_you_type_and_enter_runs() {
        let mut app = App::new(
            "http://x",
            Duration::from_secs(2),
            FixedOffset::east_opt(0).unwrap(),
        );
        app.set_scripts(Ok(vec![
            script("px/http_stats", "per endpoint"),
            script("px/http_data", "requests"),
            script("px/tables", "table sizes"),
        ]));
        assert_eq!(app.screen, Screen::Picker);
        let names = |app: &App| -> Vec<String> {
            app.picker_matches()
                .iter()
                .map(|s| s.name.clone())
                .collect()
        };
        assert_eq!(names(&app), ["px/http_data", "px/http_stats", "px/tables"]);
        for c in "hd".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(names(&app), ["px/http_data"], "in-order fuzzy match");
        app.handle_key(key(KeyCode::Backspace));
        app.handle_key(key(KeyCode::Backspace));
        for c in "sizes".chars() {
            app.handle_key(key(KeyCode::Char(c)));
        }
        assert_eq!(names(&app), ["px/tables"], "descriptions match too");
        app.handle_key(ctrl('u'));
        app.handle_key(key(KeyCode::Down));
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            Action::Run("px/http_stats".into(), vec![])
        );
        assert_eq!(app.screen, Screen::Live);
        // `:` reopens the picker on the running script; Esc goes back without re-running.
        app.handle_key(key(KeyCode::Char(':')));
        assert_eq!(app.screen, Screen::Picker);
        assert_eq!(app.picker_selected().unwrap().name, "px/http_stats");
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::None);
        assert_eq!(app.screen, Screen::Live);
        app.handle_key(ctrl('p'));
        assert_eq!(app.screen, Screen::Picker);
    }

    #[test]
    fn esc_in_the_first_picker_quits() {
        let mut app = App::new(
            "http://x",
            Duration::from_secs(2),
            FixedOffset::east_opt(0).unwrap(),
        );
        assert_eq!(
            app.handle_key(key(KeyCode::Enter)),
            Action::None,
            "nothing to run"
        );
        assert_eq!(app.handle_key(key(KeyCode::Esc)), Action::Quit);
    }

    #[test]
    fn failed_refresh_keeps_data_and_success_clears_the_error() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('j')));
        app.set_result("s", Err("boom".into()), info());
        assert_eq!(app.error.as_deref(), Some("boom"));
        assert_eq!(shown_paths(&app).len(), 4);
        app.set_result("s", Ok(result(&["/x", "/y"], &[Some(1), Some(2)])), info());
        assert_eq!(app.error, None);
        assert_eq!(
            selected_path(&app),
            "/y",
            "selection position survives a refresh"
        );
        // A late result from a script no longer shown is ignored.
        app.set_result("old", Ok(result(&["/z"], &[None])), info());
        assert_eq!(shown_paths(&app), ["/x", "/y"]);
    }

    #[test]
    fn sort_and_filter_survive_refresh() {
        let mut app = live();
        app.handle_key(key(KeyCode::Char('s')));
        app.handle_key(key(KeyCode::Char('S')));
        app.set_result(
            "s",
            Ok(result(&["/m", "/z", "/a"], &[None, None, None])),
            info(),
        );
        assert_eq!(shown_paths(&app), ["/z", "/m", "/a"]);
    }

    #[test]
    fn tab_switches_tables_and_wraps() {
        let mut app = live();
        let mut r = result(&["/a"], &[Some(1)]);
        let mut second = r.tables[0].clone();
        second.name = "u".into();
        r.tables.push(second);
        app.set_result("s", Ok(r), info());
        assert_eq!(app.tab, 0);
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(app.current().unwrap().0.name, "u");
        app.handle_key(key(KeyCode::Tab));
        assert_eq!(app.tab, 0);
        app.handle_key(key(KeyCode::BackTab));
        assert_eq!(app.tab, 1);
        app.handle_key(key(KeyCode::Char('1')));
        assert_eq!(app.tab, 0);
        app.handle_key(key(KeyCode::Char('9')));
        assert_eq!(app.tab, 0, "no ninth table");
    }

    #[test]
    fn key_releases_and_alt_letters_are_ignored() {
        let mut app = live();
        let mut release = key(KeyCode::Char('q'));
        release.kind = KeyEventKind::Release;
        assert_eq!(app.handle_key(release), Action::None);
        let alt_p = KeyEvent::new(KeyCode::Char('p'), KeyModifiers::ALT);
        assert_eq!(app.handle_key(alt_p), Action::None);
        assert!(!app.paused);
    }
}
