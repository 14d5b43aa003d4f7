//! Drawing: `render(frame, &App, &Theme)` paints the whole screen from state. No I/O, no
//! mutation; every colour comes from the theme.

use ratatui::Frame;
use ratatui::layout::{Alignment, Constraint, Layout, Rect};
use ratatui::style::Style;
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell as TableCell, Clear, List, ListItem, ListState, Paragraph, Row, Table,
    TableState, Wrap,
};

use super::app::{App, Screen};
use super::data::{SortKey, columns_in_view, one_line, text_width};
use super::keys;
use super::views::cut as fit;
use crate::theme::Theme;

const SEP: &str = " │ ";

/// Rows of the table body visible with the current layout of `area` (for paging).
pub fn table_body_rows(area: Rect, app: &App) -> usize {
    usize::from(table_body_area(area, app).height)
}

/// Where the table body (below its header row, selection marker included) is on screen.
pub fn table_body_area(area: Rect, app: &App) -> Rect {
    let main = live_main(chrome(area)[1], app).1;
    let table_area = if app.detail && app.current_widget().is_none() {
        split_detail(main)[0]
    } else {
        main
    };
    let inner = Block::default().borders(Borders::ALL).inner(table_area);
    // The header row.
    Rect {
        y: inner.y.saturating_add(1),
        height: inner.height.saturating_sub(1),
        ..inner
    }
}

/// The live screen's main area: a one-line banner on top while a query is slow or the backend
/// is failing, then the views.
fn live_main(main: Rect, app: &App) -> (Option<Rect>, Rect) {
    let banner = app.screen == Screen::Live
        && (app.in_flight.is_some() || (app.retry.is_some() && app.error.is_some()));
    if !banner || main.height < 4 {
        return (None, main);
    }
    let [b, rest] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(main);
    (Some(b), rest)
}

/// Header line, main area, hints line, status bar.
fn chrome(area: Rect) -> [Rect; 4] {
    Layout::vertical([
        Constraint::Length(1),
        Constraint::Min(0),
        Constraint::Length(1),
        Constraint::Length(1),
    ])
    .areas(area)
}

fn split_detail(main: Rect) -> [Rect; 2] {
    Layout::vertical([Constraint::Percentage(50), Constraint::Percentage(50)]).areas(main)
}

/// Draws the whole screen.
pub fn render(frame: &mut Frame<'_>, app: &App, theme: &Theme) {
    let area = frame.area();
    frame.render_widget(Block::default().style(theme.base), area);
    let [header, main, hints, status] = chrome(area);
    render_header(frame, header, app, theme);
    match app.screen {
        Screen::Picker => render_picker(frame, main, app, theme),
        Screen::Live => {
            let (banner, main) = live_main(main, app);
            if let Some(banner) = banner {
                render_banner(frame, banner, app, theme);
            }
            if app.current_widget().is_some() {
                render_widget_view(frame, main, app, theme);
            } else if app.detail {
                let [table, detail] = split_detail(main);
                render_table(frame, table, app, theme);
                render_detail(frame, detail, app, theme);
            } else {
                render_table(frame, main, app, theme);
            }
        }
    }
    render_hints(frame, hints, app, theme);
    render_status(frame, status, app, theme);
    if app.help {
        render_help(frame, main, app, theme);
    }
}

/// The slow-query or backend-down line above the views (the last data stays below it).
fn render_banner(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let line = if let Some(elapsed) = app.in_flight {
        let script = app.script.as_deref().unwrap_or("");
        Line::from(vec![
            Span::styled(
                format!(" ⏳ running {script}… {:.1} s ", elapsed.as_secs_f64()),
                theme.warning,
            ),
            Span::styled("Esc cancels", theme.key),
        ])
    } else {
        let (failures, wait) = app.retry.unwrap_or_default();
        let since = app.last_refresh.map_or_else(
            || "no data yet".to_owned(),
            |r| format!("showing data from {}", r.at.format("%H:%M:%S")),
        );
        Line::from(vec![
            Span::styled(" ⚠ backend unreachable ", theme.error),
            Span::styled(
                format!(
                    "· {failures} failed · retry in {}s · {since}",
                    wait.as_secs().max(1)
                ),
                theme.warning,
            ),
        ])
    };
    frame.render_widget(Paragraph::new(line).style(theme.base), area);
}

