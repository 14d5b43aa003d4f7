//! A gRPC server and client in Python (Debian's `python3-grpcio`) on a loopback port, with
//! generic handlers on raw bytes, so no `.proto` and no protoc are needed.
//!
//! Service `pxtop.Echo`: `Say` (unary, answers `echo:` + the request), `Fail` (unary, aborts
//! with NOT_FOUND "no such thing") and `Stream` (server streaming: `part-K:` + the request for K
//! in 0..3).

use std::{
    io::{BufRead, BufReader},
    path::{Path, PathBuf},
    process::{Child, ChildStdout, Command, Stdio},
};

use anyhow::{Context, bail};

/// The Python interpreter that has Debian's grpcio (a `python3` earlier in `PATH`, e.g. from
/// pyenv, may not).
pub const PYTHON: &str = "/usr/bin/python3";

const SERVER: &str = r#"
import sys
from concurrent import futures
import grpc

def say(request, context):
    return b"echo:" + request

def fail(request, context):
    context.abort(grpc.StatusCode.NOT_FOUND, "no such thing")

def stream(request, context):
    for k in range(3):
        yield b"part-%d:" % k + request

handlers = {
    "Say": grpc.unary_unary_rpc_method_handler(say),
    "Fail": grpc.unary_unary_rpc_method_handler(fail),
    "Stream": grpc.unary_stream_rpc_method_handler(stream),
}
server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
server.add_generic_rpc_handlers((grpc.method_handlers_generic_handler("pxtop.Echo", handlers),))
port = server.add_insecure_port("127.0.0.1:%s" % sys.argv[1])
server.start()
print("listening %d" % port, flush=True)
server.wait_for_termination()
"#;

/// The client: one channel; `n` unary `Say` calls with payload `call-I`, `errors` `Fail` calls
/// with `fail-I`, `streams` `Stream` calls with `stream-I`; prints one line per call:
/// `method payload status reply[,reply..]`.
const CLIENT: &str = r#"
import sys
import grpc

port, n, errors, streams = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4])
out = []
with grpc.insecure_channel("127.0.0.1:%s" % port) as ch:
    say = ch.unary_unary("/pxtop.Echo/Say")
    fail = ch.unary_unary("/pxtop.Echo/Fail")
    stream = ch.unary_stream("/pxtop.Echo/Stream")
    for i in range(n):
        p = b"call-%d" % i
        out.append("Say %s 0 %s" % (p.decode(), say(p, timeout=10).decode()))
        if errors and i % (n // errors) == 0 and i // (n // errors) < errors:
            q = b"fail-%d" % (i // (n // errors))
            try:
                fail(q, timeout=10)
                out.append("Fail %s 0 -" % q.decode())
            except grpc.RpcError as e:
                out.append("Fail %s %d %s" % (q.decode(), e.code().value[0], e.details()))
        if streams and i % (n // streams) == 1 and i // (n // streams) < streams:
            q = b"stream-%d" % (i // (n // streams))
            parts = [m.decode() for m in stream(q, timeout=10)]
            out.append("Stream %s 0 %s" % (q.decode(), ",".join(parts)))
print("\n".join(out), flush=True)
"#;

/// A running Python gRPC server; stopped on drop.
pub struct GrpcServer {
    /// The port it listens on (127.0.0.1), HTTP/2 in clear text.
    pub port: u16,
    dir: PathBuf,
    child: Child,
    _stdout: BufReader<ChildStdout>,
}

impl GrpcServer {
    /// Writes the server script into a fresh directory, starts it and waits until it says it
    /// listens (no probe connection, so the capture sees only the client's calls).
    pub fn start() -> anyhow::Result<Self> {
        if !Path::new(PYTHON).exists() {
            bail!("{PYTHON} is not installed: run tools/setup-debian.sh");
        }
        let dir = std::env::temp_dir().join(format!("pxtop-grpc-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)?;
        std::fs::write(dir.join("server.py"), SERVER)?;
        std::fs::write(dir.join("client.py"), CLIENT)?;
        let port = crate::nginx::free_port()?;
        let mut child = Command::new(PYTHON)
            .arg(dir.join("server.py"))
            .arg(port.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .context("starting the Python gRPC server")?;
        let mut stdout = BufReader::new(child.stdout.take().context("stdout")?);
        let mut line = String::new();
        // NB: a server that dies at start closes stdout, so this never blocks forever.
        stdout.read_line(&mut line)?;
        if line.trim() != format!("listening {port}") {
            let _ = child.kill();
            let status = child.wait()?;
            bail!(
                "the gRPC server did not start ({status}): {line:?} (is python3-grpcio installed?)"
            );
        }
        Ok(Self {
            port,
            dir,
            child,
            _stdout: stdout,
        })
    }

    /// Runs the client (see `CLIENT`) and returns its lines: `method payload status reply`.
    pub fn client(&self, n: usize, errors: usize, streams: usize) -> anyhow::Result<Vec<String>> {
        let out = Command::new(PYTHON)
            .arg(self.dir.join("client.py"))
            .args([
                self.port.to_string(),
                n.to_string(),
                errors.to_string(),
                streams.to_string(),
            ])
            .stdin(Stdio::null())
            .output()
            .context("running the Python gRPC client")?;
        if !out.status.success() {
            bail!(
                "the gRPC client failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
        }
        Ok(String::from_utf8(out.stdout)?
            .lines()
            .map(str::to_string)
            .collect())
    }
}

impl Drop for GrpcServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
