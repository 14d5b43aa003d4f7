//! The command line: clap derive types whose doc comments are the `--help` text.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Args, Parser, Subcommand, ValueEnum};

/// Where `pxtop` looks for pxtopd unless told otherwise (pxtopd's default listen address).
pub const DEFAULT_ADDR: &str = "http://127.0.0.1:50451";

const EXAMPLES: &str = "\
Examples:
  pxtop                                 open the TUI against pxtopd at --addr
  pxtop --local                         run the backend in this process and open the TUI
  pxtop scripts                         list the bundled scripts and their arguments
  pxtop run px/http_data -o json        print HTTP requests as JSON Lines
  pxtop run px/http_data --arg start_time=-1m -o json | jq 'select(.resp_status >= 500)'
  pxtop run ./my_script.rhai -o table   run a script file
  pxtop run team/slow                   run ~/.config/pxtop/scripts/team/slow.rhai
                                        (or $PXTOP_SCRIPTS_DIR/team/slow.rhai)
  pxtop run px/http_data --help         the script's description and parameters
  pxtop sql \"SELECT req_path, count(*) FROM http_events GROUP BY req_path\"
  pxtop tables -v                       list the tables, their sizes and columns
  pxtop deploy --context prod           deploy to a cluster (then: pxtop --context prod)
  pxtop --context prod run px/http_data query the cluster through the kubeconfig
  pxtop --kube                          the TUI against the current context's cluster
  pxtop auth login --context prod       store a token for that cluster
  pxtop doctor                          can this node capture? (with --context: every node)

Environment:
  PXTOP_ADDR    same as --addr
  PXTOP_CA      same as --ca
  PXTOP_CONTEXT same as --context (a kubeconfig context: query that cluster)
  PXTOP_TOKEN   bearer token sent to pxtopd (else the local token file pxtopd wrote)
  PXTOP_LOG     log filter (e.g. debug; else RUST_LOG); the TUI logs to ~/.cache/pxtop/pxtop.log
  NO_COLOR      disable colours in the TUI";

/// pxtop: see what your services are doing, from eBPF captures, in a terminal.
///
/// With no command, opens the live TUI: pick a script with `:`, watch its table refresh,
/// press `?` for keys.
#[derive(Debug, Clone, Parser)]
#[command(name = "pxtop", version, after_help = EXAMPLES)]
pub struct Cli {
    /// pxtopd's gRPC address (`host:port` is taken as `http://host:port`).
    #[arg(long, env = "PXTOP_ADDR", default_value = DEFAULT_ADDR, value_name = "URL", global = true)]
    pub addr: String,

    /// Trust this CA (PEM file) and speak TLS to --addr (`host:port` then means
    /// `https://host:port`). Needed when pxtopd serves TLS (`--tls-cert`).
    #[arg(long, env = "PXTOP_CA", value_name = "PATH", global = true)]
    pub ca: Option<PathBuf>,

    /// The name pxtopd's certificate must hold, when not --addr's host.
    #[arg(long, value_name = "NAME", global = true)]
    pub tls_server_name: Option<String>,

    /// Query the cluster of this kubeconfig context instead of --addr: pxtop reads the CA and
    /// token that `pxtop deploy` stored and port-forwards to Kelvin, so Kubernetes RBAC decides
    /// who may query. Also the cluster of auth, deploy, delete and doctor.
    #[arg(
        long,
        env = "PXTOP_CONTEXT",
        value_name = "NAME",
        global = true,
        conflicts_with = "local"
    )]
    pub context: Option<String>,

    /// Like --context, with the kubeconfig's current context.
    #[arg(long, global = true, conflicts_with_all = ["local", "context"])]
    pub kube: bool,

    /// The namespace pxtop is deployed in (with --context, deploy, delete).
    #[arg(
        long,
        env = "PXTOP_NAMESPACE",
        default_value = "pxtop",
        value_name = "NAME",
        global = true
    )]
    pub namespace: String,

    /// Run the backend (capture + query service) embedded in this process, on 127.0.0.1:50451
    /// (a free port if taken) with the local token, and use it instead of --addr (needs root,
    /// like pxtopd). A second terminal reaches it with plain `pxtop run ...`.
    #[arg(long, global = true)]
    pub local: bool,

    /// TUI colour theme: a bundled name (dark, light, high-contrast) or a path to a .toml file that overrides
    /// only the styles it names.
    #[arg(long, default_value = "dark", value_name = "NAME|PATH", global = true)]
    pub theme: String,

    /// Seconds between refreshes of the TUI's table.
    #[arg(long, default_value_t = 2, value_name = "SECS",
          value_parser = clap::value_parser!(u64).range(1..=3600), global = true)]
    pub refresh: u64,

    /// What to do; with none, open the TUI.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// The cluster to talk to: `Some(Some(name))` with --context, `Some(None)` (the current
    /// context) with --kube, `None` for --addr.
    pub fn cluster(&self) -> Option<Option<&str>> {
        match (&self.context, self.kube) {
            (Some(c), _) => Some(Some(c.as_str())),
            (None, true) => Some(None),
            (None, false) => None,
        }
    }
}

