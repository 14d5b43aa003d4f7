//! The cluster subcommands (`pxtop auth|deploy|delete|doctor`) and [`connect_context`], the
//! one way a client reaches a cluster's Kelvin (also what the TUI's `:ctx` calls).

use std::io::{IsTerminal, Write};
use std::time::Duration;

use super::kube::{self as k, ClusterRoute, Deleted};
use super::manifests::{self, Secrets};
use crate::Error;
use crate::auth::{TokenStore, read_token};
use crate::cli::{AuthCommand, Cli, DeleteArgs, DeployArgs};
use crate::client::Client;

/// How often `pxtop deploy` polls the rollout.
const POLL: Duration = Duration::from_secs(2);

/// The context a command means: `--context NAME`, else the kubeconfig's current context.
pub fn context_name(context: Option<&str>) -> Result<String, Error> {
    match context.filter(|c| !c.is_empty()) {
        Some(c) => Ok(c.to_string()),
        None => k::current_context().ok_or_else(|| {
            Error::Usage(
                "no kubeconfig current context: say which cluster with --context NAME".into(),
            )
        }),
    }
}

/// The token to send to `context`'s Kelvin when one is set outside the cluster: `PXTOP_TOKEN`,
/// else the one `pxtop auth login` stored. `None`: read the pxtop-token Secret.
pub fn stored_token(context: &str) -> Result<Option<String>, Error> {
    if let Some(t) = std::env::var(pxtopd::token::ENV)
        .ok()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
    {
        return Ok(Some(t));
    }
    Ok(TokenStore::for_user().get(context)?.map(|(t, _)| t))
}

/// Connects to the Kelvin of kubeconfig context `context` (`None` or empty: the current one) in
/// `namespace`: token from [`stored_token`] or the Secret, CA from the Secret, through a
/// port-forward. Keep the returned route alive as long as the client is used; dropping it
/// closes the port-forward. The TUI's `:ctx NAME` calls this and swaps its client (and route).
pub async fn connect_context(
    context: Option<&str>,
    namespace: &str,
) -> Result<(Client, ClusterRoute), Error> {
    let name = context_name(context).ok();
    let token = match &name {
        Some(n) => stored_token(n)?,
        None => None,
    };
    let route = k::route(name.as_deref(), namespace, token).await?;
    let client = Client::connect(&route.addr, Some(&route.token), Some(&route.tls))?;
    Ok((client, route))
}

/// `pxtop auth login|status|logout`.
pub fn auth(cli: &Cli, cmd: &AuthCommand) -> Result<(), Error> {
    let context = context_name(cli.context.as_deref())?;
    let store = TokenStore::for_user();
    match cmd {
        AuthCommand::Login => {
            let token = read_token(&context)?;
            let (place, notice) = store.set(&context, &token)?;
            if let Some(n) = notice {
                eprintln!("pxtop: {n}");
            }
            eprintln!("token for {context} stored in {place}");
        }
        AuthCommand::Status => {
            if std::env::var_os(pxtopd::token::ENV).is_some_and(|v| !v.is_empty()) {
                println!("{context}: PXTOP_TOKEN is set and is sent instead of any stored token");
            }
            match store.get(&context)? {
                Some((_, place)) => println!("{context}: token stored in {place}"),
                None => println!(
                    "{context}: no stored token; pxtop reads the {} Secret through your \
                     kubeconfig (store one with `pxtop auth login --context {context}`)",
                    manifests::TOKEN_SECRET
                ),
            }
        }
        AuthCommand::Logout => {
            let removed = store.remove(&context)?;
            if removed.is_empty() {
                eprintln!("no token was stored for {context}");
            }
            for place in removed {
                eprintln!("token for {context} removed from {place}");
            }
        }
    }
    Ok(())
}

