//! SQL normalization: a statement with its literals replaced by `?`, so executions of one
//! statement with different values group together (`px/pgsql_stats`, `px/mysql_stats`), and the
//! `normalize_pgsql` / `normalize_mysql` scalar functions scripts call on a text column.
//!
//! The rules, applied to the tokens of `sqlparser`'s tokenizer in the source's dialect
//! (PostgreSQL: `"quoted"` identifiers, `$$dollar$$` strings, `E'..'`, `B'..'`; MySQL: backtick
//! identifiers, `"double-quoted"` strings, `#` comments, backslash escapes, `0x..`):
//! - every literal (numbers, strings of any quoting, hex and bit strings) becomes `?`, as does
//!   every bound-parameter placeholder (`$1`, `?`), so a statement sent as text and the same
//!   statement prepared group together; a unary minus before a number goes with it (`= -1`
//!   is `= ?`); MySQL charset introducers (`_utf8mb4'x'`) go with their string. Keywords stay,
//!   `TRUE`, `FALSE` and `NULL` included;
//! - a list of only literals collapses to one: `IN (?, ?, ?)` is `IN (?)`, `ARRAY[?, ?]` is
//!   `ARRAY[?]`, and `VALUES (?, ?), (?, ?)` (identical rows) is `VALUES (?, ?)`, so batches
//!   of any size group together;
//! - comments are dropped and each run of whitespace becomes one space (none where the text
//!   had none: `id=1` is `id=?`); identifiers and keywords keep their case and quoting;
//! - an extended-protocol execution as the capture renders it, `query=[...] params=[...]`,
//!   normalizes its query part (the parameters are bound values: they are dropped).
//!
//! Text the tokenizer rejects is in practice a statement cut short inside a quoted literal (the
//! capture keeps the first few KiB): the part before the point of failure is normalized and the
//! rest becomes one `?`. If even that part does not tokenize, a plain scan is used: quoted runs
//! (to their closing quote or the end; `$$` too) and numbers become `?`, comments go,
//! whitespace collapses. Nothing here fails.
//!
//! Pixie's `px.normalize_pgsql(req, req_cmd)` / `px.normalize_mysql(req_body, req_cmd)` return
//! JSON `{query, params}` with the literals pulled out; these return the normalized query text
//! alone, the grouping key the stats scripts need.

use std::{collections::HashMap, fmt::Write as _, hash::Hash, sync::Arc};

use arrow::{
    array::{Array, ArrayRef, StringArray, StringBuilder},
    datatypes::DataType,
};
use datafusion::{
    common::{Result, ScalarValue, exec_err},
    logical_expr::{
        ColumnarValue, ScalarFunctionArgs, ScalarUDF, ScalarUDFImpl, Signature, Volatility,
    },
};
use sqlparser::{
    dialect::{Dialect, MySqlDialect, PostgreSqlDialect},
    keywords::Keyword,
    tokenizer::{Location, Token, TokenWithSpan, Tokenizer},
};

/// Which server's SQL a text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SqlDialect {
    /// PostgreSQL.
    Postgres,
    /// MySQL (and MariaDB).
    MySql,
}

impl SqlDialect {
    fn dialect(self) -> &'static dyn Dialect {
        match self {
            Self::Postgres => &PostgreSqlDialect {},
            Self::MySql => &MySqlDialect {},
        }
    }

    /// The scalar function's name.
    fn udf_name(self) -> &'static str {
        match self {
            Self::Postgres => "normalize_pgsql",
            Self::MySql => "normalize_mysql",
        }
    }
}

/// `text` with its literals replaced by `?` (see the module docs for the rules).
pub fn normalize_sql(text: &str, dialect: SqlDialect) -> String {
    let mut n = Normalizer::new(dialect);
    let mut out = String::with_capacity(text.len());
    n.normalize_into(text, &mut out);
    out
}

/// The query part of a `query=[...] params=[...]` request, else the whole text.
fn query_part(text: &str) -> &str {
    text.strip_prefix("query=[")
        .and_then(|rest| {
            // NB: the last separator: the query may itself contain `] params=[`, the bound
            // values are rendered by the capture and cannot end the text early.
            rest.rfind("] params=[").map(|end| &rest[..end])
        })
        .unwrap_or(text)
}

