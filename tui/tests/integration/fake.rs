//! A fake pxtopd: the real gRPC service trait over fixture tables, checking the bearer token,
//! served on 127.0.0.1:0 in the test's runtime.

use std::pin::Pin;

use arrow::array::{RecordBatch, StringArray};
use arrow::datatypes::{DataType, Field, Schema};
use arrow::ipc::writer::StreamWriter;
use futures::Stream;
use pxtop_proto::v1::execute_script_response::Result as Reply;
use pxtop_proto::v1::pxtop_server::{Pxtop, PxtopServer};
use pxtop_proto::v1::{
    ColumnInfo, ExecuteScriptRequest, ExecuteScriptResponse, ExecutionStats, HealthRequest,
    HealthResponse, ListScriptsRequest, ListScriptsResponse, ListTablesRequest, ListTablesResponse,
    TableBatch, TableInfo,
};
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tonic::{Request, Response, Status};

use super::render::{http_events, scripts};

/// The token the fake accepts.
pub const TOKEN: &str = "t0ken";

struct Fake;

fn check<T>(request: &Request<T>) -> Result<(), Status> {
    let expected = format!("Bearer {TOKEN}");
    match request.metadata().get(pxtop_proto::AUTH_HEADER) {
        Some(v) if v.to_str().ok() == Some(expected.as_str()) => Ok(()),
        _ => Err(Status::unauthenticated("missing or wrong bearer token")),
    }
}

fn ipc(batch: &RecordBatch) -> Vec<u8> {
    let mut out = Vec::new();
    let mut w = StreamWriter::try_new(&mut out, &batch.schema()).unwrap();
    w.write(batch).unwrap();
    w.finish().unwrap();
    drop(w);
    out
}

fn message(table: &str, batch: &RecordBatch) -> Result<ExecuteScriptResponse, Status> {
    Ok(ExecuteScriptResponse {
        result: Some(Reply::Batch(TableBatch {
            table_name: table.into(),
            widget_json: r#"{"widget":"table"}"#.into(),
            arrow_ipc: ipc(batch),
        })),
    })
}

type Replies = Pin<Box<dyn Stream<Item = Result<ExecuteScriptResponse, Status>> + Send>>;

#[tonic::async_trait]
impl Pxtop for Fake {
    type ExecuteScriptStream = Replies;

    async fn execute_script(
        &self,
        request: Request<ExecuteScriptRequest>,
    ) -> Result<Response<Replies>, Status> {
        check(&request)?;
        let req = request.into_inner();
        let mut replies = Vec::new();
        if req.describe_only {
            // A bundled name from the listing; a source as a script of its own.
            let info = match scripts().into_iter().find(|s| s.name == req.name) {
                Some(s) => s,
                None if !req.source.is_empty() => pxtop_proto::v1::ScriptInfo {
                    name: String::new(),
                    description: "From a file.".into(),
                    params: vec![pxtop_proto::v1::ScriptParam {
                        name: "limit".into(),
                        default_value: "10".into(),
                        help: "rows".into(),
                        r#type: "int".into(),
                    }],
                },
                None => return Err(Status::not_found("no such script")),
            };
            replies.push(Ok(ExecuteScriptResponse {
                result: Some(Reply::Info(info)),
            }));
        } else if !req.source.is_empty() {
            // Echo the source and the args so the test sees what was sent.
            let schema = Schema::new(vec![
                Field::new("source", DataType::Utf8, false),
                Field::new("args", DataType::Utf8, false),
            ]);
            let mut args: Vec<String> = req.args.iter().map(|(k, v)| format!("{k}={v}")).collect();
            args.sort();
            let batch = RecordBatch::try_new(
                schema.into(),
                vec![
                    std::sync::Arc::new(StringArray::from(vec![req.source.trim()])),
                    std::sync::Arc::new(StringArray::from(vec![args.join(",")])),
                ],
            )
            .unwrap();
            replies.push(message("echo", &batch));
        } else if req.name == "px/http_data" {
            let batch = http_events();
            // Two parts of one table, as the server splits large results.
            replies.push(message("http_data", &batch.slice(0, 2)));
            replies.push(message("http_data", &batch.slice(2, 3)));
            replies.push(Ok(ExecuteScriptResponse {
                result: Some(Reply::Stats(ExecutionStats {
                    rows: 5,
                    truncated: true,
                    ..ExecutionStats::default()
                })),
            }));
        } else {
            return Err(Status::not_found(format!(
                "no script named '{}' (see `pxtop scripts`)",
                req.name
            )));
        }
        Ok(Response::new(Box::pin(tokio_stream::iter(replies))))
    }

    async fn list_scripts(
        &self,
        request: Request<ListScriptsRequest>,
    ) -> Result<Response<ListScriptsResponse>, Status> {
        check(&request)?;
        Ok(Response::new(ListScriptsResponse { scripts: scripts() }))
    }

    async fn list_tables(
        &self,
        request: Request<ListTablesRequest>,
    ) -> Result<Response<ListTablesResponse>, Status> {
        check(&request)?;
        Ok(Response::new(ListTablesResponse {
            tables: vec![TableInfo {
                name: "http_events".into(),
                columns: vec![ColumnInfo {
                    name: "time_".into(),
                    data_type: "Timestamp(ns)".into(),
                }],
                rows: 5,
                bytes: 2048,
                budget_bytes: 1 << 20,
                dropped_rows: 0,
            }],
        }))
    }

    async fn health(
        &self,
        request: Request<HealthRequest>,
    ) -> Result<Response<HealthResponse>, Status> {
        check(&request)?;
        Ok(Response::new(HealthResponse::default()))
    }

    async fn doctor(
        &self,
        request: Request<pxtop_proto::v1::DoctorRequest>,
    ) -> Result<Response<pxtop_proto::v1::DoctorResponse>, Status> {
        check(&request)?;
        Err(Status::unimplemented("the fake runs no node checks"))
    }
}

/// Serves the fake on a free loopback port for the rest of the test; returns its URL.
pub async fn spawn() -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(
        tonic::transport::Server::builder()
            .add_service(PxtopServer::new(Fake))
            .serve_with_incoming(TcpListenerStream::new(listener)),
    );
    format!("http://{addr}")
}