fn render_header(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let mut spans = vec![Span::styled(" pxtop ", theme.title)];
    match app.screen {
        Screen::Picker => spans.push(Span::styled(" pick a script", theme.muted)),
        Screen::Live => {
            if let Some(script) = app.script_label() {
                spans.push(Span::styled(format!(" {script} "), theme.base));
            }
            if app.tables.len() > 1 {
                for (i, t) in app.tables.iter().enumerate() {
                    let style = if i == app.tab {
                        theme.tab_active
                    } else {
                        theme.tab_inactive
                    };
                    spans.push(Span::raw(" "));
                    spans.push(Span::styled(format!(" {} {} ", i + 1, t.name), style));
                }
            }
        }
    }
    frame.render_widget(Line::from(spans), area);
}

fn bordered<'a>(title: impl Into<Line<'a>>, theme: &Theme) -> Block<'a> {
    Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(title.into().style(theme.title))
}

fn render_picker(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let [left, right] =
        Layout::horizontal([Constraint::Percentage(45), Constraint::Percentage(55)]).areas(area);
    let matches = app.picker_matches();
    let block = bordered(
        format!(" Scripts ({}/{}) ", matches.len(), app.scripts.len()),
        theme,
    );
    let inner = block.inner(left);
    frame.render_widget(block, left);
    let [query, list] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
    frame.render_widget(
        Line::from(vec![
            Span::styled("> ", theme.highlight),
            Span::styled(app.picker.query.as_str(), theme.base),
            Span::styled("▏", theme.highlight),
        ]),
        query,
    );
    if let Some(context) = app.context_command() {
        render_context_hint(frame, list, right, context.as_deref(), theme);
        return;
    }
    if matches.is_empty() {
        let msg = if !app.scripts_loaded {
            "loading scripts…"
        } else if app.scripts.is_empty() {
            "no scripts (see the status bar)"
        } else {
            "no script matches"
        };
        frame.render_widget(Paragraph::new(msg).style(theme.muted), list);
    } else {
        let items: Vec<ListItem<'_>> = matches
            .iter()
            .map(|s| ListItem::new(Line::from(s.name.as_str())))
            .collect();
        let mut state = ListState::default().with_selected(Some(app.picker.selected));
        frame.render_stateful_widget(
            List::new(items)
                .highlight_style(theme.selected_row)
                .highlight_symbol("▶ "),
            list,
            &mut state,
        );
    }

    if let Some(form) = &app.picker.form {
        render_form(frame, right, form, theme);
        return;
    }
    let block = bordered(" About ", theme);
    let Some(script) = app.picker_selected() else {
        frame.render_widget(block, right);
        return;
    };
    let mut lines = vec![
        Line::styled(script.name.as_str(), theme.title),
        Line::raw(""),
    ];
    lines.extend(
        script
            .description
            .lines()
            .map(|l| Line::styled(l, theme.base)),
    );
    lines.push(Line::raw(""));
    if script.params.is_empty() {
        lines.push(Line::styled("no arguments", theme.muted));
    } else {
        lines.push(Line::styled("Arguments", theme.header));
        for p in &script.params {
            lines.push(Line::from(vec![
                Span::styled(format!("  {}", p.name), theme.field_name),
                Span::styled(format!(" = {:?}", p.default_value), theme.base),
            ]));
            if !p.help.is_empty() {
                lines.push(Line::styled(format!("      {}", p.help), theme.muted));
            }
        }
    }
    lines.push(Line::raw(""));
    lines.push(Line::styled(
        format!("headless: pxtop run {} -o json", script.name),
        theme.muted,
    ));
    frame.render_widget(
        Paragraph::new(lines)
            .block(block)
            .wrap(Wrap { trim: false }),
        right,
    );
}

