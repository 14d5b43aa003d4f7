//! The bearer token: from `PXTOP_TOKEN`, else a random token kept in a file only this user can
//! read (`~/.config/pxtop/local.token`, mode 0600), which a local `pxtop` picks up by itself.

use std::{
    fs,
    io::{self, Write},
    os::unix::fs::{OpenOptionsExt, PermissionsExt},
    path::PathBuf,
};

/// The environment variable both pxtopd and pxtop read.
pub const ENV: &str = "PXTOP_TOKEN";

/// Where the local token lives.
pub fn local_token_path() -> Option<PathBuf> {
    dirs::config_dir().map(|d| d.join("pxtop").join("local.token"))
}

/// A fresh random token: 128 bits as hex.
pub fn random() -> String {
    let bytes: [u8; 16] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Where a server's token came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Source {
    /// `PXTOP_TOKEN`.
    Env,
    /// The local token file (created if it was missing).
    File(PathBuf),
}

/// The token a server accepts: `PXTOP_TOKEN`, else the local token file, created with a random
/// token (mode 0600) when missing.
pub fn resolve_server_token() -> io::Result<(String, Source)> {
    if let Some(t) = env_token() {
        return Ok((t, Source::Env));
    }
    let path = local_token_path().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::NotFound,
            "no home directory for the local token file: set PXTOP_TOKEN",
        )
    })?;
    if let Some(t) = read_token(&path)? {
        return Ok((t, Source::File(path)));
    }
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir)?;
        fs::set_permissions(dir, fs::Permissions::from_mode(0o700))?;
    }
    let token = random();
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)?;
    f.write_all(token.as_bytes())?;
    Ok((token, Source::File(path)))
}

/// The token a client sends: `PXTOP_TOKEN`, else the local token file if there is one.
pub fn resolve_client_token() -> Option<String> {
    env_token().or_else(|| {
        local_token_path()
            .and_then(|p| read_token(&p).ok())
            .flatten()
    })
}

fn env_token() -> Option<String> {
    std::env::var(ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
}

fn read_token(path: &std::path::Path) -> io::Result<Option<String>> {
    match fs::read_to_string(path) {
        Ok(s) if !s.trim().is_empty() => Ok(Some(s.trim().to_string())),
        Ok(_) => Ok(None),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn random_tokens_are_long_and_distinct() {
        let (a, b) = (random(), random());
        assert_eq!(a.len(), 32);
        assert_ne!(a, b);
    }

    #[test]
    fn token_file_is_read_trimmed_and_empty_counts_as_missing() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("t");
        assert_eq!(read_token(&p).unwrap(), None);
        fs::write(&p, "abc\n").unwrap();
        assert_eq!(read_token(&p).unwrap().as_deref(), Some("abc"));
        fs::write(&p, "  \n").unwrap();
        assert_eq!(read_token(&p).unwrap(), None);
    }
}
