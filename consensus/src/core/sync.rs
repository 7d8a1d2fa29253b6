//! Catching up: asking a peer for the certified blocks this node lacks, and
//! answering such requests (DiemBFT v4 §5.2, block retrieval, by height).
//!
//! An answer is a parent-linked chain of blocks, each certified by the next
//! one's `justify` and the last by the answer's certificate (which certifies
//! it, or commits it under the two-chain rule). Nothing from an answer is
//! stored or acted on before the whole chain is checked: it must answer the
//! one outstanding request, come from the peer asked, link block to block,
//! and every certificate must verify, from the answer's end backwards, so
//! every block is covered by a verified certificate before it enters the
//! tree. Only then are the certificates processed in order, so commits and
//! epoch changes follow from the same code as in the live protocol. An
//! answer stops at an epoch-ending block and then carries that block's
//! [`EpochEndProof`](super::EpochEndProof).
//!
//! Committed blocks older than the core's window are read from the driver's
//! store ([`Action::ReadCommitted`]), so a node any distance behind can
//! catch up.

use yuchain_proto::PublicKey;

use super::{Core, Out, SyncInFlight};
use crate::error::{ConsensusError, Result};
use crate::types::{
    Block, BlockHash, Height, Message, QuorumCert, SYNC_BLOCKS_MAX, SyncRequest, SyncResponse,
};
use crate::{Action, CommittedBlock};

/// The most peers whose sync budget is tracked.
const SERVED_PEERS_MAX: usize = 1024;
/// Sync answers per peer per sync interval.
const SYNC_ANSWERS_PER_INTERVAL_MAX: u32 = 16;
/// Store reads for far-behind peers outstanding at once.
const READS_PENDING_MAX: usize = 4;
/// Sync requests whose (late) answers are still accepted.
const SYNC_OUTSTANDING_MAX: usize = 4;
/// How many retry intervals a late answer is still accepted for.
const SYNC_EXPIRY_INTERVALS: u64 = 4;

fn invalid(reason: &'static str) -> ConsensusError {
    ConsensusError::Invalid {
        what: "sync response",
        reason,
    }
}

impl Core {
    /// Asks a peer for blocks (from this node's committed height, or one
    /// wanted block and its ancestors), unless a request is outstanding.
    /// The peer is `preferred` (one that just showed it holds what is
    /// missing) unless it failed last time; otherwise the next validator of
    /// the epoch in turn, so one silent or lying peer cannot stall the sync.
    pub(super) fn request_sync(
        &mut self,
        preferred: Option<PublicKey>,
        want: Option<BlockHash>,
        out: &mut Out,
    ) {
        self.expire_sync_requests();
        // One request at a time, except one more for a wanted block no
        // request asks for yet (a leader missing the block it must extend
        // cannot wait for an unrelated answer). At most two are fresh, so
        // a faulty peer naming blocks cannot crowd out the honest request.
        let now_ms = self.now_ms;
        let fresh = self
            .sync
            .iter()
            .filter(|sync| now_ms < sync.deadline_ms)
            .count();
        let new_want = want.is_some_and(|want| {
            !self
                .sync
                .iter()
                .any(|sync| now_ms < sync.deadline_ms && sync.request.block == Some(want))
        });
        if fresh > 1 || (fresh == 1 && !new_want) {
            return;
        }
        let peer = match preferred {
            Some(peer) if peer != self.me && Some(peer) != self.sync_avoid => Some(peer),
            _ => self.next_sync_peer(),
        };
        let Some(peer) = peer else {
            return;
        };
        let Ok(next) = self.head.height.next() else {
            return;
        };
        // A request for one block leaves a catch-up's next height for the
        // catch-up's own next request.
        let from_height = if want.is_some() {
            next
        } else {
            self.sync_continue_from.take().unwrap_or(next).max(next)
        };
        let request = SyncRequest {
            epoch: self.epoch(),
            from_height,
            block: want,
        };
        if self.sync.len() >= SYNC_OUTSTANDING_MAX {
            // Make room with the oldest late request, never a fresh one.
            let late = self.sync.iter().position(|sync| now_ms >= sync.deadline_ms);
            self.sync.remove(late.unwrap_or(0));
        }
        let retry = self.config.sync_retry_ms;
        self.sync.push_back(SyncInFlight {
            peer,
            request,
            deadline_ms: self.now_ms.saturating_add(retry),
            expiry_ms: self
                .now_ms
                .saturating_add(retry.saturating_mul(SYNC_EXPIRY_INTERVALS)),
            late: false,
        });
        out.push(Action::Send {
            to: peer,
            bytes: Message::SyncRequest(request).encode(),
        });
    }

