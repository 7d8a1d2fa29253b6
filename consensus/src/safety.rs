//! Safety data and the safety rules: the part of a validator's state that,
//! if lost or rolled back, could make it sign two conflicting things.
//!
//! The driver persists [`SafetyData`] (on [`crate::Action::PersistSafety`])
//! before any vote or timeout that depends on it leaves the node, and hands
//! it back on restart. The rules follow Jolteon (Gelashvili et al., "Jolteon
//! and Ditto", FC 2022, Algorithm 2) and aptos `safety_rules_2chain.rs`.

use crate::error::{ConsensusError, Result};
use crate::types::{Epoch, QuorumCert, Round, Timeout, TimeoutCert, Vote};
use crate::wire::{Reader, Writer};

/// The first byte of [`SafetyData::encode`]: version 2 added the proposer
/// guard and the timeout certificate's carried certificate.
const SAFETY_DATA_VERSION: u8 = 2;

/// What a validator must never forget.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct SafetyData {
    /// The epoch this data is for; a new epoch starts fresh.
    pub epoch: Epoch,
    /// The highest round voted or timed out in: never vote at or below it.
    pub last_voted_round: Round,
    /// The highest round timed out in.
    pub highest_timeout_round: Round,
    /// The highest round this node proposed in (the proposer guard): never
    /// sign a second proposal in it, not even after a restart.
    pub last_proposed_round: Round,
    /// The highest quorum certificate seen: the lock of the two-chain
    /// protocol (a timeout must carry it, and a block after a timeout
    /// certificate must extend at least the highest one reported).
    pub high_qc: QuorumCert,
    /// The highest timeout certificate seen, so a restarted node can still
    /// justify its round.
    pub high_tc: Option<TimeoutCert>,
    /// The last vote, resent as is if asked to vote in its round again.
    pub last_vote: Option<Vote>,
    /// The last timeout, resent as is.
    pub last_timeout: Option<Timeout>,
}

impl SafetyData {
    /// Fresh data for an epoch whose root is certified by `root_qc`.
    pub fn new(epoch: Epoch, root_qc: QuorumCert) -> SafetyData {
        SafetyData {
            epoch,
            last_voted_round: Round(0),
            highest_timeout_round: Round(0),
            last_proposed_round: Round(0),
            high_qc: root_qc,
            high_tc: None,
            last_vote: None,
            last_timeout: None,
        }
    }

    /// Remembers a (verified) quorum certificate if it is the highest.
    pub fn observe_qc(&mut self, qc: &QuorumCert) -> bool {
        if qc.round() > self.high_qc.round() {
            self.high_qc = qc.clone();
            true
        } else {
            false
        }
    }

    /// Remembers a (verified) timeout certificate if it is the highest.
    pub fn observe_tc(&mut self, tc: &TimeoutCert) -> bool {
        if self
            .high_tc
            .as_ref()
            .is_none_or(|high| tc.round > high.round)
        {
            self.high_tc = Some(tc.clone());
            true
        } else {
            false
        }
    }

    /// The round this node may be in: one past its highest certificate.
    pub fn justified_round(&self) -> Result<Round> {
        let tc_round = self.high_tc.as_ref().map_or(Round(0), |tc| tc.round);
        self.high_qc.round().max(tc_round).next()
    }

    /// Rule 1: never vote twice in a round, nor in a round already timed out
    /// (Jolteon: "r > r_vote"). Two votes in one round let a leader certify
    /// two blocks.
    pub fn check_vote_round(&self, round: Round) -> Result<()> {
        if round <= self.last_voted_round {
            return Err(ConsensusError::Unsafe(
                "already voted or timed out in this round",
            ));
        }
        Ok(())
    }

