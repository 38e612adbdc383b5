//! Repository URLs: which backend, where, and how to reach it. Never credentials: those come
//! from the environment or the tools' own configuration files, so they stay out of argv, logs
//! and shell history.
//!
//! ```text
//! /backups/repo  or  file:///backups/repo
//! s3://bucket/prefix?endpoint=http://127.0.0.1:3900&region=garage&path_style=true
//!     AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY / AWS_SESSION_TOKEN, or ~/.aws/credentials
//!     (AWS_PROFILE), web identity, instance metadata. `conditional_writes=true|false` overrides
//!     whether the store honours If-None-Match (default: true on AWS, false with a custom endpoint).
//! oss://bucket/prefix?endpoint=https://oss-eu-central-1.aliyuncs.com
//!     ALIBABA_CLOUD_ACCESS_KEY_ID / ALIBABA_CLOUD_ACCESS_KEY_SECRET
//! gcs://bucket/prefix      GOOGLE_APPLICATION_CREDENTIALS (a service account file)
//! azblob://container/prefix?account=NAME[&endpoint=…]
//!     AZURE_STORAGE_ACCOUNT_KEY (or AZURE_STORAGE_SAS_TOKEN)
//! sftp://user@host:22/path/to/repo[?key=/path/to/private_key]   ssh agent or the key file
//! ```

use std::fmt;

use url::Url;

use crate::{Error, Result};

/// A parsed repository location.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Location {
    File {
        root: String,
    },
    S3 {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
        region: Option<String>,
        /// Virtual-host-style addressing (`bucket.endpoint`); path style by default.
        virtual_host: bool,
        /// Whether the store honours `If-None-Match: *`; `None` = decide from the endpoint.
        conditional_writes: Option<bool>,
    },
    Oss {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
    },
    Gcs {
        bucket: String,
        prefix: String,
        endpoint: Option<String>,
    },
    Azblob {
        container: String,
        prefix: String,
        account: Option<String>,
        endpoint: Option<String>,
    },
    Sftp {
        user: Option<String>,
        host: String,
        port: Option<u16>,
        root: String,
        key: Option<String>,
    },
}

const SCHEMES: &str = "file://, s3://, oss://, gcs://, azblob:// or sftp://";

impl Location {
    /// Parses a repository URL or a plain local path.
    pub fn parse(input: &str) -> Result<Location> {
        if !input.contains("://") {
            if input.is_empty() {
                return Err(Error::usage("the repository location is empty"));
            }
            let path = std::path::absolute(input)
                .map_err(|e| Error::usage(format!("invalid repository path `{input}`: {e}")))?;
            return Ok(Location::File {
                root: path.to_string_lossy().into_owned(),
            });
        }
        let url = Url::parse(input).map_err(|e| {
            Error::usage(format!(
                "`{}` is not a valid repository URL ({e}); use {SCHEMES}",
                redact(input)
            ))
        })?;
        if url.password().is_some() {
            return Err(Error::usage(format!(
                "the repository URL `{}` contains a password; credentials never go in the URL: \
                 use the environment (AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY, …), the store's \
                 credentials file, or an ssh agent or key file for sftp",
                redact(input)
            )));
        }
        let mut q = Query::new(&url);
        let location = match url.scheme() {
            "file" => {
                if url
                    .host_str()
                    .is_some_and(|h| !h.is_empty() && h != "localhost")
                {
                    return Err(Error::usage(format!(
                        "`{input}`: a file URL names a local path: file:///path/to/repo"
                    )));
                }
                let root = percent_decode(url.path());
                if root.is_empty() || root == "/" {
                    return Err(Error::usage(format!("`{input}` names no directory")));
                }
                Location::File { root }
            }
            "s3" => {
                let (bucket, prefix) = bucket_and_prefix(&url, "bucket")?;
                let path_style = q.bool("path_style")?.unwrap_or(true);
                Location::S3 {
                    bucket,
                    prefix,
                    endpoint: q.string("endpoint"),
                    region: q.string("region"),
                    virtual_host: !path_style,
                    conditional_writes: q.bool("conditional_writes")?,
                }
            }
            "oss" => {
                let (bucket, prefix) = bucket_and_prefix(&url, "bucket")?;
                Location::Oss {
                    bucket,
                    prefix,
                    endpoint: q.string("endpoint"),
                }
            }
            "gcs" | "gs" => {
                let (bucket, prefix) = bucket_and_prefix(&url, "bucket")?;
                Location::Gcs {
                    bucket,
                    prefix,
                    endpoint: q.string("endpoint"),
                }
            }
            "azblob" => {
                let (container, prefix) = bucket_and_prefix(&url, "container")?;
                Location::Azblob {
                    container,
                    prefix,
                    account: q.string("account"),
                    endpoint: q.string("endpoint"),
                }
            }
            "sftp" => {
                let host = url
                    .host_str()
                    .filter(|h| !h.is_empty())
                    .ok_or_else(|| {
                        Error::usage(format!("`{input}` names no host: sftp://user@host/path"))
                    })?
                    .to_string();
                let root = percent_decode(url.path());
                if root.is_empty() || root == "/" {
                    return Err(Error::usage(format!(
                        "`{input}` names no directory: sftp://user@host/path/to/repo"
                    )));
                }
                Location::Sftp {
                    user: (!url.username().is_empty()).then(|| url.username().to_string()),
                    host,
                    port: url.port(),
                    root,
                    key: q.string("key"),
                }
            }
            other => {
                return Err(Error::usage(format!(
                    "repository URL scheme `{other}://` is not supported; use {SCHEMES}"
                )))
            }
        };
        q.finish(input)?;
        Ok(location)
    }

