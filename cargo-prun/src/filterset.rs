//! Filtersets, nextest's language for choosing tests (`-E 'test(foo) & package(bar) -
//! kind(bench)'`), to its grammar: predicates `all()`, `none()`, `test(M)`, `package(M)`,
//! `binary(M)`, `binary_id(M)`, `kind(M)`, `platform(M)`; operators `not`/`!`, `and`/`&`,
//! `or`/`|`/`+`, `-` (and not), parentheses. A matcher is `=exact`, `~contains`, `/regex/` or
//! `#glob`; bare, it is contains for `test()` and glob for the others, as in nextest.
//! `deps()` and `rdeps()` need cargo's dependency graph, which prun does not read: they are an
//! error that says so.

/// What a filterset is matched against: one test of one binary.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Candidate<'a> {
    /// `package` or `package::target`, as nextest names binaries.
    pub(crate) binary_id: &'a str,
    pub(crate) package: &'a str,
    /// Cargo's target kind: `lib`, `test`, `bin`, `bench`, `example`, `proc-macro`.
    pub(crate) kind: &'a str,
    pub(crate) test: &'a str,
}

impl Candidate<'_> {
    /// The target's name: what follows `::` in the binary id (the package, for a library).
    fn binary(&self) -> &str {
        self.binary_id.split_once("::").map_or(self.package, |(_, target)| target)
    }
}

#[derive(Debug, Clone)]
pub(crate) enum Filterset {
    All,
    None,
    Test(Matcher),
    Package(Matcher),
    Binary(Matcher),
    BinaryId(Matcher),
    Kind(Matcher),
    Not(Box<Filterset>),
    And(Box<Filterset>, Box<Filterset>),
    Or(Box<Filterset>, Box<Filterset>),
}

#[derive(Debug, Clone)]
pub(crate) enum Matcher {
    Equal(String),
    Contains(String),
    Glob(String),
    Regex(regex_lite::Regex),
}

impl Matcher {
    fn matches(&self, text: &str) -> bool {
        match self {
            Matcher::Equal(want) => text == want,
            Matcher::Contains(part) => text.contains(part.as_str()),
            Matcher::Glob(pattern) => glob(pattern.as_bytes(), text.as_bytes()),
            Matcher::Regex(regex) => regex.is_match(text),
        }
    }
}

/// `*` any run, `?` one character.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    match (pattern.first(), text.first()) {
        (None, None) => true,
        (Some(b'*'), _) => {
            glob(&pattern[1..], text) || (!text.is_empty() && glob(pattern, &text[1..]))
        }
        (Some(b'?'), Some(_)) => glob(&pattern[1..], &text[1..]),
        (Some(p), Some(t)) if p == t => glob(&pattern[1..], &text[1..]),
        _ => false,
    }
}

impl Filterset {
    pub(crate) fn matches(&self, test: &Candidate<'_>) -> bool {
        match self {
            Filterset::All => true,
            Filterset::None => false,
            Filterset::Test(m) => m.matches(test.test),
            Filterset::Package(m) => m.matches(test.package),
            Filterset::Binary(m) => m.matches(test.binary()),
            Filterset::BinaryId(m) => m.matches(test.binary_id),
            Filterset::Kind(m) => m.matches(test.kind),
            Filterset::Not(inner) => !inner.matches(test),
            Filterset::And(a, b) => a.matches(test) && b.matches(test),
            Filterset::Or(a, b) => a.matches(test) || b.matches(test),
        }
    }
}

/// Why a filterset does not parse, and where (a character offset).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("at character {}: {why}", .at + 1)]
pub(crate) struct ParseError {
    pub(crate) at: usize,
    pub(crate) why: String,
}

/// A `-E` expression that does not parse: the expression, and where and why.
#[derive(Debug, thiserror::Error)]
#[error("filterset {text:?}: {error}")]
pub(crate) struct ExpressionError {
    text: String,
    error: ParseError,
}

impl std::str::FromStr for Filterset {
    type Err = ExpressionError;

