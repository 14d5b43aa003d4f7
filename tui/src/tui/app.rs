//! The TUI's state and what keys do to it. Pure: no I/O, no clock; the event loop feeds it keys
//! and results and carries out the [`Action`]s it returns.

use std::time::Duration;

use chrono::{FixedOffset, NaiveDateTime};
use crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use pxtop_proto::v1::{ExecutionStats, ScriptInfo};

use super::data::TableData;
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

/// The script picker's state.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Picker {
    /// What was typed.
    pub query: String,
    /// Index into [`App::picker_matches`].
    pub selected: usize,
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
    /// Rows must contain this (case-insensitive) in some cell.
    pub filter: String,
    /// Selected position in `visible`.
    pub selected: usize,
    /// First visible position (vertical scroll).
    pub offset: usize,
    /// First shown column (horizontal scroll).
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
    /// Scripts drilled down from, most recent last (Backspace goes back).
    pub history: Vec<(String, Args)>,
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
    /// The filter being typed (`/`), if any.
    pub filter_input: Option<String>,
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
            notice: None,
            tables: Vec::new(),
            views: Vec::new(),
            tab: 0,
            stats: None,
            help: false,
            detail: false,
            filter_input: None,
            paused: false,
            last_refresh: None,
            error: None,
            refresh_every,
            viewport_rows: 20,
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
            self.detail = false;
        }
        // Choosing a script (again) always runs it, so it is never left paused.
        self.paused = false;
        Action::Run(name.to_owned(), args)
    }

    /// Drills from the current script into `script` with `args`; Backspace comes back.
    pub fn drill(&mut self, script: String, args: Args) -> Action {
        if let Some(current) = self.script.clone() {
            self.history.push((current, self.args.clone()));
        }
        self.start_script_with(&script, args)
    }

    /// Back to the script drilled down from, if any.
    fn go_back(&mut self) -> Option<Action> {
        let (script, args) = self.history.pop()?;
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
                    KeyCode::Char('q' | '?' | ':' | 'p' | 'r' | 'v' | '1'..='9')
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
        let result = match result {
            Ok(r) => r,
            Err(e) => {
                self.error = Some(e);
                return;
            }
        };
        self.error = None;
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
    }

    /// The table shown and its view.
    pub fn current(&self) -> Option<(&TableData, &View)> {
        Some((self.tables.get(self.tab)?, self.views.get(self.tab)?))
    }

    /// The selected row's cells, if any.
    pub fn selected_row(&self) -> Option<&[super::data::Cell]> {
        let (table, view) = self.current()?;
        let row = *view.visible.get(view.selected)?;
        table.rows.get(row).map(Vec::as_slice)
    }

    /// Scripts matching the picker's query, best first: substring matches (earliest first),
    /// then fuzzy (in-order) matches.
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

    /// Re-filters and re-sorts table `i`, keeping the selection in range.
    fn recompute(&mut self, i: usize) {
        let (Some(table), Some(view)) = (self.tables.get(i), self.views.get_mut(i)) else {
            return;
        };
        view.visible = visible_rows(table, view.sort, &view.filter);
        let n = view.visible.len();
        view.selected = view.selected.min(n.saturating_sub(1));
        view.first_column = view.first_column.min(table.columns.len().saturating_sub(1));
        self.scroll_into_view(i);
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
        let Some(view) = self.view_mut() else {
            return;
        };
        let last = view.visible.len().saturating_sub(1);
        view.selected = view.selected.saturating_add_signed(delta).min(last);
        let tab = self.tab;
        self.scroll_into_view(tab);
    }

    fn select_at(&mut self, end: bool) {
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

    /// `s`: no sort, then each column in turn, then no sort again.
    pub fn cycle_sort(&mut self) {
        let tab = self.tab;
        let Some(columns) = self.tables.get(tab).map(|t| t.columns.len()) else {
            return;
        };
        let Some(view) = self.view_mut() else {
            return;
        };
        view.sort = match view.sort {
            None if columns > 0 => Some(Sort {
                column: 0,
                descending: false,
            }),
            Some(s) if s.column + 1 < columns => Some(Sort {
                column: s.column + 1,
                descending: s.descending,
            }),
            _ => None,
        };
        self.recompute(tab);
    }

    /// `S`: reverse the sort (sorting by the first column when there was none).
    pub fn reverse_sort(&mut self) {
        let tab = self.tab;
        if self.tables.get(tab).is_none_or(|t| t.columns.is_empty()) {
            return;
        }
        let Some(view) = self.view_mut() else {
            return;
        };
        view.sort = Some(match view.sort {
            Some(s) => Sort {
                descending: !s.descending,
                ..s
            },
            None => Sort {
                column: 0,
                descending: true,
            },
        });
        self.recompute(tab);
    }

    fn set_filter(&mut self, filter: String) {
        let tab = self.tab;
        if self.flame_active() {
            if let Some(view) = self.view_mut() {
                view.widget.flame.search = filter;
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
            if matches!(
                key.code,
                KeyCode::Char('?') | KeyCode::Char('q') | KeyCode::Esc | KeyCode::Enter
            ) {
                self.help = false;
            }
            return Action::None;
        }
        match self.screen {
            Screen::Picker => self.picker_key(key, ctrl),
            Screen::Live => self.live_key(key, ctrl),
        }
    }

    fn picker_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
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
            KeyCode::Enter => match self.picker_selected().map(|s| s.name.clone()) {
                Some(name) => {
                    self.history.clear();
                    self.start_script(&name)
                }
                None => Action::None,
            },
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

    fn filter_key(&mut self, key: KeyEvent, ctrl: bool) -> Action {
        let Some(mut input) = self.filter_input.take() else {
            return Action::None;
        };
        match key.code {
            KeyCode::Esc => {
                self.set_filter(String::new());
                return Action::None;
            }
            KeyCode::Enter => return Action::None,
            KeyCode::Backspace => {
                input.pop();
            }
            KeyCode::Char('u') if ctrl => input.clear(),
            KeyCode::Char(c) if !ctrl => input.push(c),
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
        let page = self.viewport_rows.max(1) as isize;
        if !ctrl && let Some(action) = self.widget_key(key.code) {
            return action;
        }
        match key.code {
            KeyCode::Char('v') => {
                if let Some(view) = self.views.get_mut(self.tab)
                    && matches!(
                        self.tables.get(self.tab).map(|t| &t.widget),
                        Some(Some(Ok(_)))
                    )
                {
                    view.raw = !view.raw;
                    self.detail = false;
                }
                Action::None
            }
            KeyCode::Backspace => self.go_back().unwrap_or(Action::None),
            KeyCode::Char('q') => {
                if self.detail {
                    self.detail = false;
                    Action::None
                } else {
                    Action::Quit
                }
            }
            KeyCode::Esc => {
                let has_filter = self.current().is_some_and(|(_, v)| !v.filter.is_empty());
                if self.detail {
                    self.detail = false;
                } else if has_filter {
                    self.set_filter(String::new());
                } else if let Some(action) = self.go_back() {
                    return action;
                } else {
                    return Action::Quit;
                }
                Action::None
            }
            KeyCode::Char('p') if ctrl => {
                self.open_picker();
                Action::None
            }
            KeyCode::Char(':') => {
                self.open_picker();
                Action::None
            }
            KeyCode::Char('?') => {
                self.help = true;
                Action::None
            }
            KeyCode::Char('p') => {
                self.paused = !self.paused;
                Action::SetPaused(self.paused)
            }
            KeyCode::Char('r') if ctrl => Action::RefreshNow,
            KeyCode::Char('r') => Action::RefreshNow,
            KeyCode::Char('/') => {
                let current = if self.flame_active() {
                    self.current().map(|(_, v)| v.widget.flame.search.clone())
                } else {
                    self.current().map(|(_, v)| v.filter.clone())
                };
                self.filter_input = Some(current.unwrap_or_default());
                Action::None
            }
            KeyCode::Enter => {
                self.detail = !self.detail && self.selected_row().is_some();
                Action::None
            }
            KeyCode::Char('s') => {
                self.cycle_sort();
                Action::None
            }
            KeyCode::Char('S' | 'I') => {
                self.reverse_sort();
                Action::None
            }
            KeyCode::Tab => {
                self.switch_tab(true);
                Action::None
            }
            KeyCode::BackTab => {
                self.switch_tab(false);
                Action::None
            }
            KeyCode::Char(c @ '1'..='9') => {
                let i = (c as usize) - ('1' as usize);
                if i < self.tables.len() {
                    self.tab = i;
                }
                Action::None
            }
            KeyCode::Char('j') | KeyCode::Down => {
                self.move_selection(1);
                Action::None
            }
            KeyCode::Char('k') | KeyCode::Up => {
                self.move_selection(-1);
                Action::None
            }
            KeyCode::Char('f') if ctrl => {
                self.move_selection(page);
                Action::None
            }
            KeyCode::Char('b') if ctrl => {
                self.move_selection(-page);
                Action::None
            }
            KeyCode::Char('d') if ctrl => {
                self.move_selection((page / 2).max(1));
                Action::None
            }
            KeyCode::Char('u') if ctrl => {
                self.move_selection(-(page / 2).max(1));
                Action::None
            }
            KeyCode::PageDown => {
                self.move_selection(page);
                Action::None
            }
            KeyCode::PageUp => {
                self.move_selection(-page);
                Action::None
            }
            KeyCode::Char('g') | KeyCode::Home => {
                self.select_at(false);
                Action::None
            }
            KeyCode::Char('G') | KeyCode::End => {
                self.select_at(true);
                Action::None
            }
            KeyCode::Char('h') | KeyCode::Left => {
                if let Some(v) = self.view_mut() {
                    v.first_column = v.first_column.saturating_sub(1);
                }
                Action::None
            }
            KeyCode::Char('l') | KeyCode::Right => {
                let columns = self.current().map_or(0, |(t, _)| t.columns.len());
                if let Some(v) = self.view_mut() {
                    v.first_column = (v.first_column + 1).min(columns.saturating_sub(1));
                }
                Action::None
            }
            _ => Action::None,
        }
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
    // In-order characters ("hd" finds "http_data"): the usual picker fuzziness, small enough
    // to write here rather than pull in a matcher crate.
    let mut chars = name.chars();
    query
        .chars()
        .all(|q| chars.any(|c| c == q))
        .then_some(2_000)
}

/// Row indices passing `filter` (case-insensitive substring of any cell), in `sort` order
/// (stable: equal keys keep arrival order).
pub fn visible_rows(table: &TableData, sort: Option<Sort>, filter: &str) -> Vec<usize> {
    let needle = filter.to_lowercase();
    let mut rows: Vec<usize> = (0..table.rows.len())
        .filter(|&i| {
            needle.is_empty()
                || table.rows[i]
                    .iter()
                    .any(|c| c.text.to_lowercase().contains(&needle))
        })
        .collect();
    if let Some(sort) = sort
        && sort.column < table.columns.len()
    {
        rows.sort_by(|&a, &b| {
            let ord = table.rows[a][sort.column]
                .key
                .total_cmp(&table.rows[b][sort.column].key);
            if sort.descending { ord.reverse() } else { ord }
        });
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
            .map(|&r| table.rows[r][0].text.clone())
            .collect()
    }

    fn selected_path(app: &App) -> String {
        app.selected_row().unwrap()[0].text.clone()
    }

    #[test]
    fn s_cycles_columns_and_capital_s_reverses() {
        let mut app = live();
        assert_eq!(shown_paths(&app), ["/b", "/a", "/c", "/d"]);
        app.handle_key(key(KeyCode::Char('s')));
        assert_eq!(shown_paths(&app), ["/a", "/b", "/c", "/d"]);
        app.handle_key(key(KeyCode::Char('s')));
        // By latency as numbers, nulls first.
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
        // Past the last column: back to arrival order.
        app.handle_key(key(KeyCode::Char('s')));
        assert_eq!(app.current().unwrap().1.sort, None);
        assert_eq!(shown_paths(&app), ["/b", "/a", "/c", "/d"]);
        // I (htop/btm's invert) reverses too.
        app.handle_key(key(KeyCode::Char('I')));
        assert_eq!(shown_paths(&app), ["/d", "/c", "/b", "/a"]);
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
        assert_eq!(app.current().unwrap().1.filter, "/A");
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
