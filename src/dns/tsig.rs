//! TSIG (RFC 8945): the shared-secret signature that authenticates DNS UPDATE.
//!
//! We do the wire format ourselves with `ring::hmac` rather than through hickory:
//! the MAC covers the exact bytes the client sent, so verification must work on the
//! raw packet, and the format is small. Only hmac-sha256 is offered, the algorithm
//! RFC 8945 §6 says every implementation must support and the one nsupdate,
//! knsupdate, lego and certbot all speak.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use ring::hmac;

/// The one key onebox makes: its name is what clients put in the TSIG record.
pub(crate) const KEY_NAME: &str = "onebox-update.";
/// The file in the data folder that holds it, in BIND key-file format.
pub(crate) const KEY_FILE: &str = "onebox-update.key";
/// The algorithm's name on the wire and in key files.
const ALGORITHM: &str = "hmac-sha256.";
/// RFC 8945 §5.2.3: the window a signed time may be off by; 300 s is what BIND,
/// Knot and nsupdate use.
pub(crate) const FUDGE: u16 = 300;
/// The TSIG RR type (RFC 8945 §4.2).
const TSIG_TYPE: u16 = 250;
/// TSIG records are class ANY.
const CLASS_ANY: u16 = 255;

/// TSIG error codes (RFC 8945 §3), which travel in the TSIG record.
pub(crate) const BADSIG: u16 = 16;
pub(crate) const BADKEY: u16 = 17;
pub(crate) const BADTIME: u16 = 18;

/// A TSIG key: its name and its secret.
#[derive(Clone)]
pub(crate) struct TsigKey {
    pub(crate) name: String,
    pub(crate) secret: Vec<u8>,
}

impl std::fmt::Debug for TsigKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print the secret in a debug dump or a log line.
        f.debug_struct("TsigKey")
            .field("name", &self.name)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, thiserror::Error)]
pub(crate) enum KeyFileError {
    #[error("cannot create or read the TSIG key {path}: {source}")]
    Access {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{path}: not a BIND key file with an hmac-sha256 secret")]
    Malformed { path: PathBuf },
}

impl TsigKey {
    /// A new random 256-bit key (RFC 8945 §6: at least the hash's output size).
    pub(crate) fn generate() -> Self {
        Self {
            name: KEY_NAME.to_string(),
            secret: rand::random::<[u8; 32]>().to_vec(),
        }
    }

    pub(crate) fn secret_base64(&self) -> String {
        base64::engine::general_purpose::STANDARD.encode(&self.secret)
    }

    /// The key in BIND's key-file format, which `nsupdate -k FILE` reads.
    pub(crate) fn to_bind(&self) -> String {
        format!(
            "key \"{}\" {{\n\talgorithm hmac-sha256;\n\tsecret \"{}\";\n}};\n",
            self.name,
            self.secret_base64()
        )
    }

    /// Reads back what [`TsigKey::to_bind`] writes (and BIND's own files, which
    /// look the same). `None` when the text is not such a file.
    pub(crate) fn from_bind(text: &str) -> Option<Self> {
        let name = text.split('"').nth(1)?.trim().to_string();
        if !text.contains("hmac-sha256") {
            return None;
        }
        let after = text.split("secret").nth(1)?;
        let secret = after.split('"').nth(1)?;
        let secret = base64::engine::general_purpose::STANDARD
            .decode(secret.trim())
            .ok()?;
        if name.is_empty() || secret.is_empty() {
            return None;
        }
        let name = if name.ends_with('.') {
            name
        } else {
            format!("{name}.")
        };
        Some(Self { name, secret })
    }

