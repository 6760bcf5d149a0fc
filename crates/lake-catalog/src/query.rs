//! The query language of views: conditions on file properties and words in text
//! files, combined with and/or/not and parentheses, compiled to parameterised SQL
//! over `catalog_files`. Grammar and examples: docs/catalog.md.
//!
//! ```text
//! query := or EOF          or  := and ('or' and)*       and := unary ('and' unary)*
//! unary := 'not' unary | '(' or ')' | cond
//! cond  := 'text' ':' value | key op value
//! op    := '=' | '!=' | '<' | '<=' | '>' | '>=' | '~'
//! value := "..." | '...' | bare (anything up to whitespace or a parenthesis)
//! ```

use rusqlite::types::Value;

use super::types::Coarse;

/// A query the parser rejected: where, what it expected there and what it found.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("bad query at column {}: expected {expected}, found {found}\n  {query}\n  {caret}^", .pos + 1, caret = " ".repeat(*.pos))]
pub struct QueryError {
    pub query: String,
    /// Character offset of the problem (0-based).
    pub pos: usize,
    pub expected: String,
    pub found: String,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// Text compared case-insensitively (`=`, `~`).
    Text,
    /// Text compared exactly by `=` (paths and names).
    Exact,
    Number,
    /// ISO date-time strings compared as strings, a shorter value meaning the whole period.
    Date,
    Type,
}

/// Property name, column, kind.
const KEYS: &[(&str, &str, Kind)] = &[
    ("path", "path", Kind::Exact),
    ("name", "name", Kind::Exact),
    ("ext", "ext", Kind::Text),
    ("type", "type", Kind::Type),
    ("mime", "mime", Kind::Text),
    ("size", "size", Kind::Number),
    ("mtime", "mtime", Kind::Date),
    ("taken", "taken", Kind::Date),
    ("make", "make", Kind::Text),
    ("model", "model", Kind::Text),
    ("width", "width", Kind::Number),
    ("height", "height", Kind::Number),
];

pub fn key_names() -> Vec<&'static str> {
    KEYS.iter().map(|k| k.0).collect()
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Glob,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Box<Expr>, Box<Expr>),
    Or(Box<Expr>, Box<Expr>),
    Not(Box<Expr>),
    Cond { key: &'static str, op: Op, value: String },
    Text(String),
}

/// A compiled query: `where_sql` refers to `catalog_files` as `f` and uses
/// `?2, ?3, ...` for `params`; `?1` is left for the volume.
#[derive(Clone, Debug)]
pub struct Compiled {
    pub expr: Expr,
    pub where_sql: String,
    pub params: Vec<Value>,
}

struct Parser<'a> {
    src: &'a str,
    chars: Vec<char>,
    pos: usize,
}

fn is_boundary(c: Option<&char>) -> bool {
    c.is_none_or(|c| c.is_whitespace() || matches!(c, '(' | ')' | '"' | '\''))
}