/// The subcommands.
#[derive(Debug, Clone, Subcommand)]
pub enum Command {
    /// Run a script once, print its output tables and exit (non-zero on error).
    #[command(after_help = "\
Examples:
  pxtop run px/http_data -o json
  pxtop run px/http_data --json --arg start_time=-30s
  pxtop run ./errors.rhai -o csv > errors.csv

  pxtop run px/http_data --help      the script's description and parameters

JSON output is JSON Lines: one object per row, first key \"_tableName_\" (the output table),
then the columns in order; time_ is integer nanoseconds since the Unix epoch.")]
    // NB: `-h`/`--help` is our own flag here, so `pxtop run SCRIPT --help` can describe the
    // script; without a SCRIPT it prints this help.
    #[command(disable_help_flag = true)]
    Run(RunArgs),
    /// Run one SQL query over the backend's tables (DataFusion's SQL) and print the result.
    #[command(after_help = "\
Examples:
  pxtop sql \"SELECT req_path, count(*) AS n FROM http_events GROUP BY req_path ORDER BY n DESC\"
  pxtop sql \"SELECT * FROM http_events WHERE time_ > now() - interval '1 minute' LIMIT 10\" -o json

Every table (`pxtop tables`) is there under its name; time_ bounds in WHERE prune the scan.
The dialect's functions work too: format_duration(latency), format_bytes(resp_body_size),
hdr_histogram(latency) with hdr_quantile(h, 0.99). Only queries run (no DDL or DML).")]
    Sql(SqlArgs),
    /// List the scripts the backend offers, with descriptions and arguments.
    Scripts(ListArgs),
    /// List the backend's tables: rows, bytes, dropped rows (and columns with -v).
    Tables(TablesArgs),
    /// Store, show or forget the token for a cluster (OS keyring, else a 0600 file).
    #[command(subcommand)]
    Auth(AuthCommand),
    /// Deploy pxtop to the cluster of the kubeconfig context (--context, default the current
    /// one): manifests with
    /// server-side apply, a fresh CA, Kelvin's certificate and a token in Secrets; waits until
    /// every PEM and Kelvin are ready.
    #[command(after_help = "\
Examples:
  pxtop deploy                              to the current context, namespace pxtop
  pxtop deploy --context prod --image registry.example/pxtopd:0.1.0
  pxtop deploy --dry-run -o yaml > pxtop.yaml   print what would be applied (with fresh secrets)

Re-deploying keeps the Secrets that exist (so tokens in use stay valid); `pxtop delete` first
to start over.")]
    Deploy(DeployArgs),
    /// Remove what `pxtop deploy` applied (the namespace, with its Secrets, and the cluster
    /// role and binding).
    Delete(DeleteArgs),
    /// Check that this node can run pxtop's capture (kernel, BTF, capabilities, tracepoints,
    /// memlock); with --context or --kube, every PEM's node instead. Exits non-zero on a
    /// failure.
    Doctor,
}