/// `ctx NAME` typed in the palette: what Enter will do.
fn render_context_hint(
    frame: &mut Frame<'_>,
    list: Rect,
    about: Rect,
    context: Option<&str>,
    theme: &Theme,
) {
    let target = context.map_or_else(
        || "the kubeconfig's current context".to_owned(),
        |c| format!("context {c}"),
    );
    frame.render_widget(
        Paragraph::new(format!("Enter: switch to {target}")).style(theme.highlight),
        list,
    );
    let lines = vec![
        Line::styled("Switch cluster", theme.title),
        Line::raw(""),
        Line::styled(
            "Connects to that context's Kelvin through your kubeconfig (a port-forward, the \
             token and CA from its Secrets, or a token from `pxtop auth login`), then runs the \
             same script there.",
            theme.base,
        ),
        Line::raw(""),
        Line::styled("ctx alone: the kubeconfig's current context", theme.muted),
        Line::styled("headless: pxtop --context NAME run SCRIPT", theme.muted),
    ];
    frame.render_widget(
        Paragraph::new(lines)
            .block(bordered(" About ", theme))
            .wrap(Wrap { trim: false }),
        about,
    );
}

/// The arguments form: one line per field (the focused one with a cursor), its help below.
fn render_form(frame: &mut Frame<'_>, area: Rect, form: &super::app::Form, theme: &Theme) {
    let name_width = form
        .fields
        .iter()
        .map(|(n, _, _)| text_width(n))
        .max()
        .unwrap_or(0);
    let mut lines = vec![
        Line::styled(form.script.as_str(), theme.title),
        Line::raw(""),
    ];
    if form.fields.is_empty() {
        lines.push(Line::styled("no arguments: Enter runs it", theme.muted));
    }
    for (i, (name, value, help)) in form.fields.iter().enumerate() {
        let focused = i == form.focus;
        let mut spans = vec![
            Span::styled(
                format!("{} {name:>name_width$} ", if focused { "▶" } else { " " }),
                theme.field_name,
            ),
            Span::styled(
                format!("[{value}"),
                if focused { theme.highlight } else { theme.base },
            ),
        ];
        if focused {
            spans.push(Span::styled("▏", theme.highlight));
        }
        spans.push(Span::styled("]", theme.base));
        lines.push(Line::from(spans));
        if focused && !help.is_empty() {
            lines.push(Line::styled(
                format!("  {:name_width$} {help}", ""),
                theme.muted,
            ));
        }
    }
    frame.render_widget(
        Paragraph::new(lines)
            .block(bordered(" Arguments ", theme))
            .wrap(Wrap { trim: false }),
        area,
    );
}

/// Splits `s` into lines of at most `width` cells, preferring to break after a space in the
/// second half of a line; long unbroken text (JSON, tokens) is cut where it must be.
pub fn wrap(s: &str, width: usize) -> Vec<String> {
    let width = width.max(1);
    let mut out = Vec::new();
    let mut line = String::new();
    let mut used = 0;
    for c in one_line(s).chars() {
        let w = text_width(c.encode_utf8(&mut [0; 4]));
        if used + w > width && !line.is_empty() {
            let keep = match line.rfind(' ') {
                Some(i) if text_width(&line[..i]) >= width / 2 => i + 1,
                _ => line.len(),
            };
            let rest = line.split_off(keep);
            out.push(line);
            line = rest;
            used = text_width(&line);
        }
        line.push(c);
        used += w;
    }
    if !line.is_empty() || out.is_empty() {
        out.push(line);
    }
    out
}