/// What a rendered token is, for the list rules.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A literal or placeholder, rendered `?`.
    Param,
    /// `(` or `[`.
    Open(char),
    /// `)` or `]`.
    Close(char),
    Comma,
    /// An operator after which a `-` is a sign.
    Op,
    Minus,
    Word(Keyword),
    Other,
}

/// One token as it will be written: its text is `scratch[start..end]`.
#[derive(Debug, Clone, Copy)]
struct Piece {
    kind: Kind,
    start: usize,
    end: usize,
    space_before: bool,
}

/// Reusable buffers, so a column is normalized without allocating per row beyond the
/// tokenizer's own tokens.
struct Normalizer {
    dialect: SqlDialect,
    tokens: Vec<TokenWithSpan>,
    pieces: Vec<Piece>,
    scratch: String,
}

impl Normalizer {
    fn new(dialect: SqlDialect) -> Self {
        Self {
            dialect,
            tokens: Vec::new(),
            pieces: Vec::new(),
            scratch: String::new(),
        }
    }

    /// Appends the normalized `text` to `out`.
    fn normalize_into(&mut self, text: &str, out: &mut String) {
        let text = query_part(text);
        match self.tokenize(text) {
            Ok(()) => self.render(out),
            Err(at) => {
                let cut = byte_offset(text, at);
                let head = &text[..cut];
                if cut > 0 && cut < text.len() && self.tokenize(head).is_ok() {
                    let base = out.len();
                    self.render(out);
                    if out.len() > base && head.ends_with(char::is_whitespace) {
                        out.push(' ');
                    }
                    out.push('?');
                } else {
                    plain(text, out);
                }
            }
        }
    }

    fn tokenize(&mut self, text: &str) -> Result<(), Location> {
        self.tokens.clear();
        Tokenizer::new(self.dialect.dialect(), text)
            .with_unescape(false)
            .tokenize_with_location_into_buf(&mut self.tokens)
            .map_err(|e| e.location)
    }

    /// Turns `self.tokens` into pieces, then writes them with the list rules.
    fn render(&mut self, out: &mut String) {
        self.pieces.clear();
        self.scratch.clear();
        let mut space = false;
        // NB: taken out (and put back) so pieces can be pushed while reading the tokens.
        let tokens = std::mem::take(&mut self.tokens);
        for t in &tokens {
            let kind = match &t.token {
                Token::EOF => continue,
                Token::Whitespace(_) => {
                    space = true;
                    continue;
                }
                Token::Number(..)
                | Token::SingleQuotedString(_)
                | Token::DoubleQuotedString(_)
                | Token::TripleSingleQuotedString(_)
                | Token::TripleDoubleQuotedString(_)
                | Token::DollarQuotedString(_)
                | Token::SingleQuotedByteStringLiteral(_)
                | Token::DoubleQuotedByteStringLiteral(_)
                | Token::TripleSingleQuotedByteStringLiteral(_)
                | Token::TripleDoubleQuotedByteStringLiteral(_)
                | Token::SingleQuotedRawStringLiteral(_)
                | Token::DoubleQuotedRawStringLiteral(_)
                | Token::TripleSingleQuotedRawStringLiteral(_)
                | Token::TripleDoubleQuotedRawStringLiteral(_)
                | Token::NationalStringLiteral(_)
                | Token::QuoteDelimitedStringLiteral(_)
                | Token::NationalQuoteDelimitedStringLiteral(_)
                | Token::EscapedStringLiteral(_)
                | Token::UnicodeStringLiteral(_)
                | Token::HexStringLiteral(_) => Kind::Param,
                Token::Placeholder(p) if is_bind_param(p) => Kind::Param,
                Token::LParen => Kind::Open('('),
                Token::LBracket => Kind::Open('['),
                Token::RParen => Kind::Close(')'),
                Token::RBracket => Kind::Close(']'),
                Token::Comma => Kind::Comma,
                Token::Minus => Kind::Minus,
                Token::Eq
                | Token::DoubleEq
                | Token::Neq
                | Token::Lt
                | Token::Gt
                | Token::LtEq
                | Token::GtEq
                | Token::Spaceship
                | Token::Plus
                | Token::Mul
                | Token::Div
                | Token::Mod
                | Token::StringConcat => Kind::Op,
                Token::Word(w) if w.quote_style.is_none() => Kind::Word(w.keyword),
                _ => Kind::Other,
            };
            let mut space_before = std::mem::take(&mut space);
            if kind == Kind::Param {
                space_before = self.absorb_prefix(space_before);
                let start = self.scratch.len();
                self.scratch.push('?');
                self.pieces.push(Piece {
                    kind,
                    start,
                    end: start + 1,
                    space_before,
                });
                continue;
            }
            let start = self.scratch.len();
            // Writing to a String cannot fail.
            let _ = write!(self.scratch, "{}", t.token);
            self.pieces.push(Piece {
                kind,
                start,
                end: self.scratch.len(),
                space_before,
            });
        }
        self.tokens = tokens;
        self.emit(out);
    }