/// `pxtop auth`.
#[derive(Debug, Clone, Subcommand)]
pub enum AuthCommand {
    /// Store a token for the context (--context, default the current kubeconfig context),
    /// read from a prompt or from stdin when it is not a terminal.
    #[command(after_help = "\
Examples:
  pxtop auth login --context prod            prompts for the token
  kubectl -n pxtop get secret pxtop-token -o jsonpath='{.data.token}' | base64 -d \\
    | pxtop auth login --context prod")]
    Login,
    /// Where the context's token comes from (never prints the token).
    Status,
    /// Forget the context's stored token.
    Logout,
}

/// `pxtop deploy`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DeployArgs {
    /// Print the manifests instead of applying them (nothing is sent to the cluster).
    #[arg(long)]
    pub dry_run: bool,
    /// Output format of --dry-run.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = ManifestFormat::Yaml,
          requires = "dry_run")]
    pub output: ManifestFormat,
    /// pxtopd's container image.
    #[arg(long, default_value = crate::cluster::manifests::DEFAULT_IMAGE, value_name = "IMAGE")]
    pub image: String,
    /// How long to wait for every PEM and Kelvin to be ready (e.g. 300s).
    #[arg(long, default_value = "300s", value_parser = parse_seconds, value_name = "SECS")]
    pub timeout: Duration,
}

/// `pxtop delete`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct DeleteArgs {
    /// Do not ask for confirmation.
    #[arg(short, long)]
    pub yes: bool,
}

/// Manifest output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum ManifestFormat {
    /// Multi-document YAML, ready for `kubectl apply -f -`.
    Yaml,
}

/// `300s`, `300`: whole seconds.
fn parse_seconds(s: &str) -> Result<Duration, String> {
    s.trim()
        .trim_end_matches('s')
        .parse::<u64>()
        .ok()
        .filter(|n| *n > 0)
        .map(Duration::from_secs)
        .ok_or_else(|| format!("{s:?} is not a number of seconds, e.g. 300s"))
}

/// `pxtop run`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct RunArgs {
    /// A bundled script name (`px/http_data`) or a path to a `.rhai` file (a path ends in
    /// `.rhai` or starts with `.` or `/`); a file's source is sent to the backend.
    #[arg(value_name = "SCRIPT", required_unless_present = "help")]
    pub script: Option<String>,

    /// A script argument as NAME=VALUE; repeat for several (`pxtop scripts` lists them).
    #[arg(long = "arg", value_name = "NAME=VALUE", value_parser = parse_script_arg)]
    pub args: Vec<(String, String)>,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Shorthand for `-o json`.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,

    /// Print the script's description and parameters (name, type, default, help) instead of
    /// running it; without SCRIPT, this help.
    #[arg(short = 'h', long = "help", visible_alias = "params")]
    pub help: bool,
}

/// `pxtop sql`'s arguments.
#[derive(Debug, Clone, Args)]
pub struct SqlArgs {
    /// The query, e.g. "SELECT count(*) FROM http_events".
    #[arg(value_name = "QUERY")]
    pub query: String,

    /// Output format.
    #[arg(short = 'o', long = "output", value_enum, default_value_t = OutputFormat::Table)]
    pub output: OutputFormat,

    /// Shorthand for `-o json`.
    #[arg(long, conflicts_with = "output")]
    pub json: bool,
}

impl SqlArgs {
    /// The output format after applying `--json`.
    pub fn format(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else {
            self.output
        }
    }
}

/// The script `pxtop sql` runs; the query goes in as its `query` argument, so it needs no
/// escaping.
pub const SQL_SCRIPT: &str = r#"px::display(px::sql(px::param("query", "", "SQL query")), "sql");"#;

impl RunArgs {
    /// The output format after applying `--json`.
    pub fn format(&self) -> OutputFormat {
        if self.json {
            OutputFormat::Json
        } else {
            self.output
        }
    }

    /// What SCRIPT names: a file to read or a bundled script.
    pub fn script_ref(&self) -> ScriptRef {
        ScriptRef::parse(self.script.as_deref().unwrap_or_default())
    }
}