impl Parser<'_> {
    fn err(&self, pos: usize, expected: impl Into<String>) -> QueryError {
        let rest: String = self.chars[pos.min(self.chars.len())..].iter().take_while(|c| !c.is_whitespace()).take(24).collect();
        let found = if pos >= self.chars.len() { "end of query".to_owned() } else { format!("'{rest}'") };
        QueryError { query: self.src.to_owned(), pos, expected: expected.into(), found }
    }

    fn skip_ws(&mut self) {
        while self.chars.get(self.pos).is_some_and(|c| c.is_whitespace()) {
            self.pos += 1;
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    /// Consumes keyword `kw` (case-insensitive, whole word) if it comes next.
    fn keyword(&mut self, kw: &str) -> bool {
        self.skip_ws();
        let n = kw.chars().count();
        let here: String = self.chars.iter().skip(self.pos).take(n).collect();
        if here.eq_ignore_ascii_case(kw) && is_boundary(self.chars.get(self.pos + n)) {
            self.pos += n;
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.and()?;
        while self.keyword("or") {
            e = Expr::Or(Box::new(e), Box::new(self.and()?));
        }
        Ok(e)
    }

    fn and(&mut self) -> Result<Expr, QueryError> {
        let mut e = self.unary()?;
        while self.keyword("and") {
            e = Expr::And(Box::new(e), Box::new(self.unary()?));
        }
        Ok(e)
    }

    fn unary(&mut self) -> Result<Expr, QueryError> {
        if self.keyword("not") {
            return Ok(Expr::Not(Box::new(self.unary()?)));
        }
        self.skip_ws();
        if self.peek() == Some('(') {
            let open = self.pos;
            self.pos += 1;
            let e = self.or()?;
            self.skip_ws();
            if self.peek() != Some(')') {
                return Err(self.err(self.pos, format!("'and', 'or' or ')' closing the '(' at column {}", open + 1)));
            }
            self.pos += 1;
            return Ok(e);
        }
        self.cond()
    }

    fn cond(&mut self) -> Result<Expr, QueryError> {
        self.skip_ws();
        let start = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            self.pos += 1;
        }
        let word: String = self.chars[start..self.pos].iter().collect();
        if word.is_empty() || word.starts_with(|c: char| c.is_ascii_digit()) {
            return Err(self.err(start, "a condition such as type = image, or text:\"some words\""));
        }
        let lower = word.to_ascii_lowercase();
        if lower == "text" {
            self.skip_ws();
            if self.peek() != Some(':') {
                return Err(self.err(self.pos, "':' after text (text:\"some words\")"));
            }
            self.pos += 1;
            let vpos = self.pos;
            let v = self.value()?;
            if super::fts::match_expr(&v).is_none() {
                return Err(self.err(vpos, "words to look for after text:"));
            }
            return Ok(Expr::Text(v));
        }
        let Some(&(key, _, kind)) = KEYS.iter().find(|k| k.0 == lower) else {
            return Err(self.err(start, format!("a property ({}, or text:)", key_names().join(", "))));
        };
        self.skip_ws();
        let op_pos = self.pos;
        let two: String = self.chars.iter().skip(self.pos).take(2).collect();
        let (op, len) = match two.as_str() {
            "<=" => (Op::Le, 2),
            ">=" => (Op::Ge, 2),
            "!=" | "<>" => (Op::Ne, 2),
            "==" => (Op::Eq, 2),
            _ => match self.peek() {
                Some('=') => (Op::Eq, 1),
                Some('<') => (Op::Lt, 1),
                Some('>') => (Op::Gt, 1),
                Some('~') => (Op::Glob, 1),
                _ => return Err(self.err(op_pos, format!("an operator after '{key}' (= != < <= > >= ~)"))),
            },
        };
        self.pos += len;
        self.skip_ws();
        let vpos = self.pos;
        let value = self.value()?;
        let value = check_value(kind, op, &value).map_err(|what| self.err(vpos, what))?;
        if op == Op::Glob && kind == Kind::Number {
            return Err(self.err(op_pos, format!("a comparison (= != < <= > >=): {key} is a number, '~' matches text")));
        }
        Ok(Expr::Cond { key, op, value })
    }

    fn value(&mut self) -> Result<String, QueryError> {
        self.skip_ws();
        let start = self.pos;
        match self.peek() {
            Some(q @ ('"' | '\'')) => {
                self.pos += 1;
                let mut s = String::new();
                loop {
                    match self.peek() {
                        None => return Err(self.err(self.pos, format!("a closing {q} for the string opened at column {}", start + 1))),
                        Some('\\') if matches!(self.chars.get(self.pos + 1), Some(c) if *c == q || *c == '\\') => {
                            s.push(self.chars[self.pos + 1]);
                            self.pos += 2;
                        }
                        Some(c) if c == q => {
                            self.pos += 1;
                            return Ok(s);
                        }
                        Some(c) => {
                            s.push(c);
                            self.pos += 1;
                        }
                    }
                }
            }
            _ => {
                while self.peek().is_some_and(|c| !c.is_whitespace() && c != '(' && c != ')') {
                    self.pos += 1;
                }
                if self.pos == start {
                    return Err(self.err(start, "a value (a word, a number, a date or a \"quoted string\")"));
                }
                Ok(self.chars[start..self.pos].iter().collect())
            }
        }
    }
}

/// Checks and normalises a value for a property kind; Err says what was expected.
fn check_value(kind: Kind, op: Op, v: &str) -> Result<String, String> {
    match kind {
        _ if op == Op::Glob => Ok(v.to_owned()),
        Kind::Number => parse_number(v).map(|n| n.to_string()).ok_or_else(|| "a number such as 1200, 4k or 1.5M".to_owned()),
        Kind::Date => normalise_date(v).ok_or_else(|| "a date such as 2025-06, 2025-06-01 or 2025-06-01T10:00".to_owned()),
        Kind::Type => {
            let t = v.to_ascii_lowercase();
            if Coarse::ALL.iter().any(|c| c.as_str() == t) {
                Ok(t)
            } else {
                Err(format!("a type ({})", Coarse::ALL.map(|c| c.as_str()).join(", ")))
            }
        }
        Kind::Text | Kind::Exact => Ok(v.to_owned()),
    }
}

/// `1200`, `4k`, `1.5M`, `2GiB`, `10kb` (binary multiples).
fn parse_number(v: &str) -> Option<i64> {
    let lower = v.to_ascii_lowercase();
    let s = lower.trim_end_matches("ib").trim_end_matches('b');
    let (num, mul) = match s.char_indices().last()? {
        (i, 'k') => (&s[..i], 1i64 << 10),
        (i, 'm') => (&s[..i], 1 << 20),
        (i, 'g') => (&s[..i], 1 << 30),
        (i, 't') => (&s[..i], 1 << 40),
        _ => (s, 1),
    };
    if num.is_empty() || !num.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return None;
    }
    if let Ok(n) = num.parse::<i64>() {
        return n.checked_mul(mul);
    }
    let f = num.parse::<f64>().ok()?;
    let r = (f * mul as f64).round();
    (r.is_finite() && r < i64::MAX as f64).then_some(r as i64)
}

