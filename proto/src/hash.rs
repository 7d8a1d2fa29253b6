//! blake3 hashes with domain separation.
//!
//! Every hash in yuchain names what it hashes: a transaction id can never be
//! mistaken for a block hash or a state key, because each uses blake3's
//! key-derivation mode with its own context string ([`Domain`]).

use std::fmt;

/// A 32-byte blake3 digest.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Hash32(pub [u8; 32]);

impl Hash32 {
    /// The all-zero hash, used for "no parent" and empty roots.
    pub const ZERO: Hash32 = Hash32([0; 32]);

    /// The digest bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Parses exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Hash32> {
        <[u8; 32]>::try_from(bytes).ok().map(Hash32)
    }
}

impl fmt::Debug for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", hex::encode(&self.0[..8]))
    }
}

impl fmt::Display for Hash32 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

/// What a hash is of. Each domain is a distinct blake3 key-derivation context,
/// fixed forever once a chain has started.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Domain {
    /// Prefix of the bytes a transaction signature covers.
    TxSignature,
    /// Transaction ids.
    TxId,
    /// Addresses, from the first auth key.
    Address,
    /// Block header hashes.
    BlockHeader,
    /// The root over a block's transaction ids.
    TxRoot,
    /// The root over a block's receipts.
    ReceiptsRoot,
    /// Keys in the state tree.
    StateKey,
    /// Consensus votes and timeouts (used by the consensus crate).
    Consensus,
    /// The deterministic coefficients of batch signature verification.
    BatchVerify,
    /// Genesis documents.
    Genesis,
    /// Batches of transactions and their acknowledgements (node crate).
    Batch,
}

impl Domain {
    /// The blake3 context string of this domain.
    pub const fn context(self) -> &'static str {
        match self {
            Domain::TxSignature => "yuchain v1 transaction signature",
            Domain::TxId => "yuchain v1 transaction id",
            Domain::Address => "yuchain v1 address",
            Domain::BlockHeader => "yuchain v1 block header",
            Domain::TxRoot => "yuchain v1 transaction root",
            Domain::ReceiptsRoot => "yuchain v1 receipts root",
            Domain::StateKey => "yuchain v1 state key",
            Domain::Consensus => "yuchain v1 consensus",
            Domain::BatchVerify => "yuchain v1 batch verification",
            Domain::Genesis => "yuchain v1 genesis",
            Domain::Batch => "yuchain v1 batch",
        }
    }

    /// A hasher for this domain, to feed several pieces.
    pub fn hasher(self) -> blake3::Hasher {
        blake3::Hasher::new_derive_key(self.context())
    }

    /// Hashes one byte string in this domain.
    pub fn hash(self, data: &[u8]) -> Hash32 {
        Hash32(blake3::derive_key(self.context(), data))
    }

    /// Hashes several byte strings, each prefixed with its length so that the
    /// split between them is unambiguous.
    pub fn hash_parts(self, parts: &[&[u8]]) -> Hash32 {
        let mut hasher = self.hasher();
        for part in parts {
            hasher.update(&(part.len() as u64).to_le_bytes());
            hasher.update(part);
        }
        Hash32(*hasher.finalize().as_bytes())
    }
}

/// The binary Merkle root (blake3, domain-tagged) over a list of leaf hashes.
/// Leaves and inner nodes are hashed with distinct prefixes, and an odd node
/// is carried up unchanged, so no two lists share a root. The root of the
/// empty list is [`Hash32::ZERO`].
pub fn merkle_root(domain: Domain, leaves: &[Hash32]) -> Hash32 {
    if leaves.is_empty() {
        return Hash32::ZERO;
    }
    let mut level: Vec<Hash32> = leaves
        .iter()
        .map(|leaf| {
            let mut hasher = domain.hasher();
            hasher.update(&[0]);
            hasher.update(&leaf.0);
            Hash32(*hasher.finalize().as_bytes())
        })
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|pair| match pair {
                [left, right] => {
                    let mut hasher = domain.hasher();
                    hasher.update(&[1]);
                    hasher.update(&left.0);
                    hasher.update(&right.0);
                    Hash32(*hasher.finalize().as_bytes())
                }
                [single] => *single,
                _ => unreachable!("chunks(2) yields one or two items"),
            })
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn domains_separate_equal_inputs() {
        let data = b"same bytes";
        assert_ne!(Domain::TxId.hash(data), Domain::BlockHeader.hash(data));
        assert_ne!(Domain::TxId.hash(data), Domain::Address.hash(data));
    }

    #[test]
    fn hash_parts_is_unambiguous_about_splits() {
        let a = Domain::TxId.hash_parts(&[b"ab", b"c"]);
        let b = Domain::TxId.hash_parts(&[b"a", b"bc"]);
        assert_ne!(a, b);
    }

    #[test]
    fn merkle_root_depends_on_order_and_count() {
        let leaves: Vec<Hash32> = (0u8..5).map(|i| Domain::TxId.hash(&[i])).collect();
        let root = merkle_root(Domain::TxRoot, &leaves);
        let mut swapped = leaves.clone();
        swapped.swap(0, 1);
        assert_ne!(root, merkle_root(Domain::TxRoot, &swapped));
        assert_ne!(root, merkle_root(Domain::TxRoot, &leaves[..4]));
        assert_eq!(merkle_root(Domain::TxRoot, &[]), Hash32::ZERO);
        // A single leaf is still hashed, so a root is never a bare leaf.
        assert_ne!(merkle_root(Domain::TxRoot, &leaves[..1]), leaves[0]);
    }
}
