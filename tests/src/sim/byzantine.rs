//! Byzantine validators: honest cores whose output the simulator tampers
//! with before it reaches the network (equivocation, double votes,
//! withholding, replays, forks, stale timeouts), signed with their real keys,
//! plus messages they make up (forged sync answers, inflated timeout
//! certificates, votes for both of two equivocating blocks, future-epoch
//! spam, floods). The Byzantine validators collude: each may sign with any
//! of their keys.

use yuchain_consensus::types::{TimeoutEntry, timeout_digest};
use yuchain_consensus::{
    Block, Epoch, Height, Message, Proposal, QuorumCert, Round, SyncRequest, SyncResponse, Timeout,
    TimeoutCert, ValidatorId, Vote, VoteData,
};
use yuchain_proto::{Hash32, Signature};

use super::{Behaviour, Cluster};

/// Forged one-block sync answers per burst (`forged_sync`): enough to fill
/// a victim's block tree (1,024 blocks) within a few bursts.
const FORGED_BURST: usize = 128;
/// Messages per Byzantine step for `flood`.
const FLOOD_PER_STEP: usize = 4;
/// Rounds of received timeouts a Byzantine node remembers (`inflated_tc`).
const TIMEOUT_ROUNDS_KEPT: usize = 4;
/// Messages per Byzantine step for `future_epoch_spam`.
const FUTURE_SPAM_PER_STEP: usize = 3;
/// How far ahead `future_epoch_spam` claims to be.
const FUTURE_EPOCHS: u64 = 1_000;

impl Cluster {
    pub(super) fn replay_old(&mut self, node: usize) {
        if self.nodes[node].seen.is_empty() || !self.rng.percent(30) {
            return;
        }
        let index = self.rng.index(self.nodes[node].seen.len());
        let bytes = self.nodes[node].seen[index].clone();
        let to = self.rng.index(self.nodes.len());
        self.send(node, to, bytes);
    }

    pub(super) fn byzantine_broadcast(
        &mut self,
        node: usize,
        behaviour: Behaviour,
        bytes: Vec<u8>,
    ) {
        if behaviour.replay {
            self.replay_old(node);
        }
        let message = Message::decode(&bytes).ok();
        let n = self.nodes.len();
        match message {
            Some(Message::Proposal(proposal)) if behaviour.equivocate_and_vote_both => {
                self.nodes[node].last_proposal = Some(proposal.clone());
                self.equivocate_and_vote_both(node, proposal);
            }
            // Its honest timeouts would let honest nodes form a certificate
            // without it: only the inflated ones leave. And it never
            // proposes, so rounds time out (while the votes it collected as
            // next leader give it the round's certificate, which honest
            // nodes lack: the start of a stall).
            Some(Message::Timeout(_) | Message::Proposal(_)) if behaviour.inflated_tc => {}
            Some(Message::Proposal(proposal)) => {
                self.nodes[node].last_proposal = Some(proposal.clone());
                let proposal = if behaviour.fork {
                    // First move everyone to this round with a timeout that
                    // carries the certificate of the previous round, then
                    // send a block extending an older one.
                    let timeout = Timeout::sign(
                        &self.nodes[node].key,
                        &yuchain_consensus::ChainTag::for_test(),
                        proposal.block.epoch,
                        proposal.block.round,
                        proposal.block.justify.clone(),
                        proposal.last_tc.clone(),
                        proposal.block.proposer,
                    );
                    let bytes = Message::Timeout(timeout).encode();
                    for to in 0..n {
                        self.send(node, to, bytes.clone());
                    }
                    self.fork_proposal(node, proposal)
                } else {
                    proposal
                };
                let extra = if behaviour.fork {
                    self.config.delay_ms.1
                } else {
                    0
                };
                let bytes = Message::Proposal(proposal.clone()).encode();
                if behaviour.withhold {
                    let to = self.rng.index(n);
                    self.send_later(node, to, bytes, extra);
                } else if behaviour.equivocate {
                    let other =
                        Message::Proposal(self.resign_with_other_payload(node, proposal)).encode();
                    for to in 0..n {
                        let copy = if self.rng.percent(50) {
                            bytes.clone()
                        } else {
                            other.clone()
                        };
                        self.send_later(node, to, copy, extra);
                    }
                } else {
                    for to in 0..n {
                        self.send_later(node, to, bytes.clone(), extra);
                    }
                }
            }
            Some(Message::Timeout(timeout)) if behaviour.stale_timeouts => {
                let timeout = self.stale_timeout(node, timeout);
                let bytes = Message::Timeout(timeout).encode();
                for to in 0..n {
                    if !behaviour.withhold || self.rng.percent(50) {
                        self.send(node, to, bytes.clone());
                    }
                }
            }
            _ => {
                for to in 0..n {
                    if !behaviour.withhold || self.rng.percent(50) {
                        self.send(node, to, bytes.clone());
                    }
                }
            }
        }
    }

