//! `pxtop --local`: the backend (pxtopd) embedded in this process.

pub mod embedded;

pub use embedded::{LocalBackend, LocalError};

/// The token a client sends: `PXTOP_TOKEN`, else the local token file pxtopd wrote.
pub fn resolve_client_token() -> Option<String> {
    pxtopd::token::resolve_client_token()
}