fn render_table(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let Some((table, view)) = app.current() else {
        let msg = match (&app.script, &app.error) {
            (Some(s), None) => format!("running {s}…"),
            (Some(s), Some(_)) => format!("{s} failed (see the status bar); retrying"),
            (None, _) => "no script: press : to pick one".to_owned(),
        };
        let empty = if app.script.is_some() && app.last_refresh.is_some() {
            "the script returned no tables".to_owned()
        } else {
            msg
        };
        frame.render_widget(
            Paragraph::new(empty)
                .style(theme.muted)
                .block(bordered(" pxtop ", theme)),
            area,
        );
        return;
    };
    let mut title = vec![Span::styled(format!(" {} ", table.name), theme.title)];
    match &table.widget {
        Some(Ok(w)) => title.push(Span::styled(format!("v: {} ", w.kind()), theme.muted)),
        Some(Err(why)) => title.push(Span::styled(format!("{why} "), theme.warning)),
        None => {}
    }
    if !view.filter.is_empty() {
        title.push(Span::styled(
            format!("{} ", view.filter.label()),
            theme.highlight,
        ));
    }
    if app.follow {
        title.push(Span::styled("FOLLOW ", theme.warning));
    }
    // Room for the selection marker.
    const MARKER: &str = "▶";
    let inner = Block::default().borders(Borders::ALL).inner(area);
    let width = usize::from(inner.width).saturating_sub(text_width(MARKER));
    let shown = columns_in_view(table, &view.order, view.sort, view.first_column, width);
    let current = view.order.get(view.column).copied();
    let mut position = if view.visible.is_empty() {
        format!(" 0/{} ", table.num_rows())
    } else {
        format!(" {}/{} ", view.selected + 1, view.visible.len())
    };
    // Say when columns are off screen (h/l scrolls to them) or hidden (+ shows them).
    let (first, last) = (view.first_column, view.first_column + shown.len());
    if first > 0 || last < view.order.len() {
        position.push_str(&format!(
            "· cols {}-{}/{} ",
            first + 1,
            last,
            view.order.len()
        ));
    }
    let hidden = table.columns.len().saturating_sub(view.order.len());
    if hidden > 0 {
        position.push_str(&format!("· {hidden} hidden "));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Line::from(title))
        .title(Line::styled(position, theme.muted).alignment(Alignment::Right));
    frame.render_widget(block, area);

    let header = Row::new(shown.iter().map(|&(i, w)| {
        let column = &table.columns[i];
        let arrow = match view.sort {
            Some(s) if s.column == i && s.descending => " ▼",
            Some(s) if s.column == i => " ▲",
            _ => "",
        };
        let text = fit(&format!("{}{arrow}", column.name), w);
        let line = if column.kind.right_aligned() {
            Line::from(text).alignment(Alignment::Right)
        } else {
            Line::from(text)
        };
        if Some(i) == current {
            TableCell::from(line).style(theme.header.patch(theme.key).reversed())
        } else {
            TableCell::from(line)
        }
    }))
    .style(theme.header);

    let body_rows = usize::from(inner.height.saturating_sub(1)).max(1);
    // The app scrolls with the viewport the loop measured; clamp here too so a resize between
    // measuring and drawing still shows the selection.
    let mut offset = view.offset.min(view.selected);
    if view.selected >= offset + body_rows {
        offset = view.selected + 1 - body_rows;
    }
    let window = view.visible.iter().skip(offset).take(body_rows);
    let rows: Vec<Row<'_>> = window
        .map(|&r| {
            Row::new(shown.iter().map(|&(i, w)| {
                let text = fit(&one_line(&table.text(r, i)), w);
                if table.columns[i].kind.right_aligned() {
                    TableCell::from(Line::from(text).alignment(Alignment::Right))
                } else {
                    TableCell::from(text)
                }
            }))
        })
        .collect();
    let widths: Vec<Constraint> = shown
        .iter()
        .map(|&(_, w)| Constraint::Length(u16::try_from(w).unwrap_or(u16::MAX)))
        .collect();
    let selected = (!view.visible.is_empty()).then(|| view.selected - offset);
    let mut state = TableState::default().with_selected(selected);
    let widget = Table::new(rows, widths)
        .header(header)
        .column_spacing(1)
        .row_highlight_style(theme.selected_row)
        .highlight_symbol(MARKER)
        .highlight_spacing(ratatui::widgets::HighlightSpacing::Always)
        .style(theme.base);
    frame.render_stateful_widget(widget, inner, &mut state);

    if view.visible.is_empty() {
        let msg = if let Some(e) = &view.filter_error {
            format!("bad regex: {e} (^R in / switches to substring)")
        } else if view.filter.is_empty() {
            "no rows".to_owned()
        } else {
            format!(
                "no rows match {} (Esc clears the filter)",
                view.filter.label()
            )
        };
        let [_, below] = Layout::vertical([Constraint::Length(1), Constraint::Min(0)]).areas(inner);
        frame.render_widget(Paragraph::new(msg).style(theme.muted), below);
    }
}

