//! ed25519 keys: generation, PKCS#8 PEM files and signing (ed25519-dalek).
//!
//! Verification is not here: it follows the consensus rule in
//! [`crate::verify`], under ed25519-zebra.

use std::fmt;
use std::path::Path;

use ed25519_dalek::Signer as _;
use ed25519_dalek::pkcs8::{DecodePrivateKey, EncodePrivateKey, spki::der::pem::LineEnding};

use crate::error::KeyError;

/// A 32-byte ed25519 public key in its standard encoding.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey(pub [u8; 32]);

impl PublicKey {
    /// Parses exactly 32 bytes. Whether the bytes are a valid curve point is
    /// decided by signature verification, under the consensus rule.
    pub fn from_slice(bytes: &[u8]) -> Result<PublicKey, KeyError> {
        <[u8; 32]>::try_from(bytes)
            .map(PublicKey)
            .map_err(|_| KeyError::PublicKeyLength(bytes.len()))
    }

    /// Whether this key may own an account: it must be a curve point that is
    /// not of small order. Under the ZIP-215 rule anyone can forge a
    /// signature for a small-order key (with `s = 0` and a small-order `R`
    /// the cofactored equation holds for every message), so such keys are
    /// refused wherever a key is given authority.
    pub fn check_usable(&self) -> Result<(), KeyError> {
        let key =
            ed25519_dalek::VerifyingKey::from_bytes(&self.0).map_err(|_| KeyError::NotAPoint)?;
        if key.is_weak() {
            return Err(KeyError::SmallOrder);
        }
        Ok(())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", hex::encode(self.0))
    }
}

/// A 64-byte ed25519 signature (R ‖ s).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Signature(pub [u8; 64]);

impl Signature {
    /// Parses exactly 64 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Signature, KeyError> {
        <[u8; 64]>::try_from(bytes)
            .map(Signature)
            .map_err(|_| KeyError::SignatureLength(bytes.len()))
    }
}

impl fmt::Debug for Signature {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Signature({}…)", hex::encode(&self.0[..8]))
    }
}

/// A private signing key. Its bytes are wiped on drop (ed25519-dalek's
/// `zeroize`), and `Debug` never shows them.
#[derive(Clone)]
pub struct SigningKey(ed25519_dalek::SigningKey);

impl SigningKey {
    /// A new key from the operating system's random source.
    pub fn generate() -> Result<SigningKey, KeyError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|error| KeyError::Random(error.to_string()))?;
        Ok(SigningKey::from_seed(seed))
    }

    /// The key with this 32-byte seed. Deterministic: for tests, fixtures and
    /// load generators, never for real wallets.
    pub fn from_seed(seed: [u8; 32]) -> SigningKey {
        SigningKey(ed25519_dalek::SigningKey::from_bytes(&seed))
    }

    /// A fixture key derived from a label, e.g. `SigningKey::for_test("alice")`.
    pub fn for_test(label: &str) -> SigningKey {
        SigningKey::from_seed(blake3::derive_key("yuchain test key", label.as_bytes()))
    }

    /// The 32-byte secret seed: only to hand the same key to another
    /// ed25519 implementation (the node's network key goes to libp2p). Keep
    /// it out of logs and files other than the key file.
    pub fn seed(&self) -> [u8; 32] {
        self.0.to_bytes()
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.0.verifying_key().to_bytes())
    }

    /// Signs `message` (deterministic ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> Signature {
        Signature(self.0.sign(message).to_bytes())
    }

    /// The key as a PKCS#8 PEM document.
    pub fn to_pem(&self) -> Result<String, KeyError> {
        self.0
            .to_pkcs8_pem(LineEnding::LF)
            .map(|pem| pem.to_string())
            .map_err(|error| KeyError::Pem(error.to_string()))
    }

    /// Reads a PKCS#8 PEM document.
    pub fn from_pem(pem: &str) -> Result<SigningKey, KeyError> {
        ed25519_dalek::SigningKey::from_pkcs8_pem(pem)
            .map(SigningKey)
            .map_err(|error| KeyError::Pem(error.to_string()))
    }

    /// Writes the key as PEM to a new file readable by its owner only. An
    /// existing file is never overwritten: a lost key is lost money.
    pub fn save_pem(&self, path: &Path) -> Result<(), KeyError> {
        use std::io::Write as _;
        let pem = self.to_pem()?;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt as _;
            options.mode(0o600);
        }
        let io = |error: std::io::Error| KeyError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        };
        let mut file = options.open(path).map_err(io)?;
        file.write_all(pem.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)
    }

    /// Reads a PEM key file.
    pub fn load_pem(path: &Path) -> Result<SigningKey, KeyError> {
        let pem = std::fs::read_to_string(path).map_err(|error| KeyError::Io {
            path: path.display().to_string(),
            message: error.to_string(),
        })?;
        SigningKey::from_pem(&pem)
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "SigningKey(public: {})",
            hex::encode(self.public_key().0)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::verify::verify_one;

    #[test]
    fn pem_round_trip_keeps_the_key() {
        let key = SigningKey::for_test("pem");
        let pem = key.to_pem().expect("encode");
        assert!(pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        let back = SigningKey::from_pem(&pem).expect("decode");
        assert_eq!(back.public_key(), key.public_key());
    }

    #[test]
    fn save_refuses_to_overwrite_and_load_reads_back() {
        let dir = std::env::temp_dir().join(format!("yuchain-keys-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let path = dir.join("wallet.pem");
        let _ = std::fs::remove_file(&path);
        let key = SigningKey::generate().expect("random");
        key.save_pem(&path).expect("save");
        assert!(matches!(key.save_pem(&path), Err(KeyError::Io { .. })));
        let loaded = SigningKey::load_pem(&path).expect("load");
        assert_eq!(loaded.public_key(), key.public_key());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
            assert_eq!(mode & 0o077, 0, "key file must not be readable by others");
        }
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }

    #[test]
    fn small_order_and_invalid_keys_are_not_usable() {
        assert!(
            SigningKey::for_test("ok")
                .public_key()
                .check_usable()
                .is_ok()
        );
        // The identity point (y = 1) has order 1.
        let mut identity = [0u8; 32];
        identity[0] = 1;
        assert_eq!(
            PublicKey(identity).check_usable(),
            Err(KeyError::SmallOrder)
        );
        // y = 2 is not on the curve.
        let mut off_curve = [0u8; 32];
        off_curve[0] = 2;
        assert_eq!(
            PublicKey(off_curve).check_usable(),
            Err(KeyError::NotAPoint)
        );
    }

    #[test]
    fn garbage_pem_is_a_clear_error() {
        assert!(matches!(
            SigningKey::from_pem("not a key"),
            Err(KeyError::Pem(_))
        ));
    }

    #[test]
    fn signatures_verify_under_the_consensus_rule() {
        let key = SigningKey::for_test("sign");
        let signature = key.sign(b"hello");
        assert!(verify_one(&key.public_key(), b"hello", &signature).is_ok());
        assert!(verify_one(&key.public_key(), b"hellO", &signature).is_err());
    }
}
