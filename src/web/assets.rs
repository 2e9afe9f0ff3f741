//! Static files: the stylesheet, favicon and images built into the binary, or with
//! `--site DIR` that folder's files at the site root. A path that names a file is
//! answered here; every other path goes on to the application.
//!
//! The HTTP caching and partial-content rules are done by hand, because they are
//! what a learner should see in the network tab: a strong `ETag` and
//! `Last-Modified` on every file, `304 Not Modified` for `If-None-Match` /
//! `If-Modified-Since`, and single byte ranges (`206`, `416`) honouring `If-Range`.
//!
//! Memory stays bounded whatever the files and the requests: `--site` files are
//! streamed from disk in [`CHUNK`]-sized reads (a range reads only its own bytes,
//! a HEAD reads none), and only small files are kept in memory, in a cache keyed
//! by the decoded, normalised path (so `/a%2Eb` and `/a.b` share one entry) and
//! bounded in bytes.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};
use std::time::{SystemTime, UNIX_EPOCH};

use anyhow::Context;
use axum::body::{Body, Bytes};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::Response;
use percent_encoding::percent_decode_str;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

/// A file compiled into the binary.
struct Builtin {
    path: &'static str,
    body: &'static [u8],
}

const BUILTIN: &[Builtin] = &[
    Builtin {
        path: "/static/site.css",
        body: include_bytes!("assets/site.css"),
    },
    Builtin {
        path: "/favicon.svg",
        body: include_bytes!("assets/favicon.svg"),
    },
    Builtin {
        path: "/static/stack.svg",
        body: include_bytes!("assets/stack.svg"),
    },
];

#[derive(Debug)]
pub(super) struct Assets {
    /// The canonical `--site` folder, if one was given.
    site: Option<PathBuf>,
    /// When this server started: the `Last-Modified` of the built-in files.
    started: SystemTime,
    /// The built-in files with their answers rendered once, at start.
    builtin: Vec<(&'static str, Arc<Prepared>)>,
    /// `--site` lookups, kept for [`FRESH_FOR`]: each file system call is a trip
    /// to tokio's blocking pool and back (a context switch each way), which made
    /// a small static file cost several times what nginx pays. Edits show within
    /// a second. A read-write lock: every request on every core reads it, and
    /// readers never wait for one another (a refresh writes once per second
    /// per path).
    cache: RwLock<Cache>,
}

/// When a path was looked up, and the file it named (`None`: no file there).
type Lookup = (Instant, Option<Arc<SiteFile>>);

/// Lookups by normalised path, with their cost in bytes.
#[derive(Debug, Default)]
struct Cache {
    entries: HashMap<String, Lookup>,
    bytes: usize,
}

/// How long a `--site` lookup is trusted before the file is looked at again.
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Files up to this size are kept in memory; larger ones are streamed from disk.
const SMALL_FILE: u64 = 64 * 1024;
/// The cache's budget: keys, bodies and a per-entry overhead together. When an
/// entry would not fit, the cache starts over (cheap, and a fresh second refills it).
const CACHE_BYTES: usize = 8 * 1024 * 1024;
const ENTRY_OVERHEAD: usize = 128;
/// How much of a file one read takes, and so at most what a response holds of it.
const CHUNK: usize = 64 * 1024;

/// A file from `--site`: where it is, and its bytes when it is small.
#[derive(Debug)]
struct SiteFile {
    path: PathBuf,
    len: u64,
    modified: SystemTime,
    body: Option<Bytes>,
    /// The whole-file answer, for a file kept in memory.
    prepared: Option<Arc<Prepared>>,
}

/// A file's plain `200` answer, rendered once when the file is read: the
/// validator, the whole header block (type, length, caching), and the body. Answering from it
/// clones `Bytes` (a reference count) and formats nothing. [`respond`] builds the
/// same headers for the other answers (304, 206, 416), so the two cannot drift.
#[derive(Debug)]
pub(super) struct Prepared {
    pub(super) etag: HeaderValue,
    pub(super) body: Bytes,
    /// The whole header block of a `GET` answer, in the order the ordinary path
    /// writes it (see [`Prepared::headers`]).
    get_headers: HeaderMap,
    /// The same for `HEAD`, which has no `Vary` (see [`Prepared::new`]).
    head_headers: HeaderMap,
}

/// The per-request headers every answer gets after the file's own
/// ([`super::front::common_headers`] writes them, in this order). The prepared
/// maps hold a slot for each, so that writing the real value replaces it in
/// place: the header order stays the ordinary path's, and the map never grows.
const COMMON_SLOTS: [(header::HeaderName, HeaderValue); 2] = [
    (
        header::HeaderName::from_static("server-timing"),
        HeaderValue::from_static(""),
    ),
    (
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    ),
];

impl Prepared {
    fn new(body: Bytes, mime: &'static str, etag: &str, modified: SystemTime) -> Option<Self> {
        let etag = HeaderValue::from_str(etag).ok()?;
        let last_modified = HeaderValue::from_str(&httpdate::fmt_http_date(modified)).ok()?;
        let content_type = HeaderValue::from_static(mime);
        let content_length = HeaderValue::from(body.len());
        // `Vary` exactly when the compression layer adds it (see [`compressible`]).
        let vary = compressible(mime, body.len() as u64);
        // The headers of a whole-file `200`, in the order the ordinary path
        // writes them. The compression layer sizes a HEAD answer by its empty
        // body: too small to compress, so no `Vary` there.
        let block = |with_vary: bool| {
            let mut headers = HeaderMap::with_capacity(12);
            headers.insert(header::ETAG, etag.clone());
            headers.insert(header::LAST_MODIFIED, last_modified.clone());
            headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
            headers.insert(header::CONTENT_TYPE, content_type.clone());
            if with_vary {
                headers.insert(header::VARY, HeaderValue::from_static("accept-encoding"));
            }
            headers.insert(header::CONTENT_LENGTH, content_length.clone());
            for (name, value) in COMMON_SLOTS {
                headers.insert(name, value);
            }
            headers
        };
        Some(Self {
            get_headers: block(vary),
            head_headers: block(false),
            etag,
            body,
        })
    }

