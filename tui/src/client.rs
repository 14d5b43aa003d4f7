//! The gRPC client for pxtopd: bearer-token interceptor, script execution with Arrow IPC
//! decoding (batches of one output table concatenated in arrival order), and errors that carry
//! a hint naming the fix.

use std::collections::HashMap;
use std::io::Cursor;
use std::sync::Arc;
use std::time::Duration;

use arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use arrow::datatypes::{DataType, SchemaRef};
use arrow::error::ArrowError;
use arrow::ipc::reader::StreamReader;
use pxtop_proto::v1::execute_script_response::Result as ResponseResult;
use pxtop_proto::v1::pxtop_client::PxtopClient;
use pxtop_proto::v1::{
    ExecuteScriptRequest, ExecutionStats, ListScriptsRequest, ListTablesRequest, ScriptInfo,
    TableInfo,
};
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::Interceptor;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// How long to wait for the TCP (and HTTP/2) connection before giving up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(3);

/// Failures talking to pxtopd.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// `--addr` is not a URL tonic accepts.
    #[error("invalid address '{addr}': {source} (expected a URL like http://127.0.0.1:50451)")]
    InvalidAddr {
        /// The address as given.
        addr: String,
        /// Why it was refused.
        source: tonic::transport::Error,
    },
    /// The token cannot be sent as an HTTP header value.
    #[error(
        "the token is not a valid header value (it must be visible ASCII): fix PXTOP_TOKEN or the token file"
    )]
    InvalidToken,
    /// The RPC failed.
    #[error("{}", rpc_message(.addr, .status))]
    Rpc {
        /// The server address.
        addr: String,
        /// The gRPC status.
        status: Status,
    },
    /// An https:// address without a CA to trust.
    #[error(
        "{addr} is https:// but no CA was given: pass the CA that signed pxtopd's certificate with --ca CA.pem (or use --context NAME for a cluster)"
    )]
    TlsNeedsCa {
        /// The address as given.
        addr: String,
    },
    /// The CA or server name cannot be used.
    #[error("cannot set up TLS for {addr}: {source} (--ca must be a PEM certificate)")]
    TlsConfig {
        /// The server address.
        addr: String,
        /// tonic's error.
        source: tonic::transport::Error,
    },
    /// A result batch could not be decoded.
    #[error("cannot decode result table '{table}' from the server: {source}")]
    Decode {
        /// The output table's name.
        table: String,
        /// Arrow's error.
        source: ArrowError,
    },
}

impl ClientError {
    /// What the user should do about this error, when there is an obvious fix.
    pub fn hint(&self) -> Option<&'static str> {
        match self {
            ClientError::Rpc { status, .. } if is_connection_refused(status) => {
                Some("is pxtopd running? start it with `pxtopd` or use `pxtop --local`")
            }
            ClientError::Rpc { status, .. } if status.code() == Code::Unauthenticated => Some(
                "set PXTOP_TOKEN to the token pxtopd uses, or store it with `pxtop auth login`",
            ),
            ClientError::Rpc { addr, status } => match tls_problem(addr, status)? {
                TlsProblem::Untrusted => Some(
                    "pass the CA that signed pxtopd's certificate with --ca CA.pem; in a \
                     cluster `pxtop --context NAME` reads it from the pxtop-tls Secret",
                ),
                TlsProblem::WrongName => Some(
                    "connect by a name the certificate holds, or say which with \
                     --tls-server-name NAME",
                ),
                TlsProblem::ServerNotTls => Some(
                    "connect with http:// and without --ca, or start pxtopd with \
                     --tls-cert and --tls-key",
                ),
                TlsProblem::PlaintextToTls => Some(
                    "if pxtopd serves TLS (--tls-cert), connect with https://HOST:PORT and \
                     --ca CA.pem",
                ),
            },
            _ => None,
        }
    }

    /// The message and, if any, the hint on one line (for the TUI's status bar).
    pub fn one_line(&self) -> String {
        match self.hint() {
            Some(hint) => format!("{self} ({hint})"),
            None => self.to_string(),
        }
    }
}

