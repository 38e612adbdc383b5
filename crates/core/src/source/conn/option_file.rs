//! MySQL option files (`my.cnf`), read with the client library's own rules.
//!
//! [`OptionReader`] collects the options of the wanted `[groups]` from a sequence of files in
//! reading order (later occurrences win, whatever group they are in, as with libmysqlclient).
//! The syntax follows `my_default.cc`: `#`/`;` comment lines, `#` comments at the end of a line
//! outside quotes, values optionally quoted with `'` or `"`, the escapes `\n \t \r \b \s \\ \' \"`,
//! `_` and `-` interchangeable in option names, a `loose-` prefix ignored, and the `!include FILE`
//! and `!includedir DIR` directives (a directory contributes its `*.cnf` files in name order).
//!
//! Like the client library, a world-writable file is ignored, and a missing or unreadable standard
//! file is skipped; an explicitly requested file (`--defaults-file`) must be readable. A file we
//! take a password from that other users can read earns a warning.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use crate::{Error, Result};

/// libmysqlclient gives up after this many nested `!include`s; so do we (it also stops cycles).
const MAX_INCLUDE_DEPTH: usize = 10;

/// One `key[=value]` line of a wanted group.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct RawOption {
    /// Lower-case, `-` for `_`, without a `loose-` prefix.
    pub key: String,
    /// `None` for a bare `key` line (a boolean switch, or "prompt me" for `password`).
    pub value: Option<String>,
    /// The group it was found in, lower-case.
    pub group: String,
    pub path: PathBuf,
    pub line: usize,
}

/// Reads option files, keeping the options of `groups` in reading order.
pub(super) struct OptionReader<'a> {
    groups: &'a [&'a str],
    pub options: Vec<RawOption>,
    /// Everything we warned about (also sent to `tracing`), for callers and tests.
    pub warnings: Vec<String>,
    password_checked: HashSet<PathBuf>,
}