/// A widget view in a block titled with the table, the view, and the way back to the table.
fn render_widget_view(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let (Some((table, view)), Some((widget, state))) = (app.current(), app.current_widget()) else {
        return;
    };
    let mut title = vec![
        Span::styled(format!(" {} ", table.name), theme.title),
        Span::styled(format!("{} ", widget.kind()), theme.muted),
    ];
    if let super::views::Widget::Flame(_) = widget
        && !view.widget.flame.search.is_empty()
    {
        title.push(Span::styled(
            format!("/{} ", view.widget.flame.search),
            theme.highlight,
        ));
    }
    let block = Block::default()
        .borders(Borders::ALL)
        .border_style(theme.border)
        .title(Line::from(title))
        .title(
            Line::styled(
                format!(" {} rows · v: table ", table.num_rows()),
                theme.muted,
            )
            .alignment(Alignment::Right),
        );
    let inner = block.inner(area);
    frame.render_widget(block, area);
    super::views::render(frame.buffer_mut(), inner, widget, state, theme);
}

fn render_detail(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let (Some((table, view)), Some(cells)) = (app.current(), app.selected_row()) else {
        return;
    };
    let name_width = table
        .columns
        .iter()
        .map(|c| text_width(&c.name))
        .max()
        .unwrap_or(0);
    // Values wrap under themselves, not under the names, so the names column stays clean.
    let value_width = usize::from(area.width.saturating_sub(2))
        .saturating_sub(name_width + 2)
        .max(8);
    let indent = " ".repeat(name_width + 2);
    let mut lines = Vec::new();
    for (column, cell) in table.columns.iter().zip(cells) {
        let name = Span::styled(format!("{:>name_width$}  ", column.name), theme.field_name);
        if cell.text.is_empty() {
            let what = if cell.key == SortKey::Null {
                "null"
            } else {
                "(empty)"
            };
            lines.push(Line::from(vec![name, Span::styled(what, theme.muted)]));
            continue;
        }
        let mut first = true;
        let text = pretty_json(&cell.text).unwrap_or_else(|| cell.text.to_string());
        for source_line in text.split('\n') {
            for piece in wrap(source_line.trim_end_matches('\r'), value_width) {
                let lead = if first {
                    name.clone()
                } else {
                    Span::raw(indent.clone())
                };
                first = false;
                lines.push(Line::from(vec![lead, Span::styled(piece, theme.base)]));
            }
        }
    }
    let room = usize::from(area.height.saturating_sub(2));
    let scroll = app.detail_scroll.min(lines.len().saturating_sub(room));
    let mut title = format!(" row {}/{} ", view.selected + 1, view.visible.len());
    if lines.len() > room {
        title.push_str(&format!(
            "· lines {}-{}/{} · J/K scroll ",
            scroll + 1,
            (scroll + room).min(lines.len()),
            lines.len()
        ));
    }
    frame.render_widget(
        Paragraph::new(Text::from(lines))
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0))
            .block(bordered(title, theme)),
        area,
    );
}