/// What went wrong with TLS, told from the transport error's text (rustls' and hyper's errors
/// reach us flattened into the source chain, not as types we can match).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TlsProblem {
    /// The server's certificate is not signed by the CA we trust.
    Untrusted,
    /// The certificate does not name the host we connected to.
    WrongName,
    /// We spoke TLS, the server answered in plaintext.
    ServerNotTls,
    /// We spoke plaintext and the server hung up: likely a TLS-only port.
    PlaintextToTls,
}

fn tls_problem(addr: &str, status: &Status) -> Option<TlsProblem> {
    // A transport failure: Unavailable when connecting failed, Unknown when the connection
    // broke under the request (hyper's error as the source either way).
    let transport = match status.code() {
        Code::Unavailable => true,
        Code::Unknown => std::error::Error::source(status).is_some(),
        _ => false,
    };
    if !transport || is_connection_refused(status) {
        return None;
    }
    let text = format!("{} {}", status.message(), source_chain(status));
    if text.contains("NotValidForName") || text.contains("not valid for name") {
        Some(TlsProblem::WrongName)
    } else if text.contains("UnknownIssuer")
        || text.contains("invalid peer certificate")
        || text.contains("BadSignature")
    {
        Some(TlsProblem::Untrusted)
    } else if text.contains("InvalidContentType")
        || text.contains("corrupt message")
        || text.contains("InvalidMessage")
    {
        Some(TlsProblem::ServerNotTls)
    } else if addr.starts_with("http://") {
        Some(TlsProblem::PlaintextToTls)
    } else {
        None
    }
}

fn rpc_message(addr: &str, status: &Status) -> String {
    if is_connection_refused(status) {
        return format!("cannot connect to pxtopd at {addr}: connection refused");
    }
    match tls_problem(addr, status) {
        Some(TlsProblem::Untrusted) => {
            return format!(
                "pxtopd at {addr} presented a TLS certificate not signed by the trusted CA"
            );
        }
        Some(TlsProblem::WrongName) => {
            return format!(
                "pxtopd at {addr} presented a TLS certificate for another name: {}",
                source_chain(status)
            );
        }
        Some(TlsProblem::ServerNotTls) => {
            return format!("pxtopd at {addr} does not speak TLS");
        }
        Some(TlsProblem::PlaintextToTls) => {
            return format!(
                "pxtopd at {addr} closed the plaintext connection: {}",
                source_chain(status)
            );
        }
        None => {}
    }
    let msg = status.message();
    let msg = if msg.is_empty() {
        "no message"
    } else {
        msg.trim_end()
    };
    match status.code() {
        Code::Unavailable => {
            // Transport failures carry their cause in the source chain, not the message.
            let cause = source_chain(status);
            if cause.is_empty() {
                format!("pxtopd at {addr} is unavailable: {msg}")
            } else {
                format!("pxtopd at {addr} is unavailable: {msg}: {cause}")
            }
        }
        Code::Unauthenticated => format!("pxtopd at {addr} refused the token: {msg}"),
        _ => msg.to_owned(),
    }
}

fn source_chain(status: &Status) -> String {
    let mut parts = Vec::new();
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        parts.push(err.to_string());
        source = err.source();
    }
    parts.join(": ")
}

fn is_connection_refused(status: &Status) -> bool {
    if status.code() != Code::Unavailable {
        return false;
    }
    let mut source = std::error::Error::source(status);
    while let Some(err) = source {
        if let Some(io) = err.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return true;
        }
        source = err.source();
    }
    // Some transports flatten the io::Error into text.
    status.message().contains("Connection refused")
}

/// Adds `authorization: Bearer <token>` to every request.
#[derive(Debug, Clone)]
pub struct AuthInterceptor {
    header: Option<MetadataValue<Ascii>>,
}

impl AuthInterceptor {
    /// An interceptor sending `token`, or nothing when there is none.
    pub fn new(token: Option<&str>) -> Result<Self, ClientError> {
        let header = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| ClientError::InvalidToken)
            })
            .transpose()?;
        Ok(AuthInterceptor { header })
    }
}

