//! Catching up: asking a peer for the certified blocks this node lacks, and
//! answering such requests (DiemBFT v4 §5.2, block retrieval, by height).
//!
//! An answer is a parent-linked chain of blocks, each certified by the next
//! one's `justify` and the last by the answer's certificate. The receiver
//! checks every link and certificate exactly as for a live proposal (except
//! the clock bound: these blocks are old) and then processes the
//! certificates in order, so commits and epoch changes follow from the same
//! code as in the live protocol. An answer stops at an epoch-ending block
//! and then carries that block's [`EpochEndProof`](super::EpochEndProof).

use yuchain_proto::PublicKey;

use super::{Core, Out, SyncInFlight, TREE_BLOCKS_MAX};
use crate::Action;
use crate::error::{ConsensusError, Result};
use crate::types::{
    Block, BlockHash, Epoch, Message, QuorumCert, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse,
};

/// The most peers remembered as recently helped across an epoch boundary.
const HELPED_PEERS_MAX: usize = 1024;
/// The most peers whose sync budget is tracked.
const SERVED_PEERS_MAX: usize = 1024;
/// Sync answers per peer per sync interval.
const SYNC_ANSWERS_PER_INTERVAL_MAX: u32 = 16;

impl Core {
    /// Asks `peer` for blocks (from this node's committed height, or one
    /// wanted block and its ancestors), unless a request is outstanding.
    pub(super) fn request_sync(&mut self, peer: PublicKey, want: Option<BlockHash>, out: &mut Out) {
        if peer == self.me || self.sync.is_some() {
            return;
        }
        let Ok(next) = self.head.height.next() else {
            return;
        };
        let from_height = self.sync_continue_from.take().unwrap_or(next).max(next);
        self.sync = Some(SyncInFlight {
            deadline_ms: self.now_ms.saturating_add(self.config.sync_retry_ms),
        });
        out.push(Action::Send {
            to: peer,
            bytes: Message::SyncRequest(SyncRequest {
                epoch: self.epoch(),
                from_height,
                block: want,
            })
            .encode(),
        });
    }

    /// Answers with up to [`SYNC_BLOCKS_MAX`] blocks of this node's chain
    /// from the requested height: committed blocks, then the certified
    /// blocks up to the highest certificate.
    pub(super) fn on_sync_request(
        &mut self,
        from: PublicKey,
        request: SyncRequest,
        out: &mut Out,
    ) -> Result<()> {
        if request.epoch > self.epoch() {
            // The asker is ahead; it has nothing to learn from us.
            return Ok(());
        }
        self.charge_sync_budget(from)?;
        if let Some(want) = request.block {
            return self.serve_block(from, want, out);
        }
        let mut blocks: Vec<Block> = Vec::new();
        let mut epoch_end_qc: Option<QuorumCert> = None;
        let mut height = request.from_height;
        while height <= self.head.height && blocks.len() < SYNC_BLOCKS_MAX {
            let Some(entry) = self.committed_block(height) else {
                return Err(ConsensusError::Invalid {
                    what: "sync request",
                    reason: "height is below this node's committed window",
                });
            };
            if let Some(proof) = &entry.epoch_end {
                if blocks.len() + 1 + proof.blocks.len() > SYNC_BLOCKS_MAX && !blocks.is_empty() {
                    break;
                }
                blocks.push(entry.block.clone());
                blocks.extend(proof.blocks.iter().cloned());
                epoch_end_qc = Some(proof.qc.clone());
                break;
            }
            blocks.push(entry.block.clone());
            height = height.next()?;
        }
        let qc = match epoch_end_qc {
            Some(qc) => qc,
            None => {
                // Continue along the uncommitted certified chain.
                let path = self.certified_path();
                for block in path {
                    if blocks.len() >= SYNC_BLOCKS_MAX {
                        break;
                    }
                    if block.height >= request.from_height {
                        blocks.push(block);
                    }
                }
                match self.certificate_of_last(&mut blocks) {
                    Some(qc) => qc,
                    None => return Ok(()),
                }
            }
        };
        if blocks.is_empty() {
            return Ok(());
        }
        out.push(Action::Send {
            to: from,
            bytes: Message::SyncResponse(SyncResponse { blocks, qc }).encode(),
        });
        Ok(())
    }