    /// The answer's headers, ready to clone: one copy of a small table instead of
    /// hashing and inserting each header for every request. The per-request ones
    /// (`Server-Timing` and the rest of [`super::front::common_headers`]) still
    /// have to be written over their slots.
    pub(super) fn headers(&self, head: bool) -> &HeaderMap {
        if head {
            &self.head_headers
        } else {
            &self.get_headers
        }
    }
}

/// tower-http's `DefaultPredicate`, which the web server's compression layer
/// uses: at least 32 bytes, and not an image (SVG aside), gRPC or an event
/// stream. The fast path adds `Vary` exactly when the layer would; a test
/// compares the two paths' headers file by file.
fn compressible(mime: &str, len: u64) -> bool {
    len >= 32
        && (!mime.starts_with("image/") || mime.starts_with("image/svg+xml"))
        && !mime.starts_with("application/grpc")
        && !mime.starts_with("text/event-stream")
}

/// A built-in file's strong `ETag`: a hash of its bytes.
fn builtin_etag(body: &[u8]) -> String {
    let mut hasher = DefaultHasher::new();
    body.hash(&mut hasher);
    format!("\"{:016x}\"", hasher.finish())
}

/// A `--site` file's strong `ETag`: its date and length, as nginx makes it.
fn site_etag(modified: SystemTime, len: u64) -> String {
    format!(
        "\"{:x}-{:x}\"",
        modified
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0),
        len
    )
}

/// Where a response's bytes come from.
enum Content {
    Memory(Bytes),
    /// An open file; the length and date were read from the same open file.
    File(std::fs::File),
}

