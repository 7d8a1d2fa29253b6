//! Batches as an auditor sees them: the digest that names a batch's
//! transactions and the availability certificate over it, checked from the
//! validators' keys alone.
//!
//! These are the node's rules (`node/src/batch.rs`: `batch_digest`,
//! `BatchRef::signing_digest`, `check_certificate`), written again here on
//! purpose: the auditor must not run the code it audits, and the CLI does
//! not link the node (libp2p, the executor). The node's test
//! `the_auditors_batch_rules_are_the_nodes` keeps the two in step.

use yuchain_consensus::ValidatorSet;
use yuchain_consensus::types::{Epoch, ValidatorId};
use yuchain_proto::verify::{SignedMessage, verify_batch};
use yuchain_proto::{Domain, Hash32, PublicKey, Signature, pb};

/// A batch reference taken from a certificate, its fields checked for shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct CertifiedBatch {
    /// The digest of author, epoch, sequence and transaction ids.
    pub digest: Hash32,
    /// The author's consensus key.
    pub author: PublicKey,
    /// The batch's epoch.
    pub epoch: Epoch,
    /// How many transactions it holds.
    pub tx_count: u32,
    /// Their encoded bytes, in all.
    pub byte_size: u64,
}

impl CertifiedBatch {
    /// Reads a certificate's batch reference.
    pub fn from_pb(reference: &pb::BatchRef) -> Result<CertifiedBatch, String> {
        Ok(CertifiedBatch {
            digest: Hash32::from_slice(&reference.digest)
                .ok_or_else(|| "its digest is not 32 bytes".to_string())?,
            author: PublicKey::from_slice(&reference.author)
                .map_err(|error| format!("its author: {error}"))?,
            epoch: Epoch(reference.epoch),
            tx_count: reference.tx_count,
            byte_size: reference.byte_size,
        })
    }

    /// As a message.
    pub fn to_pb(&self) -> pb::BatchRef {
        pb::BatchRef {
            digest: self.digest.0.to_vec(),
            author: self.author.0.to_vec(),
            epoch: self.epoch.0,
            tx_count: self.tx_count,
            byte_size: self.byte_size,
        }
    }

    /// What each acknowledgement of the batch signs.
    pub fn signing_digest(&self) -> Hash32 {
        Domain::Batch.hash_parts(&[
            b"batch ack",
            &self.digest.0,
            &self.author.0,
            &self.epoch.0.to_le_bytes(),
            &self.tx_count.to_le_bytes(),
            &self.byte_size.to_le_bytes(),
        ])
    }
}

/// The digest of a batch: its author, epoch, the author's sequence number
/// for it and its transactions' ids, in order.
pub fn batch_digest(author: &PublicKey, epoch: Epoch, sequence: u64, ids: &[Hash32]) -> Hash32 {
    let mut hasher = Domain::Batch.hasher();
    hasher.update(b"batch");
    hasher.update(&author.0);
    hasher.update(&epoch.0.to_le_bytes());
    hasher.update(&sequence.to_le_bytes());
    hasher.update(&u64::try_from(ids.len()).unwrap_or(u64::MAX).to_le_bytes());
    for id in ids {
        hasher.update(&id.0);
    }
    Hash32(*hasher.finalize().as_bytes())
}

