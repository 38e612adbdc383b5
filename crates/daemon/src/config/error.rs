//! What is wrong with a config file: which file, which key (`server[1].schedule[0].cron`) and
//! what to do. Validation reports every problem it finds, not only the first.

use std::fmt;
use std::path::{Path, PathBuf};

/// One problem at one key.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct Problem {
    /// The key path, e.g. `server[1].schedule[0].cron` or `daemon.listen`.
    pub key: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl Problem {
    pub fn new(key: impl Into<String>, message: impl Into<String>) -> Self {
        Problem {
            key: key.into(),
            message: message.into(),
        }
    }
}

/// Why a config cannot be used. Each variant names the file.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the config file {}: {source}; check the path and its permissions", .file.display())]
    Read {
        file: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// Not TOML, or a value of the wrong type, or an unknown key. `line` is 1-based.
    #[error("{}{}: {}{message}", .file.display(), line_suffix(*.line), key_prefix(.key))]
    Syntax {
        file: PathBuf,
        line: Option<usize>,
        key: String,
        message: String,
    },
    /// Well-formed, but some values are wrong or refer to nothing; every problem found.
    #[error("{}", render_problems(.file, .problems))]
    Invalid {
        file: PathBuf,
        problems: Vec<Problem>,
    },
}

impl ConfigError {
    /// The file the error is about.
    pub fn file(&self) -> &Path {
        match self {
            ConfigError::Read { file, .. }
            | ConfigError::Syntax { file, .. }
            | ConfigError::Invalid { file, .. } => file,
        }
    }

    /// Every problem as (key, message); a read or syntax error is one problem.
    pub fn problems(&self) -> Vec<Problem> {
        match self {
            ConfigError::Read { source, .. } => vec![Problem::new(
                "",
                format!("cannot read the file: {source}; check the path and its permissions"),
            )],
            ConfigError::Syntax {
                line, key, message, ..
            } => {
                let at = match line {
                    Some(l) => format!("line {l}: {message}"),
                    None => message.clone(),
                };
                vec![Problem::new(key.clone(), at)]
            }
            ConfigError::Invalid { problems, .. } => problems.clone(),
        }
    }
}

fn line_suffix(line: Option<usize>) -> String {
    line.map(|l| format!(":{l}")).unwrap_or_default()
}

fn key_prefix(key: &str) -> String {
    if key.is_empty() || key == "." {
        String::new()
    } else {
        format!("{key}: ")
    }
}

fn render_problems(file: &Path, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&format!(
            "{}: {}{}",
            file.display(),
            key_prefix(&p.key),
            p.message
        ));
    }
    out
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}{}", key_prefix(&self.key), self.message)
    }
}
