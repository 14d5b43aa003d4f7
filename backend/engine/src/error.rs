//! Engine errors: what went wrong, where in the script, and which gRPC code it maps to.

use std::time::Duration;

use rhai::{Dynamic, EvalAltResult, ParseError, Position};

/// The class of an error, so the service can pick a status code without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The script or its arguments are wrong; the caller can fix it.
    InvalidArgument,
    /// A named thing (script, table) does not exist.
    NotFound,
    /// The engine or the query failed for a reason the caller cannot fix by editing the script.
    Internal,
    /// The nodes holding the data did not answer; retrying later may work.
    Unavailable,
}

/// Everything the engine can fail with. Each message quotes the offending value and names the
/// fix; script errors start with `line L, column C: `.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EngineError {
    /// A script failed to parse or to run at a known place (1-based line and column).
    #[error("line {line}, column {column}: {message}")]
    Script {
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What went wrong and how to fix it.
        message: String,
        /// Its class.
        kind: ErrorKind,
    },
    /// A script error rhai could not place.
    #[error("{message}")]
    Unplaced {
        /// What went wrong and how to fix it.
        message: String,
        /// Its class.
        kind: ErrorKind,
    },
    /// No bundled script by that name.
    #[error("unknown script {name:?}; scripts are: {}", known.join(", "))]
    UnknownScript {
        /// What was asked for.
        name: String,
        /// The bundled scripts.
        known: Vec<String>,
    },
    /// Arguments the script does not declare.
    #[error(
        "unknown argument{} {}; this script takes: {}",
        if names.len() == 1 { "" } else { "s" },
        names.iter().map(|n| format!("{n:?}")).collect::<Vec<_>>().join(", "),
        if params.is_empty() { "no arguments".to_string() } else { params.join(", ") }
    )]
    UnknownArgs {
        /// The unknown names.
        names: Vec<String>,
        /// The parameters the script declares.
        params: Vec<String>,
    },
    /// The script ran but showed nothing.
    #[error("the script displays nothing; call px::display(df, \"name\") at least once")]
    NoOutput,
    /// The query ran out of time.
    #[error(
        "the query did not finish within {0:?}; narrow start_time or filter earlier in the script \
         (pxtopd --script-timeout raises the limit)"
    )]
    Timeout(Duration),
    /// No PEM answered a split query.
    #[error("no PEM answered the query: {}", warnings.join("; "))]
    NoPem {
        /// Why each PEM did not answer.
        warnings: Vec<String>,
    },
    /// DataFusion failed while running a compiled plan.
    #[error("query failed while computing output {output:?}: {message}")]
    Execution {
        /// The output table being computed.
        output: String,
        /// DataFusion's message.
        message: String,
    },
}

impl EngineError {
    /// The error's class, for mapping to a status code.
    pub fn kind(&self) -> ErrorKind {
        match self {
            EngineError::Script { kind, .. } | EngineError::Unplaced { kind, .. } => *kind,
            EngineError::UnknownScript { .. } => ErrorKind::NotFound,
            EngineError::UnknownArgs { .. } | EngineError::NoOutput => ErrorKind::InvalidArgument,
            EngineError::Timeout(_) | EngineError::Execution { .. } => ErrorKind::Internal,
            EngineError::NoPem { .. } => ErrorKind::Unavailable,
        }
    }

    /// The 1-based (line, column) a script error points at, if any.
    pub fn position(&self) -> Option<(usize, usize)> {
        match self {
            EngineError::Script { line, column, .. } => Some((*line, *column)),
            _ => None,
        }
    }

    fn at(pos: Position, message: String, kind: ErrorKind) -> Self {
        match (pos.line(), pos.position()) {
            (Some(line), column) => EngineError::Script {
                line,
                column: column.unwrap_or(1),
                message,
                kind,
            },
            (None, _) => EngineError::Unplaced { message, kind },
        }
    }

    pub(crate) fn from_parse(err: ParseError) -> Self {
        let ParseError(ty, pos) = err;
        EngineError::at(
            pos,
            format!("syntax error: {ty}"),
            ErrorKind::InvalidArgument,
        )
    }

    pub(crate) fn from_rhai(mut err: EvalAltResult, limits: &crate::EngineConfig) -> Self {
        let timeout = limits.script_timeout;
        // Point at the innermost failure: inside a script-defined function, that is the line in
        // its body, which is where the fix goes.
        let mut outer = Position::NONE;
        while let EvalAltResult::ErrorInFunctionCall(_, _, inner, pos) = err {
            if outer.is_none() {
                outer = pos;
            }
            err = *inner;
        }
        let mut pos = err.position();
        if pos.is_none() {
            pos = outer;
        }
        let (message, kind) = match err {
            EvalAltResult::ErrorRuntime(d, _) if d.is::<Fault>() => {
                let f = d.cast::<Fault>();
                (f.message, f.kind)
            }
            EvalAltResult::ErrorRuntime(d, _) => (format!("{d}"), ErrorKind::InvalidArgument),
            EvalAltResult::ErrorTerminated(..) => (
                format!(
                    "the script did not finish within {timeout:?} (the limit; pxtopd \
                     --script-timeout raises it); it should only build queries, not loop over data"
                ),
                ErrorKind::InvalidArgument,
            ),
            EvalAltResult::ErrorTooManyOperations(..) => (
                format!(
                    "the script ran more than {} operations (the limit; pxtopd \
                     --script-max-operations raises it); it should only build queries, not loop \
                     over data",
                    limits.max_operations
                ),
                ErrorKind::InvalidArgument,
            ),
            EvalAltResult::ErrorStackOverflow(..) => (
                format!(
                    "function calls nest deeper than {} (the limit; pxtopd \
                     --script-max-call-depth raises it); is a function calling itself without end?",
                    limits.max_call_depth
                ),
                ErrorKind::InvalidArgument,
            ),
            EvalAltResult::ErrorMismatchDataType(expected, actual, _)
                if expected == "bool" && (actual == "Expr" || actual.ends_with("ColExpr")) =>
            {
                (
                    "a column condition is not a bool: combine conditions with & and | \
                     (not && and ||), and filter with df.filter(cond)"
                        .to_string(),
                    ErrorKind::InvalidArgument,
                )
            }
            mut plain => {
                let _ = plain.take_position();
                (plain.to_string(), ErrorKind::InvalidArgument)
            }
        };
        EngineError::at(pos, message, kind)
    }
}

/// A failure raised by the engine's own script functions, carried through rhai so its class
/// survives; rhai adds the position of the call.
#[derive(Debug, Clone)]
pub(crate) struct Fault {
    pub(crate) kind: ErrorKind,
    pub(crate) message: String,
}

/// The error type rhai functions return.
pub(crate) type RhaiResult<T> = Result<T, Box<EvalAltResult>>;

/// A [`Fault`] as a rhai error (its position is filled in by rhai at the call).
pub(crate) fn fault(kind: ErrorKind, message: impl Into<String>) -> Box<EvalAltResult> {
    Box::new(EvalAltResult::ErrorRuntime(
        Dynamic::from(Fault {
            kind,
            message: message.into(),
        }),
        Position::NONE,
    ))
}

/// An invalid-argument [`Fault`].
pub(crate) fn invalid(message: impl Into<String>) -> Box<EvalAltResult> {
    fault(ErrorKind::InvalidArgument, message)
}
