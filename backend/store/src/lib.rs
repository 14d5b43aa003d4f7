//! pxtop's table store: per table a ring of sealed Arrow record batches with min/max `time_`,
//! a byte budget carved from one node budget, oldest batch dropped first (counted), and
//! snapshots pruned by time. No tokio, no I/O.
#![forbid(unsafe_code)]

pub mod schema;
