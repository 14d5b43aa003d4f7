//! Themes as data: semantic styles loaded from TOML (`themes/*.toml`, embedded at build time),
//! user files that override only what they name, and `NO_COLOR`.

use std::collections::BTreeMap;
use std::path::Path;
use std::str::FromStr;

use ratatui::style::{Color, Modifier, Style};
use serde::Deserialize;

/// The bundled themes, by name; the first is the default and the base of user files.
pub const BUNDLED: &[(&str, &str)] = &[
    ("dark", include_str!("../../themes/dark.toml")),
    ("light", include_str!("../../themes/light.toml")),
    (
        "high-contrast",
        include_str!("../../themes/high-contrast.toml"),
    ),
];

/// Failures loading a theme.
#[derive(Debug, thiserror::Error)]
pub enum ThemeError {
    /// Neither a bundled name nor an existing file.
    #[error(
        "unknown theme '{0}': use one of {names} or a path to a .toml file",
        names = bundled_names()
    )]
    Unknown(String),
    /// The file could not be read.
    #[error("cannot read theme file '{path}': {source}")]
    Read {
        /// The path given.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The TOML is malformed or has unknown keys.
    #[error("theme '{origin}' is not valid: {message}")]
    Invalid {
        /// Theme name or path.
        origin: String,
        /// What is wrong, with the place.
        message: String,
    },
}

fn bundled_names() -> String {
    BUNDLED
        .iter()
        .map(|(n, _)| *n)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The semantic styles every widget draws with; widgets never hard-code colours.
#[derive(Debug, Clone, PartialEq)]
pub struct Theme {
    /// Ordinary text and the screen background.
    pub base: Style,
    /// Table column headers.
    pub header: Style,
    /// The selected table row or list item.
    pub selected_row: Style,
    /// Block borders.
    pub border: Style,
    /// Block and screen titles.
    pub title: Style,
    /// The status bar.
    pub status_bar: Style,
    /// Error messages.
    pub error: Style,
    /// Warnings (truncated results, paused refresh).
    pub warning: Style,
    /// Secondary text: hints, empty-state messages, descriptions.
    pub muted: Style,
    /// Key names in hints and the help overlay.
    pub key: Style,
    /// The active output-table tab.
    pub tab_active: Style,
    /// Inactive output-table tabs.
    pub tab_inactive: Style,
    /// Filter matches and the filter prompt.
    pub highlight: Style,
    /// Column names in the detail pane.
    pub field_name: Style,
    /// A healthy service or edge (service map).
    pub health_ok: Style,
    /// A service or edge past a warning threshold.
    pub health_warn: Style,
    /// A service or edge past a critical threshold.
    pub health_bad: Style,
    /// Chart series, in turn (time series lines, compared histograms).
    pub series_1: Style,
    /// The second chart series.
    pub series_2: Style,
    /// The third chart series.
    pub series_3: Style,
    /// The fourth chart series.
    pub series_4: Style,
    /// The fifth chart series.
    pub series_5: Style,
    /// The sixth chart series.
    pub series_6: Style,
    /// Flame graph frames.
    pub flame: Style,
    /// Flame graph frames next to a `flame` one (so neighbours stay apart).
    pub flame_alt: Style,
    /// Flame graph frames matching the search.
    pub flame_match: Style,
    /// Bars of histograms and bar charts.
    pub bar: Style,
    /// When the service map calls a service or edge unhealthy.
    pub health: Health,
}

/// The style names a theme file may set, in the order they are documented.
pub const STYLE_NAMES: &[&str] = &[
    "base",
    "header",
    "selected_row",
    "border",
    "title",
    "status_bar",
    "error",
    "warning",
    "muted",
    "key",
    "tab_active",
    "tab_inactive",
    "highlight",
    "field_name",
    "health_ok",
    "health_warn",
    "health_bad",
    "series_1",
    "series_2",
    "series_3",
    "series_4",
    "series_5",
    "series_6",
    "flame",
    "flame_alt",
    "flame_match",
    "bar",
];

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ThemeFile {
    /// For user files: which bundled theme to start from (default: the first bundled one).
    extends: Option<String>,
    #[serde(default)]
    styles: BTreeMap<String, StyleSpec>,
    /// Health thresholds; each one named replaces the base's.
    health: Option<HealthSpec>,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct HealthSpec {
    error_rate_warn: Option<f64>,
    error_rate_bad: Option<f64>,
    latency_p99_warn_ms: Option<f64>,
    latency_p99_bad_ms: Option<f64>,
}

/// Thresholds past which a service or an edge is drawn as warning or bad: an error rate (a
/// fraction, 0.05 = 5%) or a p99 latency.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Health {
    /// Error rate from which it is a warning.
    pub error_rate_warn: f64,
    /// Error rate from which it is bad.
    pub error_rate_bad: f64,
    /// p99 latency (ms) from which it is a warning.
    pub latency_p99_warn_ms: f64,
    /// p99 latency (ms) from which it is bad.
    pub latency_p99_bad_ms: f64,
}

impl Default for Health {
    fn default() -> Self {
        Health {
            error_rate_warn: 0.01,
            error_rate_bad: 0.05,
            latency_p99_warn_ms: 250.0,
            latency_p99_bad_ms: 1000.0,
        }
    }
}

/// How healthy a service or an edge is, worst first in the ordering's reverse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum HealthLevel {
    /// Below every threshold (or nothing to judge by).
    Ok,
    /// Past a warning threshold.
    Warn,
    /// Past a bad threshold.
    Bad,
}

