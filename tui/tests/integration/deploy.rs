//! `pxtop deploy/delete` and cluster access against kube-rs's mock client (tower-test): every
//! call is checked (method, path, server-side apply parameters, order) and answered with
//! API-server-shaped JSON (objects, `Status` errors) written from the Kubernetes API reference,
//! not captured from a live cluster (there is none here). The dry-run YAML is a golden file
//! (`snapshots/deploy/`), rendered with placeholder secret material so it is stable.

use std::pin::pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::{Request, Response};
use kube::client::Body;
use pxtop::cluster::kube::{self as k, Deleted, KubeError};
use pxtop::cluster::manifests::{self, Secrets};
use pxtop::cluster::pki::Pki;
use serde_json::{Value, json};

/// One request the mock saw: method, path and query, body.
#[derive(Debug, Clone)]
struct Seen {
    method: String,
    uri: String,
    content_type: String,
    body: Value,
}

type Answer = Box<dyn FnMut(&Seen) -> (u16, Value) + Send>;

/// A kube client whose API server is `answer`; the requests it saw.
fn mock(mut answer: Answer) -> (kube::Client, Arc<Mutex<Vec<Seen>>>) {
    let (service, handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let log = seen.clone();
    tokio::spawn(async move {
        let mut handle = pin!(handle);
        while let Some((request, send)) = handle.next_request().await {
            let (parts, body) = request.into_parts();
            let bytes = body.collect_bytes().await.unwrap();
            let s = Seen {
                method: parts.method.to_string(),
                uri: parts.uri.to_string(),
                content_type: parts
                    .headers
                    .get(http::header::CONTENT_TYPE)
                    .map(|v| v.to_str().unwrap().to_string())
                    .unwrap_or_default(),
                body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
            };
            let (status, reply) = answer(&s);
            log.lock().unwrap().push(s);
            send.send_response(
                Response::builder()
                    .status(status)
                    .header("content-type", "application/json")
                    .body(Body::from(serde_json::to_vec(&reply).unwrap()))
                    .unwrap(),
            );
        }
    });
    (kube::Client::new(service, "default"), seen)
}

/// The API server's error body.
fn status(code: u16, reason: &str, message: &str) -> Value {
    json!({
        "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
        "message": message, "reason": reason, "code": code
    })
}

fn placeholder_secrets() -> Secrets {
    Secrets {
        token: "<token>".into(),
        pki: Pki {
            ca_pem: "<ca.crt>".into(),
            cert_pem: "<tls.crt>".into(),
            key_pem: "<tls.key>".into(),
        },
    }
}

#[test]
fn dry_run_yaml_is_golden() {
    let objects = manifests::render(
        manifests::DEFAULT_NAMESPACE,
        manifests::DEFAULT_IMAGE,
        Some(&placeholder_secrets()),
    )
    .unwrap();
    let yaml = manifests::to_yaml(&objects).unwrap();
    insta::with_settings!({snapshot_path => "../../../snapshots/deploy", prepend_module_to_snapshot => false}, {
        insta::assert_snapshot!("dry_run", yaml);
    });
}

#[tokio::test]
async fn deploy_dry_run_prints_yaml_with_fresh_secrets() {
    let home = tempfile::tempdir().unwrap();
    let out = tokio::process::Command::new(env!("CARGO_BIN_EXE_pxtop"))
        .args(["deploy", "--dry-run", "-o", "yaml", "--namespace", "obs"])
        .env("HOME", home.path())
        .env("XDG_CONFIG_HOME", home.path())
        .env("KUBECONFIG", home.path().join("none"))
        .output()
        .await
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let docs: Vec<Value> = serde_yaml_ng::Deserializer::from_str(&text)
        .map(|d| serde::Deserialize::deserialize(d).unwrap())
        .collect();
    assert_eq!(docs.len(), 11);
    let tls: k8s_openapi::api::core::v1::Secret = serde_json::from_value(
        docs.iter()
            .find(|d| d["metadata"]["name"] == "pxtop-tls")
            .unwrap()
            .clone(),
    )
    .unwrap();
    let data = tls.data.unwrap();
    for key in ["ca.crt", "tls.crt"] {
        assert!(
            data[key].0.starts_with(b"-----BEGIN CERTIFICATE-----"),
            "{key}"
        );
    }
    assert!(
        data["tls.key"]
            .0
            .starts_with(b"-----BEGIN PRIVATE KEY-----")
    );
    let ca = docs
        .iter()
        .find(|d| d["metadata"]["name"] == "pxtop-ca")
        .unwrap();
    assert_eq!(
        ca["data"]["ca.crt"].as_str().unwrap().as_bytes(),
        &data["ca.crt"].0[..]
    );
}

/// Echoes applied objects back as the API server does (with a uid).
fn echo_apply(s: &Seen) -> (u16, Value) {
    let mut obj = s.body.clone();
    obj["metadata"]["uid"] = json!("00000000-0000-0000-0000-000000000001");
    obj["metadata"]["resourceVersion"] = json!("1");
    (200, obj)
}

#[tokio::test]
async fn apply_is_server_side_in_order_as_pxtop() {
    let (client, seen) = mock(Box::new(echo_apply));
    let objects = manifests::render("obs", "img:1", Some(&placeholder_secrets())).unwrap();
    let mut progress = Vec::new();
    k::apply(&client, &objects, &mut |m| progress.push(m.to_string()))
        .await
        .unwrap();
    let seen = seen.lock().unwrap().clone();
    let paths: Vec<String> = seen
        .iter()
        .map(|s| s.uri.split('?').next().unwrap().to_string())
        .collect();
    assert_eq!(
        paths,
        [
            "/api/v1/namespaces/obs",
            "/api/v1/namespaces/obs/serviceaccounts/pxtop-pem",
            "/api/v1/namespaces/obs/serviceaccounts/pxtop-kelvin",
            "/apis/rbac.authorization.k8s.io/v1/clusterroles/pxtop-metadata-reader",
            "/apis/rbac.authorization.k8s.io/v1/clusterrolebindings/pxtop-metadata-reader",
            "/api/v1/namespaces/obs/configmaps/pxtop-ca",
            "/api/v1/namespaces/obs/secrets/pxtop-token",
            "/api/v1/namespaces/obs/secrets/pxtop-tls",
            "/apis/apps/v1/namespaces/obs/daemonsets/pxtop-pem",
            "/apis/apps/v1/namespaces/obs/deployments/pxtop-kelvin",
            "/api/v1/namespaces/obs/services/pxtop-kelvin",
        ]
    );
    for s in &seen {
        assert_eq!(s.method, "PATCH");
        assert_eq!(s.content_type, "application/apply-patch+yaml");
        let query = s.uri.split_once('?').unwrap().1;
        assert!(query.contains("fieldManager=pxtop"), "{query}");
        assert!(query.contains("force=true"), "{query}");
    }
    assert_eq!(
        seen[8].body["spec"]["template"]["spec"]["containers"][0]["image"],
        "img:1"
    );
    assert_eq!(progress.len(), 11);
    assert_eq!(progress[0], "applied Namespace obs");
}

#[tokio::test]
async fn an_apply_refused_by_rbac_names_the_object_and_the_fix() {
    let (client, _) = mock(Box::new(|s: &Seen| {
        if s.uri.contains("clusterroles") {
            (
                403,
                status(
                    403,
                    "Forbidden",
                    "clusterroles.rbac.authorization.k8s.io \"pxtop-metadata-reader\" is forbidden: User \"alice\" cannot patch resource \"clusterroles\"",
                ),
            )
        } else {
            echo_apply(s)
        }
    }));
    let objects = manifests::render("pxtop", "img:1", Some(&placeholder_secrets())).unwrap();
    let err = k::apply(&client, &objects, &mut |_| {}).await.unwrap_err();
    assert_eq!(
        err.to_string(),
        "applying ClusterRole pxtop-metadata-reader: clusterroles.rbac.authorization.k8s.io \
         \"pxtop-metadata-reader\" is forbidden: User \"alice\" cannot patch resource \
         \"clusterroles\" (Kubernetes RBAC forbids it for your user: ask for that permission)"
    );
}

fn daemonset(ready: i32, desired: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "DaemonSet",
        "metadata": {"name": "pxtop-pem", "namespace": "pxtop", "generation": 2},
        "spec": {"selector": {"matchLabels": {"app.kubernetes.io/name": "pxtop-pem"}},
                 "template": {"spec": {"containers": []}}},
        "status": {"currentNumberScheduled": desired, "desiredNumberScheduled": desired,
                   "numberMisscheduled": 0, "numberReady": ready, "observedGeneration": 2,
                   "updatedNumberScheduled": desired}
    })
}

