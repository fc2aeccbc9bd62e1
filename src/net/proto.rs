//! The probe token protocol (DESIGN §6): wire format, HMAC checks and the replay cache; no sockets.
//!
//! Request, always [`REQUEST_LEN`] bytes:
//! `magic(4) version(1) kind=1(1) nonce(16) port(2) zero padding mac(16)`.
//! Reply, `REPLY_OVERHEAD + id` bytes, at most [`REQUEST_LEN`]:
//! `magic(4) version(1) kind=2(1) nonce(16) port(2) id_len(1) id mac(16)`.
//!
//! Each MAC is HMAC-SHA256 over every byte before it, truncated to 16 bytes. The kind byte keeps a
//! request from passing as a reply (an echo service must not verify), and the padding makes every
//! request at least as long as any reply, so answering never amplifies.

use std::collections::{HashSet, VecDeque};

use hmac::{Hmac, Mac};
use sha2::Sha256;

use super::Secret;

type HmacSha256 = Hmac<Sha256>;

pub const MAGIC: [u8; 4] = *b"SCCp";
pub const VERSION: u8 = 1;
const KIND_REQUEST: u8 = 1;
const KIND_REPLY: u8 = 2;
pub const NONCE_LEN: usize = 16;
pub const MAC_LEN: usize = 16;
/// Every request has this length; the listener drops anything else (truncated or padded).
pub const REQUEST_LEN: usize = 192;
/// Bytes of a reply besides its id.
pub const REPLY_OVERHEAD: usize = 4 + 1 + 1 + NONCE_LEN + 2 + 1 + MAC_LEN;
/// The longest id a reply carries (longer ones are cut at a character boundary).
pub const MAX_ID_LEN: usize = REQUEST_LEN - REPLY_OVERHEAD;
/// The longest reply.
pub const MAX_REPLY_LEN: usize = REQUEST_LEN;

const HEADER_LEN: usize = 4 + 1 + 1;
const NONCE_AT: usize = HEADER_LEN;
const PORT_AT: usize = NONCE_AT + NONCE_LEN;
const REQ_FIELDS_END: usize = PORT_AT + 2;
const ID_LEN_AT: usize = PORT_AT + 2;
const ID_AT: usize = ID_LEN_AT + 1;

pub type Nonce = [u8; NONCE_LEN];

/// Why bytes are not a valid request or reply. The listener never tells the sender.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProtoError {
    #[error("{got} bytes where {expected} were expected")]
    Length { got: usize, expected: usize },
    #[error("not a scc-ports message (bad magic)")]
    Magic,
    #[error("protocol version {0}, expected {VERSION}")]
    Version(u8),
    #[error("message kind {0} where {1} was expected")]
    Kind(u8, u8),
    #[error("authentication failed (wrong secret or altered message)")]
    Mac,
    #[error("non-zero padding")]
    Padding,
    #[error("the reply answers another probe (nonce mismatch)")]
    Nonce,
    #[error("the reply is for port {got}, the probe was for {expected}")]
    Port { expected: u16, got: u16 },
    #[error("the reply's id is malformed")]
    Id,
}

/// An authenticated request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Request {
    pub nonce: Nonce,
    pub port: u16,
}

/// An authenticated reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reply {
    pub nonce: Nonce,
    pub port: u16,
    /// `component/port_id` of the endpoint that answered, possibly cut to [`MAX_ID_LEN`].
    pub id: String,
}

fn mac(secret: &Secret, data: &[u8]) -> HmacSha256 {
    // HMAC takes keys of any length, so this cannot fail.
    let mut m = HmacSha256::new_from_slice(secret.key()).expect("HMAC accepts any key length");
    m.update(data);
    m
}

fn check_header(bytes: &[u8], kind: u8) -> Result<(), ProtoError> {
    if bytes[0..4] != MAGIC {
        return Err(ProtoError::Magic);
    }
    if bytes[4] != VERSION {
        return Err(ProtoError::Version(bytes[4]));
    }
    if bytes[5] != kind {
        return Err(ProtoError::Kind(bytes[5], kind));
    }
    Ok(())
}

fn verify(secret: &Secret, bytes: &[u8]) -> Result<(), ProtoError> {
    let (body, tag) = bytes.split_at(bytes.len() - MAC_LEN);
    mac(secret, body)
        .verify_truncated_left(tag)
        .map_err(|_| ProtoError::Mac)
}

/// A fresh random nonce.
pub fn new_nonce() -> Result<Nonce, getrandom::Error> {
    let mut n = [0u8; NONCE_LEN];
    getrandom::fill(&mut n)?;
    Ok(n)
}