    fn from_str(text: &str) -> Result<Filterset, ExpressionError> {
        parse(text).map_err(|error| ExpressionError { text: text.to_owned(), error })
    }
}

pub(crate) fn parse(text: &str) -> Result<Filterset, ParseError> {
    let mut parser = Parser { text, at: 0 };
    let set = parser.or()?;
    parser.space();
    if parser.at < text.len() {
        return Err(parser.error("expected an operator (&, |, -) or the end"));
    }
    Ok(set)
}

struct Parser<'a> {
    text: &'a str,
    at: usize,
}

impl Parser<'_> {
    fn rest(&self) -> &str {
        &self.text[self.at..]
    }

    fn error(&self, why: &str) -> ParseError {
        ParseError { at: self.at, why: why.to_owned() }
    }

    fn space(&mut self) {
        self.at = self.text.len() - self.rest().trim_start().len();
    }

    /// Takes `token` (a word only when not followed by more of a word).
    fn eat(&mut self, token: &str) -> bool {
        self.space();
        let rest = self.rest();
        let word = token.chars().all(|c| c.is_ascii_alphabetic());
        let ends =
            |after: &str| after.chars().next().is_none_or(|c| !c.is_alphanumeric() && c != '_');
        if rest.starts_with(token) && (!word || ends(&rest[token.len()..])) {
            self.at += token.len();
            true
        } else {
            false
        }
    }

    fn or(&mut self) -> Result<Filterset, ParseError> {
        let mut set = self.and()?;
        while self.eat("|") || self.eat("or") || self.eat("+") {
            set = Filterset::Or(Box::new(set), Box::new(self.and()?));
        }
        Ok(set)
    }

    fn and(&mut self) -> Result<Filterset, ParseError> {
        let mut set = self.unary()?;
        loop {
            if self.eat("&") || self.eat("and") {
                set = Filterset::And(Box::new(set), Box::new(self.unary()?));
            } else if self.eat("-") {
                let not = Filterset::Not(Box::new(self.unary()?));
                set = Filterset::And(Box::new(set), Box::new(not));
            } else {
                return Ok(set);
            }
        }
    }

    fn unary(&mut self) -> Result<Filterset, ParseError> {
        if self.eat("not") || self.eat("!") {
            return Ok(Filterset::Not(Box::new(self.unary()?)));
        }
        if self.eat("(") {
            let set = self.or()?;
            if !self.eat(")") {
                return Err(self.error("expected `)`"));
            }
            return Ok(set);
        }
        self.predicate()
    }

    fn predicate(&mut self) -> Result<Filterset, ParseError> {
        self.space();
        let start = self.at;
        let name_len = self
            .rest()
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
            .unwrap_or(self.rest().len());
        let name = &self.text[start..start + name_len];
        if name.is_empty() {
            return Err(self.error("expected a predicate like test(name), package(name), all()"));
        }
        self.at += name_len;
        if !self.eat("(") {
            return Err(self.error(&format!("expected `(` after {name}")));
        }
        let set = match name {
            "all" | "none" => {
                if !self.eat(")") {
                    return Err(self.error(&format!("{name}() takes nothing")));
                }
                return Ok(if name == "all" { Filterset::All } else { Filterset::None });
            }
            "test" => Filterset::Test(self.matcher(false)?),
            "package" => Filterset::Package(self.matcher(true)?),
            "binary" => Filterset::Binary(self.matcher(true)?),
            "binary_id" => Filterset::BinaryId(self.matcher(true)?),
            "kind" => Filterset::Kind(self.matcher(true)?),
            // prun builds and runs for one platform: both are it.
            "platform" => {
                self.matcher(true)?;
                Filterset::All
            }
            "deps" | "rdeps" => {
                return Err(ParseError {
                    at: start,
                    why: format!(
                        "{name}() needs cargo's dependency graph, which prun does not read: name the packages with package()"
                    ),
                });
            }
            other => {
                return Err(ParseError { at: start, why: format!("unknown predicate {other}()") });
            }
        };
        if !self.eat(")") {
            return Err(self.error("expected `)`"));
        }
        Ok(set)
    }

    /// The argument of a predicate, up to its `)`; `glob` is the default when bare.
    fn matcher(&mut self, glob_by_default: bool) -> Result<Matcher, ParseError> {
        self.space();
        let start = self.at;
        if self.rest().starts_with('/') {
            let body = &self.rest()[1..];
            let Some(end) = body.find('/') else { return Err(self.error("a regex ends with `/`")) };
            let regex = regex_lite::Regex::new(&body[..end])
                .map_err(|err| ParseError { at: start, why: format!("bad regex: {err}") })?;
            self.at += end + 2;
            return Ok(Matcher::Regex(regex));
        }
        let end = self.rest().find(')').ok_or_else(|| self.error("expected `)`"))?;
        let arg = self.rest()[..end].trim().to_owned();
        self.at += end;
        let matcher = match arg.chars().next() {
            Some('=') => Matcher::Equal(arg[1..].to_owned()),
            Some('~') => Matcher::Contains(arg[1..].to_owned()),
            Some('#') => Matcher::Glob(arg[1..].to_owned()),
            _ if glob_by_default => Matcher::Glob(arg),
            _ => Matcher::Contains(arg),
        };
        Ok(matcher)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate<'a>(binary_id: &'a str, kind: &'a str, test: &'a str) -> Candidate<'a> {
        let package = binary_id.split("::").next().unwrap();
        Candidate { binary_id, package, kind, test }
    }

    fn matching(expression: &str) -> Vec<&'static str> {
        let set = parse(expression).unwrap_or_else(|err| panic!("{expression}: {err}"));
        let tests = [
            candidate("shop", "lib", "tests::prices"),
            candidate("shop::api", "test", "orders_are_saved"),
            candidate("shop::bench_speed", "bench", "fast_enough"),
            candidate("web", "lib", "routes::home"),
        ];
        tests
            .iter()
            .filter(|t| set.matches(t))
            .map(|t| t.test)
            .map(|t| match t {
                "tests::prices" => "prices",
                "orders_are_saved" => "orders",
                "fast_enough" => "fast",
                _ => "home",
            })
            .collect()
    }

    #[test]
    fn predicates_operators_and_matchers_as_nextest_has_them() {
        assert_eq!(matching("all()"), ["prices", "orders", "fast", "home"]);
        assert_eq!(matching("none()"), Vec::<&str>::new());
        assert_eq!(matching("test(ord)"), ["orders"]);
        assert_eq!(matching("test(=orders_are_saved)"), ["orders"]);
        assert_eq!(matching("test(=orders)"), Vec::<&str>::new());
        assert_eq!(matching("test(/^(tests|routes)::/)"), ["prices", "home"]);
        assert_eq!(matching("package(shop) - kind(bench)"), ["prices", "orders"]);
        assert_eq!(matching("package(sh*) & not kind(lib)"), ["orders", "fast"]);
        assert_eq!(matching("binary(api) | binary_id(web)"), ["orders", "home"]);
        assert_eq!(matching("!(package(shop) or test(home))"), Vec::<&str>::new());
        assert_eq!(matching("kind(=lib) + test(#*saved)"), ["prices", "orders", "home"]);
        assert_eq!(matching("platform(host) and test(fast)"), ["fast"]);
    }

    #[test]
    fn a_bad_expression_says_where() {
        let err = parse("test(foo) &").unwrap_err();
        assert_eq!(err.at, 11);
        assert!(err.why.contains("expected a predicate"), "{err}");
        assert!(parse("tests(foo)").unwrap_err().why.contains("unknown predicate tests()"));
        assert!(parse("test(foo").unwrap_err().why.contains("expected `)`"));
        assert!(parse("deps(foo)").unwrap_err().why.contains("dependency graph"));
        assert!(parse("test(foo) bar").unwrap_err().why.contains("expected an operator"));
    }
}