fn deployment(available: i32) -> Value {
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": "pxtop-kelvin", "namespace": "pxtop", "generation": 1},
        "spec": {"replicas": 1,
                 "selector": {"matchLabels": {"app.kubernetes.io/name": "pxtop-kelvin"}},
                 "template": {"spec": {"containers": []}}},
        "status": {"availableReplicas": available, "observedGeneration": 1, "replicas": 1,
                   "updatedReplicas": 1, "readyReplicas": available}
    })
}

#[tokio::test]
async fn wait_reports_progress_until_every_pem_and_kelvin_are_ready() {
    // The DaemonSet's PEMs come up one by one, then Kelvin.
    let mut ds_reads = 0;
    let mut dep_reads = 0;
    let (client, seen) = mock(Box::new(move |s: &Seen| {
        if s.uri
            .starts_with("/apis/apps/v1/namespaces/pxtop/daemonsets/pxtop-pem")
        {
            ds_reads += 1;
            (200, daemonset((ds_reads - 1).min(2), 2))
        } else if s
            .uri
            .starts_with("/apis/apps/v1/namespaces/pxtop/deployments/pxtop-kelvin")
        {
            dep_reads += 1;
            (200, deployment(i32::from(dep_reads >= 4)))
        } else {
            (404, status(404, "NotFound", "not found"))
        }
    }));
    let mut progress = Vec::new();
    let done = k::wait_ready(
        &client,
        "pxtop",
        Duration::from_secs(60),
        Duration::from_millis(1),
        &mut |r| progress.push(r.to_string()),
    )
    .await
    .unwrap();
    assert!(done.done());
    assert_eq!(
        progress,
        [
            "PEMs 0/2 ready, Kelvin 0/1 available",
            "PEMs 1/2 ready, Kelvin 0/1 available",
            "PEMs 2/2 ready, Kelvin 0/1 available",
            "PEMs 2/2 ready, Kelvin 1/1 available",
        ]
    );
    assert!(seen.lock().unwrap().iter().all(|s| s.method == "GET"));
}

