//! Sealed records: a stored credential encrypted with an AEAD under the store key, bound to
//! its owner. The one format of every credential at rest (the token store's files today;
//! per-user secrets and a shared store later take the same bytes), so this module knows
//! nothing about files: bytes in, bytes out.
//!
//! Version 1, all integers big-endian:
//!
//! ```text
//! "MCPOSR"  magic (6 bytes; a JSON file, the plaintext format before, starts with '{')
//! 0x01      version: ChaCha20-Poly1305, 96-bit random nonce from the OS
//! key id    4 bytes: the first 4 of SHA-256("mcpo store key id\0" || key)
//! owner     record kind, server, user: each a u16 length and UTF-8; user length 0xFFFF
//!           means none (a single-user record)
//! nonce     12 bytes
//! sealed    the record encrypted, then Poly1305's 16-byte tag
//! ```
//!
//! The associated data is the header (magic to owner), so the owner written in the clear is
//! the one the record was sealed for: a record copied to another user's (or server's,
//! or kind's) name fails twice, on the owner check and on the tag. The key id only tells a
//! record sealed with another key from one that was altered; four bytes of a hash of a
//! 256-bit random key say nothing usable about it.

use ring::aead::{Aad, CHACHA20_POLY1305, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use ring::hkdf::{HKDF_SHA256, Prk, Salt};
use ring::rand::{SecureRandom, SystemRandom};
use sha2::{Digest, Sha256};

/// The first bytes of every sealed record.
pub const MAGIC: &[u8; 6] = b"MCPOSR";
/// The format this mcpo writes.
pub const VERSION: u8 = 1;
/// A store key's length: 32 random bytes.
pub const KEY_LEN: usize = 32;
const NO_USER: u16 = u16::MAX;

/// The store key. Its bytes are never shown: `Debug` prints only the key id.
pub struct StoreKey {
    key: LessSafeKey,
    id: [u8; 4],
    /// HKDF-SHA256's pseudorandom key from it, for keys of other purposes ([`Self::derive`]).
    prk: Prk,
}

impl std::fmt::Debug for StoreKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "StoreKey(id {})", self.id_hex())
    }
}

impl StoreKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<StoreKey, String> {
        if bytes.len() != KEY_LEN {
            return Err(format!(
                "a store key is {KEY_LEN} bytes (base64 of 32 random bytes), not {}",
                bytes.len()
            ));
        }
        let unbound = UnboundKey::new(&CHACHA20_POLY1305, bytes)
            .map_err(|_| "the store key was refused by the cipher".to_owned())?;
        let mut hash = Sha256::new();
        hash.update(b"mcpo store key id\0");
        hash.update(bytes);
        let digest = hash.finalize();
        Ok(StoreKey {
            key: LessSafeKey::new(unbound),
            id: [digest[0], digest[1], digest[2], digest[3]],
            prk: Salt::new(HKDF_SHA256, b"mcpo store key derivation").extract(bytes),
        })
    }

    /// A 32-byte key for another purpose, named by `info` (HKDF-SHA256, RFC 5869): every
    /// process with the same store key derives the same one (replicas sign and verify each
    /// other's one-time links), keys of different `info` are unrelated, and none of them
    /// tells anything about the store key.
    pub fn derive(&self, info: &[&[u8]]) -> [u8; KEY_LEN] {
        let mut out = [0u8; KEY_LEN];
        self.prk
            .expand(info, HKDF_SHA256)
            .and_then(|okm| okm.fill(&mut out))
            .expect("HKDF-SHA256 gives 32 bytes");
        out
    }

    /// A key from the base64 (standard or URL-safe, padded or not) of its 32 bytes, as in
    /// `MCPO_STORE_KEY` and key files. The message never quotes the text.
    pub fn from_base64(text: &str) -> Result<StoreKey, String> {
        use base64::Engine;
        use base64::engine::general_purpose::{
            STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD,
        };
        let text = text.trim();
        let bytes = [STANDARD, STANDARD_NO_PAD, URL_SAFE, URL_SAFE_NO_PAD]
            .iter()
            .find_map(|engine| engine.decode(text).ok())
            .ok_or_else(|| "the store key is not base64 (of 32 random bytes)".to_owned())?;
        StoreKey::from_bytes(&bytes)
    }

    /// 32 random bytes from the OS, as the base64 text a key file holds.
    pub fn generate_base64() -> Result<String, String> {
        use base64::Engine;
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| "the OS gave no random bytes for a store key".to_owned())?;
        Ok(base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    /// The key id in hex, for messages: which key sealed a record, never the key.
    pub fn id_hex(&self) -> String {
        hex(&self.id)
    }
}

