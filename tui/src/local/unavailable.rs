//! Stand-in for builds without the `local` feature: same API, `start` explains the fix.

/// Failures of the embedded backend; each names the fix.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    /// Built without the backend.
    #[error(
        "--local needs pxtop built with the `local` feature (cargo build -p pxtop --features local); or run `pxtopd` and use --addr"
    )]
    Unavailable,
}

/// The running embedded backend (never constructed in this build).
#[derive(Debug)]
pub struct LocalBackend {
    addr: String,
    token: String,
}

impl LocalBackend {
    /// Always fails: there is no backend in this build.
    pub async fn start() -> Result<Self, LocalError> {
        Err(LocalError::Unavailable)
    }

    /// The URL to connect to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    /// The token it accepts.
    pub fn token(&self) -> &str {
        &self.token
    }

    /// Stops the backend and waits for it.
    pub async fn shutdown(self) -> Result<(), LocalError> {
        Ok(())
    }
}

/// The token a client sends: `PXTOP_TOKEN`, else `~/.config/pxtop/local.token` (pxtopd's
/// `token::resolve_client_token`, repeated here only for builds without pxtopd).
pub fn resolve_client_token() -> Option<String> {
    let env = std::env::var("PXTOP_TOKEN")
        .ok()
        .map(|t| t.trim().to_owned());
    env.filter(|t| !t.is_empty()).or_else(|| {
        let path = dirs::config_dir()?.join("pxtop").join("local.token");
        let text = std::fs::read_to_string(path).ok()?;
        Some(text.trim().to_owned()).filter(|t| !t.is_empty())
    })
}