impl<'a> OptionReader<'a> {
    pub fn new(groups: &'a [&'a str]) -> Self {
        OptionReader {
            groups,
            options: Vec::new(),
            warnings: Vec::new(),
            password_checked: HashSet::new(),
        }
    }

    /// Reads `path`. A missing or unreadable file is an error only when `required` (a file the
    /// user named); otherwise it is skipped like libmysqlclient skips absent standard files.
    pub fn read(&mut self, path: &Path, required: bool) -> Result<()> {
        self.read_at_depth(path, required, 0)
    }

    fn read_at_depth(&mut self, path: &Path, required: bool, depth: usize) -> Result<()> {
        let bytes = match std::fs::read(path) {
            Ok(bytes) => bytes,
            Err(e) if required => {
                return Err(Error::with_source(
                    crate::ErrorKind::Usage,
                    format!("cannot read option file {}", path.display()),
                    e,
                ))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
            Err(e) => {
                self.warn(format!("ignoring option file {}: {e}", path.display()));
                return Ok(());
            }
        };
        if is_world_writable(path) {
            self.warn(format!(
                "ignoring world-writable option file {} (anyone could change it); \
                 fix with: chmod o-w {}",
                path.display(),
                path.display()
            ));
            return Ok(());
        }
        let text = String::from_utf8_lossy(&bytes);
        self.parse(&text, path, depth)
    }

    /// Parses the text of one file; `path` names it in messages and anchors relative includes.
    pub fn parse(&mut self, text: &str, path: &Path, depth: usize) -> Result<()> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // `None` before the first group header; `Some(wanted)` after one.
        let mut group: Option<(String, bool)> = None;
        for (index, raw_line) in text.lines().enumerate() {
            let line_no = index + 1;
            let line = raw_line.trim();
            if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
                continue;
            }
            if let Some(directive) = line.strip_prefix('!') {
                self.directive(directive, path, line_no, depth)?;
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let Some(end) = rest.find(']') else {
                    return Err(syntax(path, line_no, "a group header needs a closing `]`"));
                };
                let name = rest[..end].trim().to_ascii_lowercase();
                let wanted = self.groups.iter().any(|g| g.eq_ignore_ascii_case(&name));
                group = Some((name, wanted));
                continue;
            }
            let Some((group_name, wanted)) = &group else {
                return Err(syntax(path, line_no, "an option before any [group] header"));
            };
            if !wanted {
                continue;
            }
            let line = remove_end_comment(line).trim_end();
            if line.is_empty() {
                continue;
            }
            let (key, value) = match line.find('=') {
                Some(eq) => (line[..eq].trim(), Some(unquote(line[eq + 1..].trim()))),
                None => (line, None),
            };
            let key = normalize_key(key);
            if key.is_empty() {
                return Err(syntax(path, line_no, "an option without a name"));
            }
            if key == "password" && value.is_some() {
                self.check_password_file_mode(path);
            }
            self.options.push(RawOption {
                key,
                value,
                group: group_name.clone(),
                path: path.to_path_buf(),
                line: line_no,
            });
        }
        Ok(())
    }

    fn directive(&mut self, directive: &str, path: &Path, line: usize, depth: usize) -> Result<()> {
        let (word, arg) = match directive.find(char::is_whitespace) {
            Some(i) => (&directive[..i], directive[i..].trim()),
            None => (directive, ""),
        };
        let word = word.to_ascii_lowercase();
        if word != "include" && word != "includedir" {
            self.warn(format!(
                "{}:{line}: ignoring unknown directive !{word}",
                path.display()
            ));
            return Ok(());
        }
        if arg.is_empty() {
            return Err(syntax(path, line, &format!("!{word} needs a path")));
        }
        if depth + 1 > MAX_INCLUDE_DEPTH {
            return Err(syntax(
                path,
                line,
                &format!("includes nested deeper than {MAX_INCLUDE_DEPTH} levels (a cycle?)"),
            ));
        }
        // libmysqlclient takes a relative path relative to the working directory; relative to
        // the including file is what people mean, and absolute paths (the norm) are unaffected.
        let target = match path.parent() {
            Some(dir) if Path::new(arg).is_relative() => dir.join(arg),
            _ => PathBuf::from(arg),
        };
        if word == "include" {
            if !target.exists() {
                self.warn(format!(
                    "{}:{line}: included file {} does not exist",
                    path.display(),
                    target.display()
                ));
                return Ok(());
            }
            return self.read_at_depth(&target, false, depth + 1);
        }
        let entries = match std::fs::read_dir(&target) {
            Ok(entries) => entries,
            Err(e) => {
                self.warn(format!(
                    "{}:{line}: cannot read included directory {}: {e}",
                    path.display(),
                    target.display()
                ));
                return Ok(());
            }
        };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|entry| entry.ok().map(|entry| entry.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "cnf") && p.is_file())
            .collect();
        files.sort();
        for file in files {
            self.read_at_depth(&file, false, depth + 1)?;
        }
        Ok(())
    }

    fn check_password_file_mode(&mut self, path: &Path) {
        if !self.password_checked.insert(path.to_path_buf()) {
            return;
        }
        if is_world_readable(path) {
            self.warn(format!(
                "option file {} holds a password and is readable by every user; \
                 fix with: chmod 600 {}",
                path.display(),
                path.display()
            ));
        }
    }

    fn warn(&mut self, message: String) {
        tracing::warn!("{message}");
        self.warnings.push(message);
    }
}

fn syntax(path: &Path, line: usize, what: &str) -> Error {
    Error::usage(format!("option file {}:{line}: {what}", path.display()))
}

/// `Some_Option` → `some-option`, `loose-ssl-ca` → `ssl-ca`.
pub(super) fn normalize_key(key: &str) -> String {
    let key = key.trim().to_ascii_lowercase().replace('_', "-");
    match key.strip_prefix("loose-") {
        Some(rest) => rest.to_string(),
        None => key,
    }
}