    /// Drops what belongs to the literal about to be pushed: a sign (`= -1`) or a MySQL
    /// charset introducer (`_utf8mb4'x'`). Returns the literal's `space_before`.
    fn absorb_prefix(&mut self, space_before: bool) -> bool {
        let Some(last) = self.pieces.last().copied() else {
            return space_before;
        };
        let sign_context = |p: Option<&Piece>| match p {
            None => true,
            Some(p) => match p.kind {
                Kind::Open(_) | Kind::Comma | Kind::Op | Kind::Minus => true,
                Kind::Word(k) => SIGN_AFTER.contains(&k),
                Kind::Param | Kind::Close(_) | Kind::Other => false,
            },
        };
        let n = self.pieces.len();
        let absorb = match last.kind {
            Kind::Minus => !space_before && sign_context(n.checked_sub(2).map(|i| &self.pieces[i])),
            Kind::Word(Keyword::NoKeyword) => {
                self.dialect == SqlDialect::MySql
                    && !space_before
                    && self.scratch[last.start..last.end].starts_with('_')
            }
            _ => false,
        };
        if absorb {
            self.pieces.pop();
            self.scratch.truncate(last.start);
            last.space_before
        } else {
            space_before
        }
    }

    fn text(&self, p: &Piece) -> &str {
        &self.scratch[p.start..p.end]
    }

    /// Writes the pieces, collapsing literal lists and repeated `VALUES` rows.
    fn emit(&self, out: &mut String) {
        let ps = &self.pieces;
        let base = out.len();
        let mut i = 0;
        let mut skip: Option<(usize, usize)> = None;
        while i < ps.len() {
            if let Some((from, to)) = skip
                && i == from
            {
                i = to;
                skip = None;
                continue;
            }
            let p = &ps[i];
            if p.space_before && out.len() > base {
                out.push(' ');
            }
            out.push_str(self.text(p));
            match p.kind {
                Kind::Open(open) => {
                    let before = i.checked_sub(1).map(|j| ps[j].kind);
                    let list_context = match open {
                        '(' => matches!(before, Some(Kind::Word(Keyword::IN))),
                        _ => true,
                    };
                    if list_context && let Some(close) = self.literal_list(i) {
                        out.push('?');
                        out.push_str(self.text(&ps[close]));
                        i = close + 1;
                        continue;
                    }
                }
                Kind::Word(Keyword::VALUES | Keyword::VALUE) => {
                    if let Some(range) = self.repeated_rows(i + 1) {
                        skip = Some(range);
                    }
                }
                _ => {}
            }
            i += 1;
        }
    }

    /// If `ps[open]` opens `? (, ?)+` and its close, the index of the close.
    fn literal_list(&self, open: usize) -> Option<usize> {
        let ps = &self.pieces;
        let Kind::Open(o) = ps[open].kind else {
            return None;
        };
        let close = if o == '(' { ')' } else { ']' };
        let mut i = open + 1;
        let mut params = 0;
        loop {
            if ps.get(i)?.kind != Kind::Param {
                return None;
            }
            params += 1;
            match ps.get(i + 1)?.kind {
                Kind::Comma => i += 2,
                Kind::Close(c) if c == close && params >= 2 => return Some(i + 1),
                _ => return None,
            }
        }
    }

    /// `VALUES (row), (row), ...` from `first`: the range of pieces after the first row that
    /// repeat it exactly (`, (row)` each), if any.
    fn repeated_rows(&self, first: usize) -> Option<(usize, usize)> {
        let ps = &self.pieces;
        let end = self.matching_close(first)?;
        let row = &ps[first..=end];
        let mut at = end + 1;
        while ps.get(at).is_some_and(|p| p.kind == Kind::Comma)
            && let Some(next) = ps.get(at + 1..at + 1 + row.len())
            && next
                .iter()
                .zip(row)
                .all(|(a, b)| a.kind == b.kind && self.text(a) == self.text(b))
        {
            at += 1 + row.len();
        }
        (at > end + 1).then_some((end + 1, at))
    }