    /// Rule 2 (the lock): vote only for a block that extends the previous
    /// round's certificate, or, after a timeout certificate of the previous
    /// round, a certificate at least as high as any signer of that timeout
    /// reported. A block committed by a two-chain has a certificate that
    /// f + 1 honest validators hold, so every timeout certificate reports it
    /// and every later block extends it.
    pub fn safe_to_vote(
        round: Round,
        qc_round: Round,
        last_tc: Option<&TimeoutCert>,
    ) -> Result<()> {
        if qc_round.next()? == round {
            return Ok(());
        }
        match last_tc {
            Some(tc) if tc.round.next()? == round && qc_round >= tc.high_qc_round() => Ok(()),
            Some(_) => Err(ConsensusError::Unsafe(
                "block extends a certificate lower than the timeout certificate reports",
            )),
            None => Err(ConsensusError::Unsafe(
                "block does not extend the previous round's certificate",
            )),
        }
    }

    /// Both voting rules.
    pub fn check_vote(
        &self,
        round: Round,
        qc_round: Round,
        last_tc: Option<&TimeoutCert>,
    ) -> Result<()> {
        self.check_vote_round(round)?;
        SafetyData::safe_to_vote(round, qc_round, last_tc)
    }

    /// The proposer guard: propose at most once per round, and never in a
    /// round this node already voted or timed out in (a restarted leader
    /// must not sign a second, different block for its round).
    pub fn check_proposal(&self, round: Round) -> Result<()> {
        if round <= self.last_proposed_round {
            return Err(ConsensusError::Unsafe("already proposed in this round"));
        }
        if round <= self.last_voted_round {
            return Err(ConsensusError::Unsafe(
                "already voted or timed out in this round",
            ));
        }
        Ok(())
    }

    /// Records a proposal about to be sent.
    pub fn record_proposal(&mut self, round: Round) {
        self.last_proposed_round = self.last_proposed_round.max(round);
    }

    /// Records a vote about to be sent.
    pub fn record_vote(&mut self, vote: &Vote) {
        self.last_voted_round = self.last_voted_round.max(vote.data.round);
        self.last_vote = Some(*vote);
    }

    /// The timeout rule: time out only in a round justified by the previous
    /// round's certificate or timeout certificate, carrying the highest
    /// certificate held (so a timeout certificate never hides a lock), and
    /// never below a round already voted in.
    pub fn check_timeout(
        &self,
        round: Round,
        high_qc: &QuorumCert,
        last_tc: Option<&TimeoutCert>,
    ) -> Result<()> {
        if round < self.last_voted_round {
            return Err(ConsensusError::Unsafe("timeout below the last voted round"));
        }
        if high_qc.round() < self.high_qc.round() {
            return Err(ConsensusError::Unsafe(
                "timeout must carry the highest certificate",
            ));
        }
        let by_qc = high_qc.round().next()? == round;
        let by_tc = match last_tc {
            Some(tc) => tc.round.next()? == round,
            None => false,
        };
        if !(by_qc || by_tc) {
            return Err(ConsensusError::Unsafe("timeout round is not justified"));
        }
        Ok(())
    }

    /// Records a timeout about to be sent: no vote in its round afterwards.
    pub fn record_timeout(&mut self, timeout: &Timeout) {
        self.last_voted_round = self.last_voted_round.max(timeout.round);
        self.highest_timeout_round = self.highest_timeout_round.max(timeout.round);
        self.last_timeout = Some(timeout.clone());
    }

    /// The canonical bytes the driver stores.
    pub fn encode(&self) -> Vec<u8> {
        use crate::types::Message;
        let mut writer = Writer::default();
        writer.u8(SAFETY_DATA_VERSION);
        writer.u64(self.epoch.0);
        writer.u64(self.last_voted_round.0);
        writer.u64(self.highest_timeout_round.0);
        writer.u64(self.last_proposed_round.0);
        self.high_qc.write(&mut writer);
        match &self.high_tc {
            None => writer.u8(0),
            Some(tc) => {
                writer.u8(1);
                tc.write(&mut writer);
            }
        }
        // Votes and timeouts are stored as their message bytes.
        for message in [
            self.last_vote.map(Message::Vote),
            self.last_timeout.clone().map(Message::Timeout),
        ] {
            match message {
                None => writer.u8(0),
                Some(message) => {
                    writer.u8(1);
                    writer.bytes(&message.encode());
                }
            }
        }
        writer.bytes
    }

