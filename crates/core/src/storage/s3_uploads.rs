//! Incomplete S3 multipart uploads: the three requests OpenDAL has no API for.
//!
//! - ListMultipartUploads (`GET /?uploads&prefix=`), paginated by `key-marker` and
//!   `upload-id-marker`: every upload started under the repository's prefix and never completed
//!   or aborted.
//! - ListParts (`GET /key?uploadId=`), paginated by `part-number-marker`: what each one holds.
//! - AbortMultipartUpload (`DELETE /key?uploadId=`): removes its parts.
//!
//! Requests are signed with reqsign's AWS SigV4 signer and credential chain and sent with
//! reqwest (rustls): the same crates, versions and resolution OpenDAL's S3 service uses
//! (endpoint, region, path or virtual-host style, explicit credentials, then the environment,
//! `~/.aws`, web identity, instance metadata), configured from the same [`Location`], so both
//! reach the same bucket as the same principal. Nothing here logs a request's headers, and
//! error messages name only the store's error code and the key.

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use reqsign::{AwsConfig, AwsCredential, AwsDefaultLoader, AwsV4Signer};
use reqwest::{Method, StatusCode, Url};
use serde::Deserialize;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::{Credentials, IncompleteUpload, UploadKind};
use crate::{Error, ErrorKind, Result};

/// Uploads asked for per ListMultipartUploads page (the S3 maximum).
pub(super) const DEFAULT_PAGE_SIZE: usize = 1000;

/// Bytes a key keeps unescaped in a request path: S3's unreserved characters and `/`.
const KEY_ENCODE_SET: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~')
    .remove(b'/');

/// Signed ListMultipartUploads / ListParts / AbortMultipartUpload requests to one bucket, for
/// keys under one prefix.
pub(super) struct S3Uploads {
    client: reqwest::Client,
    /// `http://host:3900/bucket` (path style) or `https://bucket.host` (virtual host).
    base: String,
    /// The repository's prefix in the bucket, `prefix/` (or empty).
    root: String,
    signer: AwsV4Signer,
    loader: AwsDefaultLoader,
    /// Shown in messages.
    location: String,
}

impl std::fmt::Debug for S3Uploads {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("S3Uploads")
            .field("base", &self.base)
            .field("root", &self.root)
            .finish_non_exhaustive()
    }
}

/// Where and as whom, from an `s3://` location.
pub(super) struct S3Target<'a> {
    pub bucket: &'a str,
    pub prefix: &'a str,
    pub endpoint: Option<&'a str>,
    pub region: &'a str,
    pub virtual_host: bool,
    pub credentials: Option<&'a Credentials>,
    pub location: String,
}

impl S3Uploads {
    pub(super) fn new(target: &S3Target<'_>) -> Result<S3Uploads> {
        // As OpenDAL's S3 builder: profile, then environment, then what the URL and the
        // configuration file say.
        let mut cfg = AwsConfig::default().from_profile().from_env();
        cfg.region = Some(target.region.to_string());
        if let Some(c) = target.credentials {
            cfg.access_key_id = Some(c.access_key_id.clone());
            cfg.secret_access_key = Some(c.secret_access_key.clone());
            cfg.session_token = c.session_token.clone();
        }
        let endpoint = target
            .endpoint
            .map(str::to_string)
            .or_else(|| cfg.endpoint_url.clone());
        let base = base_url(
            endpoint.as_deref(),
            target.region,
            target.bucket,
            target.virtual_host,
        );
        let client = reqwest::Client::builder().build().map_err(|e| {
            Error::with_source(ErrorKind::Internal, "cannot build an HTTP client", e)
        })?;
        let mut loader = AwsDefaultLoader::new(client.clone(), cfg);
        if target.endpoint.is_some() {
            // A self-hosted store: no EC2 instance metadata to ask (as the S3 backend).
            loader = loader.with_disable_ec2_metadata();
        }
        let prefix = target.prefix.trim_matches('/');
        Ok(S3Uploads {
            client,
            base,
            root: if prefix.is_empty() {
                String::new()
            } else {
                format!("{prefix}/")
            },
            signer: AwsV4Signer::new("s3", target.region),
            loader,
            location: target.location.clone(),
        })
    }