impl Health {
    /// Judges an error rate (fraction) and a p99 latency (ns); either may be unknown.
    pub fn level(&self, error_rate: Option<f64>, p99_ns: Option<f64>) -> HealthLevel {
        let ms = p99_ns.map(|ns| ns / 1e6);
        let past = |v: Option<f64>, t: f64| v.is_some_and(|v| v >= t);
        if past(error_rate, self.error_rate_bad) || past(ms, self.latency_p99_bad_ms) {
            HealthLevel::Bad
        } else if past(error_rate, self.error_rate_warn) || past(ms, self.latency_p99_warn_ms) {
            HealthLevel::Warn
        } else {
            HealthLevel::Ok
        }
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct StyleSpec {
    fg: Option<String>,
    bg: Option<String>,
    modifiers: Option<Vec<String>>,
}

/// A style with every part resolved; what overriding works on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Resolved {
    fg: Option<Color>,
    bg: Option<Color>,
    modifiers: Modifier,
}

impl Resolved {
    fn style(self) -> Style {
        let mut s = Style::default().add_modifier(self.modifiers);
        if let Some(fg) = self.fg {
            s = s.fg(fg);
        }
        if let Some(bg) = self.bg {
            s = s.bg(bg);
        }
        s
    }

    fn from_style(s: Style) -> Self {
        Resolved {
            fg: s.fg,
            bg: s.bg,
            modifiers: s.add_modifier,
        }
    }
}

fn parse_color(origin: &str, style: &str, value: &str) -> Result<Color, ThemeError> {
    Color::from_str(value).map_err(|_| ThemeError::Invalid {
        origin: origin.to_owned(),
        message: format!(
            "styles.{style}: unknown colour '{value}' (use a name like \"cyan\" or \"dark-gray\", \"#rrggbb\", or an index 0-255)"
        ),
    })
}

fn parse_modifier(origin: &str, style: &str, value: &str) -> Result<Modifier, ThemeError> {
    Ok(match value.to_ascii_lowercase().as_str() {
        "bold" => Modifier::BOLD,
        "dim" => Modifier::DIM,
        "italic" => Modifier::ITALIC,
        "underlined" | "underline" => Modifier::UNDERLINED,
        "reversed" | "reverse" => Modifier::REVERSED,
        "crossed_out" | "strikethrough" => Modifier::CROSSED_OUT,
        "slow_blink" | "blink" => Modifier::SLOW_BLINK,
        _ => {
            return Err(ThemeError::Invalid {
                origin: origin.to_owned(),
                message: format!(
                    "styles.{style}: unknown modifier '{value}' (use bold, dim, italic, underlined, reversed or crossed_out)"
                ),
            });
        }
    })
}

impl Theme {
    fn slot_mut(&mut self, name: &str) -> Option<&mut Style> {
        Some(match name {
            "base" => &mut self.base,
            "header" => &mut self.header,
            "selected_row" => &mut self.selected_row,
            "border" => &mut self.border,
            "title" => &mut self.title,
            "status_bar" => &mut self.status_bar,
            "error" => &mut self.error,
            "warning" => &mut self.warning,
            "muted" => &mut self.muted,
            "key" => &mut self.key,
            "tab_active" => &mut self.tab_active,
            "tab_inactive" => &mut self.tab_inactive,
            "highlight" => &mut self.highlight,
            "field_name" => &mut self.field_name,
            "health_ok" => &mut self.health_ok,
            "health_warn" => &mut self.health_warn,
            "health_bad" => &mut self.health_bad,
            "series_1" => &mut self.series_1,
            "series_2" => &mut self.series_2,
            "series_3" => &mut self.series_3,
            "series_4" => &mut self.series_4,
            "series_5" => &mut self.series_5,
            "series_6" => &mut self.series_6,
            "flame" => &mut self.flame,
            "flame_alt" => &mut self.flame_alt,
            "flame_match" => &mut self.flame_match,
            "bar" => &mut self.bar,
            _ => return None,
        })
    }

