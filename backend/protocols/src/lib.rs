//! Pure protocol parsers for the PEM: protocol inference from a connection's first bytes, and
//! per-protocol incremental parsers that turn reassembled byte streams (with gaps) into
//! request/response records. No I/O, no async, bounded memory per connection.
#![forbid(unsafe_code)]

pub mod cql;
pub mod dns;
pub mod http1;
pub mod http2;
pub mod infer;
pub mod mysql;
pub mod pgsql;
pub mod redis;

/// A piece of one direction of a connection's byte stream, in order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Chunk<'a> {
    /// Bytes seen, with the times of the first and last of them (ns, monotonic).
    Data {
        /// The bytes.
        bytes: &'a [u8],
        /// When the first byte moved.
        first_ts: u64,
        /// When the last byte moved.
        last_ts: u64,
    },
    /// Bytes that moved but were not captured (truncation, lost events, sendfile).
    Gap {
        /// How many.
        len: u64,
        /// When.
        ts: u64,
    },
}

/// A protocol the agent recognises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Protocol {
    /// HTTP/1.0 and HTTP/1.1.
    Http1,
    /// HTTP/2 over cleartext (h2c with prior knowledge, gRPC), from the client preface.
    Http2,
    /// Redis (RESP2 and RESP3).
    Redis,
    /// PostgreSQL (frontend/backend protocol 3.0).
    Pgsql,
    /// MySQL and MariaDB (client/server protocol 4.1).
    Mysql,
    /// DNS over UDP or TCP.
    Dns,
    /// Cassandra CQL native protocol (v3, v4, v5).
    Cql,
}

/// Which side of an exchange a message is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageKind {
    /// Sent by the client.
    Request,
    /// Sent by the server.
    Response,
}