    /// The index of the piece closing the `(` at `open`.
    fn matching_close(&self, open: usize) -> Option<usize> {
        let ps = &self.pieces;
        if ps.get(open)?.kind != Kind::Open('(') {
            return None;
        }
        let mut depth = 0usize;
        for (i, p) in ps.iter().enumerate().skip(open) {
            match p.kind {
                Kind::Open(_) => depth += 1,
                Kind::Close(_) => {
                    depth -= 1;
                    if depth == 0 {
                        return Some(i);
                    }
                }
                _ => {}
            }
        }
        None
    }
}

/// Keywords after which `-` is a sign, not a subtraction.
const SIGN_AFTER: &[Keyword] = &[
    Keyword::SELECT,
    Keyword::WHERE,
    Keyword::AND,
    Keyword::OR,
    Keyword::NOT,
    Keyword::WHEN,
    Keyword::THEN,
    Keyword::ELSE,
    Keyword::BETWEEN,
    Keyword::LIMIT,
    Keyword::OFFSET,
    Keyword::RETURN,
    Keyword::LIKE,
    Keyword::DEFAULT,
];

/// `?` (MySQL, JDBC) and `$1` (PostgreSQL); other placeholder-like tokens (`:name`, `$$`) are
/// kept as written.
fn is_bind_param(p: &str) -> bool {
    p == "?"
        || p.strip_prefix('$')
            .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
}

/// The byte offset of a tokenizer location (1-based line, 1-based column in characters), or
/// the text's length if past it.
fn byte_offset(text: &str, at: Location) -> usize {
    let mut line = 1;
    let mut col = 1;
    for (i, c) in text.char_indices() {
        if line == at.line && col == at.column {
            return i;
        }
        if c == '\n' {
            line += 1;
            col = 1;
        } else {
            col += 1;
        }
    }
    text.len()
}

/// The last resort for text that does not tokenize: quoted runs (to the closing quote or the
/// end; `$$` too) and numbers become `?`, comments go, whitespace runs become one space.
fn plain(text: &str, out: &mut String) {
    let base = out.len();
    let mut chars = text.chars().peekable();
    let mut space = false;
    let mut prev_word = false;
    while let Some(c) = chars.next() {
        if c.is_whitespace() {
            space = true;
            prev_word = false;
            continue;
        }
        if c == '-' && chars.next_if_eq(&'-').is_some() {
            while chars.next_if(|c| *c != '\n').is_some() {}
            space = true;
            continue;
        }
        if c == '/' && chars.next_if_eq(&'*').is_some() {
            let mut star = false;
            for c in chars.by_ref() {
                if star && c == '/' {
                    break;
                }
                star = c == '*';
            }
            space = true;
            continue;
        }
        if std::mem::take(&mut space) && out.len() > base {
            out.push(' ');
        }
        if c == '$' && chars.next_if_eq(&'$').is_some() {
            let mut dollar = false;
            for c in chars.by_ref() {
                if dollar && c == '$' {
                    break;
                }
                dollar = c == '$';
            }
            out.push('?');
            prev_word = false;
        } else if c == '\'' || c == '"' {
            for q in chars.by_ref() {
                if q == c {
                    break;
                }
            }
            out.push('?');
            prev_word = false;
        } else if c.is_ascii_digit() && !prev_word {
            while chars
                .next_if(|d| d.is_ascii_alphanumeric() || *d == '.')
                .is_some()
            {}
            out.push('?');
        } else {
            prev_word = c.is_alphanumeric() || c == '_';
            out.push(c);
        }
    }
}

/// `normalize_pgsql(text)` / `normalize_mysql(text) -> Utf8`: [`normalize_sql`] over a string
/// column; null stays null.
#[derive(Debug, PartialEq, Eq, Hash)]
pub(crate) struct NormalizeUdf {
    dialect: SqlDialect,
    signature: Signature,
}

