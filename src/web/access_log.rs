//! The access log line, formatted by hand: byte for byte what
//! `tracing::info!(target: "onebox::web::access", …)` writes in the compact text
//! format, at a fraction of the cost. Under static-file load, `tracing`'s
//! formatter (field visitors, `fmt::write`, padding, styles that paint nothing)
//! was about a tenth of the server's CPU; this writes straight into the log
//! buffer with no allocation.
//!
//! Only the plain compact format takes this path ([`crate::log::append_plain`]);
//! with `--log-format json`, or colours on a terminal, the line goes through
//! `tracing` as before. The level filter (`RUST_LOG`) is asked first either way.

use std::time::SystemTime;

use crate::log::{write_timestamp, write_u64};

/// The log target of access lines (what `RUST_LOG` filters on).
pub(super) const TARGET: &str = "onebox::web::access";

/// One request's access line.
#[derive(Debug)]
pub(super) struct Fields<'a> {
    pub(super) method: &'a str,
    pub(super) host: &'a str,
    pub(super) path: &'a str,
    pub(super) status: u16,
    pub(super) bytes: u64,
    pub(super) micros: u64,
    pub(super) layer: &'a str,
    pub(super) route: &'a str,
}

impl Fields<'_> {
    /// Logs the line: formatted by hand into the log buffer when the format
    /// allows, else through `tracing`.
    /// `at` is the line's time (the caller reads the clock once for the line
    /// and the live event).
    pub(super) fn log(&self, at: SystemTime) {
        if !tracing::enabled!(target: TARGET, tracing::Level::INFO) {
            return;
        }
        if !crate::log::append_plain(|out| self.write(out, at)) {
            tracing::info!(
                target: TARGET,
                method = %self.method,
                host = %self.host,
                path = %self.path,
                status = self.status,
                bytes = self.bytes,
                micros = self.micros,
                layer = self.layer,
                route = self.route,
            );
        }
    }

    /// Appends the line as the compact format writes it: timestamp, level,
    /// target, then the fields; `%` fields (method, host, path) as they are,
    /// string fields (layer, route) quoted and escaped as `{:?}` does.
    fn write(&self, out: &mut Vec<u8>, at: SystemTime) {
        write_timestamp(out, at);
        out.extend_from_slice(b"  INFO ");
        out.extend_from_slice(TARGET.as_bytes());
        out.extend_from_slice(b": method=");
        out.extend_from_slice(self.method.as_bytes());
        out.extend_from_slice(b" host=");
        out.extend_from_slice(self.host.as_bytes());
        out.extend_from_slice(b" path=");
        out.extend_from_slice(self.path.as_bytes());
        out.extend_from_slice(b" status=");
        write_u64(out, u64::from(self.status));
        out.extend_from_slice(b" bytes=");
        write_u64(out, self.bytes);
        out.extend_from_slice(b" micros=");
        write_u64(out, self.micros);
        out.extend_from_slice(b" layer=");
        write_debug_str(out, self.layer);
        out.extend_from_slice(b" route=");
        write_debug_str(out, self.route);
        out.push(b'\n');
    }
}

/// `{:?}` of a string: quoted as is when it holds only printable ASCII other
/// than `"` and `\` (every layer and route name), else through `fmt`, whose
/// escaping (`\"`, `\u{1b}`, …) is then byte-identical by construction.
fn write_debug_str(out: &mut Vec<u8>, value: &str) {
    if value
        .bytes()
        .all(|b| (b' '..=b'~').contains(&b) && b != b'"' && b != b'\\')
    {
        out.push(b'"');
        out.extend_from_slice(value.as_bytes());
        out.push(b'"');
    } else {
        use std::io::Write as _;
        let _ = write!(out, "{value:?}");
    }
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use super::*;

    /// Captures what a `tracing_subscriber` writes, as serve configures it
    /// (compact, no colour).
    #[derive(Clone, Default)]
    struct Capture(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Capture {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().expect("unpoisoned").extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// The line `tracing` writes for `fields` (the fallback path, which is
    /// the format as it was before the hand-written one).
    fn through_tracing(fields: &Fields<'_>) -> String {
        let capture = Capture::default();
        let writer = capture.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .compact()
            .finish();
        tracing::subscriber::with_default(subscriber, || fields.log(SystemTime::now()));
        let bytes = capture.0.lock().expect("unpoisoned").clone();
        String::from_utf8(bytes).expect("UTF-8")
    }

    fn by_hand(fields: &Fields<'_>) -> String {
        let mut out = Vec::new();
        fields.write(&mut out, SystemTime::now());
        String::from_utf8(out).expect("UTF-8")
    }

    /// The part after the timestamp (27 bytes), which is tested on its own in
    /// `crate::log`.
    fn after_timestamp(line: &str) -> &str {
        assert_eq!(line.as_bytes()[26], b'Z', "{line}");
        &line[27..]
    }

    #[test]
    fn hand_written_line_is_byte_identical_to_tracing() {
        let cases = [
            Fields {
                method: "GET",
                host: "foobar.com",
                path: "/bench.txt",
                status: 200,
                bytes: 2048,
                micros: 119,
                layer: "static",
                route: "",
            },
            Fields {
                method: "POST",
                host: "www.foobar.com",
                path: "/api/posts",
                status: 201,
                bytes: 0,
                micros: 0,
                layer: "app",
                route: "/api/posts/{id}",
            },
            // Odd bytes where a client chooses them: percent-escapes, quotes,
            // backslashes, non-ASCII text and control characters.
            Fields {
                method: "M-SEARCH",
                host: "xn--bcher-kva.foobar.com",
                path: "/a%20b/\"q\"/\\x/caf\u{e9}/\u{1b}[31m/\u{7f}\u{85}",
                status: 404,
                bytes: u64::MAX,
                micros: 1_234_567,
                layer: "we\"ird\\",
                route: "tab\there\nnew\u{1b}[0m\u{200b}\u{e9}",
            },
        ];
        for fields in &cases {
            let tracing_line = through_tracing(fields);
            let hand_line = by_hand(fields);
            assert_eq!(
                after_timestamp(&hand_line),
                after_timestamp(&tracing_line),
                "{fields:?}"
            );
        }
    }

    #[test]
    fn quoting_escapes_what_debug_escapes() {
        for value in ["", "static", "a\"b", "back\\slash", "\u{0}", "é", "~ !"] {
            let mut out = Vec::new();
            write_debug_str(&mut out, value);
            assert_eq!(out, format!("{value:?}").as_bytes());
        }
    }
}