    /// Every incomplete multipart upload under the repository's prefix, with its parts counted
    /// and sized; `page_size` uploads per listing request.
    pub(super) async fn list(&self, page_size: usize) -> Result<Vec<IncompleteUpload>> {
        let mut out = Vec::new();
        // The next page starts after this key (and, when given, after this upload of it).
        let mut markers: Option<(String, Option<String>)> = None;
        loop {
            let mut url = self.url("")?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("uploads", "")
                    .append_pair("prefix", &self.root)
                    .append_pair("max-uploads", &page_size.to_string());
                if let Some((key, id)) = &markers {
                    q.append_pair("key-marker", key);
                    if let Some(id) = id {
                        q.append_pair("upload-id-marker", id);
                    }
                }
            }
            let body = self
                .request(Method::GET, url, "listing incomplete uploads", "")
                .await?;
            let page: ListUploadsPage = parse(&body, "ListMultipartUploads")?;
            for u in &page.uploads {
                let Some(path) = u.key.strip_prefix(&self.root) else {
                    continue; // outside the repository (a store that ignored `prefix`)
                };
                let initiated = OffsetDateTime::parse(u.initiated.trim(), &Rfc3339)
                    .map_err(|e| unexpected("ListMultipartUploads", &format!("Initiated: {e}")))?;
                let (parts, bytes) = self.parts(&u.key, &u.upload_id).await?;
                out.push(IncompleteUpload {
                    kind: UploadKind::Multipart,
                    path: path.to_string(),
                    upload_id: u.upload_id.clone(),
                    initiated,
                    parts,
                    bytes,
                });
            }
            if !page.is_truncated {
                return Ok(out);
            }
            // Without a new marker the next page would be this one again. A store may give
            // only NextKeyMarker (Garage does when the page ends with a key's last upload).
            let next = non_empty(page.next_key_marker)
                .map(|key| (key, non_empty(page.next_upload_id_marker)));
            if next.is_none() || next == markers {
                return Err(unexpected(
                    "ListMultipartUploads",
                    "a truncated page without a new NextKeyMarker",
                ));
            }
            markers = next;
        }
    }

    /// The number and total size of the parts an upload holds.
    async fn parts(&self, key: &str, upload_id: &str) -> Result<(u64, u64)> {
        let (mut parts, mut bytes) = (0u64, 0u64);
        let mut marker: Option<String> = None;
        loop {
            let mut url = self.url(key)?;
            {
                let mut q = url.query_pairs_mut();
                q.append_pair("uploadId", upload_id);
                if let Some(m) = &marker {
                    q.append_pair("part-number-marker", m);
                }
            }
            let body = match self
                .request(Method::GET, url, "listing the parts of an upload", key)
                .await
            {
                Ok(body) => body,
                // Completed or aborted since it was listed: it holds nothing any more.
                Err(e) if e.kind() == ErrorKind::NotFound => return Ok((0, 0)),
                Err(e) => return Err(e),
            };
            let page: ListPartsPage = parse(&body, "ListParts")?;
            parts += page.parts.len() as u64;
            bytes += page.parts.iter().map(|p| p.size).sum::<u64>();
            if !page.is_truncated {
                return Ok((parts, bytes));
            }
            match non_empty(page.next_part_number_marker) {
                Some(m) if Some(&m) != marker.as_ref() => marker = Some(m),
                _ => {
                    return Err(unexpected(
                        "ListParts",
                        "a truncated page without a new marker",
                    ))
                }
            }
        }
    }

    /// Aborts the upload `upload_id` of the repository path `path`; one already gone succeeds.
    pub(super) async fn abort(&self, path: &str, upload_id: &str) -> Result<()> {
        let key = format!("{}{path}", self.root);
        let mut url = self.url(&key)?;
        url.query_pairs_mut().append_pair("uploadId", upload_id);
        match self
            .request(Method::DELETE, url, "aborting an incomplete upload", &key)
            .await
        {
            Ok(_) => Ok(()),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The URL of a key (or of the bucket, for an empty key), the key percent-encoded as S3's
    /// signature requires.
    fn url(&self, key: &str) -> Result<Url> {
        let encoded = utf8_percent_encode(key, KEY_ENCODE_SET);
        Url::parse(&format!("{}/{encoded}", self.base)).map_err(|e| {
            Error::usage(format!(
                "the S3 endpoint of {} does not form a valid URL: {e}",
                self.location
            ))
        })
    }

    async fn credential(&self) -> Result<AwsCredential> {
        match self.loader.load().await {
            Ok(Some(c)) => Ok(c),
            Ok(None) => Err(Error::new(
                ErrorKind::Storage,
                format!(
                    "no S3 credentials for {}: set AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or \
                     configure ~/.aws/credentials",
                    self.location
                ),
            )),
            Err(e) => Err(Error::new(
                ErrorKind::Storage,
                format!("cannot load the S3 credentials for {}: {e}", self.location),
            )
            .transient()),
        }
    }

    /// Sends a signed request and returns the body of a 2xx response; any other status is an
    /// error of the kind callers branch on (404 is [`ErrorKind::NotFound`]).
    async fn request(&self, method: Method, url: Url, what: &str, key: &str) -> Result<String> {
        let credential = self.credential().await?;
        let mut req = reqwest::Request::new(method, url);
        self.signer
            .sign(&mut req, &credential)
            .map_err(|e| Error::internal(format!("signing the S3 request ({what}) failed: {e}")))?;
        // The client sets Host itself (as OpenDAL does).
        req.headers_mut().remove(reqwest::header::HOST);
        let resp = self.client.execute(req).await.map_err(|e| {
            Error::with_source(
                ErrorKind::Storage,
                format!("{what} on {} failed: cannot reach the store", self.location),
                e,
            )
            .transient()
        })?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| {
            Error::with_source(
                ErrorKind::Storage,
                format!("{what} on {}: the response broke off", self.location),
                e,
            )
            .transient()
        })?;
        if status.is_success() {
            return Ok(body);
        }
        Err(status_error(status, &body, what, key, &self.location))
    }
}