    /// A peer still works in an epoch this node has left: it missed the
    /// certificate that ended it, and the new validators may not be talking
    /// to it. Send it the end of its epoch (at most once per sync interval
    /// per peer, so replayed old messages cannot make this node a traffic
    /// amplifier). If it lacks earlier blocks it will ask for them.
    pub(super) fn help_stale_peer(&mut self, peer: PublicKey, epoch: Epoch, out: &mut Out) {
        if peer == self.me {
            return;
        }
        if self
            .helped
            .get(&peer)
            .is_some_and(|at| self.now_ms < at.saturating_add(self.config.sync_retry_ms))
        {
            return;
        }
        let Some(entry) = self
            .committed
            .iter()
            .find(|entry| entry.block.epoch == epoch && entry.epoch_end.is_some())
        else {
            return;
        };
        let Some(proof) = &entry.epoch_end else {
            return;
        };
        let mut blocks = vec![entry.block.clone()];
        blocks.extend(proof.blocks.iter().cloned());
        let qc = proof.qc.clone();
        if self.helped.len() >= HELPED_PEERS_MAX {
            self.helped.clear();
        }
        self.helped.insert(peer, self.now_ms);
        out.push(Action::Send {
            to: peer,
            bytes: Message::SyncResponse(SyncResponse { blocks, qc }).encode(),
        });
    }

    /// Each peer gets at most [`SYNC_ANSWERS_PER_INTERVAL_MAX`] answers per
    /// sync interval: answering costs this node encoding and bandwidth, and
    /// a catching-up peer needs far fewer (one request in flight at a time).
    fn charge_sync_budget(&mut self, peer: PublicKey) -> Result<()> {
        let interval = self.config.sync_retry_ms.max(1);
        let window = self.now_ms / interval;
        if self.served.len() >= SERVED_PEERS_MAX && !self.served.contains_key(&peer) {
            self.served.clear();
        }
        let entry = self.served.entry(peer).or_insert((window, 0));
        if entry.0 != window {
            *entry = (window, 0);
        }
        if entry.1 >= SYNC_ANSWERS_PER_INTERVAL_MAX {
            return Err(ConsensusError::BufferFull("sync answers for this peer"));
        }
        entry.1 += 1;
        Ok(())
    }

    /// Answers a hash-mode request: the wanted block and as many of its
    /// uncommitted ancestors as this node holds, with its certificate.
    fn serve_block(&mut self, from: PublicKey, want: BlockHash, out: &mut Out) -> Result<()> {
        let Some(block) = self.tree.get(&want) else {
            return Ok(());
        };
        let mut chain = vec![block.clone()];
        let mut cursor = block.parent;
        while chain.len() < SYNC_BLOCKS_MAX {
            let Some(parent) = self.tree.get(&cursor) else {
                break;
            };
            chain.push(parent.clone());
            cursor = parent.parent;
        }
        chain.reverse();
        let mut with_certificate = chain.clone();
        let Some(qc) = self.certificate_of_last(&mut with_certificate) else {
            return Ok(());
        };
        if with_certificate.len() != chain.len() {
            return Ok(());
        }
        out.push(Action::Send {
            to: from,
            bytes: Message::SyncResponse(SyncResponse { blocks: chain, qc }).encode(),
        });
        Ok(())
    }

    /// The uncommitted blocks from the committed head to the block of the
    /// highest certificate, oldest first (empty if that block is unknown).
    fn certified_path(&self) -> Vec<Block> {
        let mut path = Vec::new();
        let mut cursor = self.safety.high_qc.vote.block;
        while cursor != self.head.hash {
            let Some(block) = self.tree.get(&cursor) else {
                return Vec::new();
            };
            path.push(block.clone());
            cursor = block.parent;
        }
        path.reverse();
        path
    }