    fn slots_mut(&mut self) -> [&mut Style; 27] {
        [
            &mut self.base,
            &mut self.header,
            &mut self.selected_row,
            &mut self.border,
            &mut self.title,
            &mut self.status_bar,
            &mut self.error,
            &mut self.warning,
            &mut self.muted,
            &mut self.key,
            &mut self.tab_active,
            &mut self.tab_inactive,
            &mut self.highlight,
            &mut self.field_name,
            &mut self.health_ok,
            &mut self.health_warn,
            &mut self.health_bad,
            &mut self.series_1,
            &mut self.series_2,
            &mut self.series_3,
            &mut self.series_4,
            &mut self.series_5,
            &mut self.series_6,
            &mut self.flame,
            &mut self.flame_alt,
            &mut self.flame_match,
            &mut self.bar,
        ]
    }

    /// A theme with no styling at all (the starting point for bundled themes).
    fn blank() -> Self {
        Theme {
            base: Style::default(),
            header: Style::default(),
            selected_row: Style::default(),
            border: Style::default(),
            title: Style::default(),
            status_bar: Style::default(),
            error: Style::default(),
            warning: Style::default(),
            muted: Style::default(),
            key: Style::default(),
            tab_active: Style::default(),
            tab_inactive: Style::default(),
            highlight: Style::default(),
            field_name: Style::default(),
            health_ok: Style::default(),
            health_warn: Style::default(),
            health_bad: Style::default(),
            series_1: Style::default(),
            series_2: Style::default(),
            series_3: Style::default(),
            series_4: Style::default(),
            series_5: Style::default(),
            series_6: Style::default(),
            flame: Style::default(),
            flame_alt: Style::default(),
            flame_match: Style::default(),
            bar: Style::default(),
            health: Health::default(),
        }
    }

    /// Applies a theme file's styles over `self`: each named part (fg, bg, modifiers) replaces
    /// the base's, everything unnamed stays.
    fn overlay(mut self, origin: &str, file: &ThemeFile) -> Result<Self, ThemeError> {
        if let Some(h) = &file.health {
            let set = |slot: &mut f64, v: Option<f64>, key: &str| -> Result<(), ThemeError> {
                match v {
                    Some(v) if !v.is_finite() || v < 0.0 => Err(ThemeError::Invalid {
                        origin: origin.to_owned(),
                        message: format!("health.{key}: {v} must be a number >= 0"),
                    }),
                    Some(v) => {
                        *slot = v;
                        Ok(())
                    }
                    None => Ok(()),
                }
            };
            set(
                &mut self.health.error_rate_warn,
                h.error_rate_warn,
                "error_rate_warn",
            )?;
            set(
                &mut self.health.error_rate_bad,
                h.error_rate_bad,
                "error_rate_bad",
            )?;
            set(
                &mut self.health.latency_p99_warn_ms,
                h.latency_p99_warn_ms,
                "latency_p99_warn_ms",
            )?;
            set(
                &mut self.health.latency_p99_bad_ms,
                h.latency_p99_bad_ms,
                "latency_p99_bad_ms",
            )?;
        }
        for (name, spec) in &file.styles {
            let slot = self.slot_mut(name).ok_or_else(|| ThemeError::Invalid {
                origin: origin.to_owned(),
                message: format!(
                    "unknown style '{name}' (styles are: {})",
                    STYLE_NAMES.join(", ")
                ),
            })?;
            let mut r = Resolved::from_style(*slot);
            if let Some(fg) = &spec.fg {
                r.fg = Some(parse_color(origin, name, fg)?);
            }
            if let Some(bg) = &spec.bg {
                r.bg = Some(parse_color(origin, name, bg)?);
            }
            if let Some(mods) = &spec.modifiers {
                r.modifiers = Modifier::empty();
                for m in mods {
                    r.modifiers |= parse_modifier(origin, name, m)?;
                }
            }
            *slot = r.style();
        }
        Ok(self)
    }

