//! Byzantine validators: honest cores whose output the simulator tampers
//! with before it reaches the network (equivocation, double votes,
//! withholding, replays, forks, stale timeouts), signed with their real keys.

use yuchain_consensus::{Block, Message, Proposal, Timeout, Vote, VoteData};
use yuchain_proto::Hash32;

use super::{Behaviour, Cluster};

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
            Some(Message::Proposal(proposal)) => {
                let proposal = if behaviour.fork {
                    // First move everyone to this round with a timeout that
                    // carries the certificate of the previous round, then
                    // send a block extending an older one.
                    let timeout = Timeout::sign(
                        &self.nodes[node].key,
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
        if behaviour.double_vote
            && let Ok(Message::Vote(vote)) = Message::decode(&bytes)
        {
            let mut data: VoteData = vote.data;
            let mut hash = [0u8; 32];
            for chunk in hash.chunks_mut(8) {
                chunk.copy_from_slice(&self.rng.next_u64().to_le_bytes());
            }
            data.block = Hash32(hash);
            let other = Vote::sign(&self.nodes[node].key, data, vote.signer);
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
        let signature = self.nodes[node]
            .key
            .sign(&yuchain_consensus::types::proposal_digest(&block.hash()).0);
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
            timeout.epoch,
            timeout.round,
            older,
            timeout.last_tc,
            timeout.signer,
        )
    }
}