    pub(super) fn byzantine_send(
        &mut self,
        node: usize,
        behaviour: Behaviour,
        to: usize,
        bytes: Vec<u8>,
    ) {
        if behaviour.replay {
            self.replay_old(node);
        }
        if behaviour.withhold && self.rng.percent(50) {
            return;
        }
        if behaviour.forged_sync
            && let Ok(Message::SyncResponse(response)) = Message::decode(&bytes)
        {
            if let Some(forged) = self.forged_sync_response(node, Some(response)) {
                self.send(node, to, Message::SyncResponse(forged).encode());
            }
            return;
        }
        if behaviour.double_vote
            && let Ok(Message::Vote(vote)) = Message::decode(&bytes)
        {
            let mut data: VoteData = vote.data;
            let mut hash = [0u8; 32];
            for chunk in hash.chunks_mut(8) {
                chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
            }
            data.block = Hash32(hash);
            let other = Vote::sign(
                &self.nodes[node].key,
                &yuchain_consensus::ChainTag::for_test(),
                data,
                vote.signer,
            );
            let bytes = Message::Vote(other).encode();
            self.send(node, to, bytes.clone());
            let elsewhere = self.rng.index(self.nodes.len());
            self.send(node, elsewhere, bytes);
        }
        self.send(node, to, bytes);
    }

    pub(super) fn sign_proposal(
        &self,
        node: usize,
        block: Block,
        last_tc: Option<yuchain_consensus::TimeoutCert>,
    ) -> Proposal {
        let signature = self.nodes[node].key.sign(
            &yuchain_consensus::types::proposal_digest(
                &yuchain_consensus::ChainTag::for_test(),
                &block.hash(),
            )
            .0,
        );
        Proposal {
            block,
            last_tc,
            signature,
        }
    }

    pub(super) fn resign_with_other_payload(
        &mut self,
        node: usize,
        proposal: Proposal,
    ) -> Proposal {
        let mut block = proposal.block;
        block.payload.push(self.rng.range(0, 255) as u8);
        self.sign_proposal(node, block, proposal.last_tc)
    }

    /// A certificate older than `qc`: the one its block carries, twice back
    /// when possible.
    pub(super) fn older_qc(
        &self,
        node: usize,
        qc: &yuchain_consensus::QuorumCert,
    ) -> yuchain_consensus::QuorumCert {
        let Some(core) = self.nodes[node].core.as_ref() else {
            return qc.clone();
        };
        let mut older = qc.clone();
        for _ in 0..2 {
            match core.block(&older.vote.block) {
                Some(block) if block.justify.vote.epoch == older.vote.epoch => {
                    older = block.justify.clone();
                }
                _ => break,
            }
        }
        older
    }

    /// Replaces the block with one extending an older certificate, at the
    /// same round: a fork that honest voters must refuse (the lock). After a
    /// timeout it also forges the timeout certificate to report only round
    /// 0 certificates, which would make the fork look safe to a voter that
    /// trusted the certificate without checking its signatures.
    pub(super) fn fork_proposal(&mut self, node: usize, proposal: Proposal) -> Proposal {
        let older = self.older_qc(node, &proposal.block.justify);
        let Ok(height) = older.vote.height.next() else {
            return proposal;
        };
        let mut block = proposal.block;
        block.parent = older.vote.block;
        block.height = height;
        block.justify = older;
        block.payload.push(0xF0);
        block.next_validators = None;
        let forged_tc = proposal.last_tc.map(|mut tc| {
            for entry in &mut tc.entries {
                entry.high_qc_round = yuchain_consensus::Round(0);
            }
            tc
        });
        self.sign_proposal(node, block, forged_tc)
    }

    /// A timeout claiming an older highest certificate than the node has.
    pub(super) fn stale_timeout(&mut self, node: usize, timeout: Timeout) -> Timeout {
        let older = self.older_qc(node, &timeout.high_qc);
        if older.round() == timeout.high_qc.round() {
            return timeout;
        }
        // Keep it justified by a timeout certificate when there is one, so
        // honest nodes must look at the claim itself.
        Timeout::sign(
            &self.nodes[node].key,
            &yuchain_consensus::ChainTag::for_test(),
            timeout.epoch,
            timeout.round,
            older,
            timeout.last_tc,
            timeout.signer,
        )
    }
}