pub fn encode_request(secret: &Secret, nonce: &Nonce, port: u16) -> [u8; REQUEST_LEN] {
    let mut b = [0u8; REQUEST_LEN];
    b[0..4].copy_from_slice(&MAGIC);
    b[4] = VERSION;
    b[5] = KIND_REQUEST;
    b[NONCE_AT..PORT_AT].copy_from_slice(nonce);
    b[PORT_AT..REQ_FIELDS_END].copy_from_slice(&port.to_be_bytes());
    let tag = mac(secret, &b[..REQUEST_LEN - MAC_LEN])
        .finalize()
        .into_bytes();
    b[REQUEST_LEN - MAC_LEN..].copy_from_slice(&tag[..MAC_LEN]);
    b
}

/// Checks a received request: exact length, header, MAC (in constant time), then padding.
pub fn decode_request(secret: &Secret, bytes: &[u8]) -> Result<Request, ProtoError> {
    if bytes.len() != REQUEST_LEN {
        return Err(ProtoError::Length {
            got: bytes.len(),
            expected: REQUEST_LEN,
        });
    }
    check_header(bytes, KIND_REQUEST)?;
    verify(secret, bytes)?;
    if bytes[REQ_FIELDS_END..REQUEST_LEN - MAC_LEN]
        .iter()
        .any(|&b| b != 0)
    {
        return Err(ProtoError::Padding);
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&bytes[NONCE_AT..PORT_AT]);
    Ok(Request {
        nonce,
        port: u16::from_be_bytes([bytes[PORT_AT], bytes[PORT_AT + 1]]),
    })
}

/// The id a reply carries for an endpoint, cut to [`MAX_ID_LEN`] bytes on a char boundary.
pub fn reply_id(component: &str, port_id: &str) -> String {
    cut(&format!("{component}/{port_id}"), MAX_ID_LEN).to_owned()
}

