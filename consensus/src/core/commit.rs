//! Certificates and commits: verifying QCs and TCs, the two-chain commit
//! rule, and epoch changes.

use yuchain_proto::{Hash32, PublicKey};

use super::{Core, Out, Root, VERIFIED_CACHE_MAX};
use crate::error::{ConsensusError, Result};
use crate::safety::SafetyData;
use crate::types::{BlockHash, QuorumCert, Round, TimeoutCert};
use crate::validators::VerifyMode;
use crate::{Action, CommittedBlock, EpochEndProof};

#[cfg(feature = "testing")]
use super::BrokenRule;

impl Core {
    // ----- certificates -----

    pub(super) fn remember_verified(&mut self, digest: Hash32) {
        if self.verified_set.insert(digest) {
            self.verified.push_back(digest);
            if self.verified.len() > VERIFIED_CACHE_MAX
                && let Some(old) = self.verified.pop_front()
            {
                self.verified_set.remove(&old);
            }
        }
    }

    pub(super) fn verify_qc(&mut self, qc: &QuorumCert) -> Result<()> {
        if qc.vote.epoch != self.epoch() {
            return Err(ConsensusError::Invalid {
                what: "quorum certificate",
                reason: "certificate is for another epoch",
            });
        }
        if qc.round() == Round(0) {
            // An epoch root's certificate: no signatures, and exactly the root.
            let root = QuorumCert::root(self.epoch(), self.root.hash, self.root.height);
            return if *qc == root {
                Ok(())
            } else {
                Err(ConsensusError::Invalid {
                    what: "quorum certificate",
                    reason: "round 0 is not this epoch's root",
                })
            };
        }
        let digest = qc.digest();
        if self.verified_set.contains(&digest) {
            return Ok(());
        }
        self.validators
            .verify_qc(qc, VerifyMode::Batched, self.checks_signatures())?;
        self.remember_verified(digest);
        Ok(())
    }

    /// A certificate from a message: verify, then act on it.
    pub(super) fn process_qc(
        &mut self,
        qc: &QuorumCert,
        from: PublicKey,
        out: &mut Out,
    ) -> Result<()> {
        self.verify_qc(qc)?;
        self.after_qc(qc, from, out)
    }

    /// A verified certificate: raise the high certificate, commit by the
    /// two-chain rule, enter the next round.
    pub(super) fn after_qc(
        &mut self,
        qc: &QuorumCert,
        from: PublicKey,
        out: &mut Out,
    ) -> Result<()> {
        self.safety.observe_qc(qc);
        #[cfg(feature = "testing")]
        let target = if self.broken(BrokenRule::CommitOneChain) {
            Some(qc.vote.block)
        } else {
            qc.vote.commits()
        };
        #[cfg(not(feature = "testing"))]
        let target = qc.vote.commits();
        let epoch = self.epoch();
        if let Some(target) = target {
            self.commit_through(target, qc, from, out)?;
            if self.epoch() != epoch || self.halted {
                return Ok(());
            }
        }
        if self.parent_info(&qc.vote.block).is_none() {
            self.request_sync(Some(from), Some(qc.vote.block), out);
        }
        self.advance_round(qc.round().next()?, false, out);
        Ok(())
    }

    pub(super) fn process_tc(
        &mut self,
        tc: &TimeoutCert,
        from: PublicKey,
        out: &mut Out,
    ) -> Result<()> {
        if tc.epoch != self.epoch() {
            return Err(ConsensusError::Invalid {
                what: "timeout certificate",
                reason: "certificate is for another epoch",
            });
        }
        // Always verify (or find it verified before): a proposal's TC feeds
        // the voting rule, so a forged TC of a round this node already has a
        // TC for must still be refused. The certificate it carries is
        // verified first (the highest claim must be its round), then the
        // entries.
        let digest = tc.digest();
        if !self.verified_set.contains(&digest) {
            self.validators
                .verify_tc_entries(tc, VerifyMode::Batched, self.checks_signatures())?;
            self.verify_qc(&tc.high_qc)?;
            self.remember_verified(digest);
        }
        // The carried certificate is as good as any other: take it (it may
        // commit, and lets this node's next proposal justify itself).
        self.after_qc(&tc.high_qc, from, out)?;
        if tc.epoch != self.epoch() || self.halted {
            return Ok(());
        }
        if self
            .safety
            .high_tc
            .as_ref()
            .is_some_and(|high| high.round >= tc.round)
        {
            return Ok(());
        }
        self.safety.observe_tc(tc);
        self.advance_round(tc.round.next()?, true, out);
        Ok(())
    }