    /// Loads the key in `dir`, making it first when there is none. The file is
    /// created owner-only (0600) and never overwritten: it is what clients hold.
    /// `durable` flushes a new file to disk first, as for the admin token.
    pub(crate) fn load_or_create(
        dir: &Path,
        durable: bool,
    ) -> Result<(Self, PathBuf), KeyFileError> {
        use crate::private_file::{Secret, create_or_read};
        let path = dir.join(KEY_FILE);
        let key = Self::generate();
        let found = create_or_read(&path, key.to_bind().as_bytes(), durable).map_err(|source| {
            KeyFileError::Access {
                path: path.clone(),
                source,
            }
        })?;
        match found {
            Secret::Created => Ok((key, path)),
            Secret::Existing(text) => {
                let key = Self::from_bind(&text)
                    .ok_or_else(|| KeyFileError::Malformed { path: path.clone() })?;
                Ok((key, path))
            }
        }
    }

    fn mac(&self, parts: &[&[u8]]) -> Vec<u8> {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.secret);
        let mut ctx = hmac::Context::with_key(&key);
        for part in parts {
            ctx.update(part);
        }
        ctx.sign().as_ref().to_vec()
    }
}

/// The TSIG record found at the end of a message, with where it starts.
#[derive(Debug, Clone)]
pub(crate) struct TsigRecord {
    /// Offset of the TSIG RR in the packet: the signed message is everything before.
    pub(crate) start: usize,
    pub(crate) key_name: String,
    pub(crate) algorithm: String,
    pub(crate) time_signed: u64,
    pub(crate) fudge: u16,
    pub(crate) mac: Vec<u8>,
    pub(crate) original_id: u16,
}

/// Why a signed request was not accepted: the TSIG error to send back.
// The variants are the RFC's names (BADKEY, BADSIG, BADTIME), so they share a prefix.
#[allow(clippy::enum_variant_names)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum TsigError {
    /// RFC 8945 §5.2.1: unknown key or algorithm.
    #[error("unknown TSIG key or algorithm")]
    BadKey,
    /// §5.2.2: the MAC does not verify.
    #[error("TSIG signature does not verify")]
    BadSig,
    /// §5.2.3: the signed time is outside the fudge window.
    #[error("TSIG time outside the allowed window")]
    BadTime,
}

impl TsigError {
    pub(crate) fn code(self) -> u16 {
        match self {
            Self::BadKey => BADKEY,
            Self::BadSig => BADSIG,
            Self::BadTime => BADTIME,
        }
    }
}

/// Reads one domain name at `at`, following compression pointers, as lowercase
/// text with a trailing dot; returns it and the offset just after it in place.
fn read_name(packet: &[u8], mut at: usize) -> Option<(String, usize)> {
    let mut labels: Vec<String> = Vec::new();
    let mut end = None;
    let mut jumps = 0;
    loop {
        let len = *packet.get(at)? as usize;
        if len & 0xC0 == 0xC0 {
            let low = *packet.get(at + 1)? as usize;
            end.get_or_insert(at + 2);
            jumps += 1;
            if jumps > 64 {
                return None;
            }
            at = ((len & 0x3F) << 8) | low;
            continue;
        }
        if len & 0xC0 != 0 {
            return None;
        }
        if len == 0 {
            end.get_or_insert(at + 1);
            break;
        }
        let label = packet.get(at + 1..at + 1 + len)?;
        labels.push(String::from_utf8_lossy(label).to_ascii_lowercase());
        at += 1 + len;
    }
    let mut text = labels.join(".");
    text.push('.');
    Some((text, end?))
}

/// A name in canonical wire form (RFC 4034 §6.2: lowercase, uncompressed), as
/// the MAC covers it.
fn wire_name(name: &str) -> Vec<u8> {
    let mut out = Vec::new();
    for label in name
        .trim_end_matches('.')
        .split('.')
        .filter(|l| !l.is_empty())
    {
        let label = label.to_ascii_lowercase();
        out.push(label.len().min(63) as u8);
        out.extend_from_slice(&label.as_bytes()[..label.len().min(63)]);
    }
    out.push(0);
    out
}

fn u16_at(packet: &[u8], at: usize) -> Option<u16> {
    Some(u16::from_be_bytes([*packet.get(at)?, *packet.get(at + 1)?]))
}