/// `pxtop scripts`' arguments.
#[derive(Debug, Clone, Args)]
pub struct ListArgs {
    /// Print JSON Lines (one object per script) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pxtop tables`' arguments.
#[derive(Debug, Clone, Args)]
pub struct TablesArgs {
    /// Also list every table's columns and types.
    #[arg(short, long)]
    pub verbose: bool,

    /// Print JSON Lines (one object per table) instead of text.
    #[arg(long)]
    pub json: bool,
}

/// `pxtop run`'s output formats.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum OutputFormat {
    /// JSON Lines, one object per row, `_tableName_` first (Pixie's `px run -o json`).
    Json,
    /// Aligned text tables, one per output table.
    Table,
    /// CSV with a header per output table, `_tableName_` as the first column.
    Csv,
    /// The script's flame graph output (widget `flamegraph`) as folded stacks, `a;b;c COUNT`
    /// per line, for inferno, flamegraph.pl, speedscope and the like.
    Folded,
    /// The script's flame graph output drawn as an SVG flame graph (inferno).
    Svg,
}

/// What `pxtop run SCRIPT` refers to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptRef {
    /// A bundled script, by name.
    Name(String),
    /// A rhai file whose source is sent.
    File(PathBuf),
}

impl ScriptRef {
    /// Bundled names contain `/` too (`px/http_data`), so only an explicit-looking path is a
    /// file: one ending in `.rhai` or starting with `.` or `/`.
    pub fn parse(s: &str) -> ScriptRef {
        if s.ends_with(".rhai") || s.starts_with('.') || s.starts_with('/') {
            ScriptRef::File(PathBuf::from(s))
        } else {
            ScriptRef::Name(s.to_owned())
        }
    }
}

/// Parses `--arg NAME=VALUE`.
fn parse_script_arg(s: &str) -> Result<(String, String), String> {
    match s.split_once('=') {
        Some((name, value)) if !name.trim().is_empty() => {
            Ok((name.trim().to_owned(), value.to_owned()))
        }
        _ => Err(format!(
            "expected NAME=VALUE, got '{s}' (for example --arg start_time=-5m)"
        )),
    }
}

