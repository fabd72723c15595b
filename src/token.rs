//! Acknowledgement tokens: unguessable, and stored only as their SHA-256 hash.
//!
//! Each obligation's token is the first 128 bits of HMAC-SHA256 under a random 256-bit key,
//! of the obligation's key (`rule/period/unit`), written as 32 hex digits. The key lives in a
//! file beside the database (mode 0600), never in it, so a copy of the database alone cannot
//! forge or recover a link, and the database holds only each token's SHA-256 hash, which is
//! what an incoming link is looked up by. Deriving the token (rather than storing a random
//! one) is what lets every later message of an obligation carry the same link without the
//! token being written anywhere.

use std::io::Write as _;
use std::path::{Path, PathBuf};

use hmac::{Hmac, KeyInit, Mac};
use sha2::{Digest, Sha256};

/// The secret that tokens are derived from.
#[derive(Clone)]
pub struct TokenKey([u8; 32]);

impl std::fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("TokenKey(…)")
    }
}

/// The key file that belongs to a database file: `nhacviec.db` → `nhacviec.key`.
pub fn key_path(db: &Path) -> PathBuf {
    db.with_extension("key")
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

impl TokenKey {
    /// Creates the key file with a fresh random key, readable by its owner only; fails if
    /// the file exists.
    pub fn create(path: &Path) -> std::io::Result<TokenKey> {
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).map_err(std::io::Error::other)?;
        write_private(path, hex(&key).as_bytes())?;
        Ok(TokenKey(key))
    }

    /// A name for the key that reveals nothing of it, kept in the database so that a start
    /// with another key file is refused: 16 hex digits.
    pub fn fingerprint(&self) -> String {
        self.token("nhacviec key fingerprint")[..16].to_string()
    }

    /// Reads the key file if it exists.
    pub fn load(path: &Path) -> std::io::Result<Option<TokenKey>> {
        let text = match std::fs::read_to_string(path) {
            Ok(t) => t,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(e),
        };
        let text = text.trim();
        let mut key = [0u8; 32];
        let ok = text.len() == 64
            && text.is_ascii()
            && key.iter_mut().enumerate().all(|(i, b)| {
                u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
                    .map(|v| *b = v)
                    .is_ok()
            });
        if ok {
            Ok(Some(TokenKey(key)))
        } else {
            Err(std::io::Error::new(
                std::io::ErrorKind::InvalidData,
                format!(
                    "{} is not a token key (64 hex digits); restore it from a backup, or remove it to issue new links (old links stop working)",
                    path.display()
                ),
            ))
        }
    }

    /// A key from bytes (tests).
    pub fn from_bytes(key: [u8; 32]) -> TokenKey {
        TokenKey(key)
    }

    /// The token of an obligation: 32 hex digits.
    pub fn token(&self, obligation_key: &str) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"nhacviec ack v1\0");
        mac.update(obligation_key.as_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }
}

impl TokenKey {
    /// The token of a unit's page and feed at `generation`: 32 hex digits, from a different
    /// domain than the obligations' tokens, so neither can stand for the other.
    pub fn unit_token(&self, unit: &str, generation: u32) -> String {
        let mut mac = <Hmac<Sha256> as KeyInit>::new_from_slice(&self.0)
            .unwrap_or_else(|_| unreachable!("HMAC takes a key of any length"));
        mac.update(b"nhacviec unit v1\0");
        mac.update(unit.as_bytes());
        mac.update(b"\0");
        mac.update(&generation.to_be_bytes());
        hex(&mac.finalize().into_bytes()[..16])
    }
}

/// Writes a new file (never an existing one) readable by its owner only, and syncs it: the
/// key file, and its copy beside a backup.
pub fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut opts = std::fs::OpenOptions::new();
    opts.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        opts.mode(0o600);
    }
    let mut f = opts.open(path)?;
    f.write_all(bytes)?;
    f.sync_all()
}

/// SHA-256 of a token, as stored and looked up.
pub fn hash(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// True if `s` has a token's shape (32 lowercase hex digits): anything else is not looked up.
pub fn well_formed(s: &str) -> bool {
    s.len() == 32
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_stable_distinct_and_keyed() {
        let a = TokenKey::from_bytes([1; 32]);
        let b = TokenKey::from_bytes([2; 32]);
        let t = a.token("bao-cao-9-thang/2025-9M/vp");
        assert!(well_formed(&t), "{t}");
        assert_eq!(t, a.token("bao-cao-9-thang/2025-9M/vp"));
        assert_ne!(t, a.token("bao-cao-9-thang/2025-9M/kt"));
        assert_ne!(t, b.token("bao-cao-9-thang/2025-9M/vp"));
        assert_ne!(hash(&t), hash(&a.token("x")));
        assert!(!well_formed(&t[..31]));
        assert!(!well_formed(&t.to_uppercase()));
        let u = a.unit_token("vp", 0);
        assert!(well_formed(&u), "{u}");
        assert_eq!(u, a.unit_token("vp", 0));
        assert_ne!(u, a.unit_token("vp", 1), "a rotation changes it");
        assert_ne!(u, a.unit_token("kt", 0));
        assert_ne!(u, b.unit_token("vp", 0));
        assert_ne!(u, a.token("vp"), "not an obligation's token");
    }

    #[test]
    fn key_file_is_created_once_and_private() {
        let dir = crate::testutil::TempDir::new("token");
        let path = key_path(&dir.join("nhacviec.db"));
        assert_eq!(path.file_name().unwrap(), "nhacviec.key");
        let k1 = TokenKey::create(&path).unwrap();
        assert!(TokenKey::create(&path).is_err(), "never overwritten");
        let k2 = TokenKey::load(&path).unwrap().unwrap();
        assert_eq!(k1.token("x"), k2.token("x"));
        assert_eq!(k1.fingerprint(), k2.fingerprint());
        assert_ne!(
            k1.fingerprint(),
            TokenKey::from_bytes([9; 32]).fingerprint()
        );
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::write(&path, format!("0é{}", "a".repeat(61))).unwrap();
        let err = TokenKey::load(&path).unwrap_err();
        assert!(
            err.to_string().contains("is not a token key"),
            "non-ASCII: {err}"
        );
        std::fs::write(&path, "garbage").unwrap();
        let err = TokenKey::load(&path).unwrap_err();
        assert!(err.to_string().contains("is not a token key"), "{err}");
    }
}
