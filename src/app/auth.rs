//! Accounts and the browser's proof of them: argon2id password hashes, session
//! tokens, cookies and CSRF tokens.

use argon2::Argon2;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use axum::http::HeaderMap;
use axum::http::header;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ring::rand::{SecureRandom, SystemRandom};
use ring::{digest, hmac};

pub(crate) const SESSION_COOKIE: &str = "onebox_session";
pub(crate) const CSRF_COOKIE: &str = "onebox_csrf";

/// argon2id with the crate's defaults (19 MiB, 2 passes, 1 lane: OWASP's minimum).
/// Slow on purpose, so call it on the blocking pool.
pub(crate) fn hash_password(password: &str) -> Result<String, String> {
    let salt = SaltString::encode_b64(&random_bytes::<16>()).map_err(|e| e.to_string())?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| e.to_string())
}

pub(crate) fn verify_password(password: &str, phc: &str) -> bool {
    PasswordHash::new(phc).is_ok_and(|parsed| {
        Argon2::default()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok()
    })
}

pub(crate) fn random_bytes<const N: usize>() -> [u8; N] {
    let mut out = [0u8; N];
    // SystemRandom reads the kernel's CSPRNG; it fails only if there is none.
    if SystemRandom::new().fill(&mut out).is_err() {
        out = rand::random();
    }
    out
}

/// A new session token (32 random bytes, base64url) for the cookie or `Bearer`.
pub(crate) fn new_token() -> String {
    URL_SAFE_NO_PAD.encode(random_bytes::<32>())
}

/// What the database stores for a token: its SHA-256.
pub(crate) fn token_hash(token: &str) -> [u8; 32] {
    let d = digest::digest(&digest::SHA256, token.as_bytes());
    let mut out = [0u8; 32];
    out.copy_from_slice(d.as_ref());
    out
}

/// The value of the cookie `name` sent with a request (HTTP/2 may split the
/// cookies over several headers); the last one wins when a name repeats. Looked
/// up in place: a page asks for two cookies, and building a map of every cookie
/// for each cost an allocation per cookie and a hasher per request.
pub(crate) fn cookie(headers: &HeaderMap, name: &str) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| {
            let (k, v) = pair.trim().split_once('=')?;
            (k.trim() == name).then_some(v)
        })
        // From the end: the last one sent is the one that counts.
        .next_back()
        .map(|v| v.trim().to_string())
}

/// The `Authorization: Bearer TOKEN` token, if any.
pub(crate) fn bearer(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.split_once(' ')?;
    scheme
        .eq_ignore_ascii_case("bearer")
        .then(|| token.trim().to_string())
}

/// `Set-Cookie` for a cookie the page's scripts never need: `HttpOnly`, sent on
/// same-site requests and top-level navigations only (`SameSite=Lax`), `Secure`
/// when the connection is TLS.
pub(crate) fn set_cookie(name: &str, value: &str, max_age: u64, secure: bool) -> String {
    let mut cookie = format!("{name}={value}; Path=/; Max-Age={max_age}; HttpOnly; SameSite=Lax");
    if secure {
        cookie.push_str("; Secure");
    }
    cookie
}

/// CSRF protection for HTML forms, as a signed double-submit token: the browser
/// holds a random `onebox_csrf` cookie, and each form carries an HMAC of it under a
/// key only the server knows. A page on another site can make the browser send the
/// cookie but cannot read it, so it cannot produce the matching form field; and the
/// signature stops a cookie planted by someone else from being paired with a token
/// of their choosing. Works for anonymous forms (login, register) too.
#[derive(Debug)]
pub(crate) struct Csrf {
    key: hmac::Key,
}

impl Csrf {
    pub(crate) fn new() -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, &random_bytes::<32>()),
        }
    }

    /// A new visitor's cookie, made on every anonymous page view. It comes from
    /// `rand`'s thread-local generator (ChaCha12, seeded and reseeded from the
    /// kernel), a CSPRNG that costs no system call; session tokens and keys still
    /// read the kernel's directly ([`random_bytes`]). The cookie only has to be
    /// unguessable by another site, and a planted one fails the HMAC anyway.
    pub(crate) fn new_cookie_value() -> String {
        URL_SAFE_NO_PAD.encode(rand::random::<[u8; 16]>())
    }

    pub(crate) fn token_for(&self, cookie: &str) -> String {
        URL_SAFE_NO_PAD.encode(hmac::sign(&self.key, cookie.as_bytes()).as_ref())
    }

    /// Constant-time check of a form's token against the request's cookie.
    pub(crate) fn verify(&self, cookie: Option<&str>, token: Option<&str>) -> bool {
        let (Some(cookie), Some(token)) = (cookie, token) else {
            return false;
        };
        let Ok(tag) = URL_SAFE_NO_PAD.decode(token) else {
            return false;
        };
        hmac::verify(&self.key, cookie.as_bytes(), &tag).is_ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_and_csrf() {
        let phc = hash_password("correct horse").unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(verify_password("correct horse", &phc));
        assert!(!verify_password("wrong horse", &phc));
        let csrf = Csrf::new();
        let cookie = Csrf::new_cookie_value();
        let token = csrf.token_for(&cookie);
        assert!(csrf.verify(Some(&cookie), Some(&token)));
        assert!(!csrf.verify(Some("other"), Some(&token)));
        assert!(!csrf.verify(Some(&cookie), None));
        assert!(!Csrf::new().verify(Some(&cookie), Some(&token)));
    }

    #[test]
    fn a_cookie_is_found_in_every_cookie_header_and_the_last_one_wins() {
        let mut headers = HeaderMap::new();
        assert_eq!(cookie(&headers, "onebox_csrf"), None);
        headers.append(
            header::COOKIE,
            "a=1; onebox_csrf = first ;b=2".parse().unwrap(),
        );
        headers.append(header::COOKIE, "junk; onebox_session=s3".parse().unwrap());
        assert_eq!(cookie(&headers, "onebox_csrf").as_deref(), Some("first"));
        assert_eq!(cookie(&headers, "onebox_session").as_deref(), Some("s3"));
        assert_eq!(cookie(&headers, "junk"), None);
        assert_eq!(cookie(&headers, "onebox"), None);
        headers.append(header::COOKIE, "onebox_csrf=second".parse().unwrap());
        assert_eq!(cookie(&headers, "onebox_csrf").as_deref(), Some("second"));
    }
}