/// An ISO date or date-time prefix (`YYYY`, `YYYY-MM`, `YYYY-MM-DD`,
/// `YYYY-MM-DDTHH[:MM[:SS]]`; a space or `_` may stand for the `T`).
fn normalise_date(v: &str) -> Option<String> {
    let v = v.trim_end_matches('Z');
    let mut s: Vec<u8> = v.as_bytes().to_vec();
    if s.len() > 10 && (s[10] == b' ' || s[10] == b'_' || s[10] == b't') {
        s[10] = b'T';
    }
    const PATTERN: &[u8] = b"dddd-dd-ddTdd:dd:dd";
    if ![4, 7, 10, 13, 16, 19].contains(&s.len()) {
        return None;
    }
    let ok = s.iter().zip(PATTERN).all(|(c, p)| if *p == b'd' { c.is_ascii_digit() } else { c == p });
    ok.then(|| String::from_utf8_lossy(&s).into_owned())
}

/// Parses a query.
pub fn parse(query: &str) -> Result<Expr, QueryError> {
    let mut p = Parser { src: query, chars: query.chars().collect(), pos: 0 };
    let e = p.or()?;
    p.skip_ws();
    if p.pos < p.chars.len() {
        let expected =
            if p.peek() == Some(')') { "'and', 'or' or end of query (this ')' closes nothing)" } else { "'and', 'or' or end of query" };
        return Err(p.err(p.pos, expected));
    }
    Ok(e)
}

/// A pattern for `~`: a glob (`*`, `?`, `[..]`) as written; without glob
/// characters, a substring match.
fn glob_pattern(v: &str) -> String {
    if v.contains(['*', '?', '[']) {
        v.to_lowercase()
    } else {
        format!("*{}*", v.to_lowercase())
    }
}