impl Interceptor for AuthInterceptor {
    fn call(&mut self, mut request: tonic::Request<()>) -> Result<tonic::Request<()>, Status> {
        if let Some(value) = &self.header {
            request
                .metadata_mut()
                .insert(pxtop_proto::AUTH_HEADER, value.clone());
        }
        Ok(request)
    }
}

/// One output table of a script: every batch that arrived under its name, in order.
#[derive(Debug, Clone, PartialEq)]
pub struct ResultTable {
    /// The name given to `px::display`.
    pub name: String,
    /// The widget spec, as JSON.
    pub widget_json: String,
    /// The table's schema (from its first IPC stream).
    pub schema: SchemaRef,
    /// The record batches, in arrival order.
    pub batches: Vec<RecordBatch>,
}

impl ResultTable {
    /// Rows over all batches.
    pub fn num_rows(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Everything a script run returned.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct QueryResult {
    /// Output tables, in order of first appearance.
    pub tables: Vec<ResultTable>,
    /// The final statistics message, if the server sent one.
    pub stats: Option<ExecutionStats>,
}

impl QueryResult {
    /// Decodes one `TableBatch` (a complete Arrow IPC stream) and appends it to its table.
    pub fn push_ipc(
        &mut self,
        table_name: &str,
        widget_json: &str,
        arrow_ipc: &[u8],
    ) -> Result<(), ClientError> {
        self.push(table_name, widget_json, arrow_ipc, false)
    }

    /// Decodes one `TableBatch` and appends it to its table; with `compact`, each batch is
    /// [`compact`]ed as it arrives, so the decoded messages are freed one by one.
    fn push(
        &mut self,
        table_name: &str,
        widget_json: &str,
        arrow_ipc: &[u8],
        compact: bool,
    ) -> Result<(), ClientError> {
        let decode = |source| ClientError::Decode {
            table: table_name.to_owned(),
            source,
        };
        let reader = StreamReader::try_new(Cursor::new(arrow_ipc), None).map_err(decode)?;
        let schema = reader.schema();
        let mut batches = reader.collect::<Result<Vec<_>, _>>().map_err(decode)?;
        if compact {
            batches = batches.iter().map(self::compact).collect();
        }
        match self.tables.iter_mut().find(|t| t.name == table_name) {
            Some(table) => {
                if table.schema.fields() != schema.fields() {
                    return Err(decode(ArrowError::SchemaError(format!(
                        "a later part of table '{table_name}' has a different schema"
                    ))));
                }
                table.batches.extend(batches);
            }
            None => self.tables.push(ResultTable {
                name: table_name.to_owned(),
                widget_json: widget_json.to_owned(),
                schema,
                batches,
            }),
        }
        Ok(())
    }

    /// Rows over all tables.
    pub fn num_rows(&self) -> usize {
        self.tables.iter().map(ResultTable::num_rows).sum()
    }
}

/// `batch` in arrays of its own, for keeping: string columns that repeat (services,
/// methods, addresses, headers) dictionary-encoded, every other column copied. A decoded IPC
/// message is one buffer that every column of its batch points into, so keeping any column as
/// it arrived would keep the whole message; copied out, the message is freed at once. The
/// batch's schema says which columns became dictionaries (the table's schema stays as sent).
pub fn compact(batch: &RecordBatch) -> RecordBatch {
    let n = batch.num_rows();
    let all = arrow::array::UInt32Array::from_iter_values(0..n as u32);
    let dictionary = DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8));
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns = Vec::with_capacity(batch.num_columns());
    for (field, array) in batch.schema().fields().iter().zip(batch.columns()) {
        let encoded = (array.data_type() == &DataType::Utf8 && repeats(array))
            .then(|| arrow::compute::cast(array, &dictionary).ok())
            .flatten()
            .filter(|d| d.as_any_dictionary().values().len() * 2 <= n);
        let (data_type, array) = match encoded {
            Some(d) => (dictionary.clone(), d),
            None => match arrow::compute::take(array, &all, None) {
                Ok(copy) => (array.data_type().clone(), copy),
                Err(_) => (array.data_type().clone(), array.clone()),
            },
        };
        fields.push(field.as_ref().clone().with_data_type(data_type));
        columns.push(array);
    }
    let schema = Arc::new(arrow::datatypes::Schema::new_with_metadata(
        fields,
        batch.schema().metadata().clone(),
    ));
    RecordBatch::try_new(schema, columns).unwrap_or_else(|_| batch.clone())
}