impl Cluster {
    /// What a Byzantine node notes of a message it receives.
    pub(super) fn byzantine_receive(&mut self, node: usize, behaviour: Behaviour, bytes: &[u8]) {
        if behaviour.replay {
            let seen = &mut self.nodes[node].seen;
            seen.push_back(bytes.to_vec());
            if seen.len() > 32 {
                seen.pop_front();
            }
        }
        if behaviour.inflated_tc
            && let Ok(Message::Timeout(timeout)) = Message::decode(bytes)
        {
            let (epoch, round) = (timeout.epoch, timeout.round);
            let seen = &mut self.nodes[node].timeouts_seen;
            seen.entry((epoch.0, round.0))
                .or_default()
                .insert(timeout.signer, timeout);
            while seen.len() > TIMEOUT_ROUNDS_KEPT {
                seen.pop_first();
            }
            self.spread_inflated_tc(node, epoch, round);
        }
    }

    /// Messages a Byzantine node makes up, after each of its own steps'
    /// outputs (so at most a few per step).
    pub(super) fn byzantine_extras(&mut self, node: usize, behaviour: Behaviour) {
        if behaviour.forged_sync && self.rng.percent(50) {
            self.forged_sync_burst(node);
        }
        if behaviour.future_epoch_spam {
            for _ in 0..FUTURE_SPAM_PER_STEP {
                self.future_epoch_spam(node);
            }
        }
        if behaviour.flood {
            for _ in 0..FLOOD_PER_STEP {
                self.flood_one(node);
            }
        }
    }

    fn random_hash(&mut self) -> Hash32 {
        let mut hash = [0u8; 32];
        for chunk in hash.chunks_mut(8) {
            chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
        }
        Hash32(hash)
    }

    /// A signature that verifies for nothing it will be checked against.
    fn garbage_signature(&mut self, node: usize) -> Signature {
        let noise = self.random_hash();
        self.nodes[node].key.sign(&noise.0)
    }

    fn random_honest(&mut self) -> Option<usize> {
        let honest: Vec<usize> = (0..self.nodes.len()).filter(|&i| self.honest(i)).collect();
        (!honest.is_empty()).then(|| honest[self.rng.index(honest.len())])
    }

    /// A node's id and key index in its core's current epoch.
    fn byzantine_id(&self, node: usize) -> Option<ValidatorId> {
        let core = self.nodes[node].core.as_ref()?;
        core.validators()
            .index_of(&self.nodes[node].key.public_key())
    }

    // ----- forged_sync -----

    /// Unrequested forged answers to one honest node.
    fn forged_sync_burst(&mut self, node: usize) {
        let Some(victim) = self.random_honest() else {
            return;
        };
        for _ in 0..FORGED_BURST {
            if let Some(forged) = self.forged_sync_response(node, None) {
                self.send(node, victim, Message::SyncResponse(forged).encode());
            }
        }
    }

    /// A fabricated answer: mostly a high-round child of the highest
    /// certificate's block (its own certificate is real, so the child looks
    /// certified up to the answer's final certificate, which is garbage);
    /// else the real answer with a badly signed final certificate, or a
    /// block of another epoch.
    fn forged_sync_response(
        &mut self,
        node: usize,
        real: Option<SyncResponse>,
    ) -> Option<SyncResponse> {
        let core = self.nodes[node].core.as_ref()?;
        let high_qc = core.safety().high_qc.clone();
        let parent_time = core
            .block(&high_qc.vote.block)
            .map_or(super::GENESIS_MS, |block| block.timestamp_ms);
        let current = core.round();
        let quorum = core.validators().quorum();
        let proposer = core.validators().leader(current);
        let choice = self.rng.range(0, 9);
        if let Some(mut real) = real.filter(|_| choice < 3) {
            // The real chain, its final certificate signed by nobody.
            for index in 0..real.qc.signatures.len() {
                real.qc.signatures[index].1 = self.garbage_signature(node);
            }
            return Some(real);
        }
        let round = Round(current.0 + 1_000 + self.rng.range(0, 1_000_000));
        let mut block = Block {
            epoch: high_qc.vote.epoch,
            round,
            height: high_qc.vote.height.next().ok()?,
            parent: high_qc.vote.block,
            justify: high_qc.clone(),
            timestamp_ms: parent_time + 1 + self.rng.range(0, 1_000),
            proposer,
            payload: self.random_hash().0.to_vec(),
            next_validators: None,
        };
        if choice == 9 {
            block.epoch = Epoch(block.epoch.0 + 1);
        }
        let hash = block.hash();
        // Too few signers (cheap to refuse), or a quorum of bad signatures
        // (refused only after checking them).
        let signers = if choice == 8 { quorum } else { 1 };
        let signatures = (0..signers)
            .map(|i| (ValidatorId(i as u16), self.garbage_signature(node)))
            .collect();
        let qc = QuorumCert {
            vote: VoteData {
                epoch: block.epoch,
                round,
                block: hash,
                height: block.height,
                parent: block.parent,
                parent_round: high_qc.round(),
            },
            signatures,
        };
        Some(SyncResponse {
            blocks: vec![block],
            qc,
        })
    }