fn compile_into(e: &Expr, sql: &mut String, params: &mut Vec<Value>) {
    let param = |params: &mut Vec<Value>, v: Value| {
        params.push(v);
        format!("?{}", params.len() + 1)
    };
    match e {
        Expr::And(a, b) | Expr::Or(a, b) => {
            sql.push('(');
            compile_into(a, sql, params);
            sql.push_str(if matches!(e, Expr::And(..)) { " AND " } else { " OR " });
            compile_into(b, sql, params);
            sql.push(')');
        }
        Expr::Not(a) => {
            sql.push_str("(NOT ");
            compile_into(a, sql, params);
            sql.push(')');
        }
        Expr::Text(words) => {
            let p = param(params, Value::Text(super::fts::match_expr(words).unwrap_or_default()));
            sql.push_str(&format!("f.id IN (SELECT rowid FROM catalog_fts WHERE catalog_fts MATCH {p})"));
        }
        Expr::Cond { key, op, value } => {
            let (_, col, kind) = KEYS.iter().find(|k| k.0 == *key).copied().unwrap_or(("path", "path", Kind::Exact));
            let col = format!("f.{col}");
            let cmp = match op {
                Op::Eq => "=",
                Op::Ne => "<>",
                Op::Lt => "<",
                Op::Le => "<=",
                Op::Gt => ">",
                Op::Ge => ">=",
                Op::Glob => "GLOB",
            };
            // Every condition is true or false, never NULL: a file without the
            // property fails `taken < X` and so passes `not taken < X`.
            let cond = match (kind, op) {
                (_, Op::Glob) => format!("lower({col}) GLOB {}", param(params, Value::Text(glob_pattern(value)))),
                (Kind::Number, _) => format!("{col} {cmp} {}", param(params, Value::Integer(value.parse().unwrap_or(0)))),
                // A date value names a period: `taken = 2025-06` is all of June, `taken <= 2025-06-30`
                // includes that day. `<` and `>=` already work so on plain strings.
                (Kind::Date, Op::Eq | Op::Ne | Op::Le | Op::Gt) => {
                    let n = value.chars().count();
                    format!("substr({col}, 1, {n}) {cmp} {}", param(params, Value::Text(value.clone())))
                }
                (Kind::Text | Kind::Type, Op::Eq | Op::Ne) => {
                    format!("{col} {cmp} {} COLLATE NOCASE", param(params, Value::Text(value.clone())))
                }
                _ => format!("{col} {cmp} {}", param(params, Value::Text(value.clone()))),
            };
            sql.push_str(&format!("coalesce({cond}, 0)"));
        }
    }
}