#[tokio::test]
async fn wait_times_out_naming_the_progress_and_where_to_look() {
    let (client, _) = mock(Box::new(|s: &Seen| {
        if s.uri.contains("daemonsets") {
            (200, daemonset(1, 3))
        } else {
            (200, deployment(1))
        }
    }));
    let err = k::wait_ready(
        &client,
        "pxtop",
        Duration::from_millis(20),
        Duration::from_millis(5),
        &mut |_| {},
    )
    .await
    .unwrap_err();
    assert!(matches!(err, KubeError::Timeout { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("PEMs 1/3 ready, Kelvin 1/1 available (see `kubectl -n pxtop get pods`"),
        "{err}"
    );
}

#[tokio::test]
async fn delete_goes_in_reverse_and_tolerates_missing_objects() {
    let (client, seen) = mock(Box::new(|s: &Seen| {
        if s.uri.contains("clusterrolebindings") {
            (
                404,
                status(
                    404,
                    "NotFound",
                    "clusterrolebindings \"pxtop-metadata-reader\" not found",
                ),
            )
        } else {
            (200, status(200, "", ""))
        }
    }));
    let objects = manifests::render("pxtop", "img:1", None).unwrap();
    let deleted = k::delete(&client, &objects).await.unwrap();
    assert_eq!(deleted.len(), 8);
    assert_eq!(
        deleted[0],
        Deleted::Deleted("Service pxtop/pxtop-kelvin".into())
    );
    assert!(deleted.contains(&Deleted::AlreadyGone(
        "ClusterRoleBinding pxtop-metadata-reader".into()
    )));
    assert_eq!(deleted[7], Deleted::Deleted("Namespace pxtop".into()));
    let seen = seen.lock().unwrap();
    assert!(seen.iter().all(|s| s.method == "DELETE"));
    assert_eq!(
        seen[7].uri.split('?').next().unwrap(),
        "/api/v1/namespaces/pxtop"
    );
    assert_eq!(seen[7].body["propagationPolicy"], "Background");
}

fn secret(name: &str, data: Value) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "pxtop"}, "data": data})
}

/// base64 of `s` (what the API server returns in `data`).
fn b64(s: &str) -> Value {
    serde_json::to_value(k8s_openapi::ByteString(s.as_bytes().to_vec())).unwrap()
}

fn secrets_server(token_answer: (u16, Value)) -> Answer {
    Box::new(move |s: &Seen| {
        if s.uri
            .starts_with("/api/v1/namespaces/pxtop/secrets/pxtop-token")
        {
            token_answer.clone()
        } else if s
            .uri
            .starts_with("/api/v1/namespaces/pxtop/configmaps/pxtop-ca")
        {
            (
                200,
                json!({"apiVersion": "v1", "kind": "ConfigMap",
                       "metadata": {"name": "pxtop-ca", "namespace": "pxtop"},
                       "data": {"ca.crt": "CA"}}),
            )
        } else if s
            .uri
            .starts_with("/api/v1/namespaces/pxtop/secrets/pxtop-tls")
        {
            (
                200,
                secret(
                    "pxtop-tls",
                    json!({"ca.crt": b64("CA"), "tls.crt": b64("CRT"), "tls.key": b64("KEY")}),
                ),
            )
        } else {
            (404, status(404, "NotFound", "not found"))
        }
    })
}

