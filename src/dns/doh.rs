//! DNS over HTTPS (RFC 8484): the same answers as UDP and TCP, carried in HTTP.
//!
//! The web server routes `/dns-query` here. hickory's own DoH listener only takes
//! POST, while browsers (Chromium's secure DNS, Firefox's TRR) send GET with the
//! query base64url-encoded in `?dns=`; serving it from our HTTP stack gives both,
//! and every answer comes from the same engine as the other transports.
//!
//! In the toy Internet (`--zones internet`) the recursive resolver runs too, and
//! DoH answers through it instead: a browser using DoH then gets the whole chain
//! (root → com → foobar.com), with RA set and no AA, exactly as a stub asking
//! the resolver over UDP would. Without a root zone nothing changes: DoH answers
//! authoritatively from the engine.
use std::net::SocketAddr;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hickory_server::proto::op::Message;

use super::recursor::Recursor;
use super::{Engine, Transport};

pub(crate) const CONTENT_TYPE: &str = "application/dns-message";

/// What to send back over HTTP.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct DohReply {
    pub(crate) status: u16,
    /// `application/dns-message` on success, a short explanation otherwise.
    pub(crate) content_type: &'static str,
    pub(crate) body: Vec<u8>,
    /// RFC 8484 §5.1: the freshness lifetime is the smallest TTL in the answer.
    pub(crate) max_age: Option<u32>,
}

impl DohReply {
    fn error(status: u16, message: &str) -> Self {
        Self {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{message}\n").into_bytes(),
            max_age: None,
        }
    }
}

/// Answers one DoH request. `query` is the URI's query string; `content_type` the
/// request's Content-Type header. With `recursor`, the question goes to the
/// recursive resolver rather than to the authoritative engine.
pub(crate) async fn handle(
    engine: &Engine,
    recursor: Option<&Recursor>,
    method: &str,
    query: Option<&str>,
    content_type: Option<&str>,
    body: &[u8],
    client: SocketAddr,
) -> DohReply {
    let packet = match method {
        "GET" => {
            let Some(encoded) = query
                .unwrap_or("")
                .split('&')
                .find_map(|pair| pair.strip_prefix("dns="))
            else {
                return DohReply::error(
                    400,
                    "missing ?dns= (a base64url-encoded DNS query, RFC 8484 §4.1)",
                );
            };
            // RFC 8484 says no padding; accept it anyway, as other servers do.
            match URL_SAFE_NO_PAD.decode(encoded.trim_end_matches('=')) {
                Ok(packet) => packet,
                Err(_) => return DohReply::error(400, "?dns= is not valid base64url"),
            }
        }
        "POST" => {
            let media = content_type
                .unwrap_or("")
                .split(';')
                .next()
                .unwrap_or("")
                .trim();
            if !media.eq_ignore_ascii_case(CONTENT_TYPE) {
                return DohReply::error(415, "a DoH POST body must be application/dns-message");
            }
            body.to_vec()
        }
        _ => return DohReply::error(405, "DNS over HTTPS takes GET or POST"),
    };
    if packet.len() > usize::from(u16::MAX) {
        return DohReply::error(413, "a DNS message is at most 65535 bytes");
    }
    // Not UDP: an HTTP body is never truncated, whatever the EDNS buffer says.
    let reply = match recursor {
        Some(recursor) => recursor.answer(&packet, client, false).await,
        None => engine.answer(&packet, client, Transport::Https).await,
    };
    let Some(reply) = reply else {
        return DohReply::error(400, "not a DNS query");
    };
    DohReply {
        status: 200,
        content_type: CONTENT_TYPE,
        max_age: Some(min_ttl(&reply)),
        body: reply,
    }
}

/// The smallest TTL of the records in a reply (answer and authority), 0 if none.
fn min_ttl(reply: &[u8]) -> u32 {
    let Ok(message) = Message::from_vec(reply) else {
        return 0;
    };
    message
        .answers
        .iter()
        .chain(message.authorities.iter())
        .map(|r| r.ttl)
        .min()
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::dns::Zones;

    fn engine() -> Engine {
        Engine::new(
            Zones::load(std::path::Path::new("/nonexistent-onebox-zones"), false).unwrap(),
            Vec::new(),
        )
    }

    const WWW_A: &[u8] = b"\x00\x00\x01\x00\x00\x01\x00\x00\x00\x00\x00\x00\x03www\x06foobar\x03com\x00\x00\x01\x00\x01";

    #[tokio::test]
    async fn get_and_post_give_the_same_answer() {
        let engine = engine();
        let client: SocketAddr = "127.0.0.1:443".parse().unwrap();
        let query = format!("dns={}", URL_SAFE_NO_PAD.encode(WWW_A));
        let get = handle(&engine, None, "GET", Some(&query), None, b"", client).await;
        let post = handle(
            &engine,
            None,
            "POST",
            None,
            Some(CONTENT_TYPE),
            WWW_A,
            client,
        )
        .await;
        assert_eq!(get.status, 200);
        assert_eq!(get, post);
        assert_eq!(get.max_age, Some(3600));
        let message = Message::from_vec(&get.body).unwrap();
        assert_eq!(message.answers.len(), 2, "CNAME and the apex A");
    }

    #[tokio::test]
    async fn bad_requests_get_http_errors() {
        let engine = engine();
        let client: SocketAddr = "127.0.0.1:443".parse().unwrap();
        // (method, query, content type, body, the status it must get)
        let cases: [(_, _, _, &[u8], _); 5] = [
            ("GET", None, None, b"", 400),
            ("GET", Some("dns=!!"), None, b"", 400),
            ("POST", None, Some("text/plain"), WWW_A, 415),
            ("PUT", None, None, b"", 405),
            ("POST", None, Some(CONTENT_TYPE), b"short", 400),
        ];
        for (method, query, content_type, body, status) in cases {
            let reply = handle(&engine, None, method, query, content_type, body, client).await;
            assert_eq!(reply.status, status, "{method} {query:?} {content_type:?}");
        }
    }
}