    /// Reads bytes written by [`SafetyData::encode`].
    pub fn decode(bytes: &[u8]) -> Result<SafetyData> {
        use crate::types::{MESSAGE_SIZE_BYTES_MAX, Message};
        let mut reader = Reader::new(bytes);
        if reader.u8()? != SAFETY_DATA_VERSION {
            return Err(ConsensusError::Malformed("unknown safety data version"));
        }
        let epoch = Epoch(reader.u64()?);
        let last_voted_round = Round(reader.u64()?);
        let highest_timeout_round = Round(reader.u64()?);
        let last_proposed_round = Round(reader.u64()?);
        let high_qc = QuorumCert::read(&mut reader)?;
        let high_tc = if reader.present()? {
            Some(TimeoutCert::read(&mut reader)?)
        } else {
            None
        };
        let mut last_vote = None;
        if reader.present()? {
            match Message::decode(&reader.bytes(MESSAGE_SIZE_BYTES_MAX, "vote")?)? {
                Message::Vote(vote) => last_vote = Some(vote),
                _ => return Err(ConsensusError::Malformed("stored vote")),
            }
        }
        let mut last_timeout = None;
        if reader.present()? {
            match Message::decode(&reader.bytes(MESSAGE_SIZE_BYTES_MAX, "timeout")?)? {
                Message::Timeout(timeout) => last_timeout = Some(timeout),
                _ => return Err(ConsensusError::Malformed("stored timeout")),
            }
        }
        reader.finish()?;
        Ok(SafetyData {
            epoch,
            last_voted_round,
            highest_timeout_round,
            last_proposed_round,
            high_qc,
            high_tc,
            last_vote,
            last_timeout,
        })
    }
}

#[cfg(test)]
mod tests {
    use yuchain_proto::{Hash32, SigningKey};

    use super::*;
    use crate::types::{ChainTag, Height, TimeoutEntry, ValidatorId, VoteData};

    fn qc(round: u64) -> QuorumCert {
        QuorumCert {
            vote: VoteData {
                epoch: Epoch(0),
                round: Round(round),
                block: Hash32([round as u8; 32]),
                height: Height(round),
                parent: Hash32([0; 32]),
                parent_round: Round(round.saturating_sub(1)),
            },
            signatures: Vec::new(),
        }
    }

    fn tc(round: u64, high_qc_rounds: &[u64]) -> TimeoutCert {
        let key = SigningKey::for_test("tc");
        TimeoutCert {
            epoch: Epoch(0),
            round: Round(round),
            entries: high_qc_rounds
                .iter()
                .enumerate()
                .map(|(i, &high)| TimeoutEntry {
                    signer: ValidatorId(i as u16),
                    high_qc_round: Round(high),
                    signature: key.sign(b"unused"),
                })
                .collect(),
            high_qc: qc(high_qc_rounds.iter().copied().max().unwrap_or(0)),
        }
    }

    fn vote(round: u64) -> Vote {
        let mut data = qc(round).vote;
        data.round = Round(round);
        Vote::sign(
            &SigningKey::for_test("v"),
            &ChainTag::for_test(),
            data,
            ValidatorId(0),
        )
    }

    #[test]
    fn a_validator_never_votes_twice_in_a_round() {
        let mut safety = SafetyData::new(Epoch(0), qc(0));
        safety
            .check_vote(Round(1), Round(0), None)
            .expect("first vote");
        safety.record_vote(&vote(1));
        assert!(safety.check_vote(Round(1), Round(0), None).is_err());
        assert!(safety.check_vote(Round(0), Round(0), None).is_err());
        safety
            .check_vote(Round(2), Round(1), None)
            .expect("next round");
    }

    #[test]
    fn a_block_must_extend_the_previous_rounds_certificate() {
        let safety = SafetyData::new(Epoch(0), qc(0));
        // Round 5 extending a round-3 certificate, with no timeout
        // certificate for round 4: refused (this is the lock).
        assert!(safety.check_vote(Round(5), Round(3), None).is_err());
        safety.check_vote(Round(5), Round(4), None).expect("direct");
    }

