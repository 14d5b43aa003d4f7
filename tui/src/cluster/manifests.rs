//! What `pxtop deploy` applies: the manifests of `deploy/kubernetes` (embedded, so the binary
//! works anywhere), set to a namespace and image, plus the two Secrets it generates
//! (`pxtop-token`, `pxtop-tls`) and the CA's ConfigMap (`pxtop-ca`), in apply order.

use std::collections::BTreeMap;

use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use serde_json::Value;

use super::pki::{self, Pki};

/// The namespace of the manifests as written.
pub const DEFAULT_NAMESPACE: &str = "pxtop";
/// The image the manifests name.
pub const DEFAULT_IMAGE: &str = "pxtop/pxtopd:0.1.0";
/// Kelvin's Service (and Deployment) name.
pub const KELVIN_SERVICE: &str = "pxtop-kelvin";
/// Kelvin's gRPC port.
pub const KELVIN_PORT: u16 = 50451;
/// The PEMs' DaemonSet.
pub const PEM_DAEMONSET: &str = "pxtop-pem";
/// The Secret holding the bearer token (key `token`).
pub const TOKEN_SECRET: &str = "pxtop-token";
/// The Secret holding Kelvin's certificate and key (keys `tls.crt`, `tls.key`, and `ca.crt`).
pub const TLS_SECRET: &str = "pxtop-tls";
/// The ConfigMap holding the CA certificate (key `ca.crt`): public, what clients and PEMs
/// trust; kept apart so reading it does not need (or grant) access to Kelvin's key.
pub const CA_CONFIGMAP: &str = "pxtop-ca";
/// The label every pxtop object carries.
pub const PART_OF: (&str, &str) = ("app.kubernetes.io/part-of", "pxtop");

/// The manifest files, in apply order (the namespace first, workloads after what they use).
const FILES: [(&str, &str); 4] = [
    (
        "namespace.yaml",
        include_str!("../../../deploy/kubernetes/namespace.yaml"),
    ),
    (
        "rbac.yaml",
        include_str!("../../../deploy/kubernetes/rbac.yaml"),
    ),
    (
        "pem.yaml",
        include_str!("../../../deploy/kubernetes/pem.yaml"),
    ),
    (
        "kelvin.yaml",
        include_str!("../../../deploy/kubernetes/kelvin.yaml"),
    ),
];

/// Errors rendering the manifests.
#[derive(Debug, thiserror::Error)]
pub enum ManifestError {
    /// An embedded file does not parse (a build from a broken tree).
    #[error("embedded manifest {file} does not parse: {source}")]
    Parse {
        /// The file.
        file: &'static str,
        /// The parser's error.
        source: serde_yaml_ng::Error,
    },
    /// Certificate generation failed.
    #[error("cannot generate the CA and Kelvin's certificate: {0}")]
    Pki(#[from] rcgen::Error),
    /// YAML output failed.
    #[error("cannot write YAML: {0}")]
    Yaml(serde_yaml_ng::Error),
}

/// The material `pxtop deploy` puts in Secrets.
#[derive(Clone)]
pub struct Secrets {
    /// The bearer token every client, PEM and Kelvin share.
    pub token: String,
    /// The CA and Kelvin's certificate.
    pub pki: Pki,
}

impl std::fmt::Debug for Secrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secrets(..)")
    }
}

impl Secrets {
    /// A random token and a fresh CA and certificate for Kelvin's names in `namespace`.
    pub fn generate(namespace: &str) -> Result<Self, ManifestError> {
        Ok(Self {
            token: pxtopd::token::random(),
            pki: pki::generate(namespace, &pki::kelvin_names(namespace))?,
        })
    }

    /// The CA's ConfigMap and the two Secrets, in `namespace`.
    pub fn objects(&self, namespace: &str) -> Vec<Value> {
        let labels = BTreeMap::from([(PART_OF.0.to_string(), PART_OF.1.to_string())]);
        let secret = |name: &str, type_: Option<&str>, data: Vec<(&str, &str)>| Secret {
            metadata: k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta {
                name: Some(name.to_string()),
                namespace: Some(namespace.to_string()),
                labels: Some(labels.clone()),
                ..Default::default()
            },
            type_: type_.map(str::to_string),
            data: Some(
                data.into_iter()
                    .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                    .collect(),
            ),
            ..Default::default()
        };
        let token = secret(TOKEN_SECRET, Some("Opaque"), vec![("token", &self.token)]);
        let tls = secret(
            TLS_SECRET,
            Some("kubernetes.io/tls"),
            vec![
                ("ca.crt", &self.pki.ca_pem),
                ("tls.crt", &self.pki.cert_pem),
                ("tls.key", &self.pki.key_pem),
            ],
        );
        let ca = serde_json::json!({
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {
                "name": CA_CONFIGMAP,
                "namespace": namespace,
                "labels": {PART_OF.0: PART_OF.1},
            },
            "data": {"ca.crt": self.pki.ca_pem},
        });
        std::iter::once(ca)
            .chain([token, tls].iter().map(|s| {
                let v = serde_json::to_value(s).unwrap_or(Value::Null);
                // The usual order, as in the YAML files: apiVersion, kind, metadata, the rest.
                let Value::Object(mut m) = v else { return v };
                let mut out = serde_json::Map::new();
                out.insert("apiVersion".into(), "v1".into());
                out.insert("kind".into(), "Secret".into());
                for key in ["metadata", "type", "data"] {
                    if let Some(x) = m.remove(key) {
                        out.insert(key.into(), x);
                    }
                }
                out.extend(
                    m.into_iter()
                        .filter(|(k, _)| k != "apiVersion" && k != "kind"),
                );
                Value::Object(out)
            }))
            .collect()
    }
}

