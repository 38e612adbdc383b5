//! [`EncryptedStorage`]: a [`Storage`] decorator that encrypts every object in the `age` format.
//!
//! Each object is a standard age file encrypted to the repository's data key (an X25519
//! recipient), so `age -d -i key.txt FILE` decrypts it by hand. Streaming in both directions:
//! memory per open object is one 64 KiB age chunk plus the bytes in flight.
//!
//! age's AEAD proves a file was not altered since it was encrypted, but not *who* encrypted it:
//! anyone holding the public recipient can make a valid age file, and a valid file can be moved
//! to another path. So every header also carries a `holdfast-auth` stanza,
//! `HMAC-SHA256(mac_key, "holdfast-auth-v1" || path || file_key)`, with the MAC key derived
//! from the data key. The header MAC and the payload AEAD are keyed by the file key, so a file
//! whose stanza verifies was written, for this path, by someone holding the data key. Readers
//! refuse a file without a valid stanza as not authentic. `age` itself ignores stanza types it
//! does not know, so hand decryption keeps working. A replay of an older version of the same
//! path is not detected here (manifests, written once per backup id, are never replaced).
//!
//! A few paths (the repository descriptor) are passed through in the clear.

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use age::secrecy::ExposeSecret;
use age_core::format::{FileKey, Stanza};
use async_trait::async_trait;
use bytes::Bytes;
use futures::{AsyncReadExt, StreamExt, TryStreamExt};
use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::{ByteStream, Capabilities, IncompleteUpload, ObjectMeta, ObjectWriter, Storage};
use crate::repo::keys::DataKey;
use crate::{Error, Result};

const AUTH_TAG: &str = "holdfast-auth";
const AUTH_VERSION: &str = "v1";
/// Plaintext bytes per item of a decrypting stream.
const READ_CHUNK: usize = 256 * 1024;

#[derive(Debug, Clone)]
pub struct EncryptedStorage {
    inner: Arc<dyn Storage>,
    key: Arc<DataKey>,
    /// Exact paths stored in the clear.
    clear: Vec<String>,
}

impl EncryptedStorage {
    pub fn new(inner: Arc<dyn Storage>, key: Arc<DataKey>, clear: &[&str]) -> EncryptedStorage {
        EncryptedStorage {
            inner,
            key,
            clear: clear.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn is_clear(&self, path: &str) -> bool {
        self.clear.iter().any(|c| c == path)
    }

    fn encryptor(&self, path: &str) -> Result<age::Encryptor> {
        let recipient = AuthRecipient {
            key: &self.key,
            path,
        };
        age::Encryptor::with_recipients(std::iter::once(&recipient as _))
            .map_err(|e| Error::internal(format!("age encryption setup for `{path}`: {e}")))
    }

    fn encrypt_all(&self, path: &str, data: &[u8]) -> Result<Bytes> {
        let mut out = Vec::with_capacity(data.len() + 512);
        let io = |e: std::io::Error| Error::internal(format!("encrypting `{path}`: {e}"));
        let mut w = self.encryptor(path)?.wrap_output(&mut out).map_err(io)?;
        w.write_all(data).map_err(io)?;
        w.finish().map_err(io)?;
        Ok(Bytes::from(out))
    }
}

/// Computes the authentication tag of a file key for a path.
fn auth_tag(key: &DataKey, path: &str, file_key: &FileKey) -> Hmac<Sha256> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key.mac_key())
        .expect("HMAC takes keys of any length");
    mac.update(b"holdfast-auth-v1\0");
    mac.update(path.as_bytes());
    mac.update(b"\0");
    mac.update(file_key.expose_secret());
    mac
}

/// The data key's X25519 recipient plus the `holdfast-auth` stanza.
struct AuthRecipient<'a> {
    key: &'a DataKey,
    path: &'a str,
}

impl age::Recipient for AuthRecipient<'_> {
    fn wrap_file_key(
        &self,
        file_key: &FileKey,
    ) -> std::result::Result<(Vec<Stanza>, std::collections::HashSet<String>), age::EncryptError>
    {
        let (mut stanzas, labels) = self.key.recipient().wrap_file_key(file_key)?;
        let tag = auth_tag(self.key, self.path, file_key)
            .finalize()
            .into_bytes();
        stanzas.push(Stanza {
            tag: AUTH_TAG.to_string(),
            args: vec![AUTH_VERSION.to_string(), hex::encode(tag)],
            body: Vec::new(),
        });
        Ok((stanzas, labels))
    }
}

/// The data key's identity, accepting a file only if its `holdfast-auth` stanza verifies.
struct AuthIdentity<'a> {
    key: &'a DataKey,
    path: &'a str,
    /// Set when the file key unwrapped but the stanza is missing or wrong.
    unauthentic: AtomicBool,
}

