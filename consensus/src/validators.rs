//! An epoch's validator set, quorums and certificate verification.
//!
//! A certificate is always checked against the set of its own epoch: the set
//! is a value held per epoch, never a global.

use std::collections::HashSet;

use yuchain_proto::verify::{SignedMessage, verify_batch, verify_one};
use yuchain_proto::{PublicKey, Signature};

use crate::error::{ConsensusError, Result};
use crate::types::{
    ChainTag, Epoch, QuorumCert, Round, TimeoutCert, VALIDATORS_MAX, ValidatorId, timeout_digest,
};

/// How signatures in a certificate are checked. Both give the same verdict
/// (the proto crate's rule); batching is faster.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum VerifyMode {
    /// One batch equation (split on failure).
    Batched,
    /// Each signature on its own.
    OneByOne,
}

/// The validators of one epoch, in leader-rotation order.
#[derive(Clone, PartialEq, Eq, Debug)]
pub struct ValidatorSet {
    chain: ChainTag,
    epoch: Epoch,
    keys: Vec<PublicKey>,
}

impl ValidatorSet {
    /// A set of `chain`: non-empty, at most [`VALIDATORS_MAX`], no key
    /// twice. Its signatures verify only on `chain`.
    pub fn new(chain: ChainTag, epoch: Epoch, keys: Vec<PublicKey>) -> Result<ValidatorSet> {
        check_keys(&keys)?;
        Ok(ValidatorSet { chain, epoch, keys })
    }

    /// The chain its signatures are for.
    pub fn chain(&self) -> &ChainTag {
        &self.chain
    }

    /// The next epoch's set, of the same chain.
    pub fn successor(&self, epoch: Epoch, keys: Vec<PublicKey>) -> Result<ValidatorSet> {
        ValidatorSet::new(self.chain, epoch, keys)
    }

    /// The epoch.
    pub fn epoch(&self) -> Epoch {
        self.epoch
    }

    /// The keys, by index.
    pub fn keys(&self) -> &[PublicKey] {
        &self.keys
    }

    /// How many validators.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Never true: a set is non-empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// f: how many may be faulty, the largest f with 3f + 1 <= n.
    pub fn faults_tolerated(&self) -> usize {
        (self.keys.len() - 1) / 3
    }

    /// A quorum, n - f (2f + 1 when n = 3f + 1): two quorums share at least
    /// f + 1 validators, so at least one honest one.
    pub fn quorum(&self) -> usize {
        self.keys.len() - self.faults_tolerated()
    }

    /// f + 1: at least one of this many is honest.
    pub fn weak_quorum(&self) -> usize {
        self.faults_tolerated() + 1
    }

    /// The round-robin leader of `round`.
    pub fn leader(&self, round: Round) -> ValidatorId {
        // len <= VALIDATORS_MAX (256), so both conversions are lossless.
        let len = self.keys.len() as u64;
        ValidatorId((round.0 % len) as u16)
    }

    /// The index of `key`, if a member.
    pub fn index_of(&self, key: &PublicKey) -> Option<ValidatorId> {
        self.keys
            .iter()
            .position(|candidate| candidate == key)
            .map(|index| ValidatorId(index as u16))
    }

    /// The key of a member.
    pub fn key(&self, id: ValidatorId) -> Result<&PublicKey> {
        self.keys
            .get(usize::from(id.0))
            .ok_or(ConsensusError::UnknownValidator(id.0))
    }

    /// Checks one signature by member `id` over `digest`.
    pub fn verify_signature(
        &self,
        id: ValidatorId,
        digest: &[u8; 32],
        signature: &Signature,
        what: &'static str,
    ) -> Result<()> {
        verify_one(self.key(id)?, digest, signature).map_err(|_| ConsensusError::BadSignature(what))
    }

    /// Checks the signers of a certificate: members, strictly increasing, at
    /// least a quorum.
    fn check_signers(&self, signers: impl Iterator<Item = ValidatorId>) -> Result<usize> {
        let mut count = 0usize;
        let mut previous: Option<ValidatorId> = None;
        for signer in signers {
            self.key(signer)?;
            if previous.is_some_and(|previous| signer <= previous) {
                return Err(ConsensusError::RepeatedSigner);
            }
            previous = Some(signer);
            count += 1;
        }
        if count < self.quorum() {
            return Err(ConsensusError::TooFewSigners {
                got: count,
                needed: self.quorum(),
            });
        }
        Ok(count)
    }