    /// The next validator of this epoch to ask, in turn (never this node,
    /// nor the peer that just failed, when there is another).
    fn next_sync_peer(&mut self) -> Option<PublicKey> {
        let keys = self.validators.keys();
        let count = keys.len();
        for _ in 0..count {
            let candidate = keys[self.sync_rotation % count];
            self.sync_rotation = self.sync_rotation.wrapping_add(1);
            if candidate != self.me && Some(candidate) != self.sync_avoid {
                return Some(candidate);
            }
        }
        self.sync_avoid.filter(|peer| *peer != self.me)
    }

    /// Whether a request was sent recently enough that no other may go out.
    pub(super) fn sync_request_fresh(&self) -> bool {
        self.sync.iter().any(|sync| self.now_ms < sync.deadline_ms)
    }

    /// Requests past their deadline count against their peer (asked last
    /// next time); past their expiry their answers are no longer accepted.
    pub(super) fn expire_sync_requests(&mut self) {
        let now_ms = self.now_ms;
        let mut avoid = None;
        for sync in &mut self.sync {
            if !sync.late && now_ms >= sync.deadline_ms {
                sync.late = true;
                avoid = Some(sync.peer);
            }
        }
        if avoid.is_some() {
            self.sync_avoid = avoid;
        }
        self.sync.retain(|sync| now_ms < sync.expiry_ms);
    }

    /// A peer answered badly: forget its requests and avoid it next time.
    fn sync_failed(&mut self, peer: PublicKey) {
        self.sync.retain(|sync| sync.peer != peer);
        self.sync_avoid = Some(peer);
    }