/// `pxtop deploy`.
pub async fn deploy(cli: &Cli, args: &DeployArgs) -> Result<(), Error> {
    let ns = &cli.namespace;
    if args.dry_run {
        let secrets = Secrets::generate(ns)?;
        let objects = manifests::render(ns, &args.image, Some(&secrets))?;
        let yaml = manifests::to_yaml(&objects)?;
        return crate::print(|out| Ok(out.write_all(yaml.as_bytes())?));
    }
    let (client, context) = k::client_for(cli.context.as_deref()).await?;
    eprintln!(
        "deploying pxtop to context {context}, namespace {ns}, image {}",
        args.image
    );
    let secrets = match k::existing_secrets(&client, ns).await? {
        Some(s) => {
            eprintln!("  keeping the existing token and CA (`pxtop delete` first to replace them)");
            s
        }
        None => {
            eprintln!("  generated a token, a CA and Kelvin's certificate");
            Secrets::generate(ns)?
        }
    };
    let objects = manifests::render(ns, &args.image, Some(&secrets))?;
    k::apply(&client, &objects, &mut |m| eprintln!("  {m}")).await?;
    let progress = Progress::new();
    let mut show = |r: &k::Rollout| progress.show(&format!("waiting: {r}"));
    let done = k::wait_ready(&client, ns, args.timeout, POLL, &mut show).await;
    progress.finish();
    let done = done?;
    eprintln!("pxtop is ready ({done})");
    eprintln!("  query it: pxtop --context {context} run px/http_data");
    Ok(())
}

/// `pxtop delete`.
pub async fn delete(cli: &Cli, args: &DeleteArgs) -> Result<(), Error> {
    let ns = &cli.namespace;
    let (client, context) = k::client_for(cli.context.as_deref()).await?;
    if !args.yes {
        if !std::io::stdin().is_terminal() {
            return Err(Error::Usage(format!(
                "pxtop delete removes namespace {ns} of context {context}: confirm with --yes"
            )));
        }
        eprint!(
            "delete pxtop (namespace {ns}, its Secrets: tokens stop working) from context \
             {context}? [y/N] "
        );
        let mut answer = String::new();
        std::io::stdin()
            .read_line(&mut answer)
            .map_err(|e| Error::Usage(e.to_string()))?;
        if !matches!(answer.trim(), "y" | "Y" | "yes") {
            return Err(Error::Usage("not deleted".into()));
        }
    }
    // The Secrets go with the namespace; render without them.
    let objects = manifests::render(ns, manifests::DEFAULT_IMAGE, None)?;
    for d in k::delete(&client, &objects).await? {
        match d {
            Deleted::Deleted(what) => eprintln!("  deleted {what}"),
            Deleted::AlreadyGone(what) => eprintln!("  {what} was not there"),
        }
    }
    eprintln!("pxtop removed from context {context} (the namespace may take a moment to go)");
    Ok(())
}

/// `pxtop doctor`: this node's checks, one line each, or with `--context` every PEM's (Kelvin
/// asks them); an error when any fails.
pub async fn doctor(cli: &Cli) -> Result<(), Error> {
    let nodes: Vec<(String, Vec<pxtopd::DoctorCheck>, String)> = match cli.cluster() {
        None => vec![(String::new(), pxtopd::doctor(), String::new())],
        Some(context) => {
            let (mut client, _route) = connect_context(context, &cli.namespace).await?;
            client
                .doctor()
                .await?
                .into_iter()
                .map(|n| {
                    let checks = n
                        .checks
                        .into_iter()
                        .map(|c| pxtopd::DoctorCheck {
                            name: c.name,
                            ok: c.ok,
                            detail: c.detail,
                            fix: c.fix,
                        })
                        .collect();
                    (n.node, checks, n.error)
                })
                .collect()
        }
    };
    let mut failed = 0;
    let mut total = 0;
    crate::print(|out| {
        for (node, checks, error) in &nodes {
            if !node.is_empty() {
                writeln!(out, "{node}:")?;
            }
            let indent = if node.is_empty() { "" } else { "  " };
            if !error.is_empty() {
                failed += 1;
                total += 1;
                writeln!(out, "{indent}FAIL  {:<15} {error}", "node checks")?;
            }
            for c in checks {
                total += 1;
                if c.ok {
                    writeln!(out, "{indent}ok    {:<15} {}", c.name, c.detail)?;
                } else {
                    failed += 1;
                    writeln!(
                        out,
                        "{indent}FAIL  {:<15} {}: fix: {}",
                        c.name, c.detail, c.fix
                    )?;
                }
            }
        }
        Ok(())
    })?;
    if failed > 0 {
        return Err(Error::Usage(format!("{failed} of {total} checks failed")));
    }
    Ok(())
}

/// One status line that rewrites itself on a terminal, and prints a line per change otherwise.
struct Progress {
    tty: bool,
}

impl Progress {
    fn new() -> Self {
        Self {
            tty: std::io::stderr().is_terminal(),
        }
    }

    fn show(&self, line: &str) {
        if self.tty {
            eprint!("\r\x1b[2K  {line}");
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("  {line}");
        }
    }

    fn finish(&self) {
        if self.tty {
            eprintln!();
        }
    }
}