fn cut(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

/// The reply to `req`, never longer than [`MAX_REPLY_LEN`] (= [`REQUEST_LEN`]).
pub fn encode_reply(secret: &Secret, req: &Request, id: &str) -> Vec<u8> {
    let id = cut(id, MAX_ID_LEN);
    let mut b = Vec::with_capacity(REPLY_OVERHEAD + id.len());
    b.extend_from_slice(&MAGIC);
    b.push(VERSION);
    b.push(KIND_REPLY);
    b.extend_from_slice(&req.nonce);
    b.extend_from_slice(&req.port.to_be_bytes());
    b.push(id.len() as u8);
    b.extend_from_slice(id.as_bytes());
    let tag = mac(secret, &b).finalize().into_bytes();
    b.extend_from_slice(&tag[..MAC_LEN]);
    debug_assert!(b.len() <= MAX_REPLY_LEN);
    b
}

/// How long the reply starting with `prefix` is, once the id length byte has arrived
/// (TCP readers need it to know when a reply is complete).
pub fn reply_len(prefix: &[u8]) -> Option<usize> {
    prefix
        .get(ID_LEN_AT)
        .map(|&n| REPLY_OVERHEAD + usize::from(n))
}

/// Checks a reply against the probe it should answer.
pub fn decode_reply(
    secret: &Secret,
    bytes: &[u8],
    nonce: &Nonce,
    port: u16,
) -> Result<Reply, ProtoError> {
    if bytes.len() < REPLY_OVERHEAD || bytes.len() > MAX_REPLY_LEN {
        return Err(ProtoError::Length {
            got: bytes.len(),
            expected: REPLY_OVERHEAD,
        });
    }
    check_header(bytes, KIND_REPLY)?;
    let id_len = usize::from(bytes[ID_LEN_AT]);
    if REPLY_OVERHEAD + id_len != bytes.len() {
        return Err(ProtoError::Length {
            got: bytes.len(),
            expected: REPLY_OVERHEAD + id_len,
        });
    }
    verify(secret, bytes)?;
    if bytes[NONCE_AT..PORT_AT] != nonce[..] {
        return Err(ProtoError::Nonce);
    }
    let got = u16::from_be_bytes([bytes[PORT_AT], bytes[PORT_AT + 1]]);
    if got != port {
        return Err(ProtoError::Port {
            expected: port,
            got,
        });
    }
    let id = std::str::from_utf8(&bytes[ID_AT..ID_AT + id_len]).map_err(|_| ProtoError::Id)?;
    Ok(Reply {
        nonce: *nonce,
        port,
        id: id.to_owned(),
    })
}

/// The nonces already answered, oldest forgotten first once `capacity` is reached.
///
/// Only authenticated nonces enter, so junk cannot flush it; a replay older than the last
/// `capacity` requests is answered again, which is harmless (the reply is never larger).
#[derive(Debug)]
pub struct ReplayCache {
    seen: HashSet<Nonce>,
    order: VecDeque<Nonce>,
    capacity: usize,
}

impl ReplayCache {
    pub fn new(capacity: usize) -> ReplayCache {
        let capacity = capacity.max(1);
        ReplayCache {
            seen: HashSet::new(),
            order: VecDeque::new(),
            capacity,
        }
    }

    /// Records `nonce`; false if it was already there (a replay).
    pub fn insert(&mut self, nonce: Nonce) -> bool {
        if !self.seen.insert(nonce) {
            return false;
        }
        self.order.push_back(nonce);
        while self.order.len() > self.capacity {
            if let Some(old) = self.order.pop_front() {
                self.seen.remove(&old);
            }
        }
        true
    }

    pub fn len(&self) -> usize {
        self.order.len()
    }

    pub fn is_empty(&self) -> bool {
        self.order.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn secret(s: &str) -> Secret {
        Secret::new(s).unwrap()
    }

    const N: Nonce = [7u8; NONCE_LEN];

    #[test]
    fn request_round_trips() {
        let s = secret("k1");
        let b = encode_request(&s, &N, 8443);
        assert_eq!(b.len(), REQUEST_LEN);
        assert_eq!(
            decode_request(&s, &b),
            Ok(Request {
                nonce: N,
                port: 8443
            })
        );
    }

    #[test]
    fn reply_round_trips_and_fits_in_a_request() {
        let s = secret("k1");
        let req = Request {
            nonce: N,
            port: 9000,
        };
        let r = encode_reply(&s, &req, "mrs/rtp");
        assert_eq!(r.len(), REPLY_OVERHEAD + 7);
        assert_eq!(reply_len(&r[..ID_AT]), Some(r.len()));
        let got = decode_reply(&s, &r, &N, 9000).unwrap();
        assert_eq!(got.id, "mrs/rtp");
        let long = "é".repeat(500);
        let r = encode_reply(&s, &req, &reply_id(&long, "x"));
        assert!(r.len() <= REQUEST_LEN);
        assert!(decode_reply(&s, &r, &N, 9000).is_ok());
    }

    #[test]
    fn wrong_secret_never_verifies() {
        let good = secret("right");
        let bad = secret("wrong");
        let b = encode_request(&bad, &N, 80);
        assert_eq!(decode_request(&good, &b), Err(ProtoError::Mac));
        let r = encode_reply(&bad, &Request { nonce: N, port: 80 }, "a/b");
        assert_eq!(decode_reply(&good, &r, &N, 80), Err(ProtoError::Mac));
    }

    #[test]
    fn every_single_bit_flip_is_rejected() {
        let s = secret("k");
        let b = encode_request(&s, &N, 5060);
        for i in 0..b.len() {
            for bit in 0..8 {
                let mut m = b;
                m[i] ^= 1 << bit;
                assert!(decode_request(&s, &m).is_err(), "byte {i} bit {bit}");
            }
        }
        let r = encode_reply(
            &s,
            &Request {
                nonce: N,
                port: 5060,
            },
            "c/p",
        );
        for i in 0..r.len() {
            let mut m = r.clone();
            m[i] ^= 0x10;
            assert!(decode_reply(&s, &m, &N, 5060).is_err(), "reply byte {i}");
        }
    }

    #[test]
    fn truncated_or_padded_messages_are_rejected() {
        let s = secret("k");
        let b = encode_request(&s, &N, 1);
        for len in 0..REQUEST_LEN {
            assert!(decode_request(&s, &b[..len]).is_err());
        }
        let mut longer = b.to_vec();
        longer.push(0);
        assert!(decode_request(&s, &longer).is_err());
        let r = encode_reply(&s, &Request { nonce: N, port: 1 }, "c/p");
        for len in 0..r.len() {
            assert!(decode_reply(&s, &r[..len], &N, 1).is_err());
        }
    }

    #[test]
    fn a_request_echoed_back_is_not_a_reply() {
        let s = secret("k");
        let b = encode_request(&s, &N, 7);
        assert!(decode_reply(&s, &b, &N, 7).is_err());
    }

    #[test]
    fn reply_must_answer_this_probe() {
        let s = secret("k");
        let r = encode_reply(&s, &Request { nonce: N, port: 7 }, "c/p");
        assert_eq!(
            decode_reply(&s, &r, &[8u8; NONCE_LEN], 7),
            Err(ProtoError::Nonce)
        );
        assert_eq!(
            decode_reply(&s, &r, &N, 8),
            Err(ProtoError::Port {
                expected: 8,
                got: 7
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let s = secret("k");
        let mut x: u32 = 12345;
        for len in [0usize, 1, 5, 24, 40, 41, 100, 191, 192, 193, 1500] {
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    x = x.wrapping_mul(1_103_515_245).wrapping_add(12345);
                    (x >> 16) as u8
                })
                .collect();
            assert!(decode_request(&s, &bytes).is_err());
            assert!(decode_reply(&s, &bytes, &N, 1).is_err());
            let _ = reply_len(&bytes);
        }
    }

    #[test]
    fn replay_cache_rejects_repeats_and_stays_bounded() {
        let mut c = ReplayCache::new(3);
        assert!(c.insert([1; 16]));
        assert!(!c.insert([1; 16]));
        for i in 2..10u8 {
            assert!(c.insert([i; 16]));
        }
        assert_eq!(c.len(), 3);
        assert!(!c.insert([9; 16]));
        assert!(c.insert([1; 16]), "forgotten after eviction");
    }
}