/// Cuts a `#` comment that is outside quotes (libmysqlclient's `remove_end_comment`).
fn remove_end_comment(line: &str) -> &str {
    let mut quote: Option<char> = None;
    let mut escape = false;
    for (i, c) in line.char_indices() {
        if (c == '\'' || c == '"') && !escape {
            match quote {
                None => quote = Some(c),
                Some(q) if q == c => quote = None,
                Some(_) => {}
            }
        }
        if quote.is_none() && c == '#' {
            return &line[..i];
        }
        escape = quote.is_some() && c == '\\' && !escape;
    }
    line
}

/// Strips one pair of matching outer quotes, then resolves the escape sequences.
fn unquote(value: &str) -> String {
    let bytes = value.as_bytes();
    let inner = if bytes.len() >= 2
        && (bytes[0] == b'"' || bytes[0] == b'\'')
        && bytes[bytes.len() - 1] == bytes[0]
    {
        &value[1..value.len() - 1]
    } else {
        value
    };
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some('b') => out.push('\u{8}'),
            Some('s') => out.push(' '),
            Some(c @ ('"' | '\'' | '\\')) => out.push(c),
            Some(other) => {
                out.push('\\');
                out.push(other);
            }
            None => out.push('\\'),
        }
    }
    out
}

/// Quotes a value so that [`OptionReader`] (and libmysqlclient) read back exactly `value`.
pub(super) fn quote(value: &str) -> String {
    let mut out = String::with_capacity(value.len() + 2);
    out.push('"');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\u{8}' => out.push_str("\\b"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(unix)]
fn mode(path: &Path) -> Option<u32> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).ok().map(|m| m.permissions().mode())
}

#[cfg(unix)]
pub(super) fn is_world_readable(path: &Path) -> bool {
    mode(path).is_some_and(|m| m & 0o004 != 0)
}

#[cfg(unix)]
fn is_world_writable(path: &Path) -> bool {
    mode(path).is_some_and(|m| m & 0o002 != 0)
}

#[cfg(not(unix))]
pub(super) fn is_world_readable(_path: &Path) -> bool {
    false
}