    /// Verifies a signed quorum certificate of this epoch (not a root
    /// certificate: those have no signatures and are checked by the core).
    pub fn verify_qc(&self, qc: &QuorumCert, mode: VerifyMode, signatures: bool) -> Result<()> {
        if qc.vote.epoch != self.epoch {
            return Err(ConsensusError::Invalid {
                what: "quorum certificate",
                reason: "certificate is for another epoch",
            });
        }
        if qc.vote.round.0 == 0 {
            return Err(ConsensusError::Invalid {
                what: "quorum certificate",
                reason: "round 0 is the epoch root",
            });
        }
        self.check_signers(qc.signatures.iter().map(|(signer, _)| *signer))?;
        if !signatures {
            return Ok(());
        }
        let digest = qc.vote.signing_digest(&self.chain);
        self.verify_all(
            qc.signatures
                .iter()
                .map(|(signer, signature)| (*signer, digest.0, *signature)),
            mode,
            "quorum certificate",
        )
    }

    /// Verifies a timeout certificate of this epoch, the quorum certificate
    /// it carries included. A carried certificate of round 0 (the epoch's
    /// root) has no signatures: the caller, who knows the root, checks it.
    pub fn verify_tc(&self, tc: &TimeoutCert, mode: VerifyMode, signatures: bool) -> Result<()> {
        self.verify_tc_entries(tc, mode, signatures)?;
        if tc.high_qc.round() == Round(0) {
            return Ok(());
        }
        self.verify_qc(&tc.high_qc, mode, signatures)
    }

    /// Verifies a timeout certificate's entries and that its highest claim
    /// is the round of the certificate it carries, but not that
    /// certificate's signatures (for a caller that verifies and caches
    /// certificates itself).
    pub fn verify_tc_entries(
        &self,
        tc: &TimeoutCert,
        mode: VerifyMode,
        signatures: bool,
    ) -> Result<()> {
        if tc.epoch != self.epoch || tc.high_qc.vote.epoch != self.epoch {
            return Err(ConsensusError::Invalid {
                what: "timeout certificate",
                reason: "certificate is for another epoch",
            });
        }
        // The highest claim must be backed by the certificate carried: a
        // Byzantine signer could otherwise claim a round no certificate
        // has, and every proposal justified by this TC would fail the lock.
        if tc.highest_claim() != tc.high_qc.round() {
            return Err(ConsensusError::Invalid {
                what: "timeout certificate",
                reason: "the highest claimed certificate round is not the carried certificate's",
            });
        }
        self.check_signers(tc.entries.iter().map(|entry| entry.signer))?;
        if tc
            .entries
            .iter()
            .any(|entry| entry.high_qc_round >= tc.round)
        {
            return Err(ConsensusError::Invalid {
                what: "timeout certificate",
                reason: "a signer's certificate is not below the timed-out round",
            });
        }
        if !signatures {
            return Ok(());
        }
        self.verify_all(
            tc.entries.iter().map(|entry| {
                (
                    entry.signer,
                    timeout_digest(&self.chain, tc.epoch, tc.round, entry.high_qc_round).0,
                    entry.signature,
                )
            }),
            mode,
            "timeout certificate",
        )
    }

    fn verify_all(
        &self,
        items: impl Iterator<Item = (ValidatorId, [u8; 32], Signature)>,
        mode: VerifyMode,
        what: &'static str,
    ) -> Result<()> {
        let items: Vec<(PublicKey, [u8; 32], Signature)> = items
            .map(|(signer, digest, signature)| Ok((*self.key(signer)?, digest, signature)))
            .collect::<Result<_>>()?;
        match mode {
            VerifyMode::OneByOne => {
                for (key, digest, signature) in &items {
                    verify_one(key, digest, signature)
                        .map_err(|_| ConsensusError::BadSignature(what))?;
                }
                Ok(())
            }
            VerifyMode::Batched => {
                let batch: Vec<SignedMessage<'_>> = items
                    .iter()
                    .map(|(public_key, digest, signature)| SignedMessage {
                        public_key: *public_key,
                        signature: *signature,
                        message: digest,
                    })
                    .collect();
                if verify_batch(&batch).is_empty() {
                    Ok(())
                } else {
                    Err(ConsensusError::BadSignature(what))
                }
            }
        }
    }
}