/// A JSON object or array (a body, headers) indented for reading; `None` for anything else.
pub fn pretty_json(text: &str) -> Option<String> {
    let t = text.trim();
    if !(t.starts_with('{') || t.starts_with('[')) {
        return None;
    }
    let value: serde_json::Value = serde_json::from_str(t).ok()?;
    serde_json::to_string_pretty(&value).ok()
}

fn key_hints<'a>(pairs: &[(&'a str, &'a str)], theme: &Theme) -> Line<'a> {
    let mut spans = vec![Span::raw(" ")];
    for (i, (key, what)) in pairs.iter().enumerate() {
        if i > 0 {
            spans.push(Span::styled("  ", theme.muted));
        }
        spans.push(Span::styled(*key, theme.key));
        spans.push(Span::styled(format!(" {what}"), theme.muted));
    }
    Line::from(spans)
}

fn render_hints(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let line = match (app.screen, &app.filter_input) {
        (Screen::Live, Some(input)) => Line::from(vec![
            Span::styled(if input.regex { " re/" } else { " /" }, theme.highlight),
            Span::styled(input.text.as_str(), theme.base),
            Span::styled("▏", theme.highlight),
            Span::styled(
                if input.regex {
                    "  Enter keep  Esc clear  ^R substring  !x invert"
                } else {
                    "  Enter keep  Esc clear  ^R regex  !x invert"
                },
                theme.muted,
            ),
        ]),
        (Screen::Picker, _) if app.picker.form.is_some() => key_hints(
            &[
                ("Enter", "run"),
                ("Tab/↑/↓", "field"),
                ("type", "edit"),
                ("Esc", "back"),
            ],
            theme,
        ),
        (Screen::Picker, _) => key_hints(
            &[
                ("Enter", "run"),
                ("Tab", "arguments"),
                ("↑/↓", "move"),
                ("type", "search"),
                if app.script.is_some() {
                    ("Esc", "back")
                } else {
                    ("Esc", "quit")
                },
            ],
            theme,
        ),
        (Screen::Live, None) if app.current_widget().is_some() => {
            let mut pairs: Vec<(&str, &str)> = app
                .current_widget()
                .map(|(w, _)| super::views::hints(w).to_vec())
                .unwrap_or_default();
            pairs.extend([("v", "table"), ("?", "help"), ("q", "quit")]);
            key_hints(&pairs, theme)
        }
        (Screen::Live, None) => key_hints(
            &[
                ("?", "help"),
                (":", "scripts"),
                ("/", "filter"),
                ("s/S", "sort"),
                ("Enter", "detail"),
                ("y", "copy"),
                ("p", if app.paused { "resume" } else { "pause" }),
                ("q", "quit"),
                ("Tab", "table"),
            ],
            theme,
        ),
    };
    frame.render_widget(line, area);
}

/// Milliseconds for the status bar.
fn millis(d: std::time::Duration) -> String {
    let ms = d.as_secs_f64() * 1000.0;
    if ms < 10.0 {
        format!("{ms:.1} ms")
    } else {
        format!("{ms:.0} ms")
    }
}

