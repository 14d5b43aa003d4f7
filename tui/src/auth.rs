//! `pxtop auth`: a token per cluster (kubeconfig context), kept in the OS keyring (the Secret
//! Service on Linux, through the `keyring` crate) or, where there is none (a headless server, a
//! container, or `PXTOP_NO_KEYRING=1`), in `tokens.toml` under pxtop's config directory, mode
//! 0600, with a one-line notice saying so.

use std::collections::BTreeMap;
use std::io::{self, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The keyring service name tokens are stored under (the context is the user name).
pub const KEYRING_SERVICE: &str = "pxtop";
/// Set to 1 to skip the keyring and use the file.
pub const NO_KEYRING_ENV: &str = "PXTOP_NO_KEYRING";

/// Where a token is (or was put).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Place {
    /// The OS keyring.
    Keyring,
    /// The fallback file.
    File(PathBuf),
}

impl std::fmt::Display for Place {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Place::Keyring => f.write_str("the OS keyring"),
            Place::File(p) => write!(f, "{} (mode 0600)", p.display()),
        }
    }
}

/// Failures storing or reading tokens.
#[derive(Debug, thiserror::Error)]
pub enum AuthError {
    /// No config directory to keep the file in.
    #[error("no config directory for the token file: set HOME or XDG_CONFIG_HOME")]
    NoConfigDir,
    /// The token file cannot be read or written.
    #[error("token file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: io::Error,
    },
    /// The token file is not TOML of `context = "token"` lines.
    #[error("token file {path} is not valid: {message} (fix or delete it)")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The parser's message.
        message: String,
    },
    /// No token was given.
    #[error("no token given: paste it at the prompt or pipe it on stdin")]
    Empty,
    /// The prompt failed.
    #[error("cannot read the token: {0}")]
    Prompt(io::Error),
}

/// The token store: the keyring when usable, else the file.
#[derive(Debug, Clone)]
pub struct TokenStore {
    file: Option<PathBuf>,
    use_keyring: bool,
}

impl TokenStore {
    /// The store for this user: keyring unless `PXTOP_NO_KEYRING` is set, file
    /// `<config dir>/pxtop/tokens.toml`.
    pub fn for_user() -> Self {
        Self {
            file: dirs::config_dir().map(|d| d.join("pxtop").join("tokens.toml")),
            use_keyring: std::env::var_os(NO_KEYRING_ENV).is_none_or(|v| v.is_empty() || v == "0"),
        }
    }

    /// A file-only store at `path` (tests, and `PXTOP_NO_KEYRING`).
    pub fn file_only(path: PathBuf) -> Self {
        Self {
            file: Some(path),
            use_keyring: false,
        }
    }

    fn file(&self) -> Result<&Path, AuthError> {
        self.file.as_deref().ok_or(AuthError::NoConfigDir)
    }

    /// Stores `token` for `context`; where it went, and a notice when the keyring was not
    /// usable.
    pub fn set(&self, context: &str, token: &str) -> Result<(Place, Option<String>), AuthError> {
        let mut notice = None;
        if self.use_keyring {
            match keyring_call(context, |e| e.set_password(token)) {
                Ok(()) => {
                    // A stale copy in the file would shadow nothing but confuse `status`.
                    let _ = self.remove_from_file(context);
                    return Ok((Place::Keyring, None));
                }
                Err(e) => notice = Some(e),
            }
        }
        let path = self.file()?.to_path_buf();
        let mut all = read_file(&path)?;
        all.insert(context.to_string(), token.to_string());
        write_file(&path, &all)?;
        let notice = notice.map(|e| {
            format!(
                "no usable OS keyring ({e}): token kept in {} (mode 0600)",
                path.display()
            )
        });
        Ok((Place::File(path), notice))
    }

    /// The token stored for `context`, and where it was.
    pub fn get(&self, context: &str) -> Result<Option<(String, Place)>, AuthError> {
        if self.use_keyring
            && let Ok(t) = keyring_call(context, |e| e.get_password())
        {
            return Ok(Some((t, Place::Keyring)));
        }
        let Some(path) = self.file.as_deref() else {
            return Ok(None);
        };
        Ok(read_file(path)?
            .remove(context)
            .map(|t| (t, Place::File(path.to_path_buf()))))
    }