    #[test]
    fn after_a_timeout_a_block_must_extend_the_highest_reported_certificate() {
        let safety = SafetyData::new(Epoch(0), qc(0));
        let timeout = tc(4, &[2, 3, 1]);
        safety
            .check_vote(Round(5), Round(3), Some(&timeout))
            .expect("extends the highest reported");
        assert!(
            safety
                .check_vote(Round(5), Round(2), Some(&timeout))
                .is_err()
        );
        // The timeout certificate must be for the previous round.
        assert!(
            safety
                .check_vote(Round(6), Round(3), Some(&timeout))
                .is_err()
        );
    }

    #[test]
    fn no_vote_in_a_round_after_timing_out_in_it() {
        let mut safety = SafetyData::new(Epoch(0), qc(0));
        safety.observe_qc(&qc(2));
        safety
            .check_timeout(Round(3), &qc(2), None)
            .expect("justified timeout");
        let key = SigningKey::for_test("t");
        let timeout = Timeout::sign(
            &key,
            &ChainTag::for_test(),
            Epoch(0),
            Round(3),
            qc(2),
            None,
            ValidatorId(0),
        );
        safety.record_timeout(&timeout);
        assert!(safety.check_vote(Round(3), Round(2), None).is_err());
        assert_eq!(safety.highest_timeout_round, Round(3));
    }

    #[test]
    fn a_timeout_must_carry_the_highest_certificate_and_be_justified() {
        let mut safety = SafetyData::new(Epoch(0), qc(0));
        safety.observe_qc(&qc(4));
        assert!(
            safety.check_timeout(Round(5), &qc(3), None).is_err(),
            "hides the lock"
        );
        assert!(
            safety.check_timeout(Round(7), &qc(4), None).is_err(),
            "unjustified round"
        );
        safety
            .check_timeout(Round(7), &qc(4), Some(&tc(6, &[4])))
            .expect("justified by a timeout certificate");
        safety.record_vote(&vote(8));
        assert!(
            safety
                .check_timeout(Round(7), &qc(4), Some(&tc(6, &[4])))
                .is_err(),
            "below the last vote"
        );
    }

    #[test]
    fn observing_keeps_only_the_highest_certificates() {
        let mut safety = SafetyData::new(Epoch(0), qc(0));
        assert!(safety.observe_qc(&qc(3)));
        assert!(!safety.observe_qc(&qc(2)));
        assert_eq!(safety.high_qc.round(), Round(3));
        assert!(safety.observe_tc(&tc(5, &[3])));
        assert!(!safety.observe_tc(&tc(4, &[3])));
        assert_eq!(safety.justified_round().expect("round"), Round(6));
    }

    #[test]
    fn a_proposer_signs_one_proposal_per_round_and_none_after_voting() {
        let mut safety = SafetyData::new(Epoch(0), qc(0));
        safety.check_proposal(Round(1)).expect("first proposal");
        safety.record_proposal(Round(1));
        assert!(safety.check_proposal(Round(1)).is_err());
        safety.record_vote(&vote(3));
        assert!(safety.check_proposal(Round(3)).is_err());
        safety.check_proposal(Round(4)).expect("a later round");
    }

    #[test]
    fn safety_data_round_trips_through_its_bytes() {
        let mut safety = SafetyData::new(Epoch(2), qc(0));
        safety.observe_qc(&qc(4));
        safety.observe_tc(&tc(5, &[4, 3, 2]));
        safety.record_vote(&vote(6));
        let key = SigningKey::for_test("t");
        safety.record_timeout(&Timeout::sign(
            &key,
            &ChainTag::for_test(),
            Epoch(2),
            Round(6),
            qc(4),
            Some(tc(5, &[4])),
            ValidatorId(1),
        ));
        safety.record_proposal(Round(7));
        let bytes = safety.encode();
        assert_eq!(SafetyData::decode(&bytes).expect("decodes"), safety);
        assert!(SafetyData::decode(&bytes[..bytes.len() - 1]).is_err());
    }
}