impl Assets {
    pub(super) fn new(site: Option<&Path>) -> anyhow::Result<Self> {
        let site = match site {
            Some(dir) => Some(
                dir.canonicalize()
                    .with_context(|| format!("--site {}: cannot open the folder", dir.display()))?,
            ),
            None => None,
        };
        if let Some(dir) = &site {
            anyhow::ensure!(dir.is_dir(), "--site {}: not a folder", dir.display());
        }
        // Whole seconds: HTTP dates have no fractions, and comparisons must agree.
        let now = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let started = UNIX_EPOCH + std::time::Duration::from_secs(now);
        let builtin = BUILTIN
            .iter()
            .filter_map(|b| {
                let mime = mime_for(Path::new(b.path));
                let body = Bytes::from_static(b.body);
                Prepared::new(body, mime, &builtin_etag(b.body), started)
                    .map(|p| (b.path, Arc::new(p)))
            })
            .collect();
        Ok(Self {
            site,
            started,
            builtin,
            cache: RwLock::new(Cache::default()),
        })
    }

    /// The rendered answer for `path` when it can be had without waiting: a
    /// built-in file, or a small `--site` file whose lookup is still fresh. `None`
    /// sends the request the ordinary way (which also refreshes the lookup).
    /// `now` is the request's arrival (a clock read it already paid for).
    pub(super) fn ready(&self, uri_path: &str, now: Instant) -> Option<Arc<Prepared>> {
        if self.site.is_some() {
            let key = normalised(uri_path)?;
            let cache = self.cache.read().unwrap_or_else(|e| e.into_inner());
            let (checked, file) = cache.entries.get(key.as_ref())?;
            if now.saturating_duration_since(*checked) >= FRESH_FOR {
                return None;
            }
            if let Some(file) = file {
                return file.prepared.clone();
            }
            // Fresh, and no such file in the folder: a built-in one may answer.
        }
        self.builtin
            .iter()
            .find(|(path, _)| *path == uri_path)
            .map(|(_, prepared)| prepared.clone())
    }