/// Whose a record is, and what it is: the associated data it is sealed with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owner {
    /// What the record holds (`tokens`, `client`, …).
    pub kind: String,
    /// The server's name.
    pub server: String,
    /// The user (a multi-user server's caller), `None` for a single-user record.
    pub user: Option<String>,
}

impl std::fmt::Display for Owner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.user {
            Some(user) => write!(
                f,
                "{} of server '{}', user '{user}'",
                self.kind, self.server
            ),
            None => write!(f, "{} of server '{}'", self.kind, self.server),
        }
    }
}

/// What some stored bytes are.
#[derive(Debug, PartialEq, Eq)]
pub enum Format {
    /// A sealed record of a version this mcpo reads.
    Sealed,
    /// A sealed record of another (newer) version.
    Version(u8),
    /// Not a sealed record: plaintext as stored before sealing (JSON), or anything else.
    Plain,
}

/// Tells sealed records (of any version) from plaintext.
pub fn format(bytes: &[u8]) -> Format {
    match bytes.strip_prefix(MAGIC.as_slice()) {
        Some([VERSION, ..]) => Format::Sealed,
        Some([version, ..]) => Format::Version(*version),
        Some([]) => Format::Version(0),
        None => Format::Plain,
    }
}

/// Why a record does not open. None of the texts quote the record or the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OpenError {
    #[error("it is not a sealed record")]
    NotSealed,
    #[error(
        "it is sealed in format version {0}, which this mcpo does not read (written by a newer \
         mcpo?)"
    )]
    Version(u8),
    #[error("it is cut short or its header is damaged")]
    Damaged,
    #[error("it belongs to the {found}, not to the {expected}: copied from another name?")]
    OtherOwner {
        found: Box<Owner>,
        expected: Box<Owner>,
    },
    #[error(
        "it was sealed with another store key (key id {found}; the store key given has key id \
         {current}): start mcpo with the key it was sealed with"
    )]
    OtherKey { found: String, current: String },
    #[error("it does not decrypt with the store key: it was altered or damaged")]
    Altered,
}

/// A record parsed but not opened: who it is for and which key sealed it.
pub struct Envelope<'a> {
    header: &'a [u8],
    pub owner: Owner,
    key_id: [u8; 4],
    nonce: [u8; NONCE_LEN],
    sealed: &'a [u8],
}

impl<'a> Envelope<'a> {
    /// Reads the header of `bytes`; the contents stay sealed.
    pub fn parse(bytes: &'a [u8]) -> Result<Envelope<'a>, OpenError> {
        match format(bytes) {
            Format::Sealed => {}
            Format::Version(v) => return Err(OpenError::Version(v)),
            Format::Plain => return Err(OpenError::NotSealed),
        }
        let mut at = MAGIC.len() + 1;
        let key_id: [u8; 4] = take(bytes, &mut at, 4)?
            .try_into()
            .map_err(|_| OpenError::Damaged)?;
        let kind = text(bytes, &mut at)?.ok_or(OpenError::Damaged)?;
        let server = text(bytes, &mut at)?.ok_or(OpenError::Damaged)?;
        let user = text(bytes, &mut at)?;
        let header = &bytes[..at];
        let nonce: [u8; NONCE_LEN] = take(bytes, &mut at, NONCE_LEN)?
            .try_into()
            .map_err(|_| OpenError::Damaged)?;
        let sealed = &bytes[at..];
        if sealed.len() < CHACHA20_POLY1305.tag_len() {
            return Err(OpenError::Damaged);
        }
        Ok(Envelope {
            header,
            owner: Owner { kind, server, user },
            key_id,
            nonce,
            sealed,
        })
    }

    /// The id of the key that sealed it, in hex.
    pub fn key_id_hex(&self) -> String {
        hex(&self.key_id)
    }

    /// Whether `key` sealed it (by key id; the tag decides).
    pub fn sealed_with(&self, key: &StoreKey) -> bool {
        self.key_id == key.id
    }

    /// The record's plaintext, when `key` sealed it for `expected`.
    pub fn open(&self, key: &StoreKey, expected: &Owner) -> Result<Vec<u8>, OpenError> {
        if self.owner != *expected {
            return Err(OpenError::OtherOwner {
                found: Box::new(self.owner.clone()),
                expected: Box::new(expected.clone()),
            });
        }
        if !self.sealed_with(key) {
            return Err(OpenError::OtherKey {
                found: self.key_id_hex(),
                current: key.id_hex(),
            });
        }
        let mut buffer = self.sealed.to_vec();
        let plain = key
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(self.nonce),
                Aad::from(self.header),
                &mut buffer,
            )
            .map_err(|_| OpenError::Altered)?;
        Ok(plain.to_vec())
    }
}

