//! pxtop in a Kubernetes cluster, from the client's side: the manifests and Secrets `pxtop
//! deploy` applies ([`manifests`], [`pki`]), and the Kubernetes API calls that apply, wait for,
//! delete and reach them through the user's kubeconfig ([`kube`]).

pub mod commands;
pub mod kube;
pub mod manifests;
pub mod pki;
