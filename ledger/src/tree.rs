//! The authenticated state tree: a Jellyfish Merkle Tree (the `jmt` crate,
//! from Diem/Aptos) hashed with domain-separated blake3, over every state
//! entry ([`StateKey`] → encoded record).
//!
//! The tree keeps only the latest version in memory; each update reports the
//! nodes it wrote and the nodes it made stale, so the store can persist
//! exactly that diff in the block's atomic write. Version = block height
//! (genesis is version 0), and every block rewrites the chain entry, so every
//! height has a root.

use std::collections::HashMap;

use jmt::storage::{LeafNode, Node, NodeKey, TreeReader};
use jmt::{JellyfishMerkleTree, KeyHash, OwnedValue, RootHash, SimpleHasher, Version};
use yuchain_proto::{Domain, Hash32, pb};

use crate::error::{LoadError, ProofError};
use crate::state::StateKey;

/// blake3 in key-derivation mode with the state-tree context, so tree nodes
/// can never collide with any other hash of the system.
pub struct StateHasher(blake3::Hasher);

impl SimpleHasher for StateHasher {
    fn new() -> Self {
        StateHasher(blake3::Hasher::new_derive_key("yuchain v1 state tree"))
    }

    fn update(&mut self, data: &[u8]) {
        self.0.update(data);
    }

    fn finalize(self) -> [u8; 32] {
        *self.0.finalize().as_bytes()
    }
}

/// The tree key of a state entry.
pub fn key_hash(key: &StateKey) -> KeyHash {
    KeyHash(Domain::StateKey.hash(&key.to_bytes()).0)
}

/// Tree nodes written and removed by one update, as bytes for the store.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct TreeDiff {
    /// Node key → node, both borsh-encoded (None: the node is pruned).
    pub nodes: Vec<(Vec<u8>, Option<Vec<u8>>)>,
}

/// Nodes of the current version, and the latest value of each key.
#[derive(Default)]
struct NodeStore {
    nodes: HashMap<NodeKey, Node>,
    values: HashMap<KeyHash, OwnedValue>,
}

impl TreeReader for NodeStore {
    fn get_node_option(&self, node_key: &NodeKey) -> anyhow::Result<Option<Node>> {
        Ok(self.nodes.get(node_key).cloned())
    }

    fn get_value_option(
        &self,
        _max_version: Version,
        key_hash: KeyHash,
    ) -> anyhow::Result<Option<OwnedValue>> {
        // Only the latest version is kept, and it is the only one read.
        Ok(self.values.get(&key_hash).cloned())
    }

    fn get_rightmost_leaf(&self) -> anyhow::Result<Option<(NodeKey, LeafNode)>> {
        anyhow::bail!("tree restoration is not supported")
    }
}

/// The state tree.
pub struct StateTree {
    store: NodeStore,
    version: Option<Version>,
    root: Hash32,
}

impl Default for StateTree {
    fn default() -> Self {
        StateTree {
            store: NodeStore::default(),
            version: None,
            root: Hash32::ZERO,
        }
    }
}

impl StateTree {
    /// The root of the latest version (zero before the first update).
    pub fn root(&self) -> Hash32 {
        self.root
    }

    /// How many nodes the tree holds.
    pub fn node_count(&self) -> usize {
        self.store.nodes.len()
    }