/// OpenDAL's S3 endpoint rules: `https://` when the endpoint has no scheme, AWS's global
/// endpoint made regional, then the bucket as a path segment or a host prefix.
fn base_url(endpoint: Option<&str>, region: &str, bucket: &str, virtual_host: bool) -> String {
    let mut endpoint = match endpoint {
        Some(e) if e.starts_with("http") => e.to_string(),
        Some(e) => format!("https://{e}"),
        None => "https://s3.amazonaws.com".to_string(),
    };
    endpoint = endpoint.replace(&format!("//{bucket}."), "//");
    if let Ok(url) = Url::parse(&endpoint) {
        endpoint = url.to_string().trim_end_matches('/').to_string();
    }
    if endpoint == "https://s3.amazonaws.com" {
        endpoint = format!("https://s3.{region}.amazonaws.com");
    }
    if virtual_host {
        endpoint.replacen("//", &format!("//{bucket}."), 1)
    } else {
        format!("{endpoint}/{bucket}")
    }
}

fn status_error(status: StatusCode, body: &str, what: &str, key: &str, location: &str) -> Error {
    let code = quick_xml::de::from_str::<ErrorBody>(body)
        .map(|b| b.code)
        .unwrap_or_default();
    let on = if key.is_empty() {
        location.to_string()
    } else {
        format!("`{key}` in {location}")
    };
    let shown = if code.is_empty() {
        status.to_string()
    } else {
        format!("{status}, {code}")
    };
    let kind = match status {
        StatusCode::NOT_FOUND => ErrorKind::NotFound,
        _ => ErrorKind::Storage,
    };
    let message = match status {
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED => format!(
            "{what} on {on}: permission denied ({shown}); check the store's credentials (for \
             S3: AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY or ~/.aws/credentials) and their rights \
             on the bucket (s3:ListBucketMultipartUploads, s3:AbortMultipartUpload)"
        ),
        StatusCode::NOT_IMPLEMENTED => format!(
            "{what} on {on}: the store does not implement it ({shown}); configure a lifecycle \
             rule for incomplete multipart uploads on the bucket instead"
        ),
        _ => format!("{what} on {on} failed ({shown})"),
    };
    let err = Error::new(kind, message);
    if status.is_server_error() && status != StatusCode::NOT_IMPLEMENTED
        || status == StatusCode::TOO_MANY_REQUESTS
    {
        err.transient()
    } else {
        err
    }
}

fn parse<'a, T: Deserialize<'a>>(body: &'a str, what: &str) -> Result<T> {
    quick_xml::de::from_str(body).map_err(|e| unexpected(what, &e.to_string()))
}

fn unexpected(what: &str, detail: &str) -> Error {
    Error::new(
        ErrorKind::Storage,
        format!("the store answered {what} with an unexpected document: {detail}"),
    )
}