/// Finds the TSIG record, which RFC 8945 §5.1 requires to be the last record
/// of the additional section. `None` when the message has none (or is too
/// broken to walk; the caller's parser reports that).
pub(crate) fn find(packet: &[u8]) -> Option<TsigRecord> {
    let count = |i: usize| u16_at(packet, 4 + 2 * i).map(usize::from);
    let (qd, an, ns, ar) = (count(0)?, count(1)?, count(2)?, count(3)?);
    if ar == 0 {
        return None;
    }
    let mut at = 12;
    for _ in 0..qd {
        at = read_name(packet, at)?.1 + 4;
    }
    for _ in 0..an + ns + ar - 1 {
        at = read_name(packet, at)?.1;
        let len = usize::from(u16_at(packet, at + 8)?);
        at += 10 + len;
    }
    let start = at;
    let (key_name, after) = read_name(packet, at)?;
    if u16_at(packet, after)? != TSIG_TYPE {
        return None;
    }
    let rdlen = usize::from(u16_at(packet, after + 8)?);
    let rdata_at = after + 10;
    let rdata_end = rdata_at + rdlen;
    if rdata_end != packet.len() {
        return None;
    }
    let (algorithm, mut p) = read_name(packet, rdata_at)?;
    let time = packet.get(p..p + 6)?;
    let time_signed = time.iter().fold(0u64, |acc, b| (acc << 8) | u64::from(*b));
    p += 6;
    let fudge = u16_at(packet, p)?;
    let mac_len = usize::from(u16_at(packet, p + 2)?);
    p += 4;
    let mac = packet.get(p..p + mac_len)?.to_vec();
    p += mac_len;
    let original_id = u16_at(packet, p)?;
    if p + 6 > rdata_end {
        return None;
    }
    Some(TsigRecord {
        start,
        key_name,
        algorithm,
        time_signed,
        fudge,
        mac,
        original_id,
    })
}