    /// Writes `changes` as version `version`, which must follow the last one,
    /// and returns the diff to persist. `changes` must not be empty.
    pub fn update(
        &mut self,
        version: Version,
        changes: Vec<(KeyHash, Option<OwnedValue>)>,
    ) -> TreeDiff {
        assert!(!changes.is_empty(), "every version changes the chain entry");
        let expected = self.version.map_or(0, |v| v + 1);
        assert_eq!(version, expected, "tree versions are consecutive");
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&self.store);
        let (root, batch) = tree
            .put_value_set(changes.iter().cloned(), version)
            .expect("the in-memory tree holds every node of the latest version");
        let mut diff = TreeDiff::default();
        for stale in batch.stale_node_index_batch {
            self.store.nodes.remove(&stale.node_key);
            diff.nodes.push((borsh_bytes(&stale.node_key), None));
        }
        for (key, node) in batch.node_batch.nodes() {
            diff.nodes.push((borsh_bytes(key), Some(borsh_bytes(node))));
            self.store.nodes.insert(key.clone(), node.clone());
        }
        for (key_hash, value) in changes {
            match value {
                Some(value) => self.store.values.insert(key_hash, value),
                None => self.store.values.remove(&key_hash),
            };
        }
        self.version = Some(version);
        self.root = Hash32(root.0);
        diff
    }

    /// A proof for `key` against the current root: its value, or its absence.
    pub fn prove(&self, key: &StateKey) -> pb::StateProof {
        let version = self.version.unwrap_or(0);
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&self.store);
        let (value, proof) = tree
            .get_with_proof(key_hash(key), version)
            .expect("the in-memory tree holds every node of the latest version");
        pb::StateProof {
            root: self.root.0.to_vec(),
            key: key.to_bytes(),
            value,
            merkle_proof: borsh_bytes(&proof),
        }
    }

    /// Rebuilds the tree from stored nodes and values at `version`, and checks
    /// that its root is `expected_root`.
    pub fn load(
        version: Version,
        nodes: Vec<(Vec<u8>, Vec<u8>)>,
        values: Vec<(StateKey, Vec<u8>)>,
        expected_root: Hash32,
    ) -> Result<StateTree, LoadError> {
        let corrupt = |reason: String| LoadError::Corrupt {
            what: "tree node".into(),
            reason,
        };
        let mut store = NodeStore::default();
        for (key, node) in nodes {
            let key: NodeKey = borsh::from_slice(&key).map_err(|e| corrupt(e.to_string()))?;
            let node: Node = borsh::from_slice(&node).map_err(|e| corrupt(e.to_string()))?;
            store.nodes.insert(key, node);
        }
        for (key, value) in values {
            store.values.insert(key_hash(&key), value);
        }
        let tree = JellyfishMerkleTree::<_, StateHasher>::new(&store);
        let root = tree
            .get_root_hash(version)
            .map_err(|e| corrupt(e.to_string()))?;
        let computed = Hash32(root.0);
        if computed != expected_root {
            return Err(LoadError::RootMismatch {
                expected: expected_root,
                computed,
            });
        }
        Ok(StateTree {
            store,
            version: Some(version),
            root: computed,
        })
    }
}

fn borsh_bytes<T: borsh::BorshSerialize>(value: &T) -> Vec<u8> {
    borsh::to_vec(value).expect("borsh encoding into a Vec cannot fail")
}

/// Checks a state proof against a trusted root, using nothing else. Returns
/// the proved value (`None`: proved absent).
pub fn verify_proof(root: &Hash32, proof: &pb::StateProof) -> Result<Option<Vec<u8>>, ProofError> {
    let proof_root = Hash32::from_slice(&proof.root)
        .ok_or_else(|| ProofError::Malformed("root must be 32 bytes".into()))?;
    if proof_root != *root {
        return Err(ProofError::WrongRoot {
            expected: *root,
            got: proof_root,
        });
    }
    let key = StateKey::from_bytes(&proof.key)
        .ok_or_else(|| ProofError::Malformed("unknown state key".into()))?;
    let merkle: jmt::proof::SparseMerkleProof<StateHasher> =
        borsh::from_slice(&proof.merkle_proof).map_err(|e| ProofError::Malformed(e.to_string()))?;
    merkle
        .verify(RootHash(root.0), key_hash(&key), proof.value.as_ref())
        .map_err(|e| ProofError::Invalid(e.to_string()))?;
    Ok(proof.value.clone())
}
