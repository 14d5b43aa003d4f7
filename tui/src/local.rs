//! `pxtop --local`: the backend embedded in this process ([`embedded`] with the `local`
//! feature, which links pxtopd; otherwise a stand-in whose `start` names the fix).
//!
//! PXTOPD-PENDING: `local` is off by default only because pxtopd does not build yet (its
//! pxtop-pem/pxtop-protocols are in progress). Once it does, make `local` a default feature
//! in tui/Cargo.toml (or make pxtopd a plain dependency and drop `unavailable.rs`).

#[cfg(feature = "local")]
pub mod embedded;
#[cfg(not(feature = "local"))]
pub mod unavailable;

#[cfg(feature = "local")]
pub use embedded::{LocalBackend, LocalError};
#[cfg(not(feature = "local"))]
pub use unavailable::{LocalBackend, LocalError};

/// The token a client sends: `PXTOP_TOKEN`, else the local token file pxtopd wrote.
pub fn resolve_client_token() -> Option<String> {
    #[cfg(feature = "local")]
    {
        pxtopd::token::resolve_client_token()
    }
    #[cfg(not(feature = "local"))]
    {
        unavailable::resolve_client_token()
    }
}
