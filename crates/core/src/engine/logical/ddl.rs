//! Pure rewrites of DDL text, tested with tables of cases and no server.
//!
//! The main entry point is [`split_create_table`]: it takes `SHOW CREATE TABLE` output and moves
//! the non-unique secondary indexes and the foreign keys out of it, so that rows load into a table
//! with nothing but its primary and unique keys, and the rest is built once, after the data.
//! Everything here works on tokens, never on lines or substrings: names, comments and string
//! literals may contain `KEY`, commas, parentheses, backticks, quotes or newlines.
//!
//! The other helpers rewrite the few statements that must not be replayed verbatim (a trigger's
//! qualified name, a database's name, `CREATE USER` without `IF NOT EXISTS`) and quote
//! identifiers and strings for the SQL we build ourselves.

use std::fmt::Write as _;

/// A `CREATE TABLE` with its deferrable parts taken out.
///
/// `create` is executable as it is. The deferred parts are `ALTER TABLE` clauses
/// (`ADD KEY ...`, `ADD CONSTRAINT ... FOREIGN KEY ...`) meant to be joined with `, ` into one
/// `ALTER TABLE` each: first the indexes of every table, then the foreign keys (a foreign key
/// may need an index of the table it references, which may itself be deferred).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SplitCreate {
    pub create: String,
    pub deferred_indexes: Vec<String>,
    pub foreign_keys: Vec<String>,
}

/// Splits `SHOW CREATE TABLE` output (MariaDB or MySQL) into a `CREATE TABLE` that keeps the
/// columns, `PRIMARY KEY`, `UNIQUE` and `FULLTEXT` keys, `CHECK` constraints, periods and all
/// table options and partitioning, and the deferred non-unique `KEY`/`INDEX` and `SPATIAL`
/// indexes and foreign keys as `ADD ...` clauses.
///
/// - `FULLTEXT` keys stay: adding the first one later rebuilds the whole table.
/// - A key the `AUTO_INCREMENT` column needs stays (InnoDB requires that column to lead some
///   index; MyISAM/Aria that it be in one), and so does every non-unique key before it, so that
///   the restored table lists its keys in the original order.
/// - When nothing is deferred the text is returned unchanged; text that is not a table definition
///   (a `CREATE SEQUENCE`) is returned unchanged too.
pub fn split_create_table(show_create: &str) -> SplitCreate {
    split_create(show_create, true)
}

/// [`split_create_table`] that keeps every index in the `CREATE TABLE` and holds back only the
/// foreign keys: for a small table, building its indexes after the rows costs an `ALTER TABLE`
/// (a few disk flushes) that saves nothing.
pub fn split_foreign_keys(show_create: &str) -> SplitCreate {
    split_create(show_create, false)
}

fn split_create(show_create: &str, defer_indexes: bool) -> SplitCreate {
    let unchanged = || SplitCreate {
        create: show_create.to_string(),
        ..Default::default()
    };
    let Some(body) = table_body(show_create) else {
        return unchanged();
    };
    if body.items.is_empty() {
        return unchanged();
    }

    let kinds: Vec<ItemKind> = body
        .items
        .iter()
        .map(|&(s, e)| classify(&show_create[s..e]))
        .collect();

    // The AUTO_INCREMENT column, if any, and whether a key that always stays covers it.
    let auto_inc = kinds.iter().find_map(|k| match k {
        ItemKind::Column {
            name,
            auto_increment: true,
        } => Some(name.clone()),
        _ => None,
    });
    let covered_by_kept = auto_inc.as_ref().is_some_and(|ai| {
        kinds.iter().any(|k| match k {
            ItemKind::KeptKey { columns } => columns.iter().any(|c| c.eq_ignore_ascii_case(ai)),
            _ => false,
        })
    });
    let needed_by_auto_inc = |columns: &[String]| -> bool {
        let Some(ai) = &auto_inc else { return false };
        let first = columns.first().is_some_and(|c| c.eq_ignore_ascii_case(ai));
        first || (!covered_by_kept && columns.iter().any(|c| c.eq_ignore_ascii_case(ai)))
    };
    // Non-unique keys up to the last one that must stay, stay.
    let last_needed = kinds
        .iter()
        .enumerate()
        .filter(
            |(_, k)| matches!(k, ItemKind::SecondaryKey { columns } if needed_by_auto_inc(columns)),
        )
        .map(|(i, _)| i)
        .next_back();

    let mut kept = Vec::new();
    let mut split = SplitCreate::default();
    for (i, (&(s, e), kind)) in body.items.iter().zip(&kinds).enumerate() {
        let text = &show_create[s..e];
        match kind {
            ItemKind::SecondaryKey { .. } if defer_indexes && last_needed.is_none_or(|l| i > l) => {
                split.deferred_indexes.push(format!("ADD {text}"));
            }
            ItemKind::ForeignKey => split.foreign_keys.push(format!("ADD {text}")),
            _ => kept.push(text),
        }
    }
    if split.deferred_indexes.is_empty() && split.foreign_keys.is_empty() {
        return unchanged();
    }

    let (first_start, _) = body.items[0];
    let (_, last_end) = *body.items.last().expect("items is not empty");
    let joiner = match body.items.get(1) {
        Some(&(second_start, _)) => &show_create[body.items[0].1..second_start],
        None => ",\n  ",
    };
    let mut create = String::with_capacity(show_create.len());
    create.push_str(&show_create[..first_start]);
    create.push_str(&kept.join(joiner));
    create.push_str(&show_create[last_end..]);
    split.create = create;
    split
}

/// Quotes an identifier with backticks, doubling any backtick inside.
pub fn quote_ident(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('`');
    for c in s.chars() {
        if c == '`' {
            out.push('`');
        }
        out.push(c);
    }
    out.push('`');
    out
}