/// A validator list is usable: non-empty, bounded, no key twice.
pub fn check_keys(keys: &[PublicKey]) -> Result<()> {
    if keys.is_empty() {
        return Err(ConsensusError::Invalid {
            what: "validator set",
            reason: "empty",
        });
    }
    if keys.len() > VALIDATORS_MAX {
        return Err(ConsensusError::Invalid {
            what: "validator set",
            reason: "more than VALIDATORS_MAX validators",
        });
    }
    let distinct: HashSet<&PublicKey> = keys.iter().collect();
    if distinct.len() != keys.len() {
        return Err(ConsensusError::Invalid {
            what: "validator set",
            reason: "a key appears twice",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use yuchain_proto::{Hash32, SigningKey};

    use super::*;
    use crate::types::{Height, TimeoutEntry, VoteData};

    fn keys(count: usize) -> Vec<SigningKey> {
        (0..count)
            .map(|i| SigningKey::for_test(&format!("validator-{i}")))
            .collect()
    }

    fn set(keys: &[SigningKey]) -> ValidatorSet {
        ValidatorSet::new(
            ChainTag::for_test(),
            Epoch(0),
            keys.iter().map(SigningKey::public_key).collect(),
        )
        .expect("set")
    }

    fn data() -> VoteData {
        VoteData {
            epoch: Epoch(0),
            round: Round(3),
            block: Hash32([1; 32]),
            height: Height(2),
            parent: Hash32([2; 32]),
            parent_round: Round(2),
        }
    }

    fn qc(keys: &[SigningKey], signers: &[u16]) -> QuorumCert {
        let data = data();
        QuorumCert {
            vote: data,
            signatures: signers
                .iter()
                .map(|&i| {
                    (
                        ValidatorId(i),
                        keys[usize::from(i)].sign(&data.signing_digest(&ChainTag::for_test()).0),
                    )
                })
                .collect(),
        }
    }

    #[test]
    fn quorum_sizes_follow_n_equals_3f_plus_1() {
        for (n, f, q) in [(1, 0, 1), (4, 1, 3), (7, 2, 5), (10, 3, 7), (5, 1, 4)] {
            let set = set(&keys(n));
            assert_eq!(set.faults_tolerated(), f, "n = {n}");
            assert_eq!(set.quorum(), q, "n = {n}");
        }
    }

    #[test]
    fn a_quorum_certificate_verifies_single_and_batched() {
        let keys = keys(4);
        let set = set(&keys);
        let qc = qc(&keys, &[0, 2, 3]);
        set.verify_qc(&qc, VerifyMode::Batched, true)
            .expect("batched");
        set.verify_qc(&qc, VerifyMode::OneByOne, true)
            .expect("single");
    }

    #[test]
    fn certificates_with_too_few_repeated_or_foreign_signers_are_rejected() {
        let keys = keys(4);
        let set = set(&keys);
        assert!(matches!(
            set.verify_qc(&qc(&keys, &[0, 1]), VerifyMode::Batched, true),
            Err(ConsensusError::TooFewSigners { got: 2, needed: 3 })
        ));
        let mut repeated = qc(&keys, &[0, 1, 2]);
        repeated.signatures[2] = repeated.signatures[1];
        assert_eq!(
            set.verify_qc(&repeated, VerifyMode::Batched, true),
            Err(ConsensusError::RepeatedSigner)
        );
        let mut unsorted = qc(&keys, &[0, 1, 2]);
        unsorted.signatures.swap(0, 2);
        assert_eq!(
            set.verify_qc(&unsorted, VerifyMode::Batched, true),
            Err(ConsensusError::RepeatedSigner)
        );
        let mut outsider = qc(&keys, &[0, 1, 2]);
        outsider.signatures[2].0 = ValidatorId(9);
        assert_eq!(
            set.verify_qc(&outsider, VerifyMode::Batched, true),
            Err(ConsensusError::UnknownValidator(9))
        );
        let mut forged = qc(&keys, &[0, 1, 2]);
        forged.signatures[1].1 = keys[3].sign(&data().signing_digest(&ChainTag::for_test()).0);
        for mode in [VerifyMode::Batched, VerifyMode::OneByOne] {
            assert!(matches!(
                set.verify_qc(&forged, mode, true),
                Err(ConsensusError::BadSignature(_))
            ));
        }
        let other_epoch =
            ValidatorSet::new(ChainTag::for_test(), Epoch(1), set.keys().to_vec()).expect("set");
        assert!(
            other_epoch
                .verify_qc(&qc(&keys, &[0, 1, 2]), VerifyMode::Batched, true)
                .is_err()
        );
    }

    #[test]
    fn a_certificate_of_another_chain_with_the_same_keys_is_refused() {
        let keys = keys(4);
        let here = set(&keys);
        let certificate = qc(&keys, &[0, 1, 2]);
        assert_eq!(
            here.verify_qc(&certificate, VerifyMode::Batched, true),
            Ok(())
        );
        // The same validators, the same keys, another chain id: nothing they
        // signed here is valid there.
        let elsewhere = ValidatorSet::new(
            ChainTag::of("yuchain-rehearsal"),
            Epoch(0),
            here.keys().to_vec(),
        )
        .expect("set");
        for mode in [VerifyMode::Batched, VerifyMode::OneByOne] {
            assert!(matches!(
                elsewhere.verify_qc(&certificate, mode, true),
                Err(ConsensusError::BadSignature(_))
            ));
        }
        assert_ne!(ChainTag::of("a"), ChainTag::of("b"));
        assert_eq!(ChainTag::of("a"), ChainTag::of("a"));
    }

    #[test]
    fn a_timeout_certificate_checks_each_signers_own_message() {
        let keys = keys(4);
        let set = set(&keys);
        let entries: Vec<TimeoutEntry> = [(0u16, 1u64), (1, 3), (3, 2)]
            .iter()
            .map(|&(i, high)| TimeoutEntry {
                signer: ValidatorId(i),
                high_qc_round: Round(high),
                signature: keys[usize::from(i)].sign(
                    &timeout_digest(&ChainTag::for_test(), Epoch(0), Round(4), Round(high)).0,
                ),
            })
            .collect();
        // The highest claim (3) is backed by a certificate of round 3.
        let tc = TimeoutCert {
            epoch: Epoch(0),
            round: Round(4),
            entries,
            high_qc: qc(&keys, &[0, 1, 2]),
        };
        set.verify_tc(&tc, VerifyMode::Batched, true)
            .expect("valid");
        assert_eq!(tc.high_qc_round(), Round(3));
        // A claim above the carried certificate is refused, and so is a
        // carried certificate above every claim or with a forged signature.
        let mut inflated = tc.clone();
        inflated.high_qc.vote.round = Round(2);
        assert!(
            set.verify_tc(&inflated, VerifyMode::Batched, false)
                .is_err()
        );
        let mut forged = tc.clone();
        forged.high_qc.signatures[1].1 = keys[3].sign(b"forged");
        assert!(set.verify_tc(&forged, VerifyMode::Batched, true).is_err());
        let mut lying = tc.clone();
        lying.entries[0].high_qc_round = Round(2);
        assert!(set.verify_tc(&lying, VerifyMode::OneByOne, true).is_err());
        let mut impossible = tc.clone();
        impossible.round = Round(3);
        assert!(
            set.verify_tc(&impossible, VerifyMode::Batched, false)
                .is_err()
        );
    }

    #[test]
    fn a_set_refuses_duplicates_and_emptiness() {
        let key = SigningKey::for_test("a").public_key();
        assert!(ValidatorSet::new(ChainTag::for_test(), Epoch(0), vec![]).is_err());
        assert!(ValidatorSet::new(ChainTag::for_test(), Epoch(0), vec![key, key]).is_err());
    }
}