/// Opens `bytes`, sealed with `key` for `owner`.
pub fn open(key: &StoreKey, owner: &Owner, bytes: &[u8]) -> Result<Vec<u8>, OpenError> {
    Envelope::parse(bytes)?.open(key, owner)
}

/// Seals `plain` with `key` for `owner`, under a fresh random nonce.
pub fn seal(key: &StoreKey, owner: &Owner, plain: &[u8]) -> Result<Vec<u8>, String> {
    let mut out = Vec::with_capacity(plain.len() + 128);
    out.extend_from_slice(MAGIC);
    out.push(VERSION);
    out.extend_from_slice(&key.id);
    for field in [Some(&owner.kind), Some(&owner.server), owner.user.as_ref()] {
        match field {
            Some(text) => {
                let len = u16::try_from(text.len())
                    .ok()
                    .filter(|&n| n != NO_USER)
                    .ok_or_else(|| format!("a record's owner is too long to seal ({owner})"))?;
                out.extend_from_slice(&len.to_be_bytes());
                out.extend_from_slice(text.as_bytes());
            }
            None => out.extend_from_slice(&NO_USER.to_be_bytes()),
        }
    }
    let header_len = out.len();
    let mut nonce = [0u8; NONCE_LEN];
    SystemRandom::new()
        .fill(&mut nonce)
        .map_err(|_| "the OS gave no random bytes for a nonce".to_owned())?;
    out.extend_from_slice(&nonce);
    let mut body = plain.to_vec();
    let (header, _) = out.split_at(header_len);
    let tag = key
        .key
        .seal_in_place_separate_tag(
            Nonce::assume_unique_for_key(nonce),
            Aad::from(header),
            &mut body,
        )
        .map_err(|_| "sealing a record failed".to_owned())?;
    out.extend_from_slice(&body);
    out.extend_from_slice(tag.as_ref());
    Ok(out)
}

fn take<'a>(bytes: &'a [u8], at: &mut usize, n: usize) -> Result<&'a [u8], OpenError> {
    let end = at.checked_add(n).ok_or(OpenError::Damaged)?;
    let part = bytes.get(*at..end).ok_or(OpenError::Damaged)?;
    *at = end;
    Ok(part)
}