    /// Forgets `context`'s token everywhere; where it was.
    pub fn remove(&self, context: &str) -> Result<Vec<Place>, AuthError> {
        let mut removed = Vec::new();
        if self.use_keyring && keyring_call(context, |e| e.delete_credential()).is_ok() {
            removed.push(Place::Keyring);
        }
        if self.remove_from_file(context)? {
            removed.push(Place::File(self.file()?.to_path_buf()));
        }
        Ok(removed)
    }

    fn remove_from_file(&self, context: &str) -> Result<bool, AuthError> {
        let Some(path) = self.file.as_deref() else {
            return Ok(false);
        };
        let mut all = read_file(path)?;
        if all.remove(context).is_none() {
            return Ok(false);
        }
        write_file(path, &all)?;
        Ok(true)
    }
}

/// Runs one keyring operation on a thread of its own: the Secret Service backend drives its own
/// async runtime, which must not nest inside the caller's.
fn keyring_call<T: Send>(
    context: &str,
    op: impl FnOnce(&keyring::Entry) -> keyring::Result<T> + Send,
) -> Result<T, String> {
    std::thread::scope(|s| {
        s.spawn(|| {
            let entry = keyring::Entry::new(KEYRING_SERVICE, context).map_err(|e| e.to_string())?;
            op(&entry).map_err(|e| e.to_string())
        })
        .join()
        .unwrap_or_else(|_| Err("the keyring backend panicked".to_string()))
    })
}

fn read_file(path: &Path) -> Result<BTreeMap<String, String>, AuthError> {
    let text = match std::fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(BTreeMap::new()),
        Err(source) => {
            return Err(AuthError::File {
                path: path.to_path_buf(),
                source,
            });
        }
    };
    toml::from_str(&text).map_err(|e| AuthError::Parse {
        path: path.to_path_buf(),
        message: e.message().to_string(),
    })
}

/// Writes the file with mode 0600 (its directory 0700), replacing it atomically.
fn write_file(path: &Path, all: &BTreeMap<String, String>) -> Result<(), AuthError> {
    let err = |source| AuthError::File {
        path: path.to_path_buf(),
        source,
    };
    let text = toml::to_string(all).map_err(|e| AuthError::Parse {
        path: path.to_path_buf(),
        message: e.to_string(),
    })?;
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(err)?;
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700)).map_err(err)?;
    }
    let tmp = path.with_extension("toml.tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)
        .map_err(err)?;
    f.write_all(text.as_bytes()).map_err(err)?;
    f.sync_all().map_err(err)?;
    std::fs::rename(&tmp, path).map_err(err)
}

/// Reads a token: a hidden prompt on a terminal, else the first line of stdin.
pub fn read_token(context: &str) -> Result<String, AuthError> {
    use std::io::IsTerminal;
    let token = if io::stdin().is_terminal() {
        rpassword::prompt_password(format!("token for {context}: ")).map_err(AuthError::Prompt)?
    } else {
        let mut line = String::new();
        io::stdin()
            .read_line(&mut line)
            .map_err(AuthError::Prompt)?;
        line
    };
    let token = token.trim().to_string();
    if token.is_empty() {
        return Err(AuthError::Empty);
    }
    Ok(token)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn file_store_is_0600_in_a_0700_dir_and_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pxtop").join("tokens.toml");
        let store = TokenStore::file_only(path.clone());
        assert_eq!(store.get("prod").unwrap(), None);
        let (place, notice) = store.set("prod", "s3cret").unwrap();
        assert_eq!(place, Place::File(path.clone()));
        assert_eq!(notice, None);
        store.set("staging", "other").unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        let dir_mode = std::fs::metadata(path.parent().unwrap())
            .unwrap()
            .permissions()
            .mode()
            & 0o777;
        assert_eq!(dir_mode, 0o700);
        assert_eq!(
            store.get("prod").unwrap(),
            Some(("s3cret".into(), Place::File(path.clone())))
        );
        assert_eq!(
            store.remove("prod").unwrap(),
            vec![Place::File(path.clone())]
        );
        assert_eq!(store.get("prod").unwrap(), None);
        assert_eq!(store.get("staging").unwrap().unwrap().0, "other");
        assert!(store.remove("prod").unwrap().is_empty());
    }

    #[test]
    fn a_broken_file_names_itself() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("tokens.toml");
        std::fs::write(&path, "not = [toml").unwrap();
        let err = TokenStore::file_only(path.clone()).get("x").unwrap_err();
        assert!(err.to_string().contains("fix or delete it"), "{err}");
    }
}