/// Quotes a string literal the way `mysql_real_escape_string` does (`\0`, `\n`, `\r`, `\\`,
/// `\'`, `\"`, `\Z`). Valid unless the session has `NO_BACKSLASH_ESCAPES` in its `sql_mode`.
pub fn quote_string(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('\'');
    for c in s.chars() {
        match c {
            '\0' => out.push_str("\\0"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\\' => out.push_str("\\\\"),
            '\'' => out.push_str("\\'"),
            '"' => out.push_str("\\\""),
            '\x1a' => out.push_str("\\Z"),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `CREATE DATABASE IF NOT EXISTS <target> CHARACTER SET .. COLLATE .. [COMMENT ..]` built
/// from `SHOW CREATE DATABASE` output of the original, whatever its name.
pub fn create_database_sql(show_create: &str, target: &str) -> String {
    let opts = database_options(show_create);
    let mut sql = format!("CREATE DATABASE IF NOT EXISTS {}", quote_ident(target));
    sql.push_str(&opts);
    sql
}

/// `ALTER DATABASE <target> CHARACTER SET .. COLLATE .. [COMMENT ..]` from `SHOW CREATE
/// DATABASE` output; `None` when the original states no option.
pub fn alter_database_sql(show_create: &str, target: &str) -> Option<String> {
    let opts = database_options(show_create);
    (!opts.is_empty()).then(|| format!("ALTER DATABASE {}{}", quote_ident(target), opts))
}

/// The character set, collation and comment of a `SHOW CREATE DATABASE`, as ` CHARACTER SET x
/// COLLATE y COMMENT 'z'` (each part only when present).
fn database_options(show_create: &str) -> String {
    let toks: Vec<Token> = Lexer::new(show_create).collect();
    let (mut charset, mut collate, mut comment) = (None, None, None);
    let mut i = 0;
    while i < toks.len() {
        let t = &toks[i];
        let value_at = |mut j: usize| -> Option<(&Token, usize)> {
            if toks.get(j).is_some_and(|t| t.is_punct(b'=')) {
                j += 1;
            }
            toks.get(j).map(|t| (t, j))
        };
        if t.is_word("CHARACTER") && toks.get(i + 1).is_some_and(|t| t.is_word("SET")) {
            if let Some((v, j)) = value_at(i + 2) {
                charset = Some(v.ident());
                i = j;
            }
        } else if t.is_word("CHARSET") {
            if let Some((v, j)) = value_at(i + 1) {
                charset = Some(v.ident());
                i = j;
            }
        } else if t.is_word("COLLATE") {
            if let Some((v, j)) = value_at(i + 1) {
                collate = Some(v.ident());
                i = j;
            }
        } else if t.is_word("COMMENT") {
            if let Some((v, j)) = value_at(i + 1) {
                if v.kind == TokKind::Str {
                    comment = Some(v.text.to_string());
                }
                i = j;
            }
        }
        i += 1;
    }
    let mut out = String::new();
    if let Some(cs) = charset.filter(|c| is_plain_name(c)) {
        let _ = write!(out, " CHARACTER SET {cs}");
    }
    if let Some(cl) = collate.filter(|c| is_plain_name(c)) {
        let _ = write!(out, " COLLATE {cl}");
    }
    if let Some(c) = comment {
        let _ = write!(out, " COMMENT {c}");
    }
    out
}

/// The character set or collation name of a database's `SHOW CREATE DATABASE`, if stated.
pub fn database_collation(show_create: &str) -> Option<String> {
    let toks: Vec<Token> = Lexer::new(show_create).collect();
    toks.iter()
        .position(|t| t.is_word("COLLATE"))
        .and_then(|i| {
            let j = if toks.get(i + 1).is_some_and(|t| t.is_punct(b'=')) {
                i + 2
            } else {
                i + 1
            };
            toks.get(j).map(Token::ident)
        })
}

/// Whether `s` is a bare name safe to splice into SQL (a character set, a collation).
pub fn is_plain_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Rewrites a trigger's `SHOW CREATE TRIGGER` statement (the *original* statement, as its
/// author typed it) for re-creation in whatever database is current:
///
/// - the database qualifier is dropped from the trigger's name and from its table
///   (`TRIGGER db.t BEFORE INSERT ON db.tbl` becomes `TRIGGER t BEFORE INSERT ON tbl`), so a
///   restore under another database name creates it there, not in the original;
/// - a `FOLLOWS`/`PRECEDES other` clause is dropped: triggers are re-created in their action
///   order, which reproduces the order without depending on the other trigger existing first.
///
/// The `DEFINER` and the body are kept verbatim. Text not shaped like a trigger is returned
/// unchanged.
pub fn trigger_for_restore(create: &str) -> String {
    let mut lexer = Lexer::new(create);
    let mut cuts: Vec<(usize, usize)> = Vec::new();
    // Up to the TRIGGER keyword (the definer may be quoted, never a bare TRIGGER word).
    if !lexer.by_ref().take(64).any(|t| t.is_word("TRIGGER")) {
        return create.to_string();
    }
    let mut next = lexer.next();
    if next.as_ref().is_some_and(|t| t.is_word("IF")) {
        // IF NOT EXISTS
        lexer.next();
        lexer.next();
        next = lexer.next();
    }
    let Some(name) = next else {
        return create.to_string();
    };
    let mut after = lexer.next();
    if name.is_name() && after.as_ref().is_some_and(|t| t.is_punct(b'.')) {
        let unqualified = lexer.next();
        if let Some(u) = unqualified.filter(Token::is_name) {
            cuts.push((name.start, u.start));
        }
        after = lexer.next();
    }
    // Timing and events, up to ON.
    let mut guard = 0;
    while let Some(t) = &after {
        if t.is_word("ON") || guard > 16 {
            break;
        }
        guard += 1;
        after = lexer.next();
    }
    if !after.as_ref().is_some_and(|t| t.is_word("ON")) {
        return create.to_string();
    }
    let Some(table) = lexer.next() else {
        return create.to_string();
    };
    let mut after = lexer.next();
    if table.is_name() && after.as_ref().is_some_and(|t| t.is_punct(b'.')) {
        if let Some(u) = lexer.next().filter(Token::is_name) {
            cuts.push((table.start, u.start));
        }
        after = lexer.next();
    }
    // FOR EACH ROW [FOLLOWS|PRECEDES other]
    let for_each_row = after.as_ref().is_some_and(|t| t.is_word("FOR"))
        && lexer.next().is_some_and(|t| t.is_word("EACH"))
        && lexer.next().is_some_and(|t| t.is_word("ROW"));
    if for_each_row {
        if let Some(order) = lexer
            .next()
            .filter(|t| t.is_word("FOLLOWS") || t.is_word("PRECEDES"))
        {
            if let Some(other) = lexer.next().filter(Token::is_name) {
                let mut end = other.end;
                // A qualified name (db.other) is not valid here, but be lenient.
                let rest = &create[end..];
                let ws = rest.len() - rest.trim_start().len();
                end += ws;
                cuts.push((order.start, end));
            }
        }
    }
    apply_cuts(create, &cuts)
}

/// `CREATE USER ...` → `CREATE USER IF NOT EXISTS ...` (and the same for `CREATE ROLE`); text
/// that already says `IF NOT EXISTS`, or is not such a statement, is returned unchanged.
pub fn create_if_not_exists(create: &str) -> String {
    let mut lexer = Lexer::new(create);
    let (Some(c), Some(what)) = (lexer.next(), lexer.next()) else {
        return create.to_string();
    };
    if !c.is_word("CREATE") || !(what.is_word("USER") || what.is_word("ROLE")) {
        return create.to_string();
    }
    if lexer.next().is_some_and(|t| t.is_word("IF")) {
        return create.to_string();
    }
    format!(
        "{} IF NOT EXISTS{}",
        &create[..what.end],
        &create[what.end..]
    )
}

/// Removes the credentials MariaDB's `SHOW GRANTS` prints in an account's first grant
/// (`GRANT USAGE ON *.* TO `u`@`h` IDENTIFIED BY PASSWORD '*..'`, `IDENTIFIED VIA plugin USING
/// '..' OR ..`): replaying them would reset the password of an account that already exists, which
/// `CREATE USER IF NOT EXISTS` deliberately leaves alone. `REQUIRE` and `WITH` clauses stay.
pub fn grant_without_credentials(grant: &str) -> String {
    let toks: Vec<Token> = Lexer::new(grant).collect();
    if !toks.first().is_some_and(|t| t.is_word("GRANT")) {
        return grant.to_string();
    }
    let Some(start) = toks.iter().position(|t| t.is_word("IDENTIFIED")) else {
        return grant.to_string();
    };
    let end = toks[start..]
        .iter()
        .position(|t| t.is_word("REQUIRE") || t.is_word("WITH"))
        .map(|i| toks[start + i].start)
        .unwrap_or(grant.len());
    let before = grant[..toks[start].start].trim_end();
    let after = grant[end..].trim_start();
    if after.is_empty() {
        before.to_string()
    } else {
        format!("{before} {after}")
    }
}

/// Removes the `AUTO_INCREMENT=N` table option (it follows the data, not the definition) from
/// `SHOW CREATE TABLE` output, for comparing definitions.
pub fn strip_auto_increment_option(show_create: &str) -> String {
    let Some(body) = table_body(show_create) else {
        return show_create.to_string();
    };
    let toks: Vec<Token> = Lexer::new(&show_create[body.close..]).collect();
    let mut cuts = Vec::new();
    for (i, t) in toks.iter().enumerate() {
        if t.is_word("AUTO_INCREMENT")
            && toks.get(i + 1).is_some_and(|t| t.is_punct(b'='))
            && toks.get(i + 2).is_some_and(|t| t.kind == TokKind::Word)
        {
            let start = body.close + t.start;
            let before = &show_create[..start];
            let ws = before.len() - before.trim_end().len();
            cuts.push((start - ws, body.close + toks[i + 2].end));
        }
    }
    apply_cuts(show_create, &cuts)
}

fn apply_cuts(s: &str, cuts: &[(usize, usize)]) -> String {
    let mut out = String::with_capacity(s.len());
    let mut at = 0;
    for &(start, end) in cuts {
        out.push_str(&s[at..start]);
        at = end;
    }
    out.push_str(&s[at..]);
    out
}

// ---------------------------------------------------------------------------------------------
// Table bodies

/// The column/index list of a `CREATE TABLE`: byte spans of its top-level items (trimmed) and
/// the offset of the closing parenthesis.
struct TableBody {
    items: Vec<(usize, usize)>,
    close: usize,
}

fn table_body(sql: &str) -> Option<TableBody> {
    let mut lexer = Lexer::new(sql);
    // The first parenthesis is the start of the definition list (names are quoted).
    let open = lexer.by_ref().find(|t| t.is_punct(b'('))?;
    let mut depth = 1usize;
    let mut boundaries = vec![open.end];
    let mut close = None;
    for t in lexer {
        match t.kind {
            TokKind::Punct(b'(') => depth += 1,
            TokKind::Punct(b')') => {
                depth -= 1;
                if depth == 0 {
                    close = Some(t.start);
                    break;
                }
            }
            TokKind::Punct(b',') if depth == 1 => boundaries.push(t.start),
            _ => {}
        }
    }
    let close = close?;
    boundaries.push(close);
    let mut items = Vec::new();
    for w in boundaries.windows(2) {
        // Skip the comma itself (every boundary but the first is one).
        let start = if w[0] == open.end { w[0] } else { w[0] + 1 };
        let raw = &sql[start..w[1]];
        let lead = raw.len() - raw.trim_start().len();
        let trimmed = raw.trim();
        if trimmed.is_empty() {
            continue;
        }
        items.push((start + lead, start + lead + trimmed.len()));
    }
    Some(TableBody { items, close })
}

#[derive(Debug, PartialEq)]
enum ItemKind {
    Column {
        name: String,
        auto_increment: bool,
    },
    /// `KEY`/`INDEX`/`SPATIAL`: may be deferred.
    SecondaryKey {
        columns: Vec<String>,
    },
    /// `PRIMARY KEY`, `UNIQUE`, `FULLTEXT`: stays.
    KeptKey {
        columns: Vec<String>,
    },
    ForeignKey,
    /// `CHECK`, `PERIOD FOR`, anything unknown: stays.
    Other,
}

fn classify(item: &str) -> ItemKind {
    let toks: Vec<Token> = Lexer::new(item).collect();
    let Some(first) = toks.first() else {
        return ItemKind::Other;
    };
    let word = |i: usize, w: &str| toks.get(i).is_some_and(|t| t.is_word(w));
    if first.kind == TokKind::Word {
        if word(0, "KEY") || word(0, "INDEX") || word(0, "SPATIAL") {
            return ItemKind::SecondaryKey {
                columns: key_columns(&toks),
            };
        }
        if word(0, "PRIMARY") || word(0, "UNIQUE") || word(0, "FULLTEXT") {
            return ItemKind::KeptKey {
                columns: key_columns(&toks),
            };
        }
        if word(0, "FOREIGN") {
            return ItemKind::ForeignKey;
        }
        if word(0, "CONSTRAINT") {
            // CONSTRAINT [name] FOREIGN KEY | CHECK | UNIQUE | PRIMARY KEY
            let at = if toks
                .get(1)
                .is_some_and(|t| t.kind == TokKind::Word && is_constraint_kw(t))
            {
                1
            } else {
                2
            };
            if word(at, "FOREIGN") {
                return ItemKind::ForeignKey;
            }
            if word(at, "UNIQUE") || word(at, "PRIMARY") {
                return ItemKind::KeptKey {
                    columns: key_columns(&toks),
                };
            }
            return ItemKind::Other;
        }
        if word(0, "CHECK") || word(0, "PERIOD") {
            return ItemKind::Other;
        }
    }
    if first.is_name() {
        let auto_increment = toks[1..].iter().any(|t| t.is_word("AUTO_INCREMENT"));
        return ItemKind::Column {
            name: first.ident(),
            auto_increment,
        };
    }
    ItemKind::Other
}

fn is_constraint_kw(t: &Token) -> bool {
    ["FOREIGN", "CHECK", "UNIQUE", "PRIMARY"]
        .iter()
        .any(|w| t.is_word(w))
}

/// The column names of a key definition, in order (expressions are skipped).
fn key_columns(toks: &[Token]) -> Vec<String> {
    let Some(open) = toks.iter().position(|t| t.is_punct(b'(')) else {
        return Vec::new();
    };
    let mut depth = 0usize;
    let mut columns = Vec::new();
    let mut expect_name = true;
    for t in &toks[open..] {
        match t.kind {
            TokKind::Punct(b'(') => {
                depth += 1;
                if depth > 1 {
                    expect_name = false;
                }
                continue;
            }
            TokKind::Punct(b')') => {
                depth -= 1;
                if depth == 0 {
                    break;
                }
                continue;
            }
            TokKind::Punct(b',') if depth == 1 => {
                expect_name = true;
                continue;
            }
            _ => {}
        }
        if depth == 1 && expect_name {
            if t.is_name() {
                columns.push(t.ident());
            }
            expect_name = false;
        }
    }
    columns
}

// ---------------------------------------------------------------------------------------------
// A small SQL lexer: enough to find the structure of DDL without being fooled by its contents.

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TokKind {
    /// An unquoted word: keyword, name or number.
    Word,
    /// A backtick-quoted identifier.
    QuotedIdent,
    /// A string literal in single or double quotes.
    Str,
    /// Any other single (ASCII) character.
    Punct(u8),
}

#[derive(Debug, Clone)]
struct Token<'a> {
    kind: TokKind,
    text: &'a str,
    start: usize,
    end: usize,
}

impl Token<'_> {
    fn is_word(&self, w: &str) -> bool {
        self.kind == TokKind::Word && self.text.eq_ignore_ascii_case(w)
    }

    fn is_punct(&self, c: u8) -> bool {
        self.kind == TokKind::Punct(c)
    }

    fn is_name(&self) -> bool {
        matches!(self.kind, TokKind::Word | TokKind::QuotedIdent)
    }

    /// The identifier this token names (backticks removed and undoubled).
    fn ident(&self) -> String {
        match self.kind {
            TokKind::QuotedIdent => {
                let inner = self.text.strip_prefix('`').unwrap_or(self.text);
                inner.strip_suffix('`').unwrap_or(inner).replace("``", "`")
            }
            TokKind::Str => {
                let q = if self.text.starts_with('"') {
                    '"'
                } else {
                    '\''
                };
                let inner = self.text.strip_prefix(q).unwrap_or(self.text);
                inner.strip_suffix(q).unwrap_or(inner).to_string()
            }
            _ => self.text.to_string(),
        }
    }
}

/// Tokens of SQL text, skipping whitespace and comments. Executable comments (`/*!50100 ... */`,
/// `/*M!100100 ... */`) are read through, as the server does.
struct Lexer<'a> {
    s: &'a str,
    pos: usize,
    /// Nesting of executable comments we are inside.
    exec_comments: usize,
}

impl<'a> Lexer<'a> {
    fn new(s: &'a str) -> Self {
        Lexer {
            s,
            pos: 0,
            exec_comments: 0,
        }
    }

    fn skip_ignorable(&mut self) {
        let b = self.s.as_bytes();
        loop {
            while self.pos < b.len() && b[self.pos].is_ascii_whitespace() {
                self.pos += 1;
            }
            let rest = &b[self.pos..];
            if rest.starts_with(b"/*!") || rest.starts_with(b"/*M!") {
                self.pos += if rest[2] == b'!' { 3 } else { 4 };
                while self.pos < b.len() && b[self.pos].is_ascii_digit() {
                    self.pos += 1;
                }
                self.exec_comments += 1;
            } else if rest.starts_with(b"/*") {
                self.pos = match find(b, self.pos + 2, b"*/") {
                    Some(p) => p + 2,
                    None => b.len(),
                };
            } else if rest.starts_with(b"*/") && self.exec_comments > 0 {
                self.exec_comments -= 1;
                self.pos += 2;
            } else if rest.starts_with(b"#")
                || (rest.starts_with(b"--") && rest.get(2).is_none_or(|c| c.is_ascii_whitespace()))
            {
                self.pos = match b[self.pos..].iter().position(|&c| c == b'\n') {
                    Some(p) => self.pos + p + 1,
                    None => b.len(),
                };
            } else {
                return;
            }
        }
    }
}

fn find(hay: &[u8], from: usize, needle: &[u8]) -> Option<usize> {
    hay.get(from..)?
        .windows(needle.len())
        .position(|w| w == needle)
        .map(|p| p + from)
}

fn is_word_byte(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_' || c == b'$' || c >= 0x80
}

impl<'a> Iterator for Lexer<'a> {
    type Item = Token<'a>;

    fn next(&mut self) -> Option<Token<'a>> {
        self.skip_ignorable();
        let b = self.s.as_bytes();
        let start = self.pos;
        let c = *b.get(start)?;
        let kind = match c {
            b'`' => {
                let mut i = start + 1;
                loop {
                    match b.get(i) {
                        None => break,
                        Some(b'`') if b.get(i + 1) == Some(&b'`') => i += 2,
                        Some(b'`') => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                self.pos = i;
                TokKind::QuotedIdent
            }
            b'\'' | b'"' => {
                let mut i = start + 1;
                loop {
                    match b.get(i) {
                        None => break,
                        Some(b'\\') => i += 2,
                        Some(&q) if q == c && b.get(i + 1) == Some(&c) => i += 2,
                        Some(&q) if q == c => {
                            i += 1;
                            break;
                        }
                        Some(_) => i += 1,
                    }
                }
                self.pos = i.min(b.len());
                TokKind::Str
            }
            c if is_word_byte(c) => {
                let mut i = start;
                while i < b.len() && is_word_byte(b[i]) {
                    i += 1;
                }
                self.pos = i;
                TokKind::Word
            }
            c => {
                self.pos = start + 1;
                TokKind::Punct(c)
            }
        };
        Some(Token {
            kind,
            text: &self.s[start..self.pos],
            start,
            end: self.pos,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(v: &[&str]) -> Vec<String> {
        v.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn quoting() {
        assert_eq!(quote_ident("plain"), "`plain`");
        assert_eq!(quote_ident("we`ird"), "`we``ird`");
        assert_eq!(quote_ident("sp ace é"), "`sp ace é`");
        assert_eq!(quote_string("it's"), r"'it\'s'");
        assert_eq!(
            quote_string("a\\b\0c\nd\re\x1af\"g"),
            r#"'a\\b\0c\nd\re\Zf\"g'"#
        );
        assert_eq!(quote_string("中文"), "'中文'");
    }

    #[test]
    fn splits_mariadb_table() {
        let sql = "CREATE TABLE `parent` (
  `id` int(11) NOT NULL,
  `name` varchar(50) NOT NULL,
  `price` decimal(10,2) DEFAULT NULL CHECK (`price` >= 0),
  `total_s` decimal(12,2) GENERATED ALWAYS AS (`price` * `qty`) STORED,
  `secret` int(11) INVISIBLE DEFAULT 7,
  `body` text DEFAULT NULL COMMENT 'a KEY, (in) a comment',
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_name` (`name`),
  KEY `idx_total` (`total_s`),
  KEY `idx multi` (`qty`,`name`(10)),
  FULLTEXT KEY `ft_body` (`body`),
  CONSTRAINT `chk_qty` CHECK (`qty` >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='KEY `x` (y),'";
        let s = split_create_table(sql);
        assert_eq!(
            s.create,
            "CREATE TABLE `parent` (
  `id` int(11) NOT NULL,
  `name` varchar(50) NOT NULL,
  `price` decimal(10,2) DEFAULT NULL CHECK (`price` >= 0),
  `total_s` decimal(12,2) GENERATED ALWAYS AS (`price` * `qty`) STORED,
  `secret` int(11) INVISIBLE DEFAULT 7,
  `body` text DEFAULT NULL COMMENT 'a KEY, (in) a comment',
  PRIMARY KEY (`id`),
  UNIQUE KEY `uq_name` (`name`),
  FULLTEXT KEY `ft_body` (`body`),
  CONSTRAINT `chk_qty` CHECK (`qty` >= 0)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci COMMENT='KEY `x` (y),'"
        );
        assert_eq!(
            s.deferred_indexes,
            keys(&[
                "ADD KEY `idx_total` (`total_s`)",
                "ADD KEY `idx multi` (`qty`,`name`(10))"
            ])
        );
        assert!(s.foreign_keys.is_empty());
    }

    #[test]
    fn foreign_keys_and_weird_names() {
        let sql = "CREATE TABLE `we``ird` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `parent_id` int(11) NOT NULL,
  `we``ird col` varchar(20) DEFAULT NULL COMMENT 'KEY (x), CONSTRAINT `c` FOREIGN KEY',
  PRIMARY KEY (`id`),
  KEY `by ``parent`` →` (`parent_id`),
  CONSTRAINT `fk child→parent` FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`) ON DELETE CASCADE,
  CONSTRAINT `fk2` FOREIGN KEY (`we``ird col`) REFERENCES `other db`.`t,x` (`c`)
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=latin1";
        let s = split_create_table(sql);
        assert_eq!(
            s.create,
            "CREATE TABLE `we``ird` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `parent_id` int(11) NOT NULL,
  `we``ird col` varchar(20) DEFAULT NULL COMMENT 'KEY (x), CONSTRAINT `c` FOREIGN KEY',
  PRIMARY KEY (`id`)
) ENGINE=InnoDB AUTO_INCREMENT=7 DEFAULT CHARSET=latin1"
        );
        assert_eq!(
            s.deferred_indexes,
            keys(&["ADD KEY `by ``parent`` →` (`parent_id`)"])
        );
        assert_eq!(
            s.foreign_keys,
            keys(&[
                "ADD CONSTRAINT `fk child→parent` FOREIGN KEY (`parent_id`) REFERENCES `parent` (`id`) ON DELETE CASCADE",
                "ADD CONSTRAINT `fk2` FOREIGN KEY (`we``ird col`) REFERENCES `other db`.`t,x` (`c`)",
            ])
        );
    }

    #[test]
    fn foreign_keys_only_keeps_the_indexes() {
        let sql = "CREATE TABLE `c` (
  `id` int(11) NOT NULL,
  `p` int(11) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `by_p` (`p`),
  CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `parent` (`id`)
) ENGINE=InnoDB";
        let s = split_foreign_keys(sql);
        assert_eq!(
            s.create,
            "CREATE TABLE `c` (
  `id` int(11) NOT NULL,
  `p` int(11) NOT NULL,
  PRIMARY KEY (`id`),
  KEY `by_p` (`p`)
) ENGINE=InnoDB"
        );
        assert!(s.deferred_indexes.is_empty());
        assert_eq!(
            s.foreign_keys,
            keys(&["ADD CONSTRAINT `fk` FOREIGN KEY (`p`) REFERENCES `parent` (`id`)"])
        );
        // Nothing to hold back: the text is unchanged.
        let plain =
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  KEY `k` (`id`)\n) ENGINE=InnoDB";
        assert_eq!(split_foreign_keys(plain).create, plain);
    }

    #[test]
    fn auto_increment_keys_stay_in_order() {
        // InnoDB: AUTO_INCREMENT must lead an index; PRIMARY KEY (k, id) does not count.
        let sql = "CREATE TABLE `geo` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `g` geometry NOT NULL,
  `k` int(11) NOT NULL,
  PRIMARY KEY (`k`,`id`),
  SPATIAL KEY `sp_g` (`g`),
  KEY `k_idx` (`k`,`id`),
  KEY `auto_first` (`ID`,`k`),
  KEY `after` (`k`)
) ENGINE=InnoDB";
        let s = split_create_table(sql);
        assert_eq!(
            s.create,
            "CREATE TABLE `geo` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `g` geometry NOT NULL,
  `k` int(11) NOT NULL,
  PRIMARY KEY (`k`,`id`),
  SPATIAL KEY `sp_g` (`g`),
  KEY `k_idx` (`k`,`id`),
  KEY `auto_first` (`ID`,`k`)
) ENGINE=InnoDB"
        );
        assert_eq!(s.deferred_indexes, keys(&["ADD KEY `after` (`k`)"]));

        // A unique key leading with the column covers it: everything non-unique may go.
        let sql = "CREATE TABLE `t` (
  `id` int(11) NOT NULL AUTO_INCREMENT,
  `b` int(11) DEFAULT NULL,
  UNIQUE KEY `id` (`id`),
  KEY `b` (`b`),
  KEY `id_b` (`b`,`id`)
) ENGINE=InnoDB AUTO_INCREMENT=50";
        let s = split_create_table(sql);
        assert_eq!(
            s.deferred_indexes,
            keys(&["ADD KEY `b` (`b`)", "ADD KEY `id_b` (`b`,`id`)"])
        );

        // MyISAM: the column second in a key is enough, so that key stays when nothing else
        // holds the column.
        let sql = "CREATE TABLE `m` (
  `grp` int(11) NOT NULL,
  `id` int(11) NOT NULL AUTO_INCREMENT,
  KEY `g` (`grp`,`id`),
  KEY `x` (`grp`)
) ENGINE=MyISAM";
        let s = split_create_table(sql);
        assert_eq!(s.deferred_indexes, keys(&["ADD KEY `x` (`grp`)"]));
    }

    #[test]
    fn partitions_and_unchanged_text() {
        let sql = "CREATE TABLE `parted` (
  `id` int(11) NOT NULL,
  `d` date NOT NULL,
  `v` int(11) DEFAULT NULL,
  PRIMARY KEY (`id`,`d`),
  KEY `v_idx` (`v`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
 PARTITION BY RANGE (year(`d`))
(PARTITION `p2020` VALUES LESS THAN (2021) ENGINE = InnoDB,
 PARTITION `pmax` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)";
        let s = split_create_table(sql);
        assert_eq!(
            s.create,
            "CREATE TABLE `parted` (
  `id` int(11) NOT NULL,
  `d` date NOT NULL,
  `v` int(11) DEFAULT NULL,
  PRIMARY KEY (`id`,`d`)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_unicode_ci
 PARTITION BY RANGE (year(`d`))
(PARTITION `p2020` VALUES LESS THAN (2021) ENGINE = InnoDB,
 PARTITION `pmax` VALUES LESS THAN MAXVALUE ENGINE = InnoDB)"
        );
        assert_eq!(s.deferred_indexes, keys(&["ADD KEY `v_idx` (`v`)"]));

        for same in [
            "CREATE TABLE `t` (\n  `id` int(11) NOT NULL,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB",
            "CREATE SEQUENCE `s` start with 1 minvalue 1 maxvalue 9223372036854775806 increment by 1 cache 1000 nocycle ENGINE=InnoDB",
            "CREATE TABLE `t` (\n  `a` int(11) DEFAULT NULL\n) ENGINE=InnoDB WITH SYSTEM VERSIONING",
            "",
            "CREATE TABLE `broken` (\n  `a` int,",
        ] {
            let s = split_create_table(same);
            assert_eq!(s, SplitCreate { create: same.to_string(), ..Default::default() }, "{same}");
        }
    }

    #[test]
    fn mysql_flavored_output() {
        let sql = "CREATE TABLE `m8` (
  `id` int NOT NULL AUTO_INCREMENT,
  `name` varchar(20) DEFAULT NULL,
  `p` int DEFAULT NULL,
  PRIMARY KEY (`id`),
  KEY `f` ((lower(`name`))),
  KEY `inv` (`name`) /*!80000 INVISIBLE */,
  KEY `p` (`p`) USING BTREE COMMENT 'x, y',
  CONSTRAINT `m8_fk` FOREIGN KEY (`p`) REFERENCES `m8` (`id`),
  CONSTRAINT `m8_chk_1` CHECK ((`p` > 0)) /*!80016 NOT ENFORCED */
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci
/*!50100 PARTITION BY KEY (id) PARTITIONS 2 */";
        let s = split_create_table(sql);
        assert_eq!(
            s.create,
            "CREATE TABLE `m8` (
  `id` int NOT NULL AUTO_INCREMENT,
  `name` varchar(20) DEFAULT NULL,
  `p` int DEFAULT NULL,
  PRIMARY KEY (`id`),
  CONSTRAINT `m8_chk_1` CHECK ((`p` > 0)) /*!80016 NOT ENFORCED */
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_0900_ai_ci
/*!50100 PARTITION BY KEY (id) PARTITIONS 2 */"
        );
        assert_eq!(
            s.deferred_indexes,
            keys(&[
                "ADD KEY `f` ((lower(`name`)))",
                "ADD KEY `inv` (`name`) /*!80000 INVISIBLE */",
                "ADD KEY `p` (`p`) USING BTREE COMMENT 'x, y'",
            ])
        );
        assert_eq!(
            s.foreign_keys,
            keys(&["ADD CONSTRAINT `m8_fk` FOREIGN KEY (`p`) REFERENCES `m8` (`id`)"])
        );
    }

    #[test]
    fn unicode_and_gbk_names() {
        let sql = "CREATE TABLE `gbk_表` (
  `id` int(11) NOT NULL,
  `列` int(11) DEFAULT NULL,
  `s` varchar(10) DEFAULT '键,(' COMMENT 'it''s \\' KEY',
  PRIMARY KEY (`id`),
  KEY `索引` (`列`),
  INDEX `i2` (`s`)
) ENGINE=InnoDB DEFAULT CHARSET=gbk COLLATE=gbk_chinese_ci";
        let s = split_create_table(sql);
        assert_eq!(
            s.deferred_indexes,
            keys(&["ADD KEY `索引` (`列`)", "ADD INDEX `i2` (`s`)"])
        );
        assert!(s.create.ends_with(
            "  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=gbk COLLATE=gbk_chinese_ci"
        ));
        assert!(s.create.contains("COMMENT 'it''s \\' KEY',\n"));
    }

    #[test]
    fn periods_and_unique_without_overlaps_stay() {
        let sql = "CREATE TABLE `p` (
  `id` int(11) NOT NULL,
  `s` date NOT NULL,
  `e` date NOT NULL,
  `k` int(11) DEFAULT NULL,
  PERIOD FOR `app` (`s`, `e`),
  UNIQUE KEY `u` (`id`,`app` WITHOUT OVERLAPS),
  KEY `k` (`k`) IGNORED,
  CONSTRAINT `CONSTRAINT_1` CHECK (`s` < `e`)
) ENGINE=InnoDB";
        let s = split_create_table(sql);
        assert_eq!(s.deferred_indexes, keys(&["ADD KEY `k` (`k`) IGNORED"]));
        assert!(s.create.contains("PERIOD FOR `app` (`s`, `e`),\n  UNIQUE KEY `u` (`id`,`app` WITHOUT OVERLAPS),\n  CONSTRAINT"));
    }

    #[test]
    fn classifies_items() {
        assert_eq!(
            classify("`id` int(11) NOT NULL AUTO_INCREMENT"),
            ItemKind::Column {
                name: "id".into(),
                auto_increment: true
            }
        );
        assert_eq!(
            classify("`x` varchar(9) DEFAULT 'AUTO_INCREMENT' COMMENT 'AUTO_INCREMENT'"),
            ItemKind::Column {
                name: "x".into(),
                auto_increment: false
            }
        );
        assert_eq!(
            classify("UNIQUE KEY `u` (`a`(10),`b`)"),
            ItemKind::KeptKey {
                columns: keys(&["a", "b"])
            }
        );
        assert_eq!(
            classify("FOREIGN KEY (`a`) REFERENCES `b` (`c`)"),
            ItemKind::ForeignKey
        );
        assert_eq!(
            classify("CONSTRAINT FOREIGN KEY (`a`) REFERENCES `b` (`c`)"),
            ItemKind::ForeignKey
        );
        assert_eq!(classify("CONSTRAINT `c` CHECK (`a` > 0)"), ItemKind::Other);
        assert_eq!(
            classify("CONSTRAINT `key` UNIQUE (`a`)"),
            ItemKind::KeptKey {
                columns: keys(&["a"])
            }
        );
    }

    #[test]
    fn databases() {
        let show = "CREATE DATABASE `src db` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci */";
        assert_eq!(
            create_database_sql(show, "new `db`"),
            "CREATE DATABASE IF NOT EXISTS `new ``db``` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci"
        );
        assert_eq!(
            database_collation(show).as_deref(),
            Some("utf8mb4_unicode_ci")
        );
        let show = "CREATE DATABASE `d` /*!40100 DEFAULT CHARACTER SET latin1 COLLATE latin1_swedish_ci */ COMMENT 'it''s, mine'";
        assert_eq!(
            alter_database_sql(show, "d").unwrap(),
            "ALTER DATABASE `d` CHARACTER SET latin1 COLLATE latin1_swedish_ci COMMENT 'it''s, mine'"
        );
        // MySQL 8 with encryption option
        let show = "CREATE DATABASE `m` /*!40100 DEFAULT CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci */ /*!80016 DEFAULT ENCRYPTION='N' */";
        assert_eq!(
            create_database_sql(show, "m"),
            "CREATE DATABASE IF NOT EXISTS `m` CHARACTER SET utf8mb4 COLLATE utf8mb4_0900_ai_ci"
        );
        assert_eq!(
            create_database_sql("CREATE DATABASE `x`", "y"),
            "CREATE DATABASE IF NOT EXISTS `y`"
        );
        assert_eq!(alter_database_sql("CREATE DATABASE `x`", "y"), None);
    }

    #[test]
    fn triggers() {
        let cases = [
            (
                "CREATE DEFINER=`root`@`localhost` TRIGGER `src db`.trg_lat BEFORE UPDATE ON `src db`.parent FOR EACH ROW SET NEW.name = CONCAT(NEW.name, 'ö')",
                "CREATE DEFINER=`root`@`localhost` TRIGGER trg_lat BEFORE UPDATE ON parent FOR EACH ROW SET NEW.name = CONCAT(NEW.name, 'ö')",
            ),
            (
                "CREATE DEFINER=`TRIGGER`@`%` trigger `t``1` after insert on `we``ird` for each row follows `t0` BEGIN INSERT INTO db.log VALUES (1); END",
                "CREATE DEFINER=`TRIGGER`@`%` trigger `t``1` after insert on `we``ird` for each row BEGIN INSERT INTO db.log VALUES (1); END",
            ),
            (
                "CREATE TRIGGER IF NOT EXISTS d.t BEFORE INSERT OR UPDATE ON d.x FOR EACH ROW PRECEDES `other` SET @a = 1",
                "CREATE TRIGGER IF NOT EXISTS t BEFORE INSERT OR UPDATE ON x FOR EACH ROW SET @a = 1",
            ),
            (
                "CREATE DEFINER='root'@'localhost' TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 'ON db.x'",
                "CREATE DEFINER='root'@'localhost' TRIGGER t BEFORE INSERT ON x FOR EACH ROW SET NEW.a = 'ON db.x'",
            ),
            ("SELECT 1", "SELECT 1"),
        ];
        for (input, want) in cases {
            assert_eq!(trigger_for_restore(input), want);
        }
    }

    #[test]
    fn users() {
        let cases = [
            (
                "CREATE USER `app`@`%` IDENTIFIED BY PASSWORD '*D82'",
                "CREATE USER IF NOT EXISTS `app`@`%` IDENTIFIED BY PASSWORD '*D82'",
            ),
            ("CREATE ROLE `r`", "CREATE ROLE IF NOT EXISTS `r`"),
            (
                "create user if not exists 'a'@'b'",
                "create user if not exists 'a'@'b'",
            ),
            ("GRANT USAGE ON *.* TO `a`", "GRANT USAGE ON *.* TO `a`"),
        ];
        for (input, want) in cases {
            assert_eq!(create_if_not_exists(input), want);
        }
    }

    #[test]
    fn grants() {
        let cases = [
            (
                "GRANT USAGE ON *.* TO `app`@`%` IDENTIFIED BY PASSWORD '*D82' WITH MAX_QUERIES_PER_HOUR 10",
                "GRANT USAGE ON *.* TO `app`@`%` WITH MAX_QUERIES_PER_HOUR 10",
            ),
            (
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` IDENTIFIED VIA mysql_native_password USING 'invalid' OR unix_socket WITH GRANT OPTION",
                "GRANT ALL PRIVILEGES ON *.* TO `root`@`localhost` WITH GRANT OPTION",
            ),
            (
                "GRANT USAGE ON *.* TO `s`@`%` IDENTIFIED BY PASSWORD '*AB' REQUIRE SSL",
                "GRANT USAGE ON *.* TO `s`@`%` REQUIRE SSL",
            ),
            (
                "GRANT USAGE ON *.* TO `identified`@`%` IDENTIFIED VIA ed25519 USING 'x with y'",
                "GRANT USAGE ON *.* TO `identified`@`%`",
            ),
            ("GRANT SELECT ON `d`.* TO `r`", "GRANT SELECT ON `d`.* TO `r`"),
            ("SET DEFAULT ROLE `r` FOR `u`@`%`", "SET DEFAULT ROLE `r` FOR `u`@`%`"),
        ];
        for (input, want) in cases {
            assert_eq!(grant_without_credentials(input), want);
        }
    }

    #[test]
    fn auto_increment_option() {
        let sql = "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB AUTO_INCREMENT=50 DEFAULT CHARSET=latin1 COMMENT='AUTO_INCREMENT=3'";
        assert_eq!(
            strip_auto_increment_option(sql),
            "CREATE TABLE `t` (\n  `id` int NOT NULL AUTO_INCREMENT,\n  PRIMARY KEY (`id`)\n) ENGINE=InnoDB DEFAULT CHARSET=latin1 COMMENT='AUTO_INCREMENT=3'"
        );
    }

    #[test]
    fn lexer_edge_cases() {
        let toks: Vec<_> =
            Lexer::new("a /* x ( */ `b``c` 'd\\'e' \"f\" -- g\n# h\n/*!50100 i */ j--k")
                .map(|t| t.text.to_string())
                .collect();
        assert_eq!(
            toks,
            ["a", "`b``c`", "'d\\'e'", "\"f\"", "i", "j", "-", "-", "k"]
        );
        // Unterminated quotes end at the end of the text rather than panicking.
        assert_eq!(Lexer::new("'abc").count(), 1);
        assert_eq!(Lexer::new("`abc").count(), 1);
        assert_eq!(Lexer::new("'ab\\").count(), 1);
    }
}
