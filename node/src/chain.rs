//! Opening a node's chain at start-up: the block database (with genesis
//! written on first start), the ledger rebuilt from it, and what the
//! consensus core restarts from (its safety data, a checkpoint of the
//! committed chain, the blocks it voted for).

use anyhow::{Context as _, Result, bail, ensure};
use prost::Message as _;
use yuchain_consensus::types::{Epoch, Height};
use yuchain_consensus::{
    Block, COMMITTED_WINDOW_BLOCKS, Checkpoint, CommittedBlock, EpochRoot, Restored, SafetyData,
};
use yuchain_ledger::Ledger;
use yuchain_proto::pb;
use yuchain_storage::{BlockStore, RocksStore, SafetyStore};

use crate::genesis::GenesisFile;
use crate::persist::{block_commit_with, load_ledger};

/// The safety store's key of the consensus safety data.
pub const SAFETY_KEY: &[u8] = b"consensus/safety";
/// The prefix of the safety store's keys of voted, uncommitted blocks.
pub const BLOCK_KEY_PREFIX: &[u8] = b"consensus/block/";

/// The safety store's key of a voted block.
pub fn block_key(block: &Block) -> Vec<u8> {
    let mut key = BLOCK_KEY_PREFIX.to_vec();
    key.extend_from_slice(block.height.0.to_be_bytes().as_slice());
    key.extend_from_slice(&block.hash().0);
    key
}

/// The height in a voted block's key.
pub fn block_key_height(key: &[u8]) -> Option<u64> {
    let rest = key.strip_prefix(BLOCK_KEY_PREFIX)?;
    let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
    Some(u64::from_be_bytes(bytes))
}

/// The record stored at height 0: genesis has no consensus block.
pub fn genesis_record(applied: &yuchain_ledger::AppliedBlock) -> Vec<u8> {
    pb::CommittedBlockRecord {
        ledger: Some(pb::BlockRecord {
            block: None,
            receipts: applied.receipts.clone(),
        }),
        certified: Vec::new(),
        batches: Vec::new(),
        state_root: applied.state_root.0.to_vec(),
    }
    .encode_to_vec()
}

/// Reads the committed block record at `height`.
pub fn read_record(
    store: &dyn BlockStore,
    height: u64,
) -> Result<Option<pb::CommittedBlockRecord>> {
    let Some(bytes) = store.block(height).context("reading a block")? else {
        return Ok(None);
    };
    let record = pb::CommittedBlockRecord::decode(bytes.as_slice())
        .with_context(|| format!("decoding the stored block {height}"))?;
    Ok(Some(record))
}

/// Reads the consensus block committed at `height` (≥ 1).
pub fn read_committed(store: &dyn BlockStore, height: u64) -> Result<Option<CommittedBlock>> {
    let Some(record) = read_record(store, height)? else {
        return Ok(None);
    };
    let committed = CommittedBlock::decode(&record.certified)
        .map_err(|error| anyhow::anyhow!("stored block {height}: {error}"))?;
    ensure!(
        committed.block.height == Height(height),
        "stored block {height} holds the consensus block of height {}",
        committed.block.height
    );
    Ok(Some(committed))
}

/// Opens the ledger in `store`: writes genesis if the store is empty,
/// checks it is this genesis otherwise, and rebuilds the ledger's state.
pub fn open_ledger(store: &RocksStore, genesis: &GenesisFile) -> Result<Ledger> {
    let (fresh, applied) =
        Ledger::genesis(&genesis.ledger).context("applying the ledger genesis")?;
    match store.head().context("reading the head")? {
        None => {
            store
                .commit(&block_commit_with(genesis_record(&applied), &applied))
                .context("writing genesis")?;
            Ok(fresh)
        }
        Some(_) => {
            let stored_genesis = store
                .block_height(&applied.block_hash)
                .context("looking up the genesis block")?;
            if stored_genesis != Some(0) {
                bail!(
                    "this node's database holds another chain than the genesis file describes \
                     (chain id {:?}); use the genesis file the database was made with, or \
                     remove the database (<home>/db) and run `yuchain-node init` again to \
                     re-sync from genesis",
                    genesis.ledger.chain_id
                );
            }
            load_ledger(store, &genesis.ledger)
        }
    }
}

/// What the consensus core restarts from.
pub fn restore_consensus(
    store: &dyn BlockStore,
    safety: Option<&dyn SafetyStore>,
    genesis: &GenesisFile,
    head: u64,
) -> Result<Restored> {
    let consensus_genesis = genesis.consensus_genesis()?;
    let mut recent = Vec::new();
    let first = head
        .saturating_sub(COMMITTED_WINDOW_BLOCKS as u64)
        .saturating_add(1)
        .max(1);
    for height in first..=head {
        let committed = read_committed(store, height)?
            .with_context(|| format!("the store has no block {height} below its head {head}"))?;
        if committed.block.next_validators.is_some() || committed.block.epoch != Epoch(0) {
            bail!(
                "block {height} changes the validator set; this node version does not follow \
                 epoch changes yet"
            );
        }
        recent.push(committed);
    }
    let checkpoint = Checkpoint {
        epoch: Epoch(0),
        validators: consensus_genesis.validators.clone(),
        root: EpochRoot {
            hash: consensus_genesis.hash,
            height: Height(0),
            timestamp_ms: consensus_genesis.timestamp_ms,
        },
        recent,
    };
    let mut restored = Restored {
        safety: None,
        checkpoint: Some(checkpoint),
        blocks: Vec::new(),
    };
    if let Some(safety) = safety {
        if let Some(bytes) = safety
            .safety(SAFETY_KEY)
            .context("reading the safety record")?
        {
            restored.safety = Some(
                SafetyData::decode(&bytes)
                    .map_err(|error| anyhow::anyhow!("the safety record: {error}"))?,
            );
        }
        for key in safety.safety_keys().context("reading the safety record")? {
            if !key.starts_with(BLOCK_KEY_PREFIX) {
                continue;
            }
            let Some(bytes) = safety.safety(&key)? else {
                continue;
            };
            let block = Block::decode(&bytes)
                .map_err(|error| anyhow::anyhow!("a voted block in the safety record: {error}"))?;
            restored.blocks.push(block);
        }
    }
    Ok(restored)
}
