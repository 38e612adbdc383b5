//! Secrets named in the config: a file (its first line) or an environment variable. Read when a
//! channel is built (start and reload), so a missing secret is an error up front, not at the
//! first alert.

use std::path::Path;

use super::NotifyError;

/// Reads the secret `what` of notifier `notifier` from `file` or `env` (at most one may be
/// set). `Ok(None)` when neither is.
pub fn read(
    notifier: &str,
    what: &str,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<Option<String>, NotifyError> {
    let err = |m: String| NotifyError::new(notifier, m);
    let value = match (file, env) {
        (Some(_), Some(_)) => {
            return Err(err(format!(
                "both {what}_file and {what}_env are set; keep one"
            )))
        }
        (Some(path), None) => {
            let text = std::fs::read_to_string(path).map_err(|e| {
                err(format!(
                    "cannot read {what}_file {}: {e}; it must hold the {what} on its first line",
                    path.display()
                ))
            })?;
            let line = text.lines().next().unwrap_or("").trim().to_string();
            if line.is_empty() {
                return Err(err(format!(
                    "{what}_file {} is empty; it must hold the {what} on its first line",
                    path.display()
                )));
            }
            line
        }
        (None, Some(var)) => match std::env::var(var) {
            Ok(v) if !v.trim().is_empty() => v.trim().to_string(),
            Ok(_) => {
                return Err(err(format!(
                    "the environment variable {var} ({what}_env) is empty"
                )))
            }
            Err(_) => {
                return Err(err(format!(
                    "the environment variable {var} ({what}_env) is not set in the daemon's \
                     environment"
                )))
            }
        },
        (None, None) => return Ok(None),
    };
    Ok(Some(value))
}

/// Like [`read`], but the secret must be there.
pub fn require(
    notifier: &str,
    what: &str,
    file: Option<&Path>,
    env: Option<&str>,
) -> Result<String, NotifyError> {
    read(notifier, what, file, env)?
        .ok_or_else(|| NotifyError::new(notifier, format!("set {what}_file or {what}_env")))
}

/// The endpoint URL of a channel: `url` in clear where `url_secret` is false (a generic webhook
/// may have a URL without a token), else only `url_file` / `url_env`.
pub fn url(
    notifier: &str,
    kind: &str,
    clear: Option<&str>,
    file: Option<&Path>,
    env: Option<&str>,
    url_is_secret: bool,
) -> Result<reqwest::Url, NotifyError> {
    let err = |m: String| NotifyError::new(notifier, m);
    let text = match (clear, read(notifier, "url", file, env)?) {
        (Some(_), Some(_)) => return Err(err("set url or url_file/url_env, not both".into())),
        (Some(_), None) if url_is_secret => {
            return Err(err(format!(
                "a {kind} URL carries its access token, so it must not be in the config file in \
                 clear: put it in a file (url_file) or an environment variable (url_env)"
            )))
        }
        (Some(u), None) => u.to_string(),
        (None, Some(u)) => u,
        (None, None) => return Err(err("set url_file or url_env (the endpoint)".into())),
    };
    let url = reqwest::Url::parse(&text).map_err(|e| {
        err(format!(
            "the URL is not valid ({e}); it must start with https://"
        ))
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(err(format!(
            "the URL's scheme is `{}`; use https:// (or http:// on loopback)",
            url.scheme()
        )));
    }
    Ok(url)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sources() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("s");
        std::fs::write(&f, "tok3n\nignored\n").unwrap();
        assert_eq!(
            read("n", "secret", Some(&f), None).unwrap().as_deref(),
            Some("tok3n")
        );
        assert_eq!(read("n", "secret", None, None).unwrap(), None);
        let both = read("n", "secret", Some(&f), Some("X"))
            .unwrap_err()
            .to_string();
        assert!(both.contains("keep one"), "{both}");
        let missing = read("n", "secret", None, Some("HOLDFAST_TEST_SURELY_UNSET_VAR"))
            .unwrap_err()
            .to_string();
        assert!(
            missing.contains("HOLDFAST_TEST_SURELY_UNSET_VAR"),
            "{missing}"
        );
        let nofile = read("n", "secret", Some(&dir.path().join("nope")), None).unwrap_err();
        assert!(
            nofile.to_string().contains("cannot read secret_file"),
            "{nofile}"
        );
        let clear = url(
            "n",
            "slack",
            Some("https://hooks.slack.com/x"),
            None,
            None,
            true,
        )
        .unwrap_err()
        .to_string();
        assert!(clear.contains("url_file"), "{clear}");
        assert!(url("n", "webhook", Some("ftp://x/"), None, None, false).is_err());
        assert!(url(
            "n",
            "webhook",
            Some("http://127.0.0.1:9/h"),
            None,
            None,
            false
        )
        .is_ok());
    }
}