/// The objects to apply, in order: namespace, RBAC, `secrets` (when given: the CA's
/// ConfigMap and the Secrets), PEMs, Kelvin.
pub fn render(
    namespace: &str,
    image: &str,
    secrets: Option<&Secrets>,
) -> Result<Vec<Value>, ManifestError> {
    let mut out = Vec::new();
    for (file, text) in FILES {
        for doc in serde_yaml_ng::Deserializer::from_str(text) {
            let mut v: Value = serde::Deserialize::deserialize(doc)
                .map_err(|source| ManifestError::Parse { file, source })?;
            if v.is_null() {
                continue;
            }
            retarget(&mut v, namespace, image);
            out.push(v);
        }
        if file == "rbac.yaml"
            && let Some(s) = secrets
        {
            out.extend(s.objects(namespace));
        }
    }
    Ok(out)
}

/// Multi-document YAML of `objects`.
pub fn to_yaml(objects: &[Value]) -> Result<String, ManifestError> {
    let mut out = String::new();
    for o in objects {
        out.push_str("---\n");
        out.push_str(&serde_yaml_ng::to_string(o).map_err(ManifestError::Yaml)?);
    }
    Ok(out)
}

/// Moves one object from the manifests' namespace and image to `namespace` and `image`.
fn retarget(v: &mut Value, namespace: &str, image: &str) {
    let is_namespace = v["kind"] == "Namespace";
    walk(v, &mut |key, value| {
        let Value::String(s) = value else { return };
        match key {
            "namespace" if s == DEFAULT_NAMESPACE => *s = namespace.to_string(),
            "image" if s == DEFAULT_IMAGE => *s = image.to_string(),
            _ => {
                let from = format!(".{DEFAULT_NAMESPACE}.svc");
                if s.contains(&from) {
                    *s = s.replace(&from, &format!(".{namespace}.svc"));
                }
            }
        }
    });
    if is_namespace {
        v["metadata"]["name"] = Value::String(namespace.to_string());
    }
}

fn walk(v: &mut Value, f: &mut impl FnMut(&str, &mut Value)) {
    match v {
        Value::Object(m) => {
            for (k, child) in m.iter_mut() {
                f(k, child);
                walk(child, f);
            }
        }
        Value::Array(a) => {
            for child in a {
                f("", child);
                walk(child, f);
            }
        }
        _ => {}
    }
}

/// An object's kind, namespace (when namespaced) and name, for messages.
pub fn describe(v: &Value) -> String {
    let kind = v["kind"].as_str().unwrap_or("?");
    let name = v["metadata"]["name"].as_str().unwrap_or("?");
    match v["metadata"]["namespace"].as_str() {
        Some(ns) => format!("{kind} {ns}/{name}"),
        None => format!("{kind} {name}"),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "tests fail loudly")]

    use super::*;

    #[test]
    fn renders_every_object_retargeted_with_secrets_before_workloads() {
        let secrets = Secrets::generate("obs").unwrap();
        let objs = render("obs", "reg.example/pxtopd:9", Some(&secrets)).unwrap();
        let names: Vec<String> = objs.iter().map(describe).collect();
        assert_eq!(
            names,
            [
                "Namespace obs",
                "ServiceAccount obs/pxtop-pem",
                "ServiceAccount obs/pxtop-kelvin",
                "ClusterRole pxtop-metadata-reader",
                "ClusterRoleBinding pxtop-metadata-reader",
                "ConfigMap obs/pxtop-ca",
                "Secret obs/pxtop-token",
                "Secret obs/pxtop-tls",
                "DaemonSet obs/pxtop-pem",
                "Deployment obs/pxtop-kelvin",
                "Service obs/pxtop-kelvin",
            ]
        );
        let yaml = to_yaml(&objs).unwrap();
        assert!(!yaml.contains("pxtop/pxtopd:0.1.0"), "{yaml}");
        assert!(
            yaml.contains("--kelvin=pxtop-kelvin.obs.svc:50451"),
            "{yaml}"
        );
        assert!(!yaml.contains("namespace: pxtop\n"), "{yaml}");
        // The generated token is in the Secret, base64-encoded.
        let token = objs[6]["data"]["token"].as_str().unwrap();
        assert_eq!(
            token,
            serde_json::to_value(ByteString(secrets.token.into_bytes())).unwrap()
        );
    }
}