/// Turns `host:port` into `http://host:port`; leaves URLs with a scheme alone.
pub fn normalize_addr(addr: &str) -> String {
    if addr.contains("://") {
        addr.to_owned()
    } else {
        format!("http://{addr}")
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("pxtop").chain(args.iter().copied()))
    }

    #[test]
    fn clap_definition_is_consistent() {
        Cli::command().debug_assert();
    }

    #[test]
    fn no_command_opens_the_tui_with_defaults() {
        let cli = parse(&[]).unwrap();
        assert!(cli.command.is_none());
        assert!(!cli.local);
        assert_eq!(cli.theme, "dark");
        assert_eq!(cli.refresh, 2);
        // PXTOP_ADDR may be set in a developer's shell; the default applies only without it.
        if std::env::var_os("PXTOP_ADDR").is_none() {
            assert_eq!(cli.addr, DEFAULT_ADDR);
        }
    }

    #[test]
    fn global_flags_parse_before_and_after_the_command() {
        let cli = parse(&["--local", "--theme", "light", "--refresh", "5"]).unwrap();
        assert!(cli.local);
        assert_eq!(cli.theme, "light");
        assert_eq!(cli.refresh, 5);

        let cli = parse(&["run", "px/http_data", "--addr", "10.0.0.1:1234"]).unwrap();
        assert_eq!(cli.addr, "10.0.0.1:1234");
    }

    #[test]
    fn refresh_is_range_checked() {
        let err = parse(&["--refresh", "0"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(parse(&["--refresh", "abc"]).is_err());
    }

    #[test]
    fn run_parses_args_and_output() {
        let cli = parse(&[
            "run",
            "px/http_data",
            "--arg",
            "start_time=-1m",
            "--arg",
            "filter=a=b",
            "-o",
            "csv",
        ])
        .unwrap();
        let Some(Command::Run(run)) = cli.command else {
            panic!("expected run, got {:?}", cli.command);
        };
        assert_eq!(run.script_ref(), ScriptRef::Name("px/http_data".into()));
        assert_eq!(
            run.args,
            vec![
                ("start_time".into(), "-1m".into()),
                ("filter".into(), "a=b".into())
            ]
        );
        assert_eq!(run.format(), OutputFormat::Csv);
    }

    #[test]
    fn run_help_is_ours_with_a_script_and_sql_takes_a_query() {
        for flag in ["--help", "-h", "--params"] {
            let Some(Command::Run(run)) = parse(&["run", "px/http_data", flag]).unwrap().command
            else {
                panic!("expected run");
            };
            assert!(run.help, "{flag}");
            assert_eq!(run.script_ref(), ScriptRef::Name("px/http_data".into()));
        }
        let Some(Command::Run(run)) = parse(&["run", "--help"]).unwrap().command else {
            panic!("expected run");
        };
        assert!(run.help && run.script.is_none());
        let err = parse(&["run"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::MissingRequiredArgument);

        let Some(Command::Sql(sql)) = parse(&["sql", "SELECT 'a\"b'", "-o", "csv"])
            .unwrap()
            .command
        else {
            panic!("expected sql");
        };
        assert_eq!(sql.query, "SELECT 'a\"b'");
        assert_eq!(sql.format(), OutputFormat::Csv);
    }

    #[test]
    fn run_defaults_to_table_and_json_flag_means_json() {
        let Some(Command::Run(run)) = parse(&["run", "px/x"]).unwrap().command else {
            panic!("expected run");
        };
        assert_eq!(run.format(), OutputFormat::Table);
        let Some(Command::Run(run)) = parse(&["run", "px/x", "--json"]).unwrap().command else {
            panic!("expected run");
        };
        assert_eq!(run.format(), OutputFormat::Json);
        // Contradicting formats are refused rather than silently picking one.
        let err = parse(&["run", "px/x", "--json", "-o", "table"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::ArgumentConflict);
    }

    #[test]
    fn bad_script_args_name_the_expected_form() {
        let err = parse(&["run", "px/x", "--arg", "novalue"]).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("expected NAME=VALUE, got 'novalue'"), "{msg}");
        assert!(parse(&["run", "px/x", "--arg", "=v"]).is_err());
    }

    #[test]
    fn unknown_output_format_is_rejected() {
        let err = parse(&["run", "px/x", "-o", "yaml"]).unwrap_err();
        assert_eq!(err.kind(), clap::error::ErrorKind::InvalidValue);
    }

    #[test]
    fn script_paths_and_names_are_told_apart() {
        assert_eq!(
            ScriptRef::parse("./a.rhai"),
            ScriptRef::File("./a.rhai".into())
        );
        assert_eq!(ScriptRef::parse("/tmp/x"), ScriptRef::File("/tmp/x".into()));
        assert_eq!(
            ScriptRef::parse("mine/slow.rhai"),
            ScriptRef::File("mine/slow.rhai".into())
        );
        assert_eq!(
            ScriptRef::parse("px/http_data"),
            ScriptRef::Name("px/http_data".into())
        );
    }

    #[test]
    fn tables_and_scripts_flags() {
        let Some(Command::Tables(t)) = parse(&["tables", "-v"]).unwrap().command else {
            panic!("expected tables");
        };
        assert!(t.verbose && !t.json);
        let Some(Command::Scripts(s)) = parse(&["scripts", "--json"]).unwrap().command else {
            panic!("expected scripts");
        };
        assert!(s.json);
    }

    #[test]
    fn help_teaches_with_examples() {
        let help = Cli::command().render_long_help().to_string();
        assert!(help.contains("pxtop run px/http_data -o json"), "{help}");
        assert!(help.contains("PXTOP_TOKEN"), "{help}");
        let mut cmd = Cli::command();
        let run_help = cmd
            .find_subcommand_mut("run")
            .unwrap()
            .render_long_help()
            .to_string();
        assert!(run_help.contains("_tableName_"), "{run_help}");
        assert!(run_help.contains("--arg <NAME=VALUE>"), "{run_help}");
    }

    #[test]
    fn addresses_get_a_scheme() {
        assert_eq!(normalize_addr("127.0.0.1:1"), "http://127.0.0.1:1");
        assert_eq!(normalize_addr("https://x:443"), "https://x:443");
    }
}
