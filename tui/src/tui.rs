//! The live TUI: [`app`] (pure state and key handling), [`render`] (drawing from state),
//! [`data`] (result tables as display rows), [`views`] (the widget views a script's widget spec
//! asks for: service map, histograms, flame graph, time series, bars) and [`event_loop`] (the terminal, background
//! refresh tasks, and the loop that ties them together).

pub mod app;
pub mod data;
pub mod event_loop;
pub mod keys;
pub mod render;
pub mod views;

pub use app::{Action, App, RefreshInfo, Screen, Sort, View};
pub use event_loop::{TuiConfig, TuiError, run};
pub use render::render;