fn render_status(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let bar = theme.status_bar;
    let on_bar = |s: Style| bar.patch(s);
    let mut spans = vec![Span::styled(format!(" {}", app.addr), bar)];
    if let Some(script) = app.script_label() {
        spans.push(Span::styled(format!("{SEP}{script}"), bar));
    }
    if let Some(notice) = &app.notice {
        spans.push(Span::styled(SEP, bar));
        spans.push(Span::styled(one_line(notice), on_bar(theme.highlight)));
    }
    // The error goes before the figures: on a narrow bar it is what must stay visible.
    if let Some(err) = &app.error {
        spans.push(Span::styled(SEP, bar));
        spans.push(Span::styled(
            format!("error: {}", one_line(err)),
            on_bar(theme.error),
        ));
    }
    if app.screen == Screen::Live {
        if let Some((table, view)) = app.current() {
            let rows = if view.filter.is_empty() {
                format!("{SEP}{} rows", table.num_rows())
            } else {
                format!("{SEP}{}/{} rows", view.visible.len(), table.num_rows())
            };
            spans.push(Span::styled(rows, bar));
        }
        if let Some(r) = &app.last_refresh {
            spans.push(Span::styled(
                format!("{SEP}{} ({})", r.at.format("%H:%M:%S"), millis(r.took)),
                bar,
            ));
        }
        if app.follow {
            spans.push(Span::styled(SEP, bar));
            spans.push(Span::styled("FOLLOW", on_bar(theme.highlight)));
        }
        if app.paused {
            spans.push(Span::styled(SEP, bar));
            spans.push(Span::styled("PAUSED", on_bar(theme.warning)));
        } else if app.script.is_some() {
            spans.push(Span::styled(
                format!("{SEP}every {}s", app.refresh_every.as_secs()),
                bar,
            ));
        }
        if let Some(stats) = &app.stats {
            if stats.truncated {
                spans.push(Span::styled(SEP, bar));
                spans.push(Span::styled("truncated", on_bar(theme.warning)));
            }
            if !stats.warnings.is_empty() {
                spans.push(Span::styled(SEP, bar));
                spans.push(Span::styled(
                    format!("warning: {}", stats.warnings.join("; ")),
                    on_bar(theme.warning),
                ));
            }
        }
    }
    frame.render_widget(Paragraph::new(Line::from(spans)).style(bar), area);
}

fn render_help(frame: &mut Frame<'_>, area: Rect, app: &App, theme: &Theme) {
    let sections = keys::help_sections();
    let key_width = sections
        .iter()
        .flat_map(|(_, lines)| lines.iter().map(|(k, _)| text_width(k)))
        .max()
        .unwrap_or(0);
    let text_width_max = sections
        .iter()
        .flat_map(|(_, lines)| lines.iter().map(|(_, t)| text_width(t)))
        .max()
        .unwrap_or(0);
    let mut lines: Vec<Line<'_>> = Vec::new();
    for (title, pairs) in sections {
        if !lines.is_empty() {
            lines.push(Line::raw(""));
        }
        lines.push(Line::styled(format!(" {title}"), theme.header));
        for (k, t) in pairs {
            lines.push(Line::from(vec![
                Span::styled(format!(" {k:>key_width$}"), theme.key),
                Span::styled(format!("  {t}"), theme.base),
            ]));
        }
    }
    let width = u16::try_from(key_width + text_width_max + 6).unwrap_or(u16::MAX);
    let height = u16::try_from(lines.len() + 2).unwrap_or(u16::MAX);
    let popup = centered(area, width, height);
    let room = usize::from(popup.height.saturating_sub(2));
    let scroll = app.help_scroll.min(lines.len().saturating_sub(room));
    let title = if lines.len() > room {
        format!(
            " Keys {}-{}/{} · j/k scroll · Esc closes ",
            scroll + 1,
            (scroll + room).min(lines.len()),
            lines.len()
        )
    } else {
        " Keys · Esc closes ".to_owned()
    };
    frame.render_widget(Clear, popup);
    frame.render_widget(
        Paragraph::new(lines)
            .style(theme.base)
            .scroll((u16::try_from(scroll).unwrap_or(u16::MAX), 0))
            .block(bordered(title, theme)),
        popup,
    );
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fit_cuts_with_an_ellipsis() {
        assert_eq!(fit("abcdef", 6), "abcdef");
        assert_eq!(fit("abcdef", 4), "abc…");
        assert_eq!(fit("µµµµ", 3), "µµ…");
    }

    #[test]
    fn wrap_prefers_spaces_and_cuts_long_words() {
        assert_eq!(wrap("hello big world", 10), ["hello big ", "world"]);
        assert_eq!(wrap("abcdefghij", 4), ["abcd", "efgh", "ij"]);
        assert_eq!(wrap("", 4), [""]);
        // A space too early in the line would waste it; cut instead.
        assert_eq!(wrap("a bcdefghij", 6), ["a bcde", "fghij"]);
    }
}