    // ----- inflated_tc -----

    /// With a quorum of timeouts for `round` (its own inflated one and the
    /// honest ones received), builds a timeout certificate whose own entry
    /// claims a certificate of round - 1, and broadcasts it in a timeout of
    /// the next round.
    fn spread_inflated_tc(&mut self, node: usize, epoch: Epoch, round: Round) {
        if self.nodes[node].inflated_for >= Some((epoch.0, round.0)) || round.0 < 2 {
            return;
        }
        let Some(my_id) = self.byzantine_id(node) else {
            return;
        };
        let Some(core) = self.nodes[node].core.as_ref() else {
            return;
        };
        if core.epoch() != epoch {
            return;
        }
        let quorum = core.validators().quorum();
        let Some(received) = self.nodes[node].timeouts_seen.get(&(epoch.0, round.0)) else {
            return;
        };
        let honest: Vec<&Timeout> = received
            .values()
            .filter(|timeout| timeout.signer != my_id)
            .take(quorum - 1)
            .collect();
        if honest.len() + 1 < quorum {
            return;
        }
        // The carrier (its timeout of the next round) holds a certificate
        // stripped of its signatures: honest nodes take the timeout
        // certificate first and then refuse the carrier, so it never counts
        // towards an honest timeout certificate of the next round (nor
        // shows them a higher certificate it holds, say of the round it led
        // and withheld).
        let Some(mut high_qc) = honest
            .iter()
            .map(|timeout| &timeout.high_qc)
            .min_by_key(|qc| qc.round())
            .cloned()
        else {
            return;
        };
        high_qc.signatures.clear();
        let mut entries: Vec<TimeoutEntry> = honest
            .iter()
            .map(|timeout| TimeoutEntry {
                signer: timeout.signer,
                high_qc_round: timeout.high_qc.round(),
                signature: timeout.signature,
            })
            .collect();
        let claimed = Round(round.0 - 1);
        let key = &self.nodes[node].key;
        entries.push(TimeoutEntry {
            signer: my_id,
            high_qc_round: claimed,
            signature: key.sign(
                &timeout_digest(
                    &yuchain_consensus::ChainTag::for_test(),
                    epoch,
                    round,
                    claimed,
                )
                .0,
            ),
        });
        entries.sort_by_key(|entry| entry.signer);
        // The best it can carry is a real certificate, the highest of the
        // honest signers': its round is below the inflated claim.
        let Some(best) = honest
            .iter()
            .map(|timeout| &timeout.high_qc)
            .max_by_key(|qc| qc.round())
            .cloned()
        else {
            return;
        };
        let tc = TimeoutCert {
            epoch,
            round,
            entries,
            high_qc: best,
        };
        let Ok(next) = round.next() else {
            return;
        };
        let timeout = Timeout::sign(
            key,
            &yuchain_consensus::ChainTag::for_test(),
            epoch,
            next,
            high_qc,
            Some(tc.clone()),
            my_id,
        );
        self.nodes[node].inflated_for = Some((epoch.0, round.0));
        if self.log {
            println!(
                "{:>7} node {node} spreads an inflated timeout certificate of round {}",
                self.now_ms, round.0
            );
        }
        let bytes = Message::Timeout(timeout).encode();
        for to in 0..self.nodes.len() {
            self.send(node, to, bytes.clone());
        }
    }

    // ----- equivocate_and_vote_both -----