    /// The URL scheme (`file`, `s3`, …).
    pub fn scheme(&self) -> &'static str {
        match self {
            Location::File { .. } => "file",
            Location::S3 { .. } => "s3",
            Location::Oss { .. } => "oss",
            Location::Gcs { .. } => "gcs",
            Location::Azblob { .. } => "azblob",
            Location::Sftp { .. } => "sftp",
        }
    }
}

impl fmt::Display for Location {
    /// The location without query options: `s3://bucket/prefix`, `file:///path`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Location::File { root } => write!(f, "file://{root}"),
            Location::S3 {
                bucket,
                prefix,
                endpoint,
                ..
            } => {
                write!(f, "s3://{bucket}/{prefix}")?;
                if let Some(e) = endpoint {
                    write!(f, " at {e}")?;
                }
                Ok(())
            }
            Location::Oss { bucket, prefix, .. } => write!(f, "oss://{bucket}/{prefix}"),
            Location::Gcs { bucket, prefix, .. } => write!(f, "gcs://{bucket}/{prefix}"),
            Location::Azblob {
                container, prefix, ..
            } => write!(f, "azblob://{container}/{prefix}"),
            Location::Sftp {
                user,
                host,
                port,
                root,
                ..
            } => {
                write!(f, "sftp://")?;
                if let Some(u) = user {
                    write!(f, "{u}@")?;
                }
                write!(f, "{host}")?;
                if let Some(p) = port {
                    write!(f, ":{p}")?;
                }
                write!(f, "{root}")
            }
        }
    }
}

/// `bucket` from the host, `prefix` from the path (without leading or trailing `/`).
fn bucket_and_prefix(url: &Url, what: &str) -> Result<(String, String)> {
    let bucket = url.host_str().unwrap_or_default().to_string();
    if bucket.is_empty() {
        return Err(Error::usage(format!(
            "`{}` names no {what}: {}://{what}/prefix",
            url.as_str(),
            url.scheme()
        )));
    }
    let prefix = percent_decode(url.path()).trim_matches('/').to_string();
    Ok((bucket, prefix))
}

fn percent_decode(s: &str) -> String {
    percent_encoding::percent_decode_str(s)
        .decode_utf8_lossy()
        .into_owned()
}

/// Query options, consumed one by one so unknown ones can be refused.
struct Query {
    pairs: Vec<(String, String)>,
}

impl Query {
    fn new(url: &Url) -> Query {
        Query {
            pairs: url.query_pairs().into_owned().collect(),
        }
    }