fn non_empty(s: Option<String>) -> Option<String> {
    s.filter(|v| !v.trim().is_empty())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListUploadsPage {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_key_marker: Option<String>,
    #[serde(default)]
    next_upload_id_marker: Option<String>,
    #[serde(default, rename = "Upload")]
    uploads: Vec<UploadEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct UploadEntry {
    key: String,
    upload_id: String,
    initiated: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct ListPartsPage {
    #[serde(default)]
    is_truncated: bool,
    #[serde(default)]
    next_part_number_marker: Option<String>,
    #[serde(default, rename = "Part")]
    parts: Vec<PartEntry>,
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct PartEntry {
    size: u64,
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "PascalCase")]
struct ErrorBody {
    #[serde(default)]
    code: String,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn base_url_follows_the_s3_backend() {
        let cases = [
            (None, false, "https://s3.eu-west-1.amazonaws.com/b"),
            (None, true, "https://b.s3.eu-west-1.amazonaws.com"),
            (
                Some("http://127.0.0.1:3900"),
                false,
                "http://127.0.0.1:3900/b",
            ),
            (
                Some("http://127.0.0.1:3900/"),
                false,
                "http://127.0.0.1:3900/b",
            ),
            (
                Some("minio.local:9000"),
                false,
                "https://minio.local:9000/b",
            ),
            (
                Some("https://b.store.example"),
                true,
                "https://b.store.example",
            ),
        ];
        for (endpoint, vhost, want) in cases {
            assert_eq!(
                base_url(endpoint, "eu-west-1", "b", vhost),
                want,
                "{endpoint:?}"
            );
        }
    }

    #[test]
    fn parses_a_listing_page() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<ListMultipartUploadsResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
  <Bucket>b</Bucket><KeyMarker></KeyMarker><UploadIdMarker></UploadIdMarker>
  <NextKeyMarker>p/backups/x/data/d%20b/t/00000.tsv.zst</NextKeyMarker>
  <NextUploadIdMarker>abc</NextUploadIdMarker>
  <Prefix>p/</Prefix><MaxUploads>2</MaxUploads><IsTruncated>true</IsTruncated>
  <Upload><Key>p/backups/x/a&amp;b</Key><UploadId>u1</UploadId>
    <Initiator><ID>i</ID><DisplayName>d</DisplayName></Initiator>
    <StorageClass>STANDARD</StorageClass><Initiated>2026-11-21T06:40:01.123Z</Initiated></Upload>
  <Upload><Key>p/backups/x/data/d%20b/t/00000.tsv.zst</Key><UploadId>abc</UploadId>
    <Initiated>2026-11-21T06:40:02Z</Initiated></Upload>
</ListMultipartUploadsResult>"#;
        let page: ListUploadsPage = parse(xml, "ListMultipartUploads").unwrap();
        assert!(page.is_truncated);
        assert_eq!(page.uploads.len(), 2);
        assert_eq!(page.uploads[0].key, "p/backups/x/a&b");
        assert_eq!(page.uploads[1].upload_id, "abc");
        assert_eq!(
            non_empty(page.next_upload_id_marker).as_deref(),
            Some("abc")
        );
        let empty: ListUploadsPage = parse(
            "<ListMultipartUploadsResult><IsTruncated>false</IsTruncated><NextKeyMarker/></ListMultipartUploadsResult>",
            "x",
        )
        .unwrap();
        assert!(empty.uploads.is_empty() && !empty.is_truncated);
        assert_eq!(non_empty(empty.next_key_marker), None);
    }

    #[test]
    fn keys_are_encoded_for_the_signature() {
        let encoded = utf8_percent_encode("p/my%20db/t x/0~1.zst", KEY_ENCODE_SET).to_string();
        assert_eq!(encoded, "p/my%2520db/t%20x/0~1.zst");
    }

    #[test]
    fn status_errors_are_classified() {
        let body = "<Error><Code>NoSuchUpload</Code><Message>m</Message></Error>";
        let e = status_error(StatusCode::NOT_FOUND, body, "aborting", "k", "s3://b/p");
        assert_eq!(e.kind(), ErrorKind::NotFound);
        assert!(e.message().contains("NoSuchUpload"), "{e}");
        let e = status_error(
            StatusCode::SERVICE_UNAVAILABLE,
            "",
            "listing",
            "",
            "s3://b/p",
        );
        assert!(e.is_transient());
        let e = status_error(StatusCode::FORBIDDEN, "", "listing", "", "s3://b/p");
        assert!(
            !e.is_transient() && e.message().contains("AWS_ACCESS_KEY_ID"),
            "{e}"
        );
        let e = status_error(StatusCode::NOT_IMPLEMENTED, "", "listing", "", "s3://b/p");
        assert!(
            !e.is_transient() && e.message().contains("lifecycle"),
            "{e}"
        );
    }
}