/// Whether a string column looks repetitive: at most half of its first 256 values distinct.
fn repeats(array: &ArrayRef) -> bool {
    let strings = array.as_string::<i32>();
    let sample = strings.len().min(256);
    let distinct: std::collections::HashSet<Option<&str>> = strings.iter().take(sample).collect();
    sample > 0 && distinct.len() * 2 <= sample
}

/// A script to execute: a bundled name or inline source, plus arguments.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ScriptSource {
    /// A bundled script such as `px/http_data`.
    Name(String),
    /// Rhai source text.
    Source(String),
}

/// How a client trusts a TLS server: the CA that signed its certificate, and the name to check
/// the certificate for when it is not the address's host (a port-forward to 127.0.0.1).
#[derive(Clone, PartialEq, Eq)]
pub struct TlsTrust {
    /// The CA certificate, PEM.
    pub ca_pem: Vec<u8>,
    /// The name the server's certificate must hold (default: the address's host).
    pub server_name: Option<String>,
}

impl std::fmt::Debug for TlsTrust {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsTrust")
            .field("server_name", &self.server_name)
            .finish_non_exhaustive()
    }
}

/// A connection to pxtopd. Cheap to clone (clones share the HTTP/2 channel).
#[derive(Debug, Clone)]
pub struct Client {
    addr: String,
    inner: PxtopClient<InterceptedService<Channel, AuthInterceptor>>,
}

impl Client {
    /// A client for `addr` sending `token`. Connects lazily: a down server shows up as an
    /// error on the first call, with a hint.
    pub fn new(addr: &str, token: Option<&str>) -> Result<Self, ClientError> {
        Self::connect(addr, token, None)
    }

    /// A client for `addr` sending `token`, over TLS trusting `tls` when given (an `http://`
    /// address then becomes `https://`). Connects lazily, like [`Client::new`].
    pub fn connect(
        addr: &str,
        token: Option<&str>,
        tls: Option<&TlsTrust>,
    ) -> Result<Self, ClientError> {
        let addr = match (tls, addr.strip_prefix("http://")) {
            (Some(_), Some(rest)) => format!("https://{rest}"),
            _ => addr.to_owned(),
        };
        let mut endpoint = Endpoint::from_shared(addr.clone())
            .map_err(|source| ClientError::InvalidAddr {
                addr: addr.clone(),
                source,
            })?
            .connect_timeout(CONNECT_TIMEOUT);
        match tls {
            Some(t) => {
                let mut config = tonic::transport::ClientTlsConfig::new()
                    .ca_certificate(tonic::transport::Certificate::from_pem(&t.ca_pem));
                if let Some(name) = &t.server_name {
                    config = config.domain_name(name.clone());
                }
                endpoint =
                    endpoint
                        .tls_config(config)
                        .map_err(|source| ClientError::TlsConfig {
                            addr: addr.clone(),
                            source,
                        })?;
            }
            None if addr.starts_with("https://") => {
                return Err(ClientError::TlsNeedsCa { addr });
            }
            None => {}
        }
        let channel = endpoint.connect_lazy();
        let inner = PxtopClient::with_interceptor(channel, AuthInterceptor::new(token)?)
            // Result tables can be large; the server splits them, but be generous anyway.
            .max_decoding_message_size(256 * 1024 * 1024);
        Ok(Client { addr, inner })
    }

    /// The address this client talks to.
    pub fn addr(&self) -> &str {
        &self.addr
    }