    // ----- commit (Jolteon §4, two-chain commit rule) -----

    /// Commits `target` and its uncommitted ancestors, oldest first. An
    /// epoch-ending block ends the walk: the blocks after it in its epoch are
    /// dropped and the next epoch starts from it.
    pub(super) fn commit_through(
        &mut self,
        target: BlockHash,
        qc: &QuorumCert,
        from: PublicKey,
        out: &mut Out,
    ) -> Result<()> {
        // The root and committed blocks are committed already (an old
        // certificate arriving late names them again).
        if target == self.head.hash
            || target == self.root.hash
            || self.committed_index.contains_key(&target)
        {
            return Ok(());
        }
        let mut chain = Vec::new();
        let mut cursor = target;
        while cursor != self.head.hash {
            let Some(block) = self.tree.get(&cursor) else {
                if self.committed_index.contains_key(&cursor) || cursor == self.root.hash {
                    return self.halt(
                        format!(
                            "certified block {target} forks below committed block {} at height {}",
                            self.head.hash, self.head.height
                        ),
                        out,
                    );
                }
                // Missing ancestors: fetch them; the commit happens when
                // their certificates are processed again.
                self.request_sync(Some(from), None, out);
                return Ok(());
            };
            if block.height <= self.head.height {
                return self.halt(
                    format!(
                        "certified block {target} conflicts with committed block {} at height {}",
                        self.head.hash, self.head.height
                    ),
                    out,
                );
            }
            chain.push(cursor);
            cursor = block.parent;
        }
        for hash in chain.into_iter().rev() {
            let Some(block) = self.tree.get(&hash).cloned() else {
                return Err(ConsensusError::Inconsistent("walked block vanished"));
            };
            let epoch_end = if block.next_validators.is_some() {
                Some(self.epoch_end_proof(hash, qc)?)
            } else {
                None
            };
            self.head = Root {
                hash,
                height: block.height,
                timestamp_ms: block.timestamp_ms,
            };
            let entry = CommittedBlock {
                block: block.clone(),
                commit_qc: qc.clone(),
                epoch_end,
            };
            self.push_committed(entry.clone());
            out.push(Action::Commit(Box::new(entry)));
            if let Some(keys) = block.next_validators {
                return self.start_epoch(keys, out);
            }
        }
        let head_height = self.head.height;
        self.tree.retain(|_, block| block.height > head_height);
        // Progress: round timers start again from the base.
        self.timeouts_since_commit = 0;
        Ok(())
    }

    /// The blocks after an epoch-ending block up to the certificate that
    /// committed it.
    pub(super) fn epoch_end_proof(&self, end: BlockHash, qc: &QuorumCert) -> Result<EpochEndProof> {
        let mut blocks = Vec::new();
        let mut cursor = qc.vote.block;
        while cursor != end {
            let block = self.tree.get(&cursor).ok_or(ConsensusError::Inconsistent(
                "epoch end proof block missing",
            ))?;
            blocks.push(block.clone());
            cursor = block.parent;
        }
        blocks.reverse();
        Ok(EpochEndProof {
            blocks,
            qc: qc.clone(),
        })
    }

    /// The committed head ended the epoch: switch to the next set, with
    /// fresh safety data and rounds from 1.
    pub(super) fn start_epoch(&mut self, keys: Vec<PublicKey>, out: &mut Out) -> Result<()> {
        let ended = self.epoch();
        let epoch = ended.next()?;
        self.validators = self.validators.successor(epoch, keys.clone())?;
        self.my_id = self.validators.index_of(&self.me);
        self.root = self.head;
        self.safety = SafetyData::new(
            epoch,
            QuorumCert::root(epoch, self.root.hash, self.root.height),
        );
        self.tree.clear();
        self.proposals_seen.clear();
        self.pending_checks.clear();
        self.orphans.clear();
        self.votes.clear();
        self.timeouts.clear();
        self.payload_requested = None;
        self.proposed = None;
        self.round = Round(0);
        self.timeouts_since_commit = 0;
        self.sync_continue_from = None;
        self.sync_rotation = 0;
        self.sync_avoid = None;
        out.push(Action::DropUncommitted { epoch: ended });
        out.push(Action::EpochChanged {
            epoch,
            validators: keys,
        });
        self.advance_round(Round(1), false, out);
        Ok(())
    }

    pub(super) fn halt(&mut self, reason: String, out: &mut Out) -> Result<()> {
        #[cfg(feature = "testing")]
        if self.config.testing.halt_on_fork_disabled {
            return Ok(());
        }
        self.halted = true;
        out.push(Action::Halt { reason });
        Ok(())
    }
}