    /// Two blocks to two halves, and every Byzantine validator's votes for
    /// both to the next leader.
    fn equivocate_and_vote_both(&mut self, node: usize, proposal: Proposal) {
        let other = self.resign_with_other_payload(node, proposal.clone());
        let first = Message::Proposal(proposal.clone()).encode();
        let second = Message::Proposal(other.clone()).encode();
        let n = self.nodes.len();
        for to in 0..n {
            let copy = if to % 2 == 0 { &first } else { &second };
            self.send(node, to, copy.clone());
        }
        let Some(core) = self.nodes[node].core.as_ref() else {
            return;
        };
        let validators = core.validators().clone();
        let Ok(next) = proposal.block.round.next() else {
            return;
        };
        let Some(leader) = validators
            .key(validators.leader(next))
            .ok()
            .and_then(|key| self.index_of(key))
        else {
            return;
        };
        for block in [&proposal.block, &other.block] {
            let data = VoteData {
                epoch: block.epoch,
                round: block.round,
                block: block.hash(),
                height: block.height,
                parent: block.parent,
                parent_round: block.justify.round(),
            };
            let voters: Vec<usize> = (0..n).filter(|&i| !self.honest(i)).collect();
            for voter in voters {
                let Some(id) = validators.index_of(&self.nodes[voter].key.public_key()) else {
                    continue;
                };
                let vote = Vote::sign(
                    &self.nodes[voter].key,
                    &yuchain_consensus::ChainTag::for_test(),
                    data,
                    id,
                );
                self.send(voter, leader, Message::Vote(vote).encode());
            }
        }
    }

    // ----- future_epoch_spam -----

    /// One message of an epoch far ahead to a random honest node.
    fn future_epoch_spam(&mut self, node: usize) {
        let (Some(id), Some(to)) = (self.byzantine_id(node), self.random_honest()) else {
            return;
        };
        let Some(core) = self.nodes[node].core.as_ref() else {
            return;
        };
        let epoch = Epoch(core.epoch().0 + FUTURE_EPOCHS + self.rng.range(0, 1_000));
        let round = Round(core.round().0 + self.rng.range(0, 3));
        let mut high_qc = core.safety().high_qc.clone();
        high_qc.vote.epoch = epoch;
        let key = self.nodes[node].key.clone();
        let message = match self.rng.range(0, 3) {
            0 => {
                let block = Block {
                    epoch,
                    round,
                    height: high_qc.vote.height.next().unwrap_or(Height(1)),
                    parent: high_qc.vote.block,
                    justify: high_qc,
                    timestamp_ms: self.local_time(node),
                    proposer: id,
                    payload: self.random_hash().0.to_vec(),
                    next_validators: None,
                };
                Message::Proposal(self.sign_proposal(node, block, None))
            }
            1 => Message::Timeout(Timeout::sign(
                &key,
                &yuchain_consensus::ChainTag::for_test(),
                epoch,
                round,
                high_qc,
                None,
                id,
            )),
            2 => {
                let data = VoteData {
                    epoch,
                    round,
                    block: self.random_hash(),
                    height: high_qc.vote.height,
                    parent: high_qc.vote.block,
                    parent_round: high_qc.round(),
                };
                Message::Vote(Vote::sign(
                    &key,
                    &yuchain_consensus::ChainTag::for_test(),
                    data,
                    id,
                ))
            }
            _ => Message::SyncRequest(SyncRequest {
                epoch,
                from_height: Height(1),
                block: None,
            }),
        };
        self.send(node, to, message.encode());
    }

    // ----- flood -----

    /// One valid-looking message to a random node: a re-signed copy of its
    /// last proposal with another payload, a vote for a random block, or a
    /// timeout for a far round.
    fn flood_one(&mut self, node: usize) {
        let Some(id) = self.byzantine_id(node) else {
            return;
        };
        let Some(core) = self.nodes[node].core.as_ref() else {
            return;
        };
        let epoch = core.epoch();
        let current = core.round();
        let high_qc = core.safety().high_qc.clone();
        let to = self.rng.index(self.nodes.len());
        let key = self.nodes[node].key.clone();
        let message = match self.rng.range(0, 2) {
            0 => match self.nodes[node].last_proposal.clone() {
                Some(proposal) => Message::Proposal(self.resign_with_other_payload(node, proposal)),
                None => return,
            },
            1 => {
                let data = VoteData {
                    epoch,
                    round: Round(current.0 + self.rng.range(0, 8)),
                    block: self.random_hash(),
                    height: high_qc.vote.height.next().unwrap_or(Height(1)),
                    parent: high_qc.vote.block,
                    parent_round: high_qc.round(),
                };
                Message::Vote(Vote::sign(
                    &key,
                    &yuchain_consensus::ChainTag::for_test(),
                    data,
                    id,
                ))
            }
            _ => {
                let round = Round(current.0 + 10 + self.rng.range(0, 1_000));
                Message::Timeout(Timeout::sign(
                    &key,
                    &yuchain_consensus::ChainTag::for_test(),
                    epoch,
                    round,
                    high_qc,
                    None,
                    id,
                ))
            }
        };
        self.send(node, to, message.encode());
    }
}