    /// Answers with up to [`SYNC_BLOCKS_MAX`] blocks of this node's chain
    /// from the requested height: committed blocks (from the window, or
    /// read from the store), then the certified blocks up to the highest
    /// certificate.
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
        let from_height = request.from_height;
        if from_height == Height(0) {
            return Err(ConsensusError::Invalid {
                what: "sync request",
                reason: "height 0 is the genesis",
            });
        }
        if from_height <= self.head.height {
            let window_start = self.committed.front().map(|entry| entry.block.height);
            if window_start.is_none_or(|start| from_height < start) {
                // Older than the window: the driver reads it from its store.
                if self.reads_pending >= READS_PENDING_MAX {
                    return Err(ConsensusError::BufferFull("store reads"));
                }
                self.reads_pending += 1;
                out.push(Action::ReadCommitted {
                    peer: from,
                    from_height,
                    count: SYNC_BLOCKS_MAX + 1,
                });
                return Ok(());
            }
            let entries: Vec<&CommittedBlock> = self
                .committed
                .iter()
                .skip_while(|entry| entry.block.height < from_height)
                .take(SYNC_BLOCKS_MAX + 1)
                .collect();
            self.answer_committed(from, &entries, true, out);
            return Ok(());
        }
        // Above the committed head: the uncommitted certified chain only.
        let mut blocks: Vec<Block> = self
            .certified_path()
            .into_iter()
            .filter(|block| block.height >= from_height)
            .take(SYNC_BLOCKS_MAX)
            .collect();
        if let Some(qc) = self.certificate_of_last(&mut blocks)
            && !blocks.is_empty()
        {
            out.push(Action::Send {
                to: from,
                bytes: Message::SyncResponse(SyncResponse { blocks, qc }).encode(),
            });
        }
        Ok(())
    }

    /// The driver read committed blocks for a far-behind peer: answer it.
    pub(super) fn on_committed_read(
        &mut self,
        peer: PublicKey,
        from_height: Height,
        blocks: Vec<CommittedBlock>,
        out: &mut Out,
    ) -> Result<()> {
        self.reads_pending = self.reads_pending.saturating_sub(1);
        if blocks
            .first()
            .is_some_and(|first| first.block.height != from_height)
        {
            return Err(ConsensusError::Inconsistent(
                "store read does not start at the asked height",
            ));
        }
        for pair in blocks.windows(2) {
            if pair[1].block.parent != pair[0].block.hash() {
                return Err(ConsensusError::Inconsistent("store read is not one chain"));
            }
        }
        let entries: Vec<&CommittedBlock> = blocks.iter().collect();
        self.answer_committed(peer, &entries, false, out);
        Ok(())
    }

    /// Answers from committed blocks (consecutive, oldest first): up to
    /// [`SYNC_BLOCKS_MAX`] of them, stopping at an epoch end (then with its
    /// proof), and, when `extend` and the answer reaches the committed
    /// head, continuing along the certified chain.
    fn answer_committed(
        &self,
        to: PublicKey,
        entries: &[&CommittedBlock],
        extend: bool,
        out: &mut Out,
    ) {
        let mut blocks: Vec<Block> = Vec::new();
        let mut qc: Option<QuorumCert> = None;
        for entry in entries {
            if blocks.len() >= SYNC_BLOCKS_MAX {
                break;
            }
            if let Some(proof) = &entry.epoch_end {
                if blocks.len() + 1 + proof.blocks.len() > SYNC_BLOCKS_MAX {
                    // The end block and its proof go in an answer of their
                    // own (one that cannot hold them is not sent).
                    break;
                }
                blocks.push(entry.block.clone());
                blocks.extend(proof.blocks.iter().cloned());
                // The proof's certificate covers its last block (or the
                // end block itself).
                qc = Some(proof.qc.clone());
                break;
            }
            blocks.push(entry.block.clone());
        }
        if qc.is_none() {
            // The blocks are the committed chain's, so a height names one.
            let reached_head = blocks
                .last()
                .is_some_and(|last| last.height == self.head.height);
            if extend && reached_head && blocks.len() < SYNC_BLOCKS_MAX {
                let room = SYNC_BLOCKS_MAX - blocks.len();
                let mut path: Vec<Block> = self.certified_path().into_iter().take(room).collect();
                if let Some(path_qc) = self.certificate_of_last(&mut path)
                    && !path.is_empty()
                {
                    blocks.extend(path);
                    qc = Some(path_qc);
                }
            }
        }
        if qc.is_none() {
            qc = committed_certificate(entries, &mut blocks);
        }
        let Some(qc) = qc else {
            return;
        };
        if blocks.is_empty() {
            return;
        }
        out.push(Action::Send {
            to,
            bytes: Message::SyncResponse(SyncResponse { blocks, qc }).encode(),
        });
    }

    /// A validator of this epoch sent a timeout for a round this node left:
    /// send it this node's highest certificates (at most once per sync
    /// interval per peer), which it verifies and takes like any other. A
    /// lost timeout certificate otherwise leaves it a whole (backed-off)
    /// round timer behind.
    pub(super) fn help_behind_peer(&mut self, peer: PublicKey, out: &mut Out) {
        if peer == self.me || self.validators.index_of(&peer).is_none() {
            return;
        }
        let interval = self.config.sync_retry_ms.max(1);
        if self
            .helped
            .get(&peer)
            .is_some_and(|at| self.now_ms < at.saturating_add(interval))
        {
            return;
        }
        if self.helped.len() >= SERVED_PEERS_MAX && !self.helped.contains_key(&peer) {
            self.helped.clear();
        }
        self.helped.insert(peer, self.now_ms);
        let info = crate::types::SyncInfo {
            high_qc: self.safety.high_qc.clone(),
            high_tc: self.safety.high_tc.clone(),
        };
        out.push(Action::Send {
            to: peer,
            bytes: Message::SyncInfo(info).encode(),
        });
    }

    /// A peer's highest certificates: verified and processed like those of
    /// any message (they may move this node to a later round, or commit).
    pub(super) fn on_sync_info(
        &mut self,
        from: PublicKey,
        info: crate::types::SyncInfo,
        out: &mut Out,
    ) -> Result<()> {
        self.check_epoch(info.high_qc.vote.epoch, out)?;
        if let Some(tc) = &info.high_tc {
            self.process_tc(tc, from, out)?;
        }
        if info.high_qc.vote.epoch == self.epoch() {
            self.process_qc(&info.high_qc, from, out)?;
        }
        Ok(())
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
    /// uncommitted ancestors as this node holds, with its certificate; or,
    /// when this node committed it already (the others certified it while
    /// the asker missed it), the block and its committed ancestors still
    /// held in memory.
    fn serve_block(&mut self, from: PublicKey, want: BlockHash, out: &mut Out) -> Result<()> {
        let Some(block) = self.tree.get(&want) else {
            if let Some(&height) = self.committed_index.get(&want) {
                self.serve_committed_block(from, want, height, out);
            }
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

    /// Answers a hash-mode request for a committed block held in memory:
    /// it and up to [`SYNC_BLOCKS_MAX`] − 1 of its ancestors of the same
    /// epoch, certified by the next committed block's `justify` (or its
    /// own commit certificate).
    fn serve_committed_block(&self, to: PublicKey, want: BlockHash, height: Height, out: &mut Out) {
        let window = u64::try_from(SYNC_BLOCKS_MAX)
            .unwrap_or(u64::MAX)
            .saturating_sub(1);
        let mut first = height;
        while first.0 > height.0.saturating_sub(window) {
            let Some(parent) = first
                .0
                .checked_sub(1)
                .and_then(|h| self.committed_block(Height(h)))
            else {
                break;
            };
            if parent.block.epoch != self.epoch() || parent.epoch_end.is_some() {
                break;
            }
            first = parent.block.height;
        }
        let entries: Vec<&CommittedBlock> = (first.0..=height.0.saturating_add(1))
            .map_while(|h| self.committed_block(Height(h)))
            .collect();
        let Some(wanted) = usize::try_from(height.0 - first.0)
            .ok()
            .and_then(|offset| entries.get(..=offset))
        else {
            return;
        };
        // An epoch's last block travels with its proof, in height mode.
        if wanted
            .last()
            .is_none_or(|entry| entry.block.hash() != want || entry.epoch_end.is_some())
            || wanted.iter().any(|entry| entry.block.epoch != self.epoch())
        {
            return;
        }
        let mut blocks: Vec<Block> = wanted.iter().map(|entry| entry.block.clone()).collect();
        let Some(qc) = committed_certificate(&entries, &mut blocks) else {
            return;
        };
        if blocks.len() != wanted.len() {
            return;
        }
        out.push(Action::Send {
            to,
            bytes: Message::SyncResponse(SyncResponse { blocks, qc }).encode(),
        });
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

    /// The certificate of the last uncommitted block: the next block's
    /// `justify` in the tree, or the highest certificate. Drops trailing
    /// blocks whose certificate this node does not hold.
    fn certificate_of_last(&self, blocks: &mut Vec<Block>) -> Option<QuorumCert> {
        while let Some(last) = blocks.last() {
            let hash = last.hash();
            if self.safety.high_qc.vote.block == hash {
                return Some(self.safety.high_qc.clone());
            }
            // Several children may certify it (forks); pick one by a rule
            // that does not depend on the map's iteration order, so the
            // answer (and a simulation) is deterministic.
            let child = self
                .tree
                .values()
                .filter(|block| block.parent == hash && block.justify.vote.block == hash)
                .min_by_key(|block| (block.round, block.justify.digest()));
            if let Some(child) = child {
                return Some(child.justify.clone());
            }
            blocks.pop();
        }
        None
    }

    /// Checks an answer completely, then applies it block by block.
    pub(super) fn on_sync_response(
        &mut self,
        from: PublicKey,
        response: SyncResponse,
        out: &mut Out,
    ) -> Result<()> {
        // Only the answer to an outstanding request, from the peer asked.
        self.expire_sync_requests();
        let asked: Vec<(usize, SyncRequest)> = self
            .sync
            .iter()
            .enumerate()
            .filter(|(_, sync)| sync.peer == from)
            .map(|(index, sync)| (index, sync.request))
            .collect();
        if asked.is_empty() {
            return Err(ConsensusError::NotPending("sync response from this peer"));
        }
        // Each block is hashed once, for the checks and for storing it.
        let hashes: Vec<BlockHash> = response.blocks.iter().map(Block::hash).collect();
        let mut result = Err(invalid("answers no request"));
        for (index, request) in asked {
            result = self.check_sync_response(&request, &response, &hashes);
            if result.is_ok() {
                self.sync.remove(index);
                break;
            }
        }
        if let Err(error) = result {
            self.sync_failed(from);
            return Err(error);
        }
        self.sync_avoid = None;
        self.apply_sync_response(from, response, &hashes, out)
    }

    /// Everything an answer must satisfy before any of it is stored: it
    /// answers the request, is one chain of this epoch's blocks, and every
    /// certificate in it verifies, checked from the end (the answer's
    /// certificate covers the last block, each block's `justify` its
    /// parent).
    fn check_sync_response(
        &mut self,
        request: &SyncRequest,
        response: &SyncResponse,
        hashes: &[BlockHash],
    ) -> Result<()> {
        let (Some(first), Some(last), Some(&last_hash)) = (
            response.blocks.first(),
            response.blocks.last(),
            hashes.last(),
        ) else {
            return Err(invalid("no blocks"));
        };
        match request.block {
            Some(want) if last_hash != want => {
                return Err(invalid("does not end at the block asked for"));
            }
            None if first.height != request.from_height => {
                return Err(invalid("does not start at the height asked for"));
            }
            _ => {}
        }
        let epoch = self.epoch();
        for (index, block) in response.blocks.iter().enumerate() {
            if block.epoch != epoch {
                return Err(invalid("block of another epoch"));
            }
            check_links(block)?;
            if index > 0 {
                let parent = &response.blocks[index - 1];
                if !certifies(&block.justify, parent, &hashes[index - 1]) {
                    return Err(invalid("blocks are not a certified parent-linked chain"));
                }
                if block.timestamp_ms <= parent.timestamp_ms {
                    return Err(invalid("timestamps do not increase"));
                }
            }
        }
        if !certifies(&response.qc, last, &last_hash) && !commits(&response.qc, last, &last_hash) {
            return Err(invalid(
                "certificate neither certifies nor commits the last block",
            ));
        }
        // Verify from the end: a fabricated answer fails at its first
        // certificate, and nothing was stored.
        self.verify_qc(&response.qc)?;
        for block in response.blocks.iter().rev() {
            self.verify_qc(&block.justify)?;
        }
        Ok(())
    }

    /// Applies a verified answer: each block's certificate is processed
    /// (commits, round changes) and the block stored.
    fn apply_sync_response(
        &mut self,
        from: PublicKey,
        response: SyncResponse,
        hashes: &[BlockHash],
        out: &mut Out,
    ) -> Result<()> {
        let full = response.blocks.len() == SYNC_BLOCKS_MAX;
        let Some(last_height) = response.blocks.last().map(|block| block.height) else {
            return Ok(());
        };
        let start_epoch = self.epoch();
        for (index, (block, &hash)) in response.blocks.iter().zip(hashes).enumerate() {
            if self.parent_info(&hash).is_some() {
                continue;
            }
            match self.check_extends(block, false) {
                Ok(()) => {}
                // The first block may hang below a gap: it is certified
                // (checked above), so keep it; its justify names the parent,
                // which is fetched next (after_qc asks for unknown certified
                // blocks).
                Err(ConsensusError::UnknownParent) if index == 0 => {}
                Err(error) => return Err(error),
            }
            self.process_qc(&block.justify, from, out)?;
            if self.halted {
                return Ok(());
            }
            if self.epoch() != start_epoch {
                // The epoch ended inside this answer: ask for the next one.
                self.request_sync(Some(from), None, out);
                return Ok(());
            }
            if !self.tree_has_room(block.encoded_len()) {
                self.make_room();
            }
            if !self.tree_has_room(block.encoded_len()) {
                return Err(ConsensusError::BufferFull("block tree"));
            }
            self.tree.insert(hash, block.clone());
            self.adopt_orphans(hash, out);
            if self.halted {
                return Ok(());
            }
            if self.epoch() != start_epoch {
                // An adopted proposal ended the epoch: ask for the next one.
                self.request_sync(Some(from), None, out);
                return Ok(());
            }
        }
        if self.epoch() == start_epoch {
            self.process_qc(&response.qc, from, out)?;
        }
        if full && !self.halted {
            self.sync_continue_from = last_height.next().ok();
            self.request_sync(Some(from), None, out);
        }
        // A leader that could not propose because it lacked the block to
        // extend may have it now: propose in this round after all.
        if !self.halted
            && self.my_id.is_some()
            && self.my_id == Some(self.validators.leader(self.round))
        {
            self.request_payload(out);
        }
        Ok(())
    }
}

/// The certificate of the last committed block of an answer (`blocks[i]`
/// is `entries[i]`'s block): the next committed block's `justify`, or the
/// block's own commit certificate when it commits it directly. Drops
/// trailing blocks with neither.
fn committed_certificate(
    entries: &[&CommittedBlock],
    blocks: &mut Vec<Block>,
) -> Option<QuorumCert> {
    while let Some(last) = blocks.last() {
        let index = blocks.len() - 1;
        let entry = entries.get(index).filter(|entry| entry.block == *last)?;
        let hash = last.hash();
        if let Some(next) = entries.get(index + 1)
            && next.block.justify.vote.block == hash
        {
            return Some(next.block.justify.clone());
        }
        if commits(&entry.commit_qc, last, &hash) {
            return Some(entry.commit_qc.clone());
        }
        blocks.pop();
    }
    None
}

/// Whether `qc` certifies `block` (whose hash is `hash`): it signs exactly
/// that block's round, height and parent.
fn certifies(qc: &QuorumCert, block: &Block, hash: &BlockHash) -> bool {
    qc.vote.block == *hash
        && qc.vote.epoch == block.epoch
        && qc.vote.round == block.round
        && qc.vote.height == block.height
        && qc.vote.parent == block.parent
        && qc.vote.parent_round == block.justify.round()
}

/// Whether `qc` commits `block` under the two-chain rule: it certifies a
/// child of the block in the very next round (so the block itself is
/// certified: honest voters checked the child's justify).
fn commits(qc: &QuorumCert, block: &Block, hash: &BlockHash) -> bool {
    qc.vote.commits() == Some(*hash)
        && qc.vote.epoch == block.epoch
        && qc.vote.parent_round == block.round
        && block.height.next().is_ok_and(|next| next == qc.vote.height)
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
