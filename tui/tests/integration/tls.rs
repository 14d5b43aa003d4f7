//! TLS and the token against the real query service (pxtopd with capture off) on 127.0.0.1:0,
//! with a CA and server certificate made the way `pxtop deploy` makes them: good CA and token
//! work; no token, a wrong token, plaintext to the TLS port, TLS with an untrusted CA and TLS to
//! a plaintext port are each refused with a message that names the fix.

use pxtop::client::{Client, ClientError, TlsTrust};
use pxtop::cluster::pki;

const TOKEN: &str = "tls-test-token";

/// Starts pxtopd (no capture) on a free port, over TLS when `tls` is given; its address.
async fn start(tls: Option<&pki::Pki>) -> String {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let mut config = pxtopd::Config::new(TOKEN.to_string());
    config.capture = false;
    config.tls = tls.map(server_tls);
    tokio::spawn(async move {
        pxtopd::run(listener, config, std::future::pending())
            .await
            .unwrap();
    });
    format!("127.0.0.1:{}", addr.port())
}

fn server_tls(p: &pki::Pki) -> pxtopd::ServerTls {
    pxtopd::ServerTls {
        cert_pem: p.cert_pem.clone().into_bytes(),
        key_pem: p.key_pem.clone().into_bytes(),
    }
}

fn trust(p: &pki::Pki) -> TlsTrust {
    TlsTrust {
        ca_pem: p.ca_pem.clone().into_bytes(),
        server_name: None,
    }
}

fn names() -> Vec<String> {
    vec!["localhost".into(), "127.0.0.1".into()]
}

async fn list(
    addr: &str,
    token: Option<&str>,
    tls: Option<&TlsTrust>,
) -> Result<usize, ClientError> {
    let mut c = Client::connect(addr, token, tls)?;
    Ok(c.list_scripts().await?.len())
}

#[tokio::test]
async fn trusted_ca_and_token_work() {
    let pki = pki::generate("test", &names()).unwrap();
    let addr = start(Some(&pki)).await;
    let n = list(&format!("https://{addr}"), Some(TOKEN), Some(&trust(&pki)))
        .await
        .unwrap();
    assert!(n > 0);
    // http:// (or no scheme) with a CA becomes https://.
    let n2 = list(&format!("http://{addr}"), Some(TOKEN), Some(&trust(&pki)))
        .await
        .unwrap();
    assert_eq!(n, n2);
    // A port-forward connects to 127.0.0.1 and checks the Service's name instead.
    let forwarded = TlsTrust {
        server_name: Some("localhost".into()),
        ..trust(&pki)
    };
    assert!(
        list(&format!("https://{addr}"), Some(TOKEN), Some(&forwarded))
            .await
            .is_ok()
    );
}

#[tokio::test]
async fn missing_and_wrong_tokens_are_refused_over_tls() {
    let pki = pki::generate("test", &names()).unwrap();
    let addr = start(Some(&pki)).await;
    let url = format!("https://{addr}");
    let err = list(&url, None, Some(&trust(&pki))).await.unwrap_err();
    assert_eq!(
        err.one_line(),
        format!(
            "pxtopd at {url} refused the token: missing bearer token (set PXTOP_TOKEN to the \
             token pxtopd uses, or store it with `pxtop auth login`)"
        )
    );
    let err = list(&url, Some("guess"), Some(&trust(&pki)))
        .await
        .unwrap_err();
    assert_eq!(
        err.one_line(),
        format!(
            "pxtopd at {url} refused the token: wrong bearer token (set PXTOP_TOKEN to the \
             token pxtopd uses, or store it with `pxtop auth login`)"
        )
    );
}

#[tokio::test]
async fn plaintext_to_the_tls_port_is_refused_naming_https_and_ca() {
    let pki = pki::generate("test", &names()).unwrap();
    let addr = start(Some(&pki)).await;
    let url = format!("http://{addr}");
    let err = list(&url, Some(TOKEN), None).await.unwrap_err();
    let msg = err.one_line();
    assert!(
        msg.starts_with(&format!("pxtopd at {url} closed the plaintext connection")),
        "{msg}"
    );
    assert!(
        msg.ends_with(
            "(if pxtopd serves TLS (--tls-cert), connect with https://HOST:PORT and --ca CA.pem)"
        ),
        "{msg}"
    );
    // https:// without a CA to trust is refused before connecting.
    let err = list(&format!("https://{addr}"), Some(TOKEN), None)
        .await
        .unwrap_err();
    assert!(matches!(err, ClientError::TlsNeedsCa { .. }), "{err}");
    assert!(err.to_string().contains("--ca CA.pem"), "{err}");
}

#[tokio::test]
async fn an_untrusted_ca_is_refused_naming_the_ca_flag() {
    let pki = pki::generate("test", &names()).unwrap();
    let other = pki::generate("other", &names()).unwrap();
    let addr = start(Some(&pki)).await;
    let url = format!("https://{addr}");
    let err = list(&url, Some(TOKEN), Some(&trust(&other)))
        .await
        .unwrap_err();
    assert_eq!(
        err.one_line(),
        format!(
            "pxtopd at {url} presented a TLS certificate not signed by the trusted CA (pass \
             the CA that signed pxtopd's certificate with --ca CA.pem; in a cluster `pxtop \
             --context NAME` reads it from the pxtop-tls Secret)"
        )
    );
}

#[tokio::test]
async fn a_certificate_for_another_name_is_refused() {
    let pki = pki::generate("test", &["kelvin.example".to_string()]).unwrap();
    let addr = start(Some(&pki)).await;
    let url = format!("https://{addr}");
    let err = list(&url, Some(TOKEN), Some(&trust(&pki)))
        .await
        .unwrap_err();
    let msg = err.one_line();
    assert!(
        msg.starts_with(&format!(
            "pxtopd at {url} presented a TLS certificate for another name"
        )),
        "{msg}"
    );
    assert!(msg.contains("--tls-server-name"), "{msg}");
}

#[tokio::test]
async fn tls_to_a_plaintext_port_is_refused_naming_http() {
    let pki = pki::generate("test", &names()).unwrap();
    let addr = start(None).await;
    let url = format!("https://{addr}");
    let err = list(&url, Some(TOKEN), Some(&trust(&pki)))
        .await
        .unwrap_err();
    assert_eq!(
        err.one_line(),
        format!(
            "pxtopd at {url} does not speak TLS (connect with http:// and without --ca, or \
             start pxtopd with --tls-cert and --tls-key)"
        )
    );
}