/// Parses and compiles a query.
pub fn compile(query: &str) -> Result<Compiled, QueryError> {
    let expr = parse(query)?;
    let mut where_sql = String::new();
    let mut params = Vec::new();
    compile_into(&expr, &mut where_sql, &mut params);
    Ok(Compiled { expr, where_sql, params })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cond(key: &'static str, op: Op, value: &str) -> Expr {
        Expr::Cond { key, op, value: value.into() }
    }

    #[test]
    fn precedence_not_and_or() {
        let e = parse("type = image and not ext = png or text:\"kiwi pie\"").unwrap();
        assert_eq!(
            e,
            Expr::Or(
                Box::new(Expr::And(Box::new(cond("type", Op::Eq, "image")), Box::new(Expr::Not(Box::new(cond("ext", Op::Eq, "png")))))),
                Box::new(Expr::Text("kiwi pie".into()))
            )
        );
        let e = parse("(type=image OR type=video) AND size>1M").unwrap();
        assert_eq!(
            e,
            Expr::And(
                Box::new(Expr::Or(Box::new(cond("type", Op::Eq, "image")), Box::new(cond("type", Op::Eq, "video")))),
                Box::new(cond("size", Op::Gt, "1048576"))
            )
        );
    }

    #[test]
    fn values_bare_quoted_and_normalised() {
        assert_eq!(parse("name ~ 'my photo*.jpg'").unwrap(), cond("name", Op::Glob, "my photo*.jpg"));
        assert_eq!(parse(r#"model = "EOS \"R\"""#).unwrap(), cond("model", Op::Eq, "EOS \"R\""));
        assert_eq!(parse("taken >= '2025-06-01 10:00'").unwrap(), cond("taken", Op::Ge, "2025-06-01T10:00"));
        assert_eq!(parse("taken<2025-07-01").unwrap(), cond("taken", Op::Lt, "2025-07-01"));
        assert_eq!(parse("TYPE = Image").unwrap(), cond("type", Op::Eq, "image"));
        assert_eq!(parse("text:kiwi").unwrap(), Expr::Text("kiwi".into()));
        assert_eq!(parse("size <= 1.5k").unwrap(), cond("size", Op::Le, "1536"));
        assert_eq!(parse("path ~ docs/*").unwrap(), cond("path", Op::Glob, "docs/*"));
    }

    #[test]
    fn errors_point_at_the_problem() {
        let e = parse("type = image and taken >=").unwrap_err();
        assert_eq!((e.pos, e.found.as_str()), (25, "end of query"));
        assert!(e.expected.starts_with("a value"), "{e}");
        let shown = e.to_string();
        assert!(shown.starts_with("bad query at column 26: expected a value"), "{shown}");
        assert!(shown.ends_with(&format!("\n  type = image and taken >=\n  {}^", " ".repeat(25))), "{shown}");

        let e = parse("colour = red").unwrap_err();
        assert_eq!((e.pos, e.found.as_str()), (0, "'colour'"));
        assert!(e.expected.contains("taken"), "{e}");

        let e = parse("type = picture").unwrap_err();
        assert_eq!((e.pos, e.found.as_str()), (7, "'picture'"));
        assert!(e.expected.contains("image, video"), "{e}");

        let e = parse("taken >= June").unwrap_err();
        assert!(e.expected.starts_with("a date"), "{e}");
        let e = parse("size > big").unwrap_err();
        assert!(e.expected.starts_with("a number"), "{e}");
        let e = parse("(type = image").unwrap_err();
        assert_eq!((e.pos, e.found.as_str()), (13, "end of query"));
        assert!(e.expected.contains("')' closing the '(' at column 1"), "{e}");
        let e = parse("type = image taken > 2025").unwrap_err();
        assert_eq!((e.pos, e.found.as_str()), (13, "'taken'"));
        let e = parse("name 'x'").unwrap_err();
        assert!(e.expected.starts_with("an operator"), "{e}");
        let e = parse("name = \"open").unwrap_err();
        assert!(e.expected.starts_with("a closing \""), "{e}");
        assert!(parse("").is_err());
        assert!(parse("text:\"  \"").is_err());
        assert!(parse("size ~ 10").is_err());
        assert!(parse("type = image)").unwrap_err().expected.contains("closes nothing"));
    }

    #[test]
    fn numbers_and_dates() {
        assert_eq!(parse_number("4k"), Some(4096));
        assert_eq!(parse_number("2GiB"), Some(2 << 30));
        assert_eq!(parse_number("10kb"), Some(10240));
        assert_eq!(parse_number("x"), None);
        assert_eq!(parse_number("k"), None);
        assert_eq!(normalise_date("2025"), Some("2025".into()));
        assert_eq!(normalise_date("2025-06-01T10:00:00Z"), Some("2025-06-01T10:00:00".into()));
        assert_eq!(normalise_date("2025-6-1"), None);
    }

    #[test]
    fn compiles_to_parameters_not_text() {
        let c = compile("name = \"x' OR 1=1 --\" and taken <= 2025-06-30").unwrap();
        assert_eq!(c.where_sql, "(coalesce(f.name = ?2, 0) AND coalesce(substr(f.taken, 1, 10) <= ?3, 0))");
        assert_eq!(c.params, vec![Value::Text("x' OR 1=1 --".into()), Value::Text("2025-06-30".into())]);
    }
}
