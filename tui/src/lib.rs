//! pxtop, the client: `pxtop run|scripts|tables` print results; with no command, the live TUI;
//! with `--local`, the backend runs embedded in this process.
#![forbid(unsafe_code)]

pub mod auth;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod local;
pub mod output;
pub mod theme;
pub mod tui;

use std::collections::HashMap;
use std::io::{self, Write};
use std::time::Duration;

use crate::cli::{Cli, Command, OutputFormat, SQL_SCRIPT, ScriptRef, normalize_addr};
use crate::client::{Client, ClientError, QueryResult, ScriptSource};
use crate::local::{LocalBackend, LocalError};
use crate::output::OutputError;
use crate::theme::{Theme, ThemeError};

/// Everything that makes `pxtop` exit non-zero; each message names the fix.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Talking to pxtopd failed.
    #[error(transparent)]
    Client(#[from] ClientError),
    /// Printing failed.
    #[error(transparent)]
    Output(#[from] OutputError),
    /// `--theme` is wrong.
    #[error(transparent)]
    Theme(#[from] ThemeError),
    /// `pxtop run FILE`: the file cannot be read.
    #[error(
        "cannot read script file '{path}': {source} (bundled scripts are named like px/http_data; see `pxtop scripts`)"
    )]
    ReadScript {
        /// The path given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The terminal failed.
    #[error(transparent)]
    Tui(#[from] tui::TuiError),
    /// `--local`: the embedded backend failed.
    #[error(transparent)]
    Local(#[from] LocalError),
    /// The cluster's API refused or failed.
    #[error(transparent)]
    Kube(#[from] cluster::kube::KubeError),
    /// Storing or reading a token failed.
    #[error(transparent)]
    Auth(#[from] auth::AuthError),
    /// The manifests cannot be rendered.
    #[error(transparent)]
    Manifest(#[from] cluster::manifests::ManifestError),
    /// `--ca` cannot be read.
    #[error("cannot read --ca {path}: {source}")]
    ReadCa {
        /// The path given.
        path: String,
        /// The I/O error.
        source: io::Error,
    },
    /// The command cannot go on; the message says why and what to do.
    #[error("{0}")]
    Usage(String),
}

impl Error {
    /// The message plus the hint, if any, on one line (for stderr and the status bar).
    pub fn one_line(&self) -> String {
        match self {
            Error::Client(e) => e.one_line(),
            e => e.to_string(),
        }
    }
}

/// The token to send: `PXTOP_TOKEN`, else the local token file pxtopd wrote.
pub fn resolve_token() -> Option<String> {
    local::resolve_client_token()
}

/// Runs the command line: connects (or starts the embedded backend), then runs the subcommand
/// or the TUI.
pub async fn run(cli: Cli) -> Result<(), Error> {
    // Commands that talk to the cluster's API or this node, not to pxtopd.
    match &cli.command {
        Some(Command::Auth(cmd)) => return cluster::commands::auth(&cli, cmd),
        Some(Command::Deploy(args)) => return cluster::commands::deploy(&cli, args).await,
        Some(Command::Delete(args)) => return cluster::commands::delete(&cli, args).await,
        Some(Command::Doctor) => return cluster::commands::doctor(&cli).await,
        _ => {}
    }
    // Load the theme before anything else so a typo fails before the screen is taken over.
    let theme = match cli.command {
        None => Some(load_theme(&cli.theme)?),
        Some(_) => None,
    };
    let local = if cli.local {
        Some(LocalBackend::start().await?)
    } else {
        None
    };
    let result = run_with(&cli, theme, local.as_ref()).await;
    if let Some(local) = local {
        let stopped = local.shutdown().await;
        // The command's own error matters more than a shutdown hiccup.
        if result.is_ok() {
            stopped?;
        } else if let Err(e) = stopped {
            tracing::warn!(error = %e, "embedded backend did not stop cleanly");
        }
    }
    result
}

/// The client for `--addr` (with `--ca`: over TLS trusting that CA).
fn direct_client(cli: &Cli) -> Result<Client, Error> {
    let tls = match &cli.ca {
        Some(path) => Some(client::TlsTrust {
            ca_pem: std::fs::read(path).map_err(|source| Error::ReadCa {
                path: path.display().to_string(),
                source,
            })?,
            server_name: cli.tls_server_name.clone(),
        }),
        None => None,
    };
    Ok(Client::connect(
        &normalize_addr(&cli.addr),
        resolve_token().as_deref(),
        tls.as_ref(),
    )?)
}

fn load_theme(name: &str) -> Result<Theme, ThemeError> {
    let theme = Theme::load(name)?;
    Ok(if Theme::no_color_requested() {
        theme.without_colors()
    } else {
        theme
    })
}

async fn run_with(
    cli: &Cli,
    theme: Option<Theme>,
    local: Option<&LocalBackend>,
) -> Result<(), Error> {
    // NB: the route holds the port-forward open; it lives until the command is done.
    let (client, _route) = match local {
        Some(l) => (Client::new(l.addr(), Some(l.token()))?, None),
        None => match cli.cluster() {
            Some(context) => {
                let (client, route) =
                    cluster::commands::connect_context(context, &cli.namespace).await?;
                (client, Some(route))
            }
            None => (direct_client(cli)?, None),
        },
    };
    match &cli.command {
        None => {
            let config = tui::TuiConfig {
                theme: match theme {
                    Some(t) => t,
                    None => load_theme(&cli.theme)?,
                },
                refresh: Duration::from_secs(cli.refresh),
                initial_script: None,
                namespace: cli.namespace.clone(),
            };
            tui::run(client, config).await?;
            Ok(())
        }
        Some(Command::Run(args)) if args.help => match &args.script {
            Some(_) => {
                let source = script_source(&args.script_ref())?;
                let info = client.clone().describe(&source).await?;
                print(|out| output::write_script_help(out, &info))
            }
            None => {
                let mut cmd = <Cli as clap::CommandFactory>::command();
                // NB: building gives subcommands their full name ("pxtop run") for usage.
                cmd.build();
                let help = cmd
                    .find_subcommand_mut("run")
                    .map(|c| c.render_long_help().to_string())
                    .unwrap_or_default();
                print(|out| Ok(write!(out, "{help}")?))
            }
        },
        Some(Command::Run(args)) => {
            let source = script_source(&args.script_ref())?;
            let script_args: HashMap<String, String> = args.args.iter().cloned().collect();
            run_source(client, &source, script_args, args.format()).await
        }
        Some(Command::Sql(args)) => {
            let source = ScriptSource::Source(SQL_SCRIPT.to_string());
            let script_args = HashMap::from([("query".to_string(), args.query.clone())]);
            run_source(client, &source, script_args, args.format()).await
        }
        Some(Command::Scripts(args)) => {
            let mut scripts = client.clone().list_scripts().await?;
            if let Some(dir) = user_scripts_dir() {
                scripts.extend(user_scripts(&dir));
            }
            print(|out| output::write_scripts(out, &scripts, args.json))
        }
        Some(Command::Tables(args)) => {
            let tables = client.clone().list_tables().await?;
            print(|out| output::write_table_infos(out, &tables, args.verbose, args.json))
        }
        // Handled in `run` before connecting.
        Some(Command::Auth(_) | Command::Deploy(_) | Command::Delete(_) | Command::Doctor) => {
            Ok(())
        }
    }
}

/// The user script directory: `PXTOP_SCRIPTS_DIR`, else `scripts/` under pxtop's config dir
/// (`~/.config/pxtop/scripts`). `pxtop run team/slow` runs `team/slow.rhai` from there.
pub fn user_scripts_dir() -> Option<std::path::PathBuf> {
    std::env::var_os("PXTOP_SCRIPTS_DIR")
        .map(std::path::PathBuf::from)
        .or_else(|| dirs::config_dir().map(|d| d.join("pxtop").join("scripts")))
}

/// Scripts in the user script directory (`name` without `.rhai`, its first `//` line),
/// sorted by name. A missing directory has none.
pub fn user_scripts(dir: &std::path::Path) -> Vec<pxtop_proto::v1::ScriptInfo> {
    fn walk(
        root: &std::path::Path,
        dir: &std::path::Path,
        out: &mut Vec<pxtop_proto::v1::ScriptInfo>,
    ) {
        let Ok(entries) = std::fs::read_dir(dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if path.is_dir() {
                walk(root, &path, out);
            } else if path.extension().is_some_and(|x| x == "rhai") {
                let Ok(rel) = path
                    .with_extension("")
                    .strip_prefix(root)
                    .map(|p| p.to_owned())
                else {
                    continue;
                };
                let source = std::fs::read_to_string(&path).unwrap_or_default();
                let description = source
                    .lines()
                    .map(str::trim)
                    .find_map(|l| l.strip_prefix("//"))
                    .map(|l| l.trim_start_matches('/').trim().to_string())
                    .unwrap_or_default();
                out.push(pxtop_proto::v1::ScriptInfo {
                    name: rel.to_string_lossy().replace('\\', "/"),
                    description: format!("(user script) {description}"),
                    params: Vec::new(),
                });
            }
        }
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out);
    out.sort_by(|a, b| a.name.cmp(&b.name));
    out
}

/// What `pxtop run` sends for SCRIPT: a bundled name, a user script's source (names not
/// starting with `px/` are looked up in [`user_scripts_dir`] first), or a file's source.
pub fn script_source(script: &ScriptRef) -> Result<ScriptSource, Error> {
    script_source_in(script, user_scripts_dir().as_deref())
}

fn script_source_in(
    script: &ScriptRef,
    user_dir: Option<&std::path::Path>,
) -> Result<ScriptSource, Error> {
    match script {
        ScriptRef::Name(name) if !name.starts_with("px/") => {
            let user = user_dir.map(|d| d.join(format!("{name}.rhai")));
            match user {
                Some(path) if path.is_file() => std::fs::read_to_string(&path)
                    .map(ScriptSource::Source)
                    .map_err(|source| Error::ReadScript {
                        path: path.display().to_string(),
                        source,
                    }),
                _ => Ok(ScriptSource::Name(name.clone())),
            }
        }
        ScriptRef::Name(name) => Ok(ScriptSource::Name(name.clone())),
        ScriptRef::File(path) => std::fs::read_to_string(path)
            .map(ScriptSource::Source)
            .map_err(|source| Error::ReadScript {
                path: path.display().to_string(),
                source,
            }),
    }
}

/// `pxtop run` and `pxtop sql`: runs the script once and prints its tables.
async fn run_source(
    mut client: Client,
    source: &ScriptSource,
    script_args: HashMap<String, String>,
    format: OutputFormat,
) -> Result<(), Error> {
    let result: QueryResult = client.execute(source, script_args).await?;
    print(|out| output::write_result(out, &result, format))?;
    if let Some(stats) = &result.stats {
        for warning in &stats.warnings {
            eprintln!("pxtop: warning: {warning}");
        }
        if stats.truncated {
            eprintln!(
                "pxtop: warning: the result was cut at the row limit; narrow the script (filter, shorter start_time)"
            );
        }
    }
    Ok(())
}

/// Writes to stdout through a buffer; a closed pipe (`| head`) is not an error.
pub(crate) fn print(
    write: impl FnOnce(&mut dyn Write) -> Result<(), OutputError>,
) -> Result<(), Error> {
    let stdout = io::stdout();
    let mut out = io::BufWriter::new(stdout.lock());
    let result = write(&mut out).and_then(|()| out.flush().map_err(OutputError::from));
    match result {
        Err(e) if e.is_broken_pipe() => Ok(()),
        other => Ok(other?),
    }
}

#[cfg(test)]
mod user_script_tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn user_scripts_are_listed_and_run_by_name() {
        let dir = std::env::temp_dir().join(format!("pxtop-user-scripts-{}", std::process::id()));
        std::fs::create_dir_all(dir.join("team")).unwrap();
        std::fs::write(
            dir.join("team/slow.rhai"),
            "// Slow requests.\npx::display(1);",
        )
        .unwrap();
        std::fs::write(dir.join("notes.txt"), "not a script").unwrap();
        let listed = user_scripts(&dir);
        assert_eq!(listed.len(), 1);
        assert_eq!(listed[0].name, "team/slow");
        assert_eq!(listed[0].description, "(user script) Slow requests.");
        let src = script_source_in(&ScriptRef::Name("team/slow".into()), Some(&dir)).unwrap();
        assert!(matches!(src, ScriptSource::Source(s) if s.contains("Slow requests")));
        // Bundled names and unknown names go to the backend as names.
        for name in ["px/http_data", "http_data"] {
            let src = script_source_in(&ScriptRef::Name(name.into()), Some(&dir)).unwrap();
            assert!(matches!(src, ScriptSource::Name(n) if n == name));
        }
        assert!(user_scripts(&dir.join("missing")).is_empty());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