impl NormalizeUdf {
    pub(crate) fn udf(dialect: SqlDialect) -> ScalarUDF {
        ScalarUDF::new_from_impl(Self {
            dialect,
            // NB: `string`, not `exact(Utf8)`: exact lets DataFusion cast a number column to
            // text, so `df.latency.normalize_pgsql()` would quietly give `?` for every row
            // instead of an error at the script's line.
            signature: Signature::string(1, Volatility::Immutable),
        })
    }
}

impl ScalarUDFImpl for NormalizeUdf {
    fn name(&self) -> &str {
        self.dialect.udf_name()
    }

    fn signature(&self) -> &Signature {
        &self.signature
    }

    fn return_type(&self, _arg_types: &[DataType]) -> Result<DataType> {
        Ok(DataType::Utf8)
    }

    fn invoke_with_args(&self, args: ScalarFunctionArgs) -> Result<ColumnarValue> {
        let [arg] = args.args.as_slice() else {
            return exec_err!("{} takes one argument (a text column)", self.name());
        };
        match arg {
            ColumnarValue::Scalar(ScalarValue::Utf8(v)) => Ok(ColumnarValue::Scalar(
                ScalarValue::Utf8(v.as_deref().map(|s| normalize_sql(s, self.dialect))),
            )),
            ColumnarValue::Scalar(ScalarValue::LargeUtf8(v) | ScalarValue::Utf8View(v)) => {
                Ok(ColumnarValue::Scalar(ScalarValue::Utf8(
                    v.as_deref().map(|s| normalize_sql(s, self.dialect)),
                )))
            }
            ColumnarValue::Scalar(other) => {
                exec_err!("{} expects a string, got {other:?}", self.name())
            }
            ColumnarValue::Array(a) => {
                // The store's columns are Utf8; other string types (results of string
                // functions) are cast once.
                let cast;
                let a = if a.data_type() == &DataType::Utf8 {
                    a
                } else {
                    cast = arrow::compute::cast(a, &DataType::Utf8)?;
                    &cast
                };
                let Some(texts) = a.as_any().downcast_ref::<StringArray>() else {
                    return exec_err!(
                        "{} expects a text column, got {}",
                        self.name(),
                        a.data_type()
                    );
                };
                Ok(ColumnarValue::Array(
                    Arc::new(self.normalize_array(texts)) as ArrayRef
                ))
            }
        }
    }
}