    fn rpc_error(&self, status: Status) -> ClientError {
        ClientError::Rpc {
            addr: self.addr.clone(),
            status,
        }
    }

    /// Runs a script and collects every output table.
    pub async fn execute(
        &mut self,
        script: &ScriptSource,
        args: HashMap<String, String>,
    ) -> Result<QueryResult, ClientError> {
        self.run(script, args, false).await
    }

    /// Runs a script and collects every output table, each batch [`compact`]ed as it
    /// arrives: what a view that keeps results on screen holds.
    pub async fn execute_compact(
        &mut self,
        script: &ScriptSource,
        args: HashMap<String, String>,
    ) -> Result<QueryResult, ClientError> {
        self.run(script, args, true).await
    }

    async fn run(
        &mut self,
        script: &ScriptSource,
        args: HashMap<String, String>,
        compact: bool,
    ) -> Result<QueryResult, ClientError> {
        let (name, source) = match script {
            ScriptSource::Name(n) => (n.clone(), String::new()),
            ScriptSource::Source(s) => (String::new(), s.clone()),
        };
        let request = ExecuteScriptRequest {
            name,
            source,
            args,
            describe_only: false,
        };
        let mut stream = self
            .inner
            .execute_script(request)
            .await
            .map_err(|s| self.rpc_error(s))?
            .into_inner();
        let mut result = QueryResult::default();
        while let Some(message) = stream.message().await.map_err(|s| self.rpc_error(s))? {
            match message.result {
                Some(ResponseResult::Batch(batch)) => {
                    let (name, widget) = (&batch.table_name, &batch.widget_json);
                    result.push(name, widget, &batch.arrow_ipc, compact)?;
                }
                Some(ResponseResult::Stats(stats)) => result.stats = Some(stats),
                Some(ResponseResult::Info(_)) | None => {}
            }
        }
        Ok(result)
    }

    /// A script's description and parameters, without running it (`pxtop run SCRIPT --help`).
    pub async fn describe(&mut self, script: &ScriptSource) -> Result<ScriptInfo, ClientError> {
        let (name, source) = match script {
            ScriptSource::Name(n) => (n.clone(), String::new()),
            ScriptSource::Source(s) => (String::new(), s.clone()),
        };
        let request = ExecuteScriptRequest {
            name,
            source,
            args: HashMap::new(),
            describe_only: true,
        };
        let mut stream = self
            .inner
            .execute_script(request)
            .await
            .map_err(|s| self.rpc_error(s))?
            .into_inner();
        while let Some(message) = stream.message().await.map_err(|s| self.rpc_error(s))? {
            if let Some(ResponseResult::Info(info)) = message.result {
                return Ok(info);
            }
        }
        Err(self.rpc_error(tonic::Status::unimplemented(
            "the backend did not describe the script; is pxtopd older than this pxtop?",
        )))
    }

    /// The scripts the backend offers.
    pub async fn list_scripts(&mut self) -> Result<Vec<ScriptInfo>, ClientError> {
        let response = self
            .inner
            .list_scripts(ListScriptsRequest {})
            .await
            .map_err(|s| self.rpc_error(s))?;
        Ok(response.into_inner().scripts)
    }

    /// Each node's `pxtop doctor` checks (every PEM's, from a cluster's Kelvin).
    pub async fn doctor(&mut self) -> Result<Vec<pxtop_proto::v1::NodeDoctor>, ClientError> {
        let response = self
            .inner
            .doctor(pxtop_proto::v1::DoctorRequest {})
            .await
            .map_err(|s| self.rpc_error(s))?;
        Ok(response.into_inner().nodes)
    }