#[tokio::test]
async fn access_and_existing_secrets_are_read_from_the_secrets() {
    let (client, seen) = mock(secrets_server((
        200,
        secret("pxtop-token", json!({"token": b64("s3cret\n")})),
    )));
    let access = k::read_access(&client, "prod", "pxtop", true)
        .await
        .unwrap();
    assert_eq!(access.token, "s3cret");
    assert_eq!(access.ca_pem, b"CA");
    let kept = k::existing_secrets(&client, "pxtop")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.token, "s3cret");
    assert_eq!(kept.pki.key_pem, "KEY");
    // A stored token means the token Secret is not read at all; Kelvin's key never is.
    seen.lock().unwrap().clear();
    k::read_access(&client, "prod", "pxtop", false)
        .await
        .unwrap();
    let uris: Vec<String> = seen.lock().unwrap().iter().map(|s| s.uri.clone()).collect();
    assert_eq!(uris, ["/api/v1/namespaces/pxtop/configmaps/pxtop-ca"]);
}

#[tokio::test]
async fn no_deploy_and_no_permission_are_told_apart() {
    let (client, _) = mock(secrets_server((
        404,
        status(404, "NotFound", "secrets \"pxtop-token\" not found"),
    )));
    assert!(
        k::existing_secrets(&client, "pxtop")
            .await
            .unwrap()
            .is_none()
    );
    let err = k::read_access(&client, "prod", "pxtop", true)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "pxtop is not deployed in namespace pxtop of context prod: no Secret pxtop-token \
         (deploy with `pxtop deploy --context prod`)"
    );
    let (client, _) = mock(secrets_server((
        403,
        status(
            403,
            "Forbidden",
            "secrets \"pxtop-token\" is forbidden: User \"bob\" cannot get resource \"secrets\" in API group \"\" in the namespace \"pxtop\"",
        ),
    )));
    let err = k::read_access(&client, "prod", "pxtop", true)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "reading Secret pxtop/pxtop-token: secrets \"pxtop-token\" is forbidden: User \"bob\" \
         cannot get resource \"secrets\" in API group \"\" in the namespace \"pxtop\" \
         (Kubernetes RBAC forbids it for your user: ask for that permission, or get a token \
         and store it with `pxtop auth login`)"
    );
}

fn pod(name: &str, phase: &str, ready: bool, deleting: bool) -> Value {
    let mut p = json!({
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": name, "namespace": "pxtop",
                     "labels": {"app.kubernetes.io/name": "pxtop-kelvin"}},
        "status": {"phase": phase,
                   "conditions": [{"type": "Ready", "status": if ready { "True" } else { "False" }}]}
    });
    if deleting {
        p["metadata"]["deletionTimestamp"] = json!("2026-01-01T00:00:00Z");
    }
    p
}

#[tokio::test]
async fn the_kelvin_pod_forwarded_to_is_a_ready_running_one() {
    let (client, seen) = mock(Box::new(|_s: &Seen| {
        (
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
                pod("pxtop-kelvin-old", "Running", true, true),
                pod("pxtop-kelvin-starting", "Running", false, false),
                pod("pxtop-kelvin-pending", "Pending", false, false),
                pod("pxtop-kelvin-good", "Running", true, false),
            ]}),
        )
    }));
    let name = k::kelvin_pod(&client, "prod", "pxtop").await.unwrap();
    assert_eq!(name, "pxtop-kelvin-good");
    let uri = seen.lock().unwrap()[0].uri.clone();
    assert!(uri.starts_with("/api/v1/namespaces/pxtop/pods?"), "{uri}");
    assert!(
        uri.contains("labelSelector=app.kubernetes.io%2Fname%3Dpxtop-kelvin"),
        "{uri}"
    );

    let (client, _) = mock(Box::new(|_s: &Seen| {
        (
            200,
            json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": [
                pod("pxtop-kelvin-starting", "Running", false, false)]}),
        )
    }));
    let err = k::kelvin_pod(&client, "prod", "pxtop").await.unwrap_err();
    assert!(
        err.to_string()
            .contains("no ready Kelvin pod (1 found; see `kubectl -n pxtop get pods`)"),
        "{err}"
    );
}
