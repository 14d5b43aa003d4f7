//! Generated gRPC types and services for pxtop's wire protocol (`proto/pxtop.proto`).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

/// Version 1 of the protocol.
pub mod v1 {
    tonic::include_proto!("pxtop.v1");
}

/// The metadata key that carries the bearer token.
pub const AUTH_HEADER: &str = "authorization";