impl age::Identity for AuthIdentity<'_> {
    fn unwrap_stanza(
        &self,
        stanza: &Stanza,
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        self.unwrap_stanzas(std::slice::from_ref(stanza))
    }

    fn unwrap_stanzas(
        &self,
        stanzas: &[Stanza],
    ) -> Option<std::result::Result<FileKey, age::DecryptError>> {
        let file_key = match self.key.identity().unwrap_stanzas(stanzas)? {
            Ok(k) => k,
            Err(e) => return Some(Err(e)),
        };
        let authentic = stanzas.iter().any(|s| {
            s.tag == AUTH_TAG
                && s.args.len() == 2
                && s.args[0] == AUTH_VERSION
                && hex::decode(&s.args[1]).is_ok_and(|tag| {
                    auth_tag(self.key, self.path, &file_key)
                        .verify_slice(&tag)
                        .is_ok()
                })
        });
        if authentic {
            Some(Ok(file_key))
        } else {
            self.unauthentic.store(true, Ordering::Relaxed);
            Some(Err(age::DecryptError::KeyDecryptionFailed))
        }
    }
}

impl<'a> AuthIdentity<'a> {
    fn new(key: &'a DataKey, path: &'a str) -> Self {
        AuthIdentity {
            key,
            path,
            unauthentic: AtomicBool::new(false),
        }
    }
}

/// Turns a decryption failure into an error naming the file. Errors of the underlying store
/// (carried through `io::Error`) come back unchanged.
fn decrypt_error(path: &str, e: age::DecryptError, unauthentic: bool) -> Error {
    if unauthentic {
        return Error::integrity(format!(
            "`{path}` is not authentic: it was not written for this path by a holder of the \
             repository's data key (forged, or moved from elsewhere)"
        ));
    }
    match e {
        age::DecryptError::Io(io) => io_error(path, io),
        age::DecryptError::NoMatchingKeys => Error::integrity(format!(
            "`{path}` is not encrypted to this repository's data key (replaced, or written by another repository)"
        )),
        other => Error::integrity(format!(
            "`{path}` failed authenticated decryption: it was altered or truncated ({other})"
        )),
    }
}

fn io_error(path: &str, io: std::io::Error) -> Error {
    let is_ours = io.get_ref().is_some_and(|inner| inner.is::<Error>());
    if is_ours {
        if let Some(inner) = io.into_inner() {
            if let Ok(ours) = inner.downcast::<Error>() {
                return *ours;
            }
        }
        return Error::internal("lost an error");
    }
    Error::integrity(format!(
        "`{path}` failed authenticated decryption: it was altered or truncated ({io})"
    ))
}

/// A `Write` target shared with the age stream writer, drained after every write.
#[derive(Clone, Default)]
struct SharedBuf(Arc<Mutex<Vec<u8>>>);

impl SharedBuf {
    fn take(&self) -> Vec<u8> {
        std::mem::take(&mut *self.0.lock().expect("buffer lock"))
    }
}

impl Write for SharedBuf {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().expect("buffer lock").extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

struct EncryptingWriter {
    inner: Box<dyn ObjectWriter>,
    age: Option<age::stream::StreamWriter<SharedBuf>>,
    buf: SharedBuf,
    path: String,
}

impl EncryptingWriter {
    async fn forward(&mut self) -> Result<()> {
        let out = self.buf.take();
        if out.is_empty() {
            return Ok(());
        }
        self.inner.write(Bytes::from(out)).await
    }

    fn io(&self, e: std::io::Error) -> Error {
        Error::internal(format!("encrypting `{}`: {e}", self.path))
    }
}

#[async_trait]
impl ObjectWriter for EncryptingWriter {
    async fn write(&mut self, data: Bytes) -> Result<()> {
        let age = self
            .age
            .as_mut()
            .ok_or_else(|| Error::internal("write after close"))?;
        if let Err(e) = age.write_all(&data) {
            return Err(self.io(e));
        }
        self.forward().await
    }

    async fn close(mut self: Box<Self>) -> Result<()> {
        let age = self
            .age
            .take()
            .ok_or_else(|| Error::internal("double close"))?;
        if let Err(e) = age.finish() {
            return Err(self.io(e));
        }
        self.forward().await?;
        self.inner.close().await
    }

