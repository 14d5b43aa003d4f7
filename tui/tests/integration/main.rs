//! pxtop's integration tests, one binary: whole-screen TUI snapshots, the client and the
//! `pxtop` binary against an in-process fake pxtopd, and one run of the real binary in tmux
//! against the real (embedded) backend.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "tests and benches fail loudly"
)]
#![expect(
    clippy::unwrap_used,
    reason = "fixture helpers outside #[test] fns: a broken fixture should panic"
)]

mod auth;
mod deploy;
mod fake;
mod headless;
mod render;
mod tls;
mod tmux;
mod views;