    fn parse_file(origin: &str, text: &str) -> Result<ThemeFile, ThemeError> {
        toml::from_str(text).map_err(|e| ThemeError::Invalid {
            origin: origin.to_owned(),
            message: e.to_string().trim_end().to_owned(),
        })
    }

    /// A bundled theme by name.
    pub fn bundled(name: &str) -> Result<Self, ThemeError> {
        let (_, text) = BUNDLED
            .iter()
            .find(|(n, _)| *n == name)
            .ok_or_else(|| ThemeError::Unknown(name.to_owned()))?;
        let file = Self::parse_file(name, text)?;
        Theme::blank().overlay(name, &file)
    }

    /// The default theme (the first bundled one).
    pub fn default_theme() -> Result<Self, ThemeError> {
        Self::bundled(BUNDLED[0].0)
    }

    /// Parses a user theme: `extends` (default: the default theme) overlaid with its styles.
    pub fn from_user_toml(origin: &str, text: &str) -> Result<Self, ThemeError> {
        let file = Self::parse_file(origin, text)?;
        let base = match &file.extends {
            Some(name) => Self::bundled(name).map_err(|_| ThemeError::Invalid {
                origin: origin.to_owned(),
                message: format!(
                    "extends = '{name}' is not a bundled theme (use one of {})",
                    bundled_names()
                ),
            })?,
            None => Self::default_theme()?,
        };
        base.overlay(origin, &file)
    }

    /// `--theme NAME|PATH`: a bundled name, else a file path.
    pub fn load(name_or_path: &str) -> Result<Self, ThemeError> {
        if BUNDLED.iter().any(|(n, _)| *n == name_or_path) {
            return Self::bundled(name_or_path);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ThemeError::Unknown(name_or_path.to_owned()));
        }
        let text = std::fs::read_to_string(path).map_err(|source| ThemeError::Read {
            path: name_or_path.to_owned(),
            source,
        })?;
        Self::from_user_toml(name_or_path, &text)
    }

    /// The same theme without colours (for `NO_COLOR`). Styles that relied on a background
    /// colour to stand out (the selected row, the status bar) get reversed video instead.
    pub fn without_colors(mut self) -> Self {
        for slot in self.slots_mut() {
            let had_bg = slot.bg.is_some_and(|c| c != Color::Reset);
            let mut s = Style::default().add_modifier(slot.add_modifier);
            if had_bg {
                s = s.add_modifier(Modifier::REVERSED);
            }
            *slot = s;
        }
        self
    }

