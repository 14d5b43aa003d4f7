//! Bearer-token check on every call, in constant time so the token cannot be guessed byte by
//! byte from response timing.

use pxtop_proto::AUTH_HEADER;
use tonic::{Request, Status, service::Interceptor};

/// Refuses calls without `authorization: Bearer <token>`.
#[derive(Clone)]
pub struct TokenCheck {
    expected: std::sync::Arc<[u8]>,
}

impl std::fmt::Debug for TokenCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenCheck(..)")
    }
}

impl TokenCheck {
    /// Accepts exactly `token`.
    pub fn new(token: &str) -> Self {
        Self {
            expected: token.as_bytes().into(),
        }
    }

    /// Whether `header` (the full `authorization` value) carries the token.
    pub fn accepts(&self, header: &[u8]) -> bool {
        let Some(given) = header.strip_prefix(b"Bearer ") else {
            return false;
        };
        constant_time_eq(given, &self.expected)
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Interceptor for TokenCheck {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        match request.metadata().get(AUTH_HEADER) {
            Some(v) if self.accepts(v.as_bytes()) => Ok(request),
            Some(_) => Err(Status::unauthenticated("wrong bearer token")),
            None => Err(Status::unauthenticated("missing bearer token")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_exact_bearer_token_passes() {
        let c = TokenCheck::new("s3cret");
        assert!(c.accepts(b"Bearer s3cret"));
        assert!(!c.accepts(b"Bearer s3cre"));
        assert!(!c.accepts(b"Bearer s3cret "));
        assert!(!c.accepts(b"bearer s3cret"));
        assert!(!c.accepts(b"s3cret"));
        assert!(!c.accepts(b""));
    }
}