impl NormalizeUdf {
    fn normalize_array(&self, texts: &StringArray) -> StringArray {
        let mut n = Normalizer::new(self.dialect);
        // NB: one batch's statements repeat (the same few statements with other values; for
        // executions, the same query part): remember each distinct query part's result for
        // this batch only, so memory is bounded by the batch.
        let mut seen: HashMap<&str, (usize, usize)> = HashMap::new();
        let mut done = String::new();
        let mut out = StringBuilder::with_capacity(texts.len(), texts.values().len());
        for t in texts.iter() {
            let Some(t) = t else {
                out.append_null();
                continue;
            };
            let (s, e) = *seen.entry(query_part(t)).or_insert_with(|| {
                let start = done.len();
                n.normalize_into(t, &mut done);
                (start, done.len())
            });
            out.append_value(&done[s..e]);
        }
        out.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::{SqlDialect, normalize_sql as normalize, query_part};

    fn pg(s: &str) -> String {
        normalize(s, SqlDialect::Postgres)
    }

    fn my(s: &str) -> String {
        normalize(s, SqlDialect::MySql)
    }

    #[test]
    fn postgres_statements() {
        for (input, want) in [
            ("SELECT 1", "SELECT ?"),
            (
                "SELECT * FROM users WHERE id = 42",
                "SELECT * FROM users WHERE id = ?",
            ),
            (
                "select name from users where email='ada@example.com' and age>=18",
                "select name from users where email=? and age>=?",
            ),
            (
                "UPDATE accounts SET balance = balance - 100.50 WHERE id = 7",
                "UPDATE accounts SET balance = balance - ? WHERE id = ?",
            ),
            (
                "SELECT * FROM t WHERE x = -1 AND y < -2.5e3",
                "SELECT * FROM t WHERE x = ? AND y < ?",
            ),
            ("SELECT a-1, a - 1 FROM t", "SELECT a-?, a - ? FROM t"),
            (
                "INSERT INTO t (a, b) VALUES ($1, $2)",
                "INSERT INTO t (a, b) VALUES (?, ?)",
            ),
            ("SELECT $1::int + $2", "SELECT ?::int + ?"),
            (
                "SELECT * FROM \"Users\" WHERE \"Name\" = 'x'",
                "SELECT * FROM \"Users\" WHERE \"Name\" = ?",
            ),
            (
                "SELECT * FROM t WHERE id IN (1, 2, 3)",
                "SELECT * FROM t WHERE id IN (?)",
            ),
            (
                "SELECT * FROM t WHERE id NOT IN ($1,$2,$3,$4)",
                "SELECT * FROM t WHERE id NOT IN (?)",
            ),
            (
                "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE k = 1)",
                "SELECT * FROM t WHERE id IN (SELECT id FROM u WHERE k = ?)",
            ),
            (
                "SELECT * FROM t WHERE id = ANY(ARRAY[1,2,3])",
                "SELECT * FROM t WHERE id = ANY(ARRAY[?])",
            ),
            (
                "SELECT * FROM t WHERE tags && '{a,b}'::text[]",
                "SELECT * FROM t WHERE tags && ?::text[]",
            ),
            (
                "INSERT INTO t VALUES (1, 'a'), (2, 'b'), (3, 'c') RETURNING id",
                "INSERT INTO t VALUES (?, ?) RETURNING id",
            ),
            (
                "INSERT INTO t VALUES (1, 'a'), (2, DEFAULT)",
                "INSERT INTO t VALUES (?, ?), (?, DEFAULT)",
            ),
            (
                "SELECT E'it\\'s', $$dollar 'quoted'$$, $tag$x$tag$, B'1010', X'ff', U&'d\\0061t'",
                "SELECT ?, ?, ?, ?, ?, ?",
            ),
            (
                "SELECT 'it''s' AS s, TRUE, false, NULL",
                "SELECT ? AS s, TRUE, false, NULL",
            ),
            (
                "SELECT  a,\n\tb -- trailing comment\nFROM /* block */ t",
                "SELECT a, b FROM t",
            ),
            ("  SELECT 1 ;  ", "SELECT ? ;"),
            (
                "SELECT now() - interval '5 minutes'",
                "SELECT now() - interval ?",
            ),
            (
                "SELECT data->>'name', data #>> '{a,b}' FROM docs WHERE data ? 'k'",
                "SELECT data->>?, data #>> ? FROM docs WHERE data ? ?",
            ),
            (
                "SELECT * FROM t LIMIT 10 OFFSET 20",
                "SELECT * FROM t LIMIT ? OFFSET ?",
            ),
            (
                "SELECT * FROM t1 JOIN t2 ON t1.id = t2.t1_id WHERE t2.v BETWEEN 1 AND 10",
                "SELECT * FROM t1 JOIN t2 ON t1.id = t2.t1_id WHERE t2.v BETWEEN ? AND ?",
            ),
            (
                "WITH x AS (SELECT 1 AS one) SELECT one FROM x",
                "WITH x AS (SELECT ? AS one) SELECT one FROM x",
            ),
            (
                "SELECT CASE WHEN a > 0 THEN 'pos' ELSE 'neg' END FROM t",
                "SELECT CASE WHEN a > ? THEN ? ELSE ? END FROM t",
            ),
            ("BEGIN", "BEGIN"),
            ("COMMIT", "COMMIT"),
            ("SET search_path TO public", "SET search_path TO public"),
            ("SET statement_timeout = 5000", "SET statement_timeout = ?"),
            (
                "DELETE FROM sessions WHERE expires_at < '2024-01-01T00:00:00Z'::timestamptz",
                "DELETE FROM sessions WHERE expires_at < ?::timestamptz",
            ),
            ("SELECT pg_sleep(0.5)", "SELECT pg_sleep(?)"),
            ("SELECT f(1, 2)", "SELECT f(?, ?)"),
            ("", ""),
        ] {
            assert_eq!(pg(input), want, "{input}");
        }
    }

    #[test]
    fn mysql_statements() {
        for (input, want) in [
            (
                "SELECT * FROM `users` WHERE `id` = 42",
                "SELECT * FROM `users` WHERE `id` = ?",
            ),
            (
                "SELECT * FROM users WHERE name = \"ada\" OR name = 'bob'",
                "SELECT * FROM users WHERE name = ? OR name = ?",
            ),
            (
                "SELECT 'it\\'s' # a comment\nFROM dual",
                "SELECT ? FROM dual",
            ),
            ("SELECT 1 -- dash comment\n, 2 /* block */", "SELECT ? , ?"),
            (
                "INSERT INTO t (a,b) VALUES (?,?),(?,?),(?,?)",
                "INSERT INTO t (a,b) VALUES (?,?)",
            ),
            ("INSERT INTO t VALUE (1, 'x')", "INSERT INTO t VALUE (?, ?)"),
            (
                "SELECT * FROM t WHERE id IN (1,2,3) AND k = 0x1F AND b = b'101' AND h = X'ab'",
                "SELECT * FROM t WHERE id IN (?) AND k = ? AND b = ? AND h = ?",
            ),
            (
                "SELECT * FROM t WHERE name = _utf8mb4'ada' COLLATE utf8mb4_bin",
                "SELECT * FROM t WHERE name = ? COLLATE utf8mb4_bin",
            ),
            (
                "UPDATE t SET n = n + 1, updated = NOW() WHERE id = 9",
                "UPDATE t SET n = n + ?, updated = NOW() WHERE id = ?",
            ),
            ("SELECT @@version", "SELECT @@version"),
            ("SET @x = 5", "SET @x = ?"),
            ("SHOW TABLES", "SHOW TABLES"),
            ("shop", "shop"),
        ] {
            assert_eq!(my(input), want, "{input}");
        }
    }

    #[test]
    fn executions_normalize_their_query_part() {
        assert_eq!(
            pg("query=[SELECT * FROM t WHERE a = $1 AND b = 'x'] params=[42, 'abc']"),
            "SELECT * FROM t WHERE a = ? AND b = ?"
        );
        assert_eq!(
            pg("query=[SELECT arr[1] FROM t] params=[]"),
            "SELECT arr[?] FROM t"
        );
        assert_eq!(
            my("query=[INSERT INTO t VALUES (?, ?)] params=[1, \"x\"]"),
            "INSERT INTO t VALUES (?, ?)"
        );
        // Not the capture's shape: normalized as a statement.
        assert_eq!(query_part("query=[SELECT 1"), "query=[SELECT 1");
        // An execution of a statement prepared before the capture began: `"p1"` is a name.
        assert_eq!(
            pg("<portal \"p1\" bound before capture>"),
            "<portal \"p1\" bound before capture>"
        );
    }

    #[test]
    fn same_statement_with_other_values_is_one_key() {
        let a = pg("SELECT * FROM orders WHERE user_id = 1 AND status IN ('new', 'paid')");
        let b = pg("SELECT * FROM orders WHERE user_id = 99 AND status IN ('x','y','z')");
        let c = pg(
            "query=[SELECT * FROM orders WHERE user_id = $1 AND status IN ($2, $3)] params=[7, 'a', 'b']",
        );
        assert_eq!(
            a,
            "SELECT * FROM orders WHERE user_id = ? AND status IN (?)"
        );
        assert_eq!(
            b,
            "SELECT * FROM orders WHERE user_id = ? AND status IN (?)"
        );
        assert_eq!(c, a);
    }

    #[test]
    fn text_that_does_not_tokenize_falls_back() {
        // Cut inside a literal by the capture limit.
        assert_eq!(
            pg("INSERT INTO logs (msg) VALUES ('a very long message that was cu"),
            "INSERT INTO logs (msg) VALUES (?"
        );
        for (got, want) in [
            (
                my("SELECT * FROM t WHERE a = \"unterminated"),
                "SELECT * FROM t WHERE a = ?",
            ),
            (pg("SELECT $$never closed"), "SELECT ?"),
            (pg("SELECT 1 /* never closed"), "SELECT ?"),
            (pg("'"), "?"),
        ] {
            assert_eq!(got, want);
        }
        // Never panics, whatever the bytes.
        for s in [
            "\u{0}\u{1}'",
            "é'ü",
            "$",
            "`",
            "\"",
            "0x",
            "e'\\",
            "?'",
            "U&'",
            "\\",
        ] {
            pg(s);
            my(s);
        }
    }

    #[test]
    fn plain_scan_rule() {
        let mut out = String::new();
        super::plain("SELECT  t1.a FROM t1 WHERE x = 12.5 AND y = 'abc", &mut out);
        assert_eq!(out, "SELECT t1.a FROM t1 WHERE x = ? AND y = ?");
    }
}