#[cfg(not(unix))]
fn is_world_writable(_path: &Path) -> bool {
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    const GROUPS: &[&str] = &["client", "client-server", "holdfast"];

    fn parse(text: &str) -> Result<Vec<(String, Option<String>)>> {
        let mut reader = OptionReader::new(GROUPS);
        reader.parse(text, Path::new("/virtual/my.cnf"), 0)?;
        Ok(reader
            .options
            .into_iter()
            .map(|o| (o.key, o.value))
            .collect())
    }

    fn one(text: &str) -> Option<String> {
        let options = parse(text).unwrap();
        assert_eq!(options.len(), 1, "{text:?} gave {options:?}");
        options[0].1.clone()
    }

    #[test]
    fn values_follow_libmysqlclient_quoting_and_comments() {
        let cases: &[(&str, Option<&str>)] = &[
            ("[client]\npassword=secret", Some("secret")),
            ("[client]\npassword = secret  ", Some("secret")),
            ("[client]\npassword=\"se cret\"", Some("se cret")),
            ("[client]\npassword='se cret'", Some("se cret")),
            ("[client]\npassword=\"has#hash\"", Some("has#hash")),
            ("[client]\npassword='has#hash' # comment", Some("has#hash")),
            ("[client]\npassword=plain#comment", Some("plain")),
            ("[client]\npassword=plain # comment", Some("plain")),
            ("[client]\npassword=\"a\\\"b\"", Some("a\"b")),
            ("[client]\npassword=a\\\\b", Some("a\\b")),
            ("[client]\npassword=a\\sb", Some("a b")),
            ("[client]\npassword=a\\tb", Some("a\tb")),
            ("[client]\npassword=a\\qb", Some("a\\qb")),
            ("[client]\npassword=\"mismatched'", Some("\"mismatched'")),
            ("[client]\npassword=\"", Some("\"")),
            ("[client]\npassword=", Some("")),
            ("[client]\npassword=\"\"", Some("")),
            ("[client]\npassword=a=b=c", Some("a=b=c")),
            ("[client]\npassword=semi;colon", Some("semi;colon")),
            ("[client]\npassword", None),
            ("[client]\n  password  =  x\t", Some("x")),
        ];
        for (text, want) in cases {
            assert_eq!(one(text).as_deref(), *want, "{text:?}");
        }
    }

    #[test]
    fn keys_are_normalised() {
        let cases = [
            ("ssl_ca", "ssl-ca"),
            ("SSL-CA", "ssl-ca"),
            ("loose-ssl_mode", "ssl-mode"),
            ("loose_ssl_mode", "ssl-mode"),
            ("user", "user"),
        ];
        for (raw, want) in cases {
            assert_eq!(normalize_key(raw), want);
        }
    }

    #[test]
    fn only_wanted_groups_are_kept_and_comments_skipped() {
        let text = "\
# leading comment
; another
[mysqld]
user=mysql
password=server-side
[CLIENT]
user=alice
[mysql]
user=bob
[client-server]
socket=/run/x.sock
[holdfast]
# inside
host = db1
[mysqldump]
host=nope
";
        let got = parse(text).unwrap();
        let want = vec![
            ("user".to_string(), Some("alice".to_string())),
            ("socket".to_string(), Some("/run/x.sock".to_string())),
            ("host".to_string(), Some("db1".to_string())),
        ];
        assert_eq!(got, want);
    }

    #[test]
    fn syntax_errors_name_file_and_line() {
        let cases = [
            ("user=alice\n", ":1:"),
            ("[client]\nuser=a\n[client\n", ":3:"),
            ("[client]\n=value\n", ":2:"),
            ("[client]\n!include\n", ":2:"),
        ];
        for (text, where_) in cases {
            let err = parse(text).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Usage, "{text:?}");
            assert!(
                err.message().contains(&format!("/virtual/my.cnf{where_}")),
                "{err}"
            );
        }
    }

    #[test]
    fn options_in_unwanted_groups_are_not_validated() {
        // libmysqlclient does not look inside groups it does not read either.
        assert!(parse("[mysqld]\n=weird\n[client]\nuser=a").is_ok());
    }

    #[test]
    fn crlf_and_bom_are_tolerated() {
        let got = parse("\u{feff}[client]\r\nuser=alice\r\npassword=\"x y\"\r\n").unwrap();
        assert_eq!(
            got,
            vec![
                ("user".to_string(), Some("alice".to_string())),
                ("password".to_string(), Some("x y".to_string())),
            ]
        );
    }

    #[test]
    fn quote_round_trips() {
        for value in [
            "",
            "plain",
            "with space",
            "#hash",
            "q\"uote",
            "a'b",
            "back\\slash",
            "tab\there",
            "x\ny",
            " lead",
        ] {
            let text = format!("[client]\npassword={}\n", quote(value));
            assert_eq!(one(&text).as_deref(), Some(value), "{text:?}");
        }
    }

    fn write(path: &Path, text: &str) {
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, text).unwrap();
        set_mode(path, 0o600);
    }

    #[cfg(unix)]
    fn set_mode(path: &Path, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[cfg(not(unix))]
    fn set_mode(_path: &Path, _mode: u32) {}

    #[test]
    fn include_and_includedir_expand_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path();
        write(
            &root.join("my.cnf"),
            &format!(
                "[client]\nuser=first\n!include {}\n!includedir {}\n[client]\nhost=after\n",
                root.join("extra.cnf").display(),
                root.join("conf.d").display()
            ),
        );
        write(&root.join("extra.cnf"), "[client]\nuser=from-include\n");
        write(&root.join("conf.d/20-b.cnf"), "[client]\nport=3307\n");
        write(
            &root.join("conf.d/10-a.cnf"),
            "[client]\nport=3306\nuser=from-dir\n",
        );
        write(&root.join("conf.d/30-ignored.txt"), "[client]\nport=1\n");
        write(&root.join("conf.d/sub/40.cnf"), "[client]\nport=2\n");
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&root.join("my.cnf"), true).unwrap();
        let got: Vec<(String, String, PathBuf)> = reader
            .options
            .iter()
            .map(|o| (o.key.clone(), o.value.clone().unwrap(), o.path.clone()))
            .collect();
        let want = vec![
            ("user".into(), "first".into(), root.join("my.cnf")),
            ("user".into(), "from-include".into(), root.join("extra.cnf")),
            ("port".into(), "3306".into(), root.join("conf.d/10-a.cnf")),
            (
                "user".into(),
                "from-dir".into(),
                root.join("conf.d/10-a.cnf"),
            ),
            ("port".into(), "3307".into(), root.join("conf.d/20-b.cnf")),
            ("host".into(), "after".into(), root.join("my.cnf")),
        ];
        assert_eq!(got, want);
        assert!(reader.warnings.is_empty(), "{:?}", reader.warnings);
    }

    #[test]
    fn relative_includes_are_relative_to_the_including_file() {
        let dir = tempfile::tempdir().unwrap();
        write(
            &dir.path().join("a/my.cnf"),
            "!include sub/x.cnf\n!includedir d\n",
        );
        write(&dir.path().join("a/sub/x.cnf"), "[client]\nuser=rel\n");
        write(&dir.path().join("a/d/y.cnf"), "[client]\nhost=reldir\n");
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&dir.path().join("a/my.cnf"), true).unwrap();
        let values: Vec<_> = reader
            .options
            .iter()
            .map(|o| o.value.clone().unwrap())
            .collect();
        assert_eq!(values, ["rel", "reldir"]);
    }

    #[test]
    fn an_included_file_starts_without_a_group() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("my.cnf"), "[client]\n!include inc.cnf\n");
        write(&dir.path().join("inc.cnf"), "user=orphan\n");
        let mut reader = OptionReader::new(GROUPS);
        let err = reader.read(&dir.path().join("my.cnf"), true).unwrap_err();
        assert!(err.message().contains("inc.cnf:1"), "{err}");
    }

    #[test]
    fn include_cycles_stop_with_an_error() {
        let dir = tempfile::tempdir().unwrap();
        write(&dir.path().join("a.cnf"), "!include b.cnf\n");
        write(&dir.path().join("b.cnf"), "!include a.cnf\n");
        let mut reader = OptionReader::new(GROUPS);
        let err = reader.read(&dir.path().join("a.cnf"), true).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(err.message().contains("nested deeper"), "{err}");
    }

    #[test]
    fn missing_files_skip_or_fail_as_asked() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope.cnf");
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&missing, false).unwrap();
        assert!(reader.options.is_empty() && reader.warnings.is_empty());
        let err = reader.read(&missing, true).unwrap_err();
        assert_eq!(err.kind(), crate::ErrorKind::Usage);
        assert!(err.message().contains("nope.cnf"), "{err}");

        write(
            &dir.path().join("my.cnf"),
            "!include gone.cnf\n!includedir gone.d\n[client]\nuser=u\n",
        );
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&dir.path().join("my.cnf"), true).unwrap();
        assert_eq!(reader.options.len(), 1);
        assert_eq!(reader.warnings.len(), 2, "{:?}", reader.warnings);
    }

    #[cfg(unix)]
    #[test]
    fn permissions_are_checked() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("my.cnf");

        write(&path, "[client]\npassword=x\n");
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&path, true).unwrap();
        assert!(reader.warnings.is_empty(), "{:?}", reader.warnings);

        set_mode(&path, 0o644);
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&path, true).unwrap();
        assert_eq!(reader.options.len(), 1, "a readable file is still used");
        assert_eq!(reader.warnings.len(), 1, "{:?}", reader.warnings);
        assert!(reader.warnings[0].contains("readable by every user"));

        // No password in the wanted groups: nothing to protect, no warning.
        write(&path, "[client]\nuser=x\n[mysql]\npassword=other\n");
        set_mode(&path, 0o644);
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&path, true).unwrap();
        assert!(reader.warnings.is_empty(), "{:?}", reader.warnings);

        write(&path, "[client]\nuser=x\n");
        set_mode(&path, 0o666);
        let mut reader = OptionReader::new(GROUPS);
        reader.read(&path, true).unwrap();
        assert!(
            reader.options.is_empty(),
            "a world-writable file is ignored"
        );
        assert!(reader.warnings[0].contains("world-writable"));
    }
}
