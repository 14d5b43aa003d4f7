//! The key map: which key runs which [`Command`] in each mode, with a line of help per binding.
//! [`App`](super::app::App) dispatches table-view keys through [`lookup`], and the `?` overlay
//! is drawn from the same tables, so help cannot drift from what the keys do. Widget views
//! (service map, histogram, flame graph) handle their own keys first; [`WIDGET_HELP`] lists
//! those.

use crossterm::event::{KeyCode, KeyEvent, KeyModifiers};

/// What a table-view key asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Command {
    /// Selection one row down.
    Down,
    /// Selection one row up.
    Up,
    /// One page down.
    PageDown,
    /// One page up.
    PageUp,
    /// Half a page down.
    HalfDown,
    /// Half a page up.
    HalfUp,
    /// First row.
    Top,
    /// Last row.
    Bottom,
    /// Column cursor left (scrolls).
    ColumnLeft,
    /// Column cursor right (scrolls).
    ColumnRight,
    /// Move the current column one place left.
    MoveColumnLeft,
    /// Move the current column one place right.
    MoveColumnRight,
    /// Hide the current column.
    HideColumn,
    /// Show every hidden column again, in the table's order.
    ShowColumns,
    /// Open or close the detail pane.
    Detail,
    /// Scroll the detail pane down.
    DetailDown,
    /// Scroll the detail pane up.
    DetailUp,
    /// Sort by the current column; again: reverse; a third time: arrival order.
    Sort,
    /// Reverse the sort.
    ReverseSort,
    /// Type a filter.
    Filter,
    /// Copy the current cell to the clipboard.
    Copy,
    /// Follow: keep the newest row selected as rows arrive (event tables poll for new rows).
    Follow,
    /// Next output table.
    NextTable,
    /// Previous output table.
    PrevTable,
    /// Output table N (the digit).
    Table,
    /// Widget view or raw table.
    ToggleWidget,
    /// Back in the view history.
    Back,
    /// Forward in the view history.
    Forward,
    /// Pause or resume refreshing.
    Pause,
    /// Refresh now.
    Refresh,
    /// The script palette.
    Palette,
    /// This help.
    Help,
    /// Close a pane, clear the filter, cancel a slow query, go back, or quit.
    Escape,
    /// Quit.
    Quit,
}

/// One key: its code and whether Ctrl is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Key {
    /// The key.
    pub code: KeyCode,
    /// Ctrl held.
    pub ctrl: bool,
}

const fn k(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: false,
    }
}

const fn ctrl(c: char) -> Key {
    Key {
        code: KeyCode::Char(c),
        ctrl: true,
    }
}

const fn code(code: KeyCode) -> Key {
    Key { code, ctrl: false }
}

/// A binding: keys, the command, and its help line.
#[derive(Debug, Clone, Copy)]
pub struct Binding {
    /// The keys that run it.
    pub keys: &'static [Key],
    /// What runs.
    pub command: Command,
    /// One line for `?`.
    pub help: &'static str,
}

const fn bind(keys: &'static [Key], command: Command, help: &'static str) -> Binding {
    Binding {
        keys,
        command,
        help,
    }
}

/// Keys of the live (table) view, in the order `?` lists them.
pub const LIVE: &[Binding] = &[
    bind(&[k('j'), code(KeyCode::Down)], Command::Down, "next row"),
    bind(&[k('k'), code(KeyCode::Up)], Command::Up, "previous row"),
    bind(
        &[code(KeyCode::PageDown), ctrl('f')],
        Command::PageDown,
        "page down",
    ),
    bind(
        &[code(KeyCode::PageUp), ctrl('b')],
        Command::PageUp,
        "page up",
    ),
    bind(&[ctrl('d')], Command::HalfDown, "half page down"),
    bind(&[ctrl('u')], Command::HalfUp, "half page up"),
    bind(&[k('g'), code(KeyCode::Home)], Command::Top, "first row"),
    bind(&[k('G'), code(KeyCode::End)], Command::Bottom, "last row"),
    bind(
        &[k('h'), code(KeyCode::Left)],
        Command::ColumnLeft,
        "column left (scrolls)",
    ),
    bind(
        &[k('l'), code(KeyCode::Right)],
        Command::ColumnRight,
        "column right (scrolls)",
    ),
    bind(&[k('<')], Command::MoveColumnLeft, "move the column left"),
    bind(&[k('>')], Command::MoveColumnRight, "move the column right"),
    bind(&[k('-')], Command::HideColumn, "hide the column"),
    bind(&[k('+')], Command::ShowColumns, "show hidden columns"),
    bind(
        &[code(KeyCode::Enter)],
        Command::Detail,
        "row detail (JSON pretty-printed)",
    ),
    bind(&[k('J')], Command::DetailDown, "scroll the detail down"),
    bind(&[k('K')], Command::DetailUp, "scroll the detail up"),
    bind(
        &[k('s')],
        Command::Sort,
        "sort by the column; again: reverse; again: off",
    ),
    bind(&[k('S'), k('I')], Command::ReverseSort, "reverse the sort"),
    bind(
        &[k('/')],
        Command::Filter,
        "filter rows (^R regex, ! inverts)",
    ),
    bind(&[k('y')], Command::Copy, "copy the cell (OSC 52)"),
    bind(&[k('F')], Command::Follow, "follow the newest rows"),
    bind(&[code(KeyCode::Tab)], Command::NextTable, "next table"),
    bind(
        &[code(KeyCode::BackTab)],
        Command::PrevTable,
        "previous table",
    ),
    bind(
        &[
            k('1'),
            k('2'),
            k('3'),
            k('4'),
            k('5'),
            k('6'),
            k('7'),
            k('8'),
            k('9'),
        ],
        Command::Table,
        "table N",
    ),
    bind(&[k('v')], Command::ToggleWidget, "widget view / raw table"),
    bind(
        &[code(KeyCode::Backspace), k('[')],
        Command::Back,
        "back (view history)",
    ),
    bind(&[k(']')], Command::Forward, "forward (view history)"),
    bind(&[k('p')], Command::Pause, "pause / resume refresh"),
    bind(&[k('r'), ctrl('r')], Command::Refresh, "refresh now"),
    bind(&[k(':'), ctrl('p')], Command::Palette, "script palette"),
    bind(&[k('?')], Command::Help, "this help"),
    bind(
        &[code(KeyCode::Esc)],
        Command::Escape,
        "close / clear / cancel query / back",
    ),
    bind(&[k('q'), ctrl('c')], Command::Quit, "quit"),
];