/// Checks an availability certificate against `validators` (its epoch's
/// set): the author a member, between f + 1 and n signers of strictly
/// increasing index, every signature valid (one batch equation). Returns
/// the batch it certifies, or what is wrong with it.
pub fn check_certificate(
    certificate: &pb::BatchCertificate,
    validators: &ValidatorSet,
) -> Result<CertifiedBatch, String> {
    let batch = CertifiedBatch::from_pb(
        certificate
            .batch
            .as_ref()
            .ok_or_else(|| "it names no batch".to_string())?,
    )?;
    if batch.epoch != validators.epoch() {
        return Err(format!(
            "it is of epoch {}, the block of epoch {}",
            batch.epoch.0,
            validators.epoch().0
        ));
    }
    if validators.index_of(&batch.author).is_none() {
        return Err(format!(
            "its author {} is not a validator",
            hex::encode(batch.author.0)
        ));
    }
    let signatures = certificate.signatures.len();
    if signatures < validators.weak_quorum() || signatures > validators.len() {
        return Err(format!(
            "{signatures} signatures, between {} and {} are needed",
            validators.weak_quorum(),
            validators.len()
        ));
    }
    let digest = batch.signing_digest();
    let mut previous: Option<ValidatorId> = None;
    let mut items = Vec::with_capacity(signatures);
    let mut signers = Vec::with_capacity(signatures);
    for entry in &certificate.signatures {
        let signer = u16::try_from(entry.signer)
            .map(ValidatorId)
            .map_err(|_| format!("signer {} is not a validator", entry.signer))?;
        if previous.is_some_and(|previous| previous >= signer) {
            return Err("its signers are not in strictly increasing order".into());
        }
        previous = Some(signer);
        let key = *validators
            .key(signer)
            .map_err(|_| format!("signer {} is not a validator", entry.signer))?;
        let signature = Signature::from_slice(&entry.signature)
            .map_err(|error| format!("signer {}'s signature: {error}", entry.signer))?;
        items.push(SignedMessage {
            public_key: key,
            signature,
            message: &digest.0,
        });
        signers.push(signer);
    }
    let bad = verify_batch(&items);
    if let Some(first) = bad.first() {
        let signer = signers.get(*first).map_or(u16::MAX, |signer| signer.0);
        return Err(format!("validator {signer}'s signature is invalid"));
    }
    Ok(batch)
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_proto::SigningKey;

    fn set() -> (Vec<SigningKey>, ValidatorSet) {
        let keys: Vec<SigningKey> = (0..4)
            .map(|i| SigningKey::for_test(&format!("v{i}")))
            .collect();
        let set = ValidatorSet::new(
            yuchain_consensus::ChainTag::for_test(),
            Epoch(0),
            keys.iter().map(SigningKey::public_key).collect(),
        )
        .expect("a set");
        (keys, set)
    }

    fn certificate(
        keys: &[SigningKey],
        batch: &CertifiedBatch,
        signers: &[u16],
    ) -> pb::BatchCertificate {
        pb::BatchCertificate {
            batch: Some(pb::BatchRef {
                digest: batch.digest.0.to_vec(),
                author: batch.author.0.to_vec(),
                epoch: batch.epoch.0,
                tx_count: batch.tx_count,
                byte_size: batch.byte_size,
            }),
            signatures: signers
                .iter()
                .map(|&signer| pb::BatchSignature {
                    signer: u32::from(signer),
                    signature: keys[usize::from(signer)]
                        .sign(&batch.signing_digest().0)
                        .0
                        .to_vec(),
                })
                .collect(),
        }
    }

    #[test]
    fn a_certificate_of_f_plus_one_checks_and_a_forged_or_short_one_does_not() {
        let (keys, set) = set();
        let batch = CertifiedBatch {
            digest: batch_digest(&keys[0].public_key(), Epoch(0), 3, &[Hash32([1; 32])]),
            author: keys[0].public_key(),
            epoch: Epoch(0),
            tx_count: 1,
            byte_size: 120,
        };
        let good = certificate(&keys, &batch, &[1, 3]);
        assert_eq!(check_certificate(&good, &set), Ok(batch));
        let short = certificate(&keys, &batch, &[1]);
        assert!(
            check_certificate(&short, &set)
                .unwrap_err()
                .contains("signatures")
        );
        let mut forged = good.clone();
        forged.signatures[1].signature[0] ^= 1;
        assert!(
            check_certificate(&forged, &set)
                .unwrap_err()
                .contains("validator 3")
        );
        let backwards = certificate(&keys, &batch, &[3, 1]);
        assert!(
            check_certificate(&backwards, &set)
                .unwrap_err()
                .contains("increasing")
        );
        let mut inflated = good;
        if let Some(reference) = inflated.batch.as_mut() {
            reference.tx_count = 2;
        }
        assert!(check_certificate(&inflated, &set).is_err());
    }
}