/// The TSIG variables of RFC 8945 §4.3.3, as the MAC covers them.
fn variables(key: &str, time: u64, fudge: u16, error: u16, other: &[u8]) -> Vec<u8> {
    let mut out = wire_name(key);
    out.extend_from_slice(&CLASS_ANY.to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(&wire_name(ALGORITHM));
    out.extend_from_slice(&time.to_be_bytes()[2..]);
    out.extend_from_slice(&fudge.to_be_bytes());
    out.extend_from_slice(&error.to_be_bytes());
    out.extend_from_slice(&(other.len() as u16).to_be_bytes());
    out.extend_from_slice(other);
    out
}

/// The signed part of a message: the bytes before the TSIG RR, with ARCOUNT one
/// less and the original ID in the header (RFC 8945 §4.3.1).
fn unsigned_part(packet: &[u8], tsig: &TsigRecord) -> Vec<u8> {
    let mut message = packet[..tsig.start].to_vec();
    message[..2].copy_from_slice(&tsig.original_id.to_be_bytes());
    let ar = u16::from_be_bytes([message[10], message[11]]).saturating_sub(1);
    message[10..12].copy_from_slice(&ar.to_be_bytes());
    message
}

/// The message without its TSIG record (ARCOUNT one less): what hickory parses,
/// the signature having been checked on the raw bytes.
pub(crate) fn strip(packet: &[u8], tsig: &TsigRecord) -> Vec<u8> {
    let mut body = packet[..tsig.start].to_vec();
    let ar = u16::from_be_bytes([body[10], body[11]]).saturating_sub(1);
    body[10..12].copy_from_slice(&ar.to_be_bytes());
    body
}

/// Checks a request's TSIG against `key`, in the order RFC 8945 §5.2 gives:
/// key and algorithm, then the MAC, then the time.
pub(crate) fn verify(
    packet: &[u8],
    tsig: &TsigRecord,
    key: &TsigKey,
    now: u64,
) -> Result<(), TsigError> {
    if !tsig.key_name.eq_ignore_ascii_case(&key.name) || tsig.algorithm != ALGORITHM {
        return Err(TsigError::BadKey);
    }
    // §5.2.2.1: a truncated MAC must still be at least half the hash and 10 bytes.
    if tsig.mac.len() < 16 || tsig.mac.len() > 32 {
        return Err(TsigError::BadSig);
    }
    let message = unsigned_part(packet, tsig);
    let expected = key.mac(&[
        &message,
        &variables(&tsig.key_name, tsig.time_signed, tsig.fudge, 0, &[]),
    ]);
    // A truncated MAC (§5.2.2.1) is compared on its prefix; in constant time
    // either way, so timing tells an attacker nothing.
    let ok = constant_eq(&expected[..tsig.mac.len()], &tsig.mac);
    if !ok {
        return Err(TsigError::BadSig);
    }
    if now.abs_diff(tsig.time_signed) > u64::from(tsig.fudge) {
        return Err(TsigError::BadTime);
    }
    Ok(())
}

fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// Appends a TSIG record to a finished response (RFC 8945 §5.3). With
/// `request_mac` the response is signed, the MAC covering the request's MAC and
/// the response; without (BADKEY, BADSIG) it carries an empty MAC, as §5.3.2 asks.
/// BADTIME responses carry our time in Other Data (§5.2.3).
pub(crate) fn sign_response(
    mut response: Vec<u8>,
    key: &TsigKey,
    request: &TsigRecord,
    error: u16,
    signed: bool,
    now: u64,
) -> Vec<u8> {
    if response.len() < 12 {
        return response;
    }
    let other: Vec<u8> = if error == BADTIME {
        now.to_be_bytes()[2..].to_vec()
    } else {
        Vec::new()
    };
    // §5.2.3: a BADTIME response is signed with the client's time so it verifies;
    // everything else with ours.
    let time = if error == BADTIME {
        request.time_signed
    } else {
        now
    };
    let mac = if signed {
        let mut with_id = response.clone();
        with_id[..2].copy_from_slice(&request.original_id.to_be_bytes());
        key.mac(&[
            &(request.mac.len() as u16).to_be_bytes(),
            &request.mac,
            &with_id,
            &variables(&request.key_name, time, FUDGE, error, &other),
        ])
    } else {
        Vec::new()
    };
    let rdata = rdata(
        &request.algorithm,
        time,
        &mac,
        request.original_id,
        error,
        &other,
    );
    append_record(&mut response, &request.key_name, &rdata);
    response
}

/// Signs a message after the first of a multi-message answer (a zone transfer,
/// RFC 8945 §5.3.1): its MAC covers the previous message's MAC, this message, and
/// only the timers (time signed and fudge), which chains every message to the
/// one before, back to the request. Returns the signed message and its MAC, which
/// the next message chains on.
pub(crate) fn sign_continuation(
    mut response: Vec<u8>,
    key: &TsigKey,
    request: &TsigRecord,
    prior_mac: &[u8],
    now: u64,
) -> (Vec<u8>, Vec<u8>) {
    if response.len() < 12 {
        return (response, prior_mac.to_vec());
    }
    let mut with_id = response.clone();
    with_id[..2].copy_from_slice(&request.original_id.to_be_bytes());
    let mut timers = now.to_be_bytes()[2..].to_vec();
    timers.extend_from_slice(&FUDGE.to_be_bytes());
    let mac = key.mac(&[
        &(prior_mac.len() as u16).to_be_bytes(),
        prior_mac,
        &with_id,
        &timers,
    ]);
    let rdata = rdata(&request.algorithm, now, &mac, request.original_id, 0, &[]);
    append_record(&mut response, &request.key_name, &rdata);
    (response, mac)
}

/// A TSIG record's RDATA (RFC 8945 §4.2), with our fudge.
fn rdata(
    algorithm: &str,
    time: u64,
    mac: &[u8],
    original_id: u16,
    error: u16,
    other: &[u8],
) -> Vec<u8> {
    let mut rdata = wire_name(algorithm);
    rdata.extend_from_slice(&time.to_be_bytes()[2..]);
    rdata.extend_from_slice(&FUDGE.to_be_bytes());
    rdata.extend_from_slice(&(mac.len() as u16).to_be_bytes());
    rdata.extend_from_slice(mac);
    rdata.extend_from_slice(&original_id.to_be_bytes());
    rdata.extend_from_slice(&error.to_be_bytes());
    rdata.extend_from_slice(&(other.len() as u16).to_be_bytes());
    rdata.extend_from_slice(other);
    rdata
}

/// Appends the TSIG record (owner `key_name`, class ANY, TTL 0) to `packet` and
/// counts it in ARCOUNT: it is always the last additional record.
fn append_record(packet: &mut Vec<u8>, key_name: &str, rdata: &[u8]) {
    packet.extend_from_slice(&wire_name(key_name));
    packet.extend_from_slice(&TSIG_TYPE.to_be_bytes());
    packet.extend_from_slice(&CLASS_ANY.to_be_bytes());
    packet.extend_from_slice(&0u32.to_be_bytes());
    packet.extend_from_slice(&(rdata.len() as u16).to_be_bytes());
    packet.extend_from_slice(rdata);
    let ar = u16::from_be_bytes([packet[10], packet[11]]).saturating_add(1);
    packet[10..12].copy_from_slice(&ar.to_be_bytes());
}

/// Signs a request the way a client would: used by tests and by NOTIFY.
#[cfg(test)]
pub(crate) fn sign_request(mut packet: Vec<u8>, key: &TsigKey, now: u64) -> Vec<u8> {
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let mac = key.mac(&[&packet, &variables(&key.name, now, FUDGE, 0, &[])]);
    append_record(
        &mut packet,
        &key.name,
        &rdata(ALGORITHM, now, &mac, id, 0, &[]),
    );
    packet
}

/// Seconds since the Unix epoch, the clock TSIG uses.
pub(crate) fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn query() -> Vec<u8> {
        // ID 0x1234, opcode UPDATE, one zone: foobar.com SOA IN.
        let mut p = vec![0x12, 0x34, 0x28, 0, 0, 1, 0, 0, 0, 0, 0, 0];
        p.extend_from_slice(&wire_name("foobar.com."));
        p.extend_from_slice(&[0, 6, 0, 1]);
        p
    }

    #[test]
    fn a_signed_request_verifies_and_tampering_is_badsig() {
        let key = TsigKey::generate();
        let signed = sign_request(query(), &key, 1_000_000);
        let tsig = find(&signed).expect("a TSIG record");
        assert_eq!(tsig.key_name, KEY_NAME);
        assert_eq!(verify(&signed, &tsig, &key, 1_000_000), Ok(()));
        assert_eq!(
            verify(&signed, &tsig, &key, 1_000_000 + 301),
            Err(TsigError::BadTime)
        );
        let mut bad = signed.clone();
        bad[13] ^= 1;
        let tsig = find(&bad).expect("a TSIG record");
        assert_eq!(verify(&bad, &tsig, &key, 1_000_000), Err(TsigError::BadSig));
        let other = TsigKey::generate();
        let tsig = find(&signed).expect("a TSIG record");
        assert_eq!(
            verify(&signed, &tsig, &other, 1_000_000),
            Err(TsigError::BadSig)
        );
    }

    #[test]
    fn the_key_file_round_trips_in_bind_format() {
        let key = TsigKey::generate();
        let text = key.to_bind();
        assert!(text.starts_with("key \"onebox-update.\" {"));
        let back = TsigKey::from_bind(&text).expect("parses");
        assert_eq!(back.secret, key.secret);
        assert_eq!(back.name, KEY_NAME);
        assert!(TsigKey::from_bind("nonsense").is_none());
    }
}
