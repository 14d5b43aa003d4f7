//! `pxtop auth` through the real binary with a temporary HOME: where no Secret Service is
//! reachable (no session bus: the environment points at an empty runtime dir), the token goes
//! to `tokens.toml` under the config dir, mode 0600, with a one-line notice; status and logout
//! find it there.

use std::os::unix::fs::PermissionsExt;
use std::process::Stdio;

use tokio::io::AsyncWriteExt;

async fn pxtop(home: &std::path::Path, args: &[&str], stdin: &str) -> std::process::Output {
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_pxtop"))
        .args(args)
        .env("HOME", home)
        .env("XDG_CONFIG_HOME", home.join("config"))
        .env("XDG_RUNTIME_DIR", home)
        .env_remove("DBUS_SESSION_BUS_ADDRESS")
        .env_remove("PXTOP_TOKEN")
        .env_remove("PXTOP_NO_KEYRING")
        .env("KUBECONFIG", home.join("no-kubeconfig"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut input = child.stdin.take().unwrap();
    input.write_all(stdin.as_bytes()).await.unwrap();
    drop(input);
    child.wait_with_output().await.unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

#[tokio::test]
async fn login_without_a_keyring_falls_back_to_a_0600_file_and_says_so() {
    let home = tempfile::tempdir().unwrap();
    let file = home.path().join("config/pxtop/tokens.toml");

    let out = pxtop(
        home.path(),
        &["auth", "login", "--context", "prod"],
        "s3cret\n",
    )
    .await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    let err = text(&out.stderr);
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 2, "{err}");
    assert!(
        lines[0].starts_with("pxtop: no usable OS keyring ("),
        "{err}"
    );
    assert!(
        lines[0].ends_with(&format!("token kept in {} (mode 0600)", file.display())),
        "{err}"
    );
    assert_eq!(
        lines[1],
        format!("token for prod stored in {} (mode 0600)", file.display())
    );
    let mode = std::fs::metadata(&file).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        "prod = \"s3cret\"\n"
    );

    let out = pxtop(home.path(), &["auth", "status", "--context", "prod"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stdout),
        format!("prod: token stored in {} (mode 0600)\n", file.display())
    );
    // Never the token itself.
    assert!(!text(&out.stdout).contains("s3cret"));

    let out = pxtop(home.path(), &["auth", "logout", "--context", "prod"], "").await;
    assert!(out.status.success(), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        format!(
            "token for prod removed from {} (mode 0600)\n",
            file.display()
        )
    );
    let out = pxtop(home.path(), &["auth", "status", "--context", "prod"], "").await;
    assert!(
        text(&out.stdout).starts_with("prod: no stored token;"),
        "{}",
        text(&out.stdout)
    );
}

#[tokio::test]
async fn login_refuses_an_empty_token_and_needs_a_context() {
    let home = tempfile::tempdir().unwrap();
    let out = pxtop(home.path(), &["auth", "login", "--context", "prod"], "\n").await;
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "pxtop: no token given: paste it at the prompt or pipe it on stdin\n"
    );
    // No kubeconfig, no --context: say how to pick one.
    let out = pxtop(home.path(), &["auth", "status"], "").await;
    assert!(!out.status.success());
    assert_eq!(
        text(&out.stderr),
        "pxtop: no kubeconfig current context: say which cluster with --context NAME\n"
    );
}
