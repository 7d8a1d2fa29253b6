//! Peer identities and the node's network secret key, and their mapping to
//! libp2p's `PeerId`.

use libp2p::{PeerId, identity};

use crate::error::{NetworkError, Result};

/// A peer's identity: its ed25519 network public key (32 bytes). Converted
/// to a libp2p `PeerId` inside.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Debug)]
pub struct PeerKey(pub [u8; 32]);

impl PeerKey {
    /// The key as 64 lowercase hex characters.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Parses 64 hex characters. Whether the bytes are a valid ed25519 point
    /// is checked when the key is used (`spawn`, `set_allowed`).
    pub fn from_hex(s: &str) -> Result<PeerKey> {
        let bad = |reason: String| NetworkError::BadKey {
            key: s.to_owned(),
            reason,
        };
        let bytes = hex::decode(s.trim()).map_err(|e| bad(e.to_string()))?;
        let array: [u8; 32] = bytes
            .try_into()
            .map_err(|b: Vec<u8>| bad(format!("{} bytes, expected 32", b.len())))?;
        Ok(PeerKey(array))
    }

    /// The libp2p `PeerId` of this key (the identity multihash of the
    /// protobuf-encoded ed25519 public key).
    pub fn to_peer_id(&self) -> Result<PeerId> {
        let public = identity::ed25519::PublicKey::try_from_bytes(&self.0).map_err(|e| {
            NetworkError::BadKey {
                key: self.to_hex(),
                reason: format!("not an ed25519 public key: {e}"),
            }
        })?;
        Ok(identity::PublicKey::from(public).to_peer_id())
    }

    /// The key inside a `PeerId`, if it is an inlined ed25519 key (every
    /// peer that passed the noise handshake with an ed25519 identity is).
    pub fn from_peer_id(peer: &PeerId) -> Option<PeerKey> {
        // An ed25519 PeerId is the identity multihash (code 0, length 36) of
        // the protobuf encoding of the public key (4 header bytes + 32).
        let bytes = peer.to_bytes();
        let digest = bytes.strip_prefix(&[0x00, 36])?;
        let public = identity::PublicKey::try_decode_protobuf(digest).ok()?;
        let ed25519 = public.try_into_ed25519().ok()?;
        Some(PeerKey(ed25519.to_bytes()))
    }
}

impl std::fmt::Display for PeerKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.to_hex())
    }
}

/// A network secret key: a 32-byte ed25519 seed.
#[derive(Clone)]
pub struct NetworkKey {
    seed: [u8; 32],
}

impl NetworkKey {
    /// A fresh random key (from the operating system's generator).
    pub fn generate() -> NetworkKey {
        let keypair = identity::ed25519::Keypair::generate();
        let mut seed = [0u8; 32];
        seed.copy_from_slice(keypair.secret().as_ref());
        NetworkKey { seed }
    }

    /// The key with this seed (any 32 bytes are a valid seed).
    pub fn from_seed(seed: [u8; 32]) -> NetworkKey {
        NetworkKey { seed }
    }

    /// The 32-byte seed, to store the key.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The public key peers know this node by.
    pub fn public(&self) -> PeerKey {
        PeerKey(self.keypair().public().to_bytes())
    }

    pub(crate) fn keypair(&self) -> identity::ed25519::Keypair {
        let mut seed = self.seed;
        // A 32-byte ed25519 seed is always valid, so this cannot fail; the
        // error arm exists only because the libp2p API is fallible.
        match identity::ed25519::SecretKey::try_from_bytes(&mut seed) {
            Ok(secret) => identity::ed25519::Keypair::from(secret),
            Err(_) => unreachable!("a 32-byte ed25519 seed is always valid"),
        }
    }
}

impl std::fmt::Debug for NetworkKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NetworkKey")
            .field("public", &self.public())
            .finish_non_exhaustive()
    }
}