    /// The response for a GET/HEAD that names a file, or `None` to hand the
    /// request to the application.
    pub(super) async fn serve(
        &self,
        path: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> Option<Response> {
        if let Some(root) = &self.site {
            match self.site_response(root, path, headers, head).await {
                Ok(Some(response)) => return Some(response),
                Ok(None) => {}
                Err(e) => {
                    tracing::warn!("http: cannot read {path} from --site: {e}");
                    return Some(super::front::error_response(
                        path,
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "file could not be read",
                    ));
                }
            }
        }
        let (builtin, prepared) = self.builtin.iter().find(|(p, _)| *p == path)?;
        Some(respond(
            headers,
            head,
            Content::Memory(prepared.body.clone()),
            prepared.body.len() as u64,
            mime_for(Path::new(builtin)),
            prepared.etag.to_str().unwrap_or_default(),
            self.started,
        ))
    }

    async fn site_response(
        &self,
        root: &Path,
        uri_path: &str,
        headers: &HeaderMap,
        head: bool,
    ) -> std::io::Result<Option<Response>> {
        let Some(file) = self.site_lookup(root, uri_path).await? else {
            return Ok(None);
        };
        let mime = mime_for(&file.path);
        let (content, len, modified) = match &file.body {
            Some(body) => (Content::Memory(body.clone()), file.len, file.modified),
            None => {
                // Opened for this response: the length and date come from the
                // open file, so they match the bytes we send.
                let path = file.path.clone();
                let (opened, len, modified) = tokio::task::spawn_blocking(move || {
                    let opened = std::fs::File::open(&path)?;
                    let meta = opened.metadata()?;
                    std::io::Result::Ok((opened, meta.len(), whole_seconds(meta.modified()?)))
                })
                .await
                .map_err(std::io::Error::other)??;
                (Content::File(opened), len, modified)
            }
        };
        let etag = site_etag(modified, len);
        Ok(Some(respond(
            headers, head, content, len, mime, &etag, modified,
        )))
    }

    /// The `--site` file a path names (`None`: not a file there, so the app's),
    /// from the cache while fresh, else with one trip to the blocking pool.
    async fn site_lookup(
        &self,
        root: &Path,
        uri_path: &str,
    ) -> std::io::Result<Option<Arc<SiteFile>>> {
        // Spellings that decode to the same path share one entry; a path that
        // cannot name a file is answered without touching the cache or the disk.
        let Some(key) = normalise(uri_path) else {
            return Ok(None);
        };
        if let Some((checked, file)) = self
            .cache
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .get(&key)
            && checked.elapsed() < FRESH_FOR
        {
            return Ok(file.clone());
        }
        let (root, relative) = (root.to_path_buf(), key.clone());
        let file = tokio::task::spawn_blocking(move || -> std::io::Result<Option<SiteFile>> {
            let Some(path) = site_file(&root, &relative) else {
                return Ok(None);
            };
            let meta = std::fs::metadata(&path)?;
            let (len, modified) = (meta.len(), whole_seconds(meta.modified()?));
            let body = if len <= SMALL_FILE {
                let bytes = std::fs::read(&path)?;
                // Changed between the two calls: stream it instead.
                (bytes.len() as u64 == len).then(|| Bytes::from(bytes))
            } else {
                None
            };
            let prepared = body.as_ref().and_then(|body| {
                let etag = site_etag(modified, len);
                Prepared::new(body.clone(), mime_for(&path), &etag, modified).map(Arc::new)
            });
            Ok(Some(SiteFile {
                path,
                len,
                modified,
                body,
                prepared,
            }))
        })
        .await
        .map_err(std::io::Error::other)??
        .map(Arc::new);
        let cost = entry_cost(&key, &file);
        let mut cache = self.cache.write().unwrap_or_else(|e| e.into_inner());
        if cache.bytes + cost > CACHE_BYTES {
            cache.entries.clear();
            cache.bytes = 0;
        }
        if cost <= CACHE_BYTES {
            if let Some((_, old)) = cache
                .entries
                .insert(key.clone(), (Instant::now(), file.clone()))
            {
                cache.bytes = cache.bytes.saturating_sub(entry_cost(&key, &old));
            }
            cache.bytes += cost;
        }
        Ok(file)
    }
}

/// What a cache entry costs the budget: its key, the fixed overhead and the body
/// held in memory (none for a missing or streamed file).
fn entry_cost(key: &str, file: &Option<Arc<SiteFile>>) -> usize {
    key.len()
        + ENTRY_OVERHEAD
        + file
            .as_ref()
            .and_then(|f| f.body.as_ref())
            .map_or(0, Bytes::len)
}

/// The path a URI names, relative to the site root: percent-decoded, then every
/// segment checked: no `..`, no `.`, no hidden files, no empty segments, no
/// backslashes or NULs. `None` when it cannot name a file of ours.
fn normalise(uri_path: &str) -> Option<String> {
    normalised(uri_path).map(std::borrow::Cow::into_owned)
}

/// [`normalise`] without copying when the path has no percent escapes (the
/// usual case), for the fast path's cache lookups.
fn normalised(uri_path: &str) -> Option<std::borrow::Cow<'_, str>> {
    let rest = uri_path.strip_prefix('/')?;
    let decoded = percent_decode_str(rest).decode_utf8().ok()?;
    for segment in decoded.split('/') {
        if segment.is_empty() || segment.starts_with('.') || segment.contains(['\\', '\0']) {
            return None;
        }
    }
    Some(decoded)
}

/// The file under `root` that `relative` (from [`normalise`]) names, if it is a
/// regular file inside `root`: the resolved path (symlinks followed) must still be
/// inside `root`. Called on the blocking pool, off the async workers.
fn site_file(root: &Path, relative: &str) -> Option<PathBuf> {
    let path = root.join(relative);
    let real = std::fs::canonicalize(&path).ok()?;
    let is_file = std::fs::metadata(&real).ok()?.is_file();
    (real.starts_with(root) && is_file).then_some(real)
}

/// Whole seconds: HTTP dates have no fractions, and comparisons must agree.
fn whole_seconds(time: SystemTime) -> SystemTime {
    let secs = time
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    UNIX_EPOCH + std::time::Duration::from_secs(secs)
}