    async fn abort(self: Box<Self>) -> Result<()> {
        self.inner.abort().await
    }
}

impl EncryptedStorage {
    /// Wraps a writer of `path` in encryption, unless the path is stored in clear.
    fn encrypting(
        &self,
        path: &str,
        inner: Box<dyn ObjectWriter>,
    ) -> Result<Box<dyn ObjectWriter>> {
        if self.is_clear(path) {
            return Ok(inner);
        }
        let buf = SharedBuf::default();
        let age = self
            .encryptor(path)?
            .wrap_output(buf.clone())
            .map_err(|e| Error::internal(format!("encrypting `{path}`: {e}")))?;
        Ok(Box::new(EncryptingWriter {
            inner,
            age: Some(age),
            buf,
            path: path.to_string(),
        }))
    }
}

#[async_trait]
impl Storage for EncryptedStorage {
    fn capabilities(&self) -> Capabilities {
        self.inner.capabilities()
    }

    fn location(&self) -> String {
        self.inner.location()
    }

    async fn put(&self, path: &str, data: Bytes) -> Result<()> {
        if self.is_clear(path) {
            return self.inner.put(path, data).await;
        }
        let sealed = self.encrypt_all(path, &data)?;
        self.inner.put(path, sealed).await
    }

    async fn put_if_absent(&self, path: &str, data: Bytes) -> Result<bool> {
        if self.is_clear(path) {
            return self.inner.put_if_absent(path, data).await;
        }
        let sealed = self.encrypt_all(path, &data)?;
        self.inner.put_if_absent(path, sealed).await
    }

    async fn writer(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        let inner = self.inner.writer(path).await?;
        self.encrypting(path, inner)
    }

    async fn writer_unsynced(&self, path: &str) -> Result<Box<dyn ObjectWriter>> {
        let inner = self.inner.writer_unsynced(path).await?;
        self.encrypting(path, inner)
    }

    async fn sync(&self) -> Result<()> {
        self.inner.sync().await
    }

    async fn get(&self, path: &str) -> Result<Bytes> {
        let sealed = self.inner.get(path).await?;
        if self.is_clear(path) {
            return Ok(sealed);
        }
        let identity = AuthIdentity::new(&self.key, path);
        let opened = age::Decryptor::new_buffered(&sealed[..]).and_then(|d| {
            let mut reader = d.decrypt(std::iter::once(&identity as &dyn age::Identity))?;
            let mut out = Vec::with_capacity(sealed.len());
            Read::read_to_end(&mut reader, &mut out)?;
            Ok(out)
        });
        opened
            .map(Bytes::from)
            .map_err(|e| decrypt_error(path, e, identity.unauthentic.load(Ordering::Relaxed)))
    }

    async fn reader(&self, path: &str) -> Result<ByteStream> {
        let sealed = self.inner.reader(path).await?;
        if self.is_clear(path) {
            return Ok(sealed);
        }
        let input = sealed
            .map_err(|e| std::io::Error::other(Box::new(e)))
            .into_async_read();
        let decryptor = age::Decryptor::new_async_buffered(input)
            .await
            .map_err(|e| decrypt_error(path, e, false))?;
        let identity = AuthIdentity::new(&self.key, path);
        let plain = decryptor
            .decrypt_async(std::iter::once(&identity as &dyn age::Identity))
            .map_err(|e| decrypt_error(path, e, identity.unauthentic.load(Ordering::Relaxed)))?;
        let owned = path.to_string();
        let stream = futures::stream::unfold(
            (plain, vec![0u8; READ_CHUNK], false),
            move |(mut plain, mut buf, done)| {
                let path = owned.clone();
                async move {
                    if done {
                        return None;
                    }
                    match plain.read(&mut buf).await {
                        Ok(0) => None,
                        Ok(n) => {
                            let chunk = Bytes::copy_from_slice(&buf[..n]);
                            Some((Ok(chunk), (plain, buf, false)))
                        }
                        Err(e) => Some((Err(io_error(&path, e)), (plain, buf, true))),
                    }
                }
            },
        );
        Ok(stream.boxed())
    }

    async fn stat(&self, path: &str) -> Result<Option<ObjectMeta>> {
        self.inner.stat(path).await
    }

    async fn list(&self, prefix: &str) -> Result<Vec<ObjectMeta>> {
        self.inner.list(prefix).await
    }

    async fn list_dirs(&self, prefix: &str) -> Result<Vec<String>> {
        self.inner.list_dirs(prefix).await
    }

    async fn delete(&self, path: &str) -> Result<()> {
        self.inner.delete(path).await
    }

    async fn delete_prefix(&self, prefix: &str) -> Result<()> {
        self.inner.delete_prefix(prefix).await
    }

    async fn delete_many(&self, paths: &[String]) -> Result<()> {
        self.inner.delete_many(paths).await
    }

    /// An encrypted object has the same path as its plaintext, so uploads pass through.
    async fn incomplete_uploads(&self) -> Result<Vec<IncompleteUpload>> {
        self.inner.incomplete_uploads().await
    }

    async fn abort_upload(&self, upload: &IncompleteUpload) -> Result<()> {
        self.inner.abort_upload(upload).await
    }
}
