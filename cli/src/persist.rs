//! From what the ledger applied to what the store commits, and back.

use anyhow::{Context as _, Result, bail};
use prost::Message as _;
use yuchain_ledger::ledger::consumes_sequence;
use yuchain_ledger::{AppliedBlock, Genesis, Ledger};
use yuchain_proto::pb;
use yuchain_storage::{BlockCommit, BlockStore};

/// The store's record of a block the ledger applied: the block with every
/// receipt, the executed transactions' locations and receipts by id, the
/// state changes and the account histories. Transactions that had no effect
/// (bad sequence, expired, …) keep their receipt in the block record only, so
/// a replayed transaction can never overwrite the receipt of its first,
/// executed inclusion.
pub fn block_commit(block: Option<&pb::Block>, applied: &AppliedBlock) -> BlockCommit {
    let record = pb::BlockRecord {
        block: block.cloned(),
        receipts: applied.receipts.clone(),
    };
    let mut transactions = Vec::new();
    let mut receipts = Vec::new();
    for receipt in &applied.receipts {
        let code = pb::ResultCode::try_from(receipt.code).unwrap_or(pb::ResultCode::Unspecified);
        if !consumes_sequence(code) {
            continue;
        }
        let Some(id) = yuchain_proto::Hash32::from_slice(&receipt.tx_id) else {
            continue;
        };
        let location = pb::TxLocation {
            height: receipt.height,
            index: receipt.index,
        };
        transactions.push((id, location.encode_to_vec()));
        receipts.push((id, receipt.encode_to_vec()));
    }
    BlockCommit {
        height: applied.height,
        block_hash: applied.block_hash,
        state_root: applied.state_root,
        block: record.encode_to_vec(),
        transactions,
        receipts,
        state: applied.state_changes.clone(),
        tree_nodes: applied.tree_diff.nodes.clone(),
        history: applied.history.clone(),
    }
}

/// Rebuilds the ledger from a store: every state entry, checked against the
/// head's state root.
pub fn load_ledger(store: &dyn BlockStore, genesis: &Genesis) -> Result<Ledger> {
    let Some(head) = store.head().context("reading the head")? else {
        bail!("the store is empty: it has no genesis");
    };
    let mut state = Vec::new();
    store
        .for_each_state(&mut |key, value| {
            state.push((key.to_vec(), value.to_vec()));
            Ok(())
        })
        .context("reading the state")?;
    let ledger = Ledger::load(genesis, state, head.state_root).context("rebuilding the ledger")?;
    if ledger.height() != head.height || ledger.last_block_hash() != head.block_hash {
        bail!(
            "stored state is at height {} ({}), the head is at {} ({})",
            ledger.height(),
            ledger.last_block_hash(),
            head.height,
            head.block_hash
        );
    }
    Ok(ledger)
}