    /// The backend's tables.
    pub async fn list_tables(&mut self) -> Result<Vec<TableInfo>, ClientError> {
        let response = self
            .inner
            .list_tables(ListTablesRequest {})
            .await
            .map_err(|s| self.rpc_error(s))?;
        Ok(response.into_inner().tables)
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::Arc;

    use arrow::array::{Int64Array, StringArray};
    use arrow::datatypes::{DataType, Field, Schema};
    use arrow::ipc::writer::StreamWriter;

    use super::*;

    /// Encodes `batches` (all of `schema`) as one Arrow IPC stream, as the server does.
    pub(crate) fn ipc(schema: &SchemaRef, batches: &[RecordBatch]) -> Vec<u8> {
        let mut out = Vec::new();
        let mut w = StreamWriter::try_new(&mut out, schema).unwrap();
        for b in batches {
            w.write(b).unwrap();
        }
        w.finish().unwrap();
        drop(w);
        out
    }

    fn batch(ids: &[i64], names: &[&str]) -> RecordBatch {
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("name", DataType::Utf8, true),
        ]));
        RecordBatch::try_new(
            schema,
            vec![
                Arc::new(Int64Array::from(ids.to_vec())),
                Arc::new(StringArray::from(names.to_vec())),
            ],
        )
        .unwrap()
    }

    #[test]
    fn parts_of_a_table_are_concatenated_in_order() {
        let a = batch(&[1, 2], &["a", "b"]);
        let b = batch(&[3], &["c"]);
        let other = batch(&[9], &["z"]);
        let mut r = QueryResult::default();
        r.push_ipc("t", "{}", &ipc(&a.schema(), std::slice::from_ref(&a)))
            .unwrap();
        r.push_ipc(
            "other",
            "{}",
            &ipc(&other.schema(), std::slice::from_ref(&other)),
        )
        .unwrap();
        r.push_ipc("t", "{}", &ipc(&b.schema(), std::slice::from_ref(&b)))
            .unwrap();
        // A schema-only stream (an empty part) adds nothing but is accepted.
        r.push_ipc("t", "{}", &ipc(&a.schema(), &[])).unwrap();
        assert_eq!(r.tables.len(), 2);
        assert_eq!(r.tables[0].name, "t");
        assert_eq!(r.tables[0].batches, vec![a, b]);
        assert_eq!(r.tables[1].name, "other");
        assert_eq!(r.num_rows(), 4);
    }

    #[test]
    fn empty_table_keeps_its_schema() {
        let a = batch(&[], &[]);
        let mut r = QueryResult::default();
        r.push_ipc("t", "{\"widget\":\"table\"}", &ipc(&a.schema(), &[]))
            .unwrap();
        assert_eq!(r.tables[0].schema, a.schema());
        assert_eq!(r.tables[0].widget_json, "{\"widget\":\"table\"}");
        assert_eq!(r.num_rows(), 0);
    }

    #[test]
    fn compacting_encodes_repeated_strings_and_copies_the_rest_out_of_the_message() {
        let ids: Vec<i64> = (0..300).collect();
        let paths: Vec<String> = ids.iter().map(|i| format!("/p{i}")).collect();
        let schema = Arc::new(Schema::new(vec![
            Field::new("id", DataType::Int64, false),
            Field::new("method", DataType::Utf8, true),
            Field::new("path", DataType::Utf8, false),
        ]));
        let methods = ids
            .iter()
            .map(|i| (i % 7 != 0).then_some(["GET", "POST"][*i as usize % 2]));
        let sent = RecordBatch::try_new(
            schema.clone(),
            vec![
                Arc::new(Int64Array::from(ids.clone())),
                Arc::new(methods.collect::<StringArray>()),
                Arc::new(StringArray::from_iter_values(&paths)),
            ],
        )
        .unwrap();
        let mut r = QueryResult::default();
        r.push("t", "{}", &ipc(&schema, std::slice::from_ref(&sent)), true)
            .unwrap();
        let kept = &r.tables[0].batches[0];
        assert_eq!(
            r.tables[0].schema, schema,
            "the table's schema stays as sent"
        );
        let types: Vec<DataType> = kept
            .schema()
            .fields()
            .iter()
            .map(|f| f.data_type().clone())
            .collect();
        assert_eq!(
            types,
            [
                DataType::Int64,
                DataType::Dictionary(Box::new(DataType::Int32), Box::new(DataType::Utf8)),
                DataType::Utf8,
            ],
            "a column of two methods is a dictionary; distinct paths are not"
        );
        let plain = arrow::compute::cast(kept.column(1), &DataType::Utf8).unwrap();
        assert_eq!(&plain, sent.column(1), "values and nulls kept");
        assert_eq!(kept.column(2), sent.column(2));
        // The ids own a buffer of their size, not a slice of the whole decoded message.
        let allocation = |b: &RecordBatch| {
            let ints = b.column(0).as_primitive::<arrow::datatypes::Int64Type>();
            ints.values().inner().capacity()
        };
        assert!(allocation(kept) <= 300 * 8 + 64, "{}", allocation(kept));
        // Without compacting, batches stay as decoded: slices of the message.
        let mut r = QueryResult::default();
        r.push_ipc("t", "{}", &ipc(&schema, std::slice::from_ref(&sent)))
            .unwrap();
        assert_eq!(r.tables[0].batches[0], sent);
        assert!(allocation(&r.tables[0].batches[0]) > 300 * 8 + 64);
    }

    #[test]
    fn garbage_ipc_names_the_table() {
        let mut r = QueryResult::default();
        let err = r.push_ipc("http_data", "", b"not arrow").unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cannot decode result table 'http_data'"),
            "{err}"
        );
    }

    #[test]
    fn mismatched_schemas_are_refused() {
        let a = batch(&[1], &["a"]);
        let other = Arc::new(Schema::new(vec![Field::new("x", DataType::Utf8, true)]));
        let mut r = QueryResult::default();
        r.push_ipc("t", "", &ipc(&a.schema(), std::slice::from_ref(&a)))
            .unwrap();
        assert!(r.push_ipc("t", "", &ipc(&other, &[])).is_err());
    }

    #[test]
    fn interceptor_sets_the_bearer_header() {
        let mut i = AuthInterceptor::new(Some("s3cret")).unwrap();
        let req = i.call(tonic::Request::new(())).unwrap();
        assert_eq!(
            req.metadata().get(pxtop_proto::AUTH_HEADER).unwrap(),
            "Bearer s3cret"
        );
        let mut none = AuthInterceptor::new(None).unwrap();
        let req = none.call(tonic::Request::new(())).unwrap();
        assert!(req.metadata().get(pxtop_proto::AUTH_HEADER).is_none());
        assert!(matches!(
            AuthInterceptor::new(Some("bad\ntoken")),
            Err(ClientError::InvalidToken)
        ));
    }

    #[test]
    fn unauthenticated_errors_hint_at_the_token() {
        let err = ClientError::Rpc {
            addr: "http://x:1".into(),
            status: Status::unauthenticated("missing bearer token"),
        };
        assert_eq!(
            err.to_string(),
            "pxtopd at http://x:1 refused the token: missing bearer token"
        );
        assert_eq!(
            err.hint(),
            Some("set PXTOP_TOKEN to the token pxtopd uses, or store it with `pxtop auth login`")
        );
        let other = ClientError::Rpc {
            addr: "http://x:1".into(),
            status: Status::invalid_argument("line 3: unknown column 'foo'"),
        };
        assert_eq!(other.to_string(), "line 3: unknown column 'foo'");
        assert_eq!(other.hint(), None);
    }

    #[tokio::test]
    async fn connection_refused_hints_at_starting_pxtopd() {
        // Bind then drop to get a port nothing listens on.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let addr = format!("http://127.0.0.1:{port}");
        let mut client = Client::new(&addr, None).unwrap();
        let err = client.list_scripts().await.unwrap_err();
        assert_eq!(
            err.to_string(),
            format!("cannot connect to pxtopd at {addr}: connection refused")
        );
        assert_eq!(
            err.hint(),
            Some("is pxtopd running? start it with `pxtopd` or use `pxtop --local`")
        );
    }

    #[test]
    fn invalid_addresses_are_named() {
        let err = Client::new("not a url", None).unwrap_err();
        assert!(
            err.to_string().starts_with("invalid address 'not a url'"),
            "{err}"
        );
    }
}