/// `count` bytes from `start`, read as the client takes them: at most one
/// [`CHUNK`] of a file is in memory per response.
fn body_of(content: Content, start: u64, count: u64, head: bool) -> Body {
    if head || count == 0 {
        return Body::empty();
    }
    match content {
        Content::Memory(bytes) => {
            let (start, end) = (start as usize, (start + count) as usize);
            Body::from(bytes.slice(start.min(bytes.len())..end.min(bytes.len())))
        }
        Content::File(file) => {
            let file = tokio::fs::File::from_std(file);
            let stream = futures_util::stream::unfold(
                Some((file, Some(start), count)),
                |state| async move {
                    let (mut file, seek, left) = state?;
                    if let Some(start) = seek
                        && let Err(e) = file.seek(std::io::SeekFrom::Start(start)).await
                    {
                        return Some((Err(e), None));
                    }
                    if left == 0 {
                        return None;
                    }
                    let mut buf = vec![0u8; (left as usize).min(CHUNK)];
                    match file.read(&mut buf).await {
                        Ok(0) => Some((
                            Err(std::io::Error::new(
                                std::io::ErrorKind::UnexpectedEof,
                                "the file shrank while it was sent",
                            )),
                            None,
                        )),
                        Ok(n) => {
                            buf.truncate(n);
                            Some((Ok(Bytes::from(buf)), Some((file, None, left - n as u64))))
                        }
                        Err(e) => Some((Err(e), None)),
                    }
                },
            );
            Body::from_stream(stream)
        }
    }
}

fn mime_for(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .map(str::to_ascii_lowercase)
        .unwrap_or_default();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" => "application/json",
        "txt" | "md" => "text/plain; charset=utf-8",
        "xml" => "application/xml",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "woff2" => "font/woff2",
        "woff" => "font/woff",
        "pdf" => "application/pdf",
        "wasm" => "application/wasm",
        _ => "application/octet-stream",
    }
}

/// Builds the answer for one file: 304, 206, 416 or 200.
fn respond(
    headers: &HeaderMap,
    head: bool,
    content: Content,
    len: u64,
    mime: &'static str,
    etag: &str,
    modified: SystemTime,
) -> Response {
    let last_modified = httpdate::fmt_http_date(modified);
    let mut builder = Response::builder()
        .header(header::ETAG, etag)
        .header(header::LAST_MODIFIED, &last_modified)
        // Revalidate every time: cheap with a 304, and edits show up at once.
        .header(header::CACHE_CONTROL, "no-cache")
        .header(header::ACCEPT_RANGES, "bytes");

    if not_modified(headers, etag, modified) {
        return builder
            .status(StatusCode::NOT_MODIFIED)
            .body(Body::empty())
            .unwrap_or_default();
    }
    builder = builder.header(header::CONTENT_TYPE, mime);

    let range = headers
        .get(header::RANGE)
        .and_then(|v| v.to_str().ok())
        .filter(|_| if_range_allows(headers, etag, modified));
    // The length is stated up front: a streamed body has none of its own, and a
    // HEAD answer has no body at all.
    match range.map(|r| parse_range(r, len)) {
        Some(RangeAnswer::Satisfiable(start, end)) => builder
            .status(StatusCode::PARTIAL_CONTENT)
            .header(header::CONTENT_RANGE, format!("bytes {start}-{end}/{len}"))
            .header(header::CONTENT_LENGTH, end - start + 1)
            .body(body_of(content, start, end - start + 1, head))
            .unwrap_or_default(),
        Some(RangeAnswer::Unsatisfiable) => builder
            .status(StatusCode::RANGE_NOT_SATISFIABLE)
            .header(header::CONTENT_RANGE, format!("bytes */{len}"))
            .body(Body::empty())
            .unwrap_or_default(),
        Some(RangeAnswer::Ignore) | None => builder
            .status(StatusCode::OK)
            .header(header::CONTENT_LENGTH, len)
            .body(body_of(content, 0, len, head))
            .unwrap_or_default(),
    }
}