/// A u16-length-prefixed UTF-8 field; `None` for the "no user" length.
fn text(bytes: &[u8], at: &mut usize) -> Result<Option<String>, OpenError> {
    let len = take(bytes, at, 2)?;
    let len = u16::from_be_bytes([len[0], len[1]]);
    if len == NO_USER {
        return Ok(None);
    }
    let raw = take(bytes, at, usize::from(len))?;
    String::from_utf8(raw.to_vec())
        .map(Some)
        .map_err(|_| OpenError::Damaged)
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> StoreKey {
        StoreKey::from_bytes(&[byte; KEY_LEN]).unwrap()
    }

    fn owner(user: Option<&str>) -> Owner {
        Owner {
            kind: "tokens".into(),
            server: "github".into(),
            user: user.map(str::to_owned),
        }
    }

    #[test]
    fn derived_keys_follow_the_store_key_and_their_purpose() {
        let info: &[&[u8]] = &[b"ticket", b"gh"];
        assert_eq!(key(1).derive(info), key(1).derive(info));
        assert_ne!(key(1).derive(info), key(2).derive(info));
        assert_ne!(key(1).derive(info), key(1).derive(&[b"ticket", b"gl"]));
        assert_ne!(key(1).derive(info), [1; KEY_LEN]);
    }

    #[test]
    fn round_trip_single_and_per_user() {
        let k = key(1);
        for who in [None, Some("alice"), Some("")] {
            let sealed = seal(&k, &owner(who), b"{\"access_token\":\"s3cr3t\"}").unwrap();
            assert_eq!(format(&sealed), Format::Sealed);
            assert!(!sealed.windows(6).any(|w| w == b"s3cr3t"));
            assert_eq!(
                open(&k, &owner(who), &sealed).unwrap(),
                b"{\"access_token\":\"s3cr3t\"}"
            );
            assert_eq!(Envelope::parse(&sealed).unwrap().owner, owner(who));
        }
        // A fresh nonce each time.
        assert_ne!(
            seal(&k, &owner(None), b"x").unwrap(),
            seal(&k, &owner(None), b"x").unwrap()
        );
    }

    #[test]
    fn another_owner_does_not_open() {
        let k = key(1);
        let sealed = seal(&k, &owner(Some("alice")), b"secret").unwrap();
        let err = open(&k, &owner(Some("bob")), &sealed).unwrap_err();
        assert!(matches!(err, OpenError::OtherOwner { .. }), "{err}");
        assert!(err.to_string().contains("alice") && err.to_string().contains("bob"));
        // Rewriting the owner in the header to bob's (same length) breaks the tag.
        let mut forged = sealed.clone();
        let at = forged.windows(5).position(|w| w == b"alice").unwrap();
        forged[at..at + 5].copy_from_slice(b"bob__");
        let bob = Owner {
            user: Some("bob__".into()),
            ..owner(None)
        };
        assert_eq!(open(&k, &bob, &forged).unwrap_err(), OpenError::Altered);
        // Single-user and per-user records are different owners too.
        assert!(matches!(
            open(&k, &owner(None), &sealed).unwrap_err(),
            OpenError::OtherOwner { .. }
        ));
    }

    #[test]
    fn another_key_does_not_open() {
        let sealed = seal(&key(1), &owner(None), b"secret").unwrap();
        let err = open(&key(2), &owner(None), &sealed).unwrap_err();
        assert!(matches!(err, OpenError::OtherKey { .. }), "{err}");
        // Even with the key id forged to match, the tag refuses it.
        let mut forged = sealed.clone();
        forged[7..11].copy_from_slice(&key(2).id);
        assert_eq!(
            open(&key(2), &owner(None), &forged).unwrap_err(),
            OpenError::Altered
        );
    }

    #[test]
    fn every_tampered_byte_is_refused() {
        let k = key(1);
        let sealed = seal(&k, &owner(Some("alice")), b"secret").unwrap();
        for i in 0..sealed.len() {
            let mut bad = sealed.clone();
            bad[i] ^= 0x01;
            assert!(open(&k, &owner(Some("alice")), &bad).is_err(), "byte {i}");
        }
        for cut in 0..sealed.len() {
            assert!(
                open(&k, &owner(Some("alice")), &sealed[..cut]).is_err(),
                "cut {cut}"
            );
        }
    }

    #[test]
    fn versions_and_plaintext_are_told_apart() {
        let k = key(1);
        let mut sealed = seal(&k, &owner(None), b"secret").unwrap();
        assert_eq!(format(b"{\"client_id\": \"x\"}"), Format::Plain);
        assert_eq!(
            open(&k, &owner(None), b"{}").unwrap_err(),
            OpenError::NotSealed
        );
        sealed[MAGIC.len()] = 2;
        assert_eq!(format(&sealed), Format::Version(2));
        let err = open(&k, &owner(None), &sealed).unwrap_err();
        assert_eq!(err, OpenError::Version(2));
        assert!(err.to_string().contains("version 2"));
    }

    #[test]
    fn keys_come_from_base64_of_32_bytes_and_never_show() {
        let text = StoreKey::generate_base64().unwrap();
        let k = StoreKey::from_base64(&format!("{text}\n")).unwrap();
        assert!(!format!("{k:?}").contains(&text));
        let err = StoreKey::from_base64("c2hvcnQ=").unwrap_err();
        assert!(err.contains("32") && !err.contains("c2hvcnQ"), "{err}");
        let err = StoreKey::from_base64("not base64 at all!").unwrap_err();
        assert!(!err.contains("at all"), "{err}");
        assert_ne!(StoreKey::generate_base64().unwrap(), text);
    }
}