/// Keys while typing a filter (other keys type).
pub const FILTER: &[(&str, &str)] = &[
    ("Enter", "keep the filter"),
    ("Esc", "clear it"),
    ("^R", "substring ↔ regex"),
    ("!x", "rows NOT matching x"),
    ("^U", "clear the text"),
];

/// Keys of the script palette (other keys type the fuzzy query).
pub const PALETTE: &[(&str, &str)] = &[
    ("Enter", "run with defaults / the form's values"),
    ("Tab", "arguments form (Tab: next field)"),
    ("type", "fuzzy: names, descriptions, argument names"),
    ("↑/↓ ^P/^N", "move"),
    ("ctx NAME", "Enter: switch to kubeconfig context NAME"),
    ("Esc", "back"),
];

/// Keys the widget views handle themselves.
pub const WIDGET_HELP: &[(&str, &str)] = &[
    ("Enter", "drill in; flame graph: zoom in"),
    ("Tab h/l (map)", "node ↔ edge, previous / next layer"),
    ("c Tab (histogram)", "compare two, switch pane"),
    ("/ o x Esc (flame)", "search, flip, write SVG, zoom out"),
];

/// The command bound to `key` in the live view.
pub fn lookup(key: &KeyEvent) -> Option<Command> {
    let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
    // Shifted letters arrive as their capital with SHIFT; Shift-Tab as BackTab.
    LIVE.iter()
        .find(|b| b.keys.iter().any(|k| k.code == key.code && k.ctrl == ctrl))
        .map(|b| b.command)
}

/// A key as help shows it: `j`, `^D`, `↓`, `PgDn`.
pub fn label(key: Key) -> String {
    let base = match key.code {
        KeyCode::Char(c) => c.to_string(),
        KeyCode::Up => "↑".into(),
        KeyCode::Down => "↓".into(),
        KeyCode::Left => "←".into(),
        KeyCode::Right => "→".into(),
        KeyCode::PageUp => "PgUp".into(),
        KeyCode::PageDown => "PgDn".into(),
        KeyCode::Home => "Home".into(),
        KeyCode::End => "End".into(),
        KeyCode::Enter => "Enter".into(),
        KeyCode::Esc => "Esc".into(),
        KeyCode::Tab => "Tab".into(),
        KeyCode::BackTab => "S-Tab".into(),
        KeyCode::Backspace => "Bksp".into(),
        other => format!("{other:?}"),
    };
    if key.ctrl {
        format!("^{}", base.to_uppercase())
    } else {
        base
    }
}

/// A binding's keys as one label (`j ↓`); the nine table digits as `1-9`.
pub fn keys_label(b: &Binding) -> String {
    if b.command == Command::Table {
        return "1-9".into();
    }
    b.keys
        .iter()
        .map(|k| label(*k))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The help overlay's sections: a title and (keys, what) lines, all from the tables above.
pub fn help_sections() -> Vec<(&'static str, Vec<(String, &'static str)>)> {
    let owned = |pairs: &[(&'static str, &'static str)]| {
        pairs
            .iter()
            .map(|(k, t)| ((*k).to_owned(), *t))
            .collect::<Vec<_>>()
    };
    vec![
        (
            "Table",
            LIVE.iter().map(|b| (keys_label(b), b.help)).collect(),
        ),
        ("Filter (/)", owned(FILTER)),
        ("Palette (:)", owned(PALETTE)),
        ("Widgets", owned(WIDGET_HELP)),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_key_is_bound_twice() {
        let mut seen = Vec::new();
        for b in LIVE {
            for key in b.keys {
                assert!(!seen.contains(key), "{key:?} bound twice");
                seen.push(*key);
            }
        }
    }

    #[test]
    fn lookup_honours_ctrl_and_labels_read_like_the_keys() {
        let key = |c, m| KeyEvent::new(KeyCode::Char(c), m);
        assert_eq!(
            lookup(&key('d', KeyModifiers::CONTROL)),
            Some(Command::HalfDown)
        );
        assert_eq!(lookup(&key('d', KeyModifiers::NONE)), None);
        assert_eq!(
            lookup(&key('G', KeyModifiers::SHIFT)),
            Some(Command::Bottom)
        );
        let down = LIVE.iter().find(|b| b.command == Command::Down).unwrap();
        assert_eq!(keys_label(down), "j ↓");
        let page = LIVE
            .iter()
            .find(|b| b.command == Command::PageDown)
            .unwrap();
        assert_eq!(keys_label(page), "PgDn ^F");
    }
}