/// RFC 9110 §13.1: `If-None-Match` wins over `If-Modified-Since`; ETags compare
/// weakly here (`W/"x"` matches `"x"`).
fn not_modified(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    if let Some(inm) = headers.get(header::IF_NONE_MATCH) {
        let Ok(inm) = inm.to_str() else { return false };
        let ours = etag.trim_start_matches("W/");
        return inm
            .split(',')
            .map(str::trim)
            .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours);
    }
    headers
        .get(header::IF_MODIFIED_SINCE)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| httpdate::parse_http_date(v).ok())
        .is_some_and(|since| modified <= since)
}

/// `If-Range`: send the range only if the file is still the one the client has
/// part of (strong ETag match, or the exact date); otherwise send it all.
fn if_range_allows(headers: &HeaderMap, etag: &str, modified: SystemTime) -> bool {
    let Some(value) = headers.get(header::IF_RANGE).and_then(|v| v.to_str().ok()) else {
        return true;
    };
    if value.starts_with('"') {
        return value == etag;
    }
    httpdate::parse_http_date(value).is_ok_and(|date| date == modified)
}

#[derive(Debug, PartialEq, Eq)]
enum RangeAnswer {
    /// First and last byte, inclusive.
    Satisfiable(u64, u64),
    Unsatisfiable,
    /// Not a single byte range we understand: answer with the whole file (allowed
    /// by RFC 9110 §14.2).
    Ignore,
}

fn parse_range(value: &str, len: u64) -> RangeAnswer {
    let Some(spec) = value.trim().strip_prefix("bytes=") else {
        return RangeAnswer::Ignore;
    };
    if spec.contains(',') {
        return RangeAnswer::Ignore;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeAnswer::Ignore;
    };
    let (first, last) = (first.trim(), last.trim());
    let parse = |s: &str| {
        (!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()))
            .then(|| s.parse::<u64>().ok())
            .flatten()
    };
    match (first.is_empty(), parse(first), parse(last)) {
        // bytes=-N: the last N bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeAnswer::Unsatisfiable
            } else {
                RangeAnswer::Satisfiable(len.saturating_sub(n), len - 1)
            }
        }
        (false, Some(start), end) if last.is_empty() || end.is_some() => {
            if start >= len {
                return RangeAnswer::Unsatisfiable;
            }
            match end {
                Some(end) if end < start => RangeAnswer::Ignore,
                Some(end) => RangeAnswer::Satisfiable(start, end.min(len - 1)),
                None => RangeAnswer::Satisfiable(start, len - 1),
            }
        }
        _ => RangeAnswer::Ignore,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeAnswer::*;
        assert_eq!(parse_range("bytes=0-9", 100), Satisfiable(0, 9));
        assert_eq!(parse_range("bytes=90-", 100), Satisfiable(90, 99));
        assert_eq!(parse_range("bytes=-10", 100), Satisfiable(90, 99));
        assert_eq!(parse_range("bytes=-500", 100), Satisfiable(0, 99));
        assert_eq!(parse_range("bytes=50-500", 100), Satisfiable(50, 99));
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=9-0", 100), Ignore);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Ignore);
        assert_eq!(parse_range("items=0-1", 100), Ignore);
        assert_eq!(parse_range("bytes=+1-2", 100), Ignore);
    }

    #[test]
    fn traversal_is_refused() {
        let root = std::env::temp_dir().join(format!("onebox-assets-{}", std::process::id()));
        std::fs::create_dir_all(root.join("sub")).unwrap();
        std::fs::write(root.join("sub/a.txt"), "a").unwrap();
        std::fs::write(root.join(".secret"), "s").unwrap();
        let root = root.canonicalize().unwrap();
        let site_file = |path: &str| normalise(path).and_then(|rel| site_file(&root, &rel));
        assert!(site_file("/sub/a.txt").is_some());
        assert!(site_file("/sub%2Fa.txt").is_some());
        for bad in [
            "/",
            "/sub",
            "/sub/",
            "/../etc/passwd",
            "/sub/../sub/a.txt",
            "/%2e%2e/etc/passwd",
            "/sub%2F..%2F..%2Fetc%2Fpasswd",
            "/.secret",
            "/sub\\a.txt",
            "/nope",
        ] {
            assert!(site_file(bad).is_none(), "{bad}");
        }
        std::fs::remove_dir_all(&root).unwrap();
    }
}