    /// The certificate of the last block: the next block's `justify` on
    /// this node's chain, or its highest certificate. Drops trailing blocks
    /// whose certificate this node does not hold.
    fn certificate_of_last(&self, blocks: &mut Vec<Block>) -> Option<QuorumCert> {
        while let Some(last) = blocks.last() {
            let hash = last.hash();
            if self.safety.high_qc.vote.block == hash {
                return Some(self.safety.high_qc.clone());
            }
            let next = last.height.next().ok()?;
            let child = if next <= self.head.height {
                self.committed_block(next).map(|entry| &entry.block)
            } else {
                // Several children may certify it (forks); pick one by a
                // rule that does not depend on the map's iteration order, so
                // the answer (and a simulation) is deterministic.
                self.tree
                    .values()
                    .filter(|block| block.parent == hash && block.justify.vote.block == hash)
                    .min_by_key(|block| (block.round, block.justify.digest()))
            };
            if let Some(child) = child
                && child.justify.vote.block == hash
            {
                return Some(child.justify.clone());
            }
            blocks.pop();
        }
        None
    }

    /// Checks and applies an answer, block by block.
    pub(super) fn on_sync_response(
        &mut self,
        from: PublicKey,
        response: SyncResponse,
        out: &mut Out,
    ) -> Result<()> {
        self.sync = None;
        let Some(last) = response.blocks.last() else {
            return Err(ConsensusError::Invalid {
                what: "sync response",
                reason: "no blocks",
            });
        };
        if response.qc.vote.block != last.hash() {
            return Err(ConsensusError::Invalid {
                what: "sync response",
                reason: "certificate is not of the last block",
            });
        }
        let full = response.blocks.len() == SYNC_BLOCKS_MAX;
        let last_height = last.height;
        let start_epoch = self.epoch();
        let mut previous: Option<BlockHash> = None;
        for (index, block) in response.blocks.iter().enumerate() {
            if previous.is_some_and(|previous| block.parent != previous) {
                return Err(ConsensusError::Invalid {
                    what: "sync response",
                    reason: "blocks are not a parent-linked chain",
                });
            }
            previous = Some(block.hash());
            if block.epoch != self.epoch() {
                // The chain moved to the next epoch while we applied it; the
                // rest comes in the next answer.
                if self.epoch() != start_epoch {
                    break;
                }
                return Err(ConsensusError::Invalid {
                    what: "sync response",
                    reason: "block of another epoch",
                });
            }
            let hash = block.hash();
            if self.parent_info(&hash).is_some() {
                continue;
            }
            match self.check_extends(block, false) {
                Ok(()) => {}
                // The first block may hang below a gap: it is certified (its
                // successor's justify or the answer's certificate says so),
                // so keep it; its justify names the parent, which is fetched
                // next (after_qc asks for unknown certified blocks).
                Err(ConsensusError::UnknownParent) if index == 0 => check_links(block)?,
                Err(error) => return Err(error),
            }
            self.process_qc(&block.justify, from, out)?;
            if self.halted {
                return Ok(());
            }
            if self.epoch() != block.epoch {
                // The epoch ended inside this answer: ask for the next one.
                self.request_sync(from, None, out);
                return Ok(());
            }
            if self.tree.len() >= TREE_BLOCKS_MAX {
                self.make_room();
            }
            if self.tree.len() >= TREE_BLOCKS_MAX {
                return Err(ConsensusError::BufferFull("block tree"));
            }
            self.tree.insert(hash, block.clone());
        }
        if self.epoch() == start_epoch && response.qc.vote.epoch == self.epoch() {
            self.process_qc(&response.qc, from, out)?;
        }
        if full && !self.halted {
            self.sync_continue_from = last_height.next().ok();
            self.request_sync(from, None, out);
        }
        Ok(())
    }
}

/// The links a block states about its parent, checkable without the parent.
pub(super) fn check_links(block: &Block) -> Result<()> {
    let invalid = |reason| ConsensusError::Invalid {
        what: "block",
        reason,
    };
    if block.parent != block.justify.vote.block {
        return Err(invalid("justify does not certify the parent"));
    }
    if block.height != block.justify.vote.height.next()? {
        return Err(invalid("height is not the parent's plus one"));
    }
    if block.round <= block.justify.round() {
        return Err(invalid("round is not after the parent's"));
    }
    Ok(())
}