    fn string(&mut self, name: &str) -> Option<String> {
        let i = self.pairs.iter().position(|(k, _)| k == name)?;
        Some(self.pairs.remove(i).1)
    }

    fn bool(&mut self, name: &str) -> Result<Option<bool>> {
        match self.string(name).as_deref() {
            None => Ok(None),
            Some("true" | "1" | "yes") => Ok(Some(true)),
            Some("false" | "0" | "no") => Ok(Some(false)),
            Some(other) => Err(Error::usage(format!(
                "repository URL option `{name}={other}`: use true or false"
            ))),
        }
    }

    fn finish(self, input: &str) -> Result<()> {
        match self.pairs.first() {
            None => Ok(()),
            Some((k, _)) => Err(Error::usage(format!(
                "unknown option `{k}` in repository URL `{}`; known: endpoint, region, \
                 path_style, conditional_writes (s3), endpoint (oss, gcs), account, endpoint \
                 (azblob), key (sftp)",
                redact(input)
            ))),
        }
    }
}

/// The URL with anything that looks like a password replaced, for messages.
fn redact(input: &str) -> String {
    match Url::parse(input) {
        Ok(mut u) if u.password().is_some() => {
            let _ = u.set_password(Some("REDACTED"));
            u.to_string()
        }
        Ok(_) => input.to_string(),
        Err(_) => match input.split_once('@') {
            Some((_, rest)) => format!("…@{rest}"),
            None => input.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_every_scheme() {
        assert_eq!(
            Location::parse("file:///backups/repo").unwrap(),
            Location::File {
                root: "/backups/repo".into()
            }
        );
        assert_eq!(
            Location::parse("s3://b/some/prefix/?endpoint=http://127.0.0.1:3900&region=garage")
                .unwrap(),
            Location::S3 {
                bucket: "b".into(),
                prefix: "some/prefix".into(),
                endpoint: Some("http://127.0.0.1:3900".into()),
                region: Some("garage".into()),
                virtual_host: false,
                conditional_writes: None,
            }
        );
        assert!(matches!(
            Location::parse("s3://b?path_style=false&conditional_writes=true").unwrap(),
            Location::S3 {
                virtual_host: true,
                conditional_writes: Some(true),
                ..
            }
        ));
        assert!(matches!(
            Location::parse("oss://b/p").unwrap(),
            Location::Oss { .. }
        ));
        assert!(matches!(
            Location::parse("gcs://b/p").unwrap(),
            Location::Gcs { .. }
        ));
        assert!(matches!(
            Location::parse("azblob://c/p?account=acct").unwrap(),
            Location::Azblob {
                account: Some(_),
                ..
            }
        ));
        assert_eq!(
            Location::parse("sftp://backup@host:2222/srv/repo?key=/k").unwrap(),
            Location::Sftp {
                user: Some("backup".into()),
                host: "host".into(),
                port: Some(2222),
                root: "/srv/repo".into(),
                key: Some("/k".into()),
            }
        );
        assert!(matches!(
            Location::parse("relative/dir").unwrap(),
            Location::File { .. }
        ));
    }

    #[test]
    fn refuses_bad_urls_with_a_reason() {
        let cases = [
            ("s3://KEY:hunter2@bucket/p", "password"),
            ("s3:///prefix", "names no bucket"),
            ("s3://b/p?endpont=x", "unknown option `endpont`"),
            ("s3://b/p?path_style=maybe", "true or false"),
            ("ftp://host/p", "not supported"),
            ("sftp://host/", "names no directory"),
            ("file:///", "names no directory"),
        ];
        for (url, want) in cases {
            let err = Location::parse(url).unwrap_err();
            assert_eq!(err.kind(), crate::ErrorKind::Usage, "{url}");
            assert!(err.message().contains(want), "{url}: {}", err.message());
            assert!(
                !err.message().contains("hunter2"),
                "{url} leaked: {}",
                err.message()
            );
        }
    }

    #[test]
    fn display_has_no_options() {
        let l = Location::parse("s3://b/p?endpoint=http://e:1&region=r").unwrap();
        assert_eq!(l.to_string(), "s3://b/p at http://e:1");
    }
}