    /// True when the `NO_COLOR` convention asks for no colours (set and not empty).
    pub fn no_color_requested() -> bool {
        std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_bundled_theme_parses_and_names_every_style() {
        for (name, text) in BUNDLED {
            let file = Theme::parse_file(name, text).unwrap();
            assert!(file.extends.is_none(), "{name}: bundled themes stand alone");
            let named: Vec<&str> = file.styles.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = STYLE_NAMES.to_vec();
            expected.sort_unstable();
            assert_eq!(named, expected, "{name} must set every style");
            let theme = Theme::bundled(name).unwrap();
            assert_ne!(
                theme.selected_row, theme.base,
                "{name}: selection must stand out"
            );
        }
    }

    #[test]
    fn every_theme_file_on_disk_is_bundled() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../themes");
        let mut on_disk: Vec<String> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "toml"))
            .map(|p| p.file_stem().unwrap().to_string_lossy().into_owned())
            .collect();
        on_disk.sort();
        let mut bundled: Vec<String> = BUNDLED.iter().map(|(n, _)| n.to_string()).collect();
        bundled.sort();
        assert_eq!(
            on_disk, bundled,
            "add new themes/*.toml files to theme::BUNDLED"
        );
        for name in on_disk {
            Theme::load(dir.join(format!("{name}.toml")).to_str().unwrap()).unwrap();
        }
    }

    #[test]
    fn dark_is_the_default_and_themes_differ() {
        let dark = Theme::load("dark").unwrap();
        assert_eq!(dark, Theme::default_theme().unwrap());
        assert_ne!(dark, Theme::load("light").unwrap());
    }

    #[test]
    fn user_files_override_only_what_they_name() {
        let dark = Theme::default_theme().unwrap();
        let user = Theme::from_user_toml(
            "mine.toml",
            "[styles.header]\nfg = \"#ff8800\"\n[styles.error]\nmodifiers = [\"underlined\"]\n",
        )
        .unwrap();
        assert_eq!(user.header.fg, Some(Color::Rgb(0xff, 0x88, 0x00)));
        // The header's background and modifiers come from the base theme.
        assert_eq!(user.header.bg, dark.header.bg);
        assert_eq!(user.header.add_modifier, dark.header.add_modifier);
        assert_eq!(user.error.fg, dark.error.fg);
        assert_eq!(user.error.add_modifier, Modifier::UNDERLINED);
        assert_eq!(user.selected_row, dark.selected_row);
        assert_eq!(user.base, dark.base);
    }

    #[test]
    fn user_files_can_extend_another_bundled_theme() {
        let light = Theme::load("light").unwrap();
        let user =
            Theme::from_user_toml("x", "extends = \"light\"\n[styles.title]\nfg = \"red\"\n")
                .unwrap();
        assert_eq!(user.title.fg, Some(Color::Red));
        assert_eq!(user.header, light.header);
        let err = Theme::from_user_toml("x", "extends = \"solarized\"\n").unwrap_err();
        assert_eq!(
            err.to_string(),
            "theme 'x' is not valid: extends = 'solarized' is not a bundled theme (use one of dark, light, high-contrast)"
        );
    }

    #[test]
    fn mistakes_are_named() {
        let err = Theme::from_user_toml("t.toml", "[styles.heder]\nfg = \"red\"\n").unwrap_err();
        assert!(
            err.to_string().starts_with(
                "theme 't.toml' is not valid: unknown style 'heder' (styles are: base, header,"
            ),
            "{err}"
        );
        let err = Theme::from_user_toml("t.toml", "[styles.header]\nfg = \"redd\"\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("styles.header: unknown colour 'redd'"),
            "{err}"
        );
        let err = Theme::from_user_toml("t.toml", "[styles.header]\nmodifiers = [\"blod\"]\n")
            .unwrap_err();
        assert!(err.to_string().contains("unknown modifier 'blod'"), "{err}");
        let err =
            Theme::from_user_toml("t.toml", "[styles.header]\ncolour = \"red\"\n").unwrap_err();
        assert!(err.to_string().contains("unknown field `colour`"), "{err}");
        let err = Theme::load("no-such-theme").unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown theme 'no-such-theme': use one of dark, light, high-contrast or a path to a .toml file"
        );
    }

    #[test]
    fn high_contrast_is_bundled_and_health_thresholds_override_one_by_one() {
        let hc = Theme::load("high-contrast").unwrap();
        assert_ne!(hc, Theme::default_theme().unwrap());
        assert_eq!(hc.base.bg, Some(Color::Black));
        let user = Theme::from_user_toml("u", "[health]\nerror_rate_bad = 0.2\n").unwrap();
        assert_eq!(user.health.error_rate_bad, 0.2);
        assert_eq!(
            user.health.error_rate_warn,
            Health::default().error_rate_warn
        );
        assert_eq!(
            user.health.level(Some(0.1), None),
            HealthLevel::Warn,
            "10% is only a warning once bad starts at 20%"
        );
        assert_eq!(user.health.level(None, Some(2e9)), HealthLevel::Bad);
        let err = Theme::from_user_toml("u", "[health]\nlatency_p99_bad_ms = -1\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("health.latency_p99_bad_ms: -1 must be a number >= 0"),
            "{err}"
        );
        let err = Theme::from_user_toml("u", "[health]\nerror_rate = 1\n").unwrap_err();
        assert!(
            err.to_string().contains("unknown field `error_rate`"),
            "{err}"
        );
    }

    #[test]
    fn user_theme_loads_from_a_path() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.toml");
        std::fs::write(&path, "[styles.muted]\nfg = \"12\"\n").unwrap();
        let t = Theme::load(path.to_str().unwrap()).unwrap();
        assert_eq!(t.muted.fg, Some(Color::Indexed(12)));
    }

    #[test]
    fn no_color_strips_colours_but_keeps_the_selection_visible() {
        let t = Theme::default_theme().unwrap().without_colors();
        for slot in t.clone().slots_mut() {
            assert_eq!(slot.fg, None);
            assert_eq!(slot.bg, None);
        }
        assert!(t.selected_row.add_modifier.contains(Modifier::REVERSED));
    }
}
