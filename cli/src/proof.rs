//! Checking a `GetAccount` answer with the validators' keys alone, so a
//! wallet (or an auditor) trusts no node.
//!
//! An answer is an account (or none), a Merkle proof of it against a state
//! root, and a committed consensus block with a quorum certificate. It is
//! accepted when:
//!
//! 1. the certificate has signatures of a quorum (2f + 1) of the
//!    validators, each valid over its vote;
//! 2. the vote is for the block itself or for a child of it (`vote.block`
//!    or `vote.parent` is the block's hash): honest voters check a block's
//!    executed-state claim against their own execution before they vote,
//!    and voters of a child check the child's certificate of this block;
//! 3. the block's payload claims the executed state of exactly the
//!    answer's height, with the proof's root;
//! 4. the proof is for this account's state key and leads to that root;
//! 5. the account in the answer is the record the proof proves (or the
//!    proof proves there is none, and the answer has none);
//! 6. the state is of at least the height the caller asked for (a node
//!    could otherwise answer an old, validly certified state).

use prost::Message as _;
use yuchain_consensus::{CommittedBlock, ValidatorSet, VerifyMode};
use yuchain_ledger::{StateKey, verify_proof};
use yuchain_proto::{Address, Hash32, pb};

/// An account answer that does not check out, and what did not hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckError(pub String);

impl std::fmt::Display for CheckError {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            formatter,
            "the account answer does not check out: {}",
            self.0
        )
    }
}

impl std::error::Error for CheckError {}

/// What a checked answer proves.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedAccount {
    /// The height whose state it is.
    pub height: u64,
    /// The certified state root at that height.
    pub state_root: Hash32,
    /// The account (`None`: no account has this address at that height).
    pub account: Option<pb::Account>,
    /// The height of the consensus block whose certificate vouches for it.
    pub certified_by: u64,
    /// How many validators signed that certificate.
    pub signers: usize,
}

fn refuse(reason: impl Into<String>) -> CheckError {
    CheckError(reason.into())
}

/// Checks `answer` to a `GetAccount` for `address` against `validators`
/// (the epoch's set, pinned by the caller from the genesis file, not taken
/// from the node that answered).
pub fn check_account(
    answer: &pb::GetAccountResponse,
    address: &Address,
    validators: &ValidatorSet,
    min_height: u64,
) -> Result<CheckedAccount, CheckError> {
    if answer.height < min_height {
        return Err(refuse(format!(
            "it is the state of height {}, older than the {min_height} asked for",
            answer.height
        )));
    }
    let committed = CommittedBlock::decode(&answer.certified)
        .map_err(|error| refuse(format!("its certified block does not decode: {error}")))?;
    let qc = &committed.commit_qc;
    validators
        .verify_qc(qc, VerifyMode::Batched, true)
        .map_err(|error| refuse(format!("its certificate is not valid: {error}")))?;
    let hash = committed.block.hash();
    if qc.vote.block != hash && qc.vote.parent != hash {
        return Err(refuse(
            "its certificate signs neither the block nor a child of it",
        ));
    }
    let payload = pb::BlockPayload::decode(committed.block.payload.as_slice())
        .map_err(|_| refuse("the certified block's payload does not decode"))?;
    let claim = payload
        .executed
        .ok_or_else(|| refuse("the certified block claims no executed state"))?;
    if claim.height != answer.height {
        return Err(refuse(format!(
            "the certified block claims height {}, the answer says {}",
            claim.height, answer.height
        )));
    }
    let state_root = Hash32::from_slice(&claim.state_root)
        .ok_or_else(|| refuse("the claimed state root is not 32 bytes"))?;
    let proof = answer
        .proof
        .as_ref()
        .ok_or_else(|| refuse("the answer has no proof"))?;
    if proof.key != StateKey::Account(*address).to_bytes() {
        return Err(refuse("the proof is for another state key"));
    }
    let proved = verify_proof(&state_root, proof).map_err(|error| {
        refuse(format!(
            "the proof does not lead to the certified root: {error}"
        ))
    })?;
    let account = match (proved, &answer.account) {
        (None, None) => None,
        (Some(bytes), Some(account)) => {
            let record = pb::Account::decode(bytes.as_slice())
                .map_err(|_| refuse("the proved record is not an account"))?;
            if record != *account {
                return Err(refuse(
                    "the account in the answer is not the record the proof proves",
                ));
            }
            if record.address != address.0 {
                return Err(refuse("the proved account has another address"));
            }
            Some(record)
        }
        (None, Some(_)) => {
            return Err(refuse(
                "the answer shows an account the proof proves absent",
            ));
        }
        (Some(_), None) => {
            return Err(refuse(
                "the answer shows no account, but the proof proves one",
            ));
        }
    };
    Ok(CheckedAccount {
        height: answer.height,
        state_root,
        account,
        certified_by: committed.block.height.0,
        signers: qc.signatures.len(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_consensus::types::{Epoch, Height, Round, ValidatorId, Vote, VoteData};
    use yuchain_consensus::{Block, QuorumCert};
    use yuchain_ledger::StateView;
    use yuchain_ledger::testkit::{TestChain, address_of, issue};
    use yuchain_proto::{PublicKey, SigningKey};

    struct Fixture {
        keys: Vec<SigningKey>,
        validators: ValidatorSet,
        answer: pb::GetAccountResponse,
        bank: Address,
    }

    fn validator_keys() -> Vec<SigningKey> {
        (0..4)
            .map(|i| SigningKey::for_test(&format!("validator-{i}")))
            .collect()
    }

    fn block_claiming(height: u64, root: Hash32) -> Block {
        let payload = pb::BlockPayload {
            batches: Vec::new(),
            executed: Some(pb::ExecutedState {
                height,
                block_hash: vec![0; 32],
                state_root: root.0.to_vec(),
            }),
        };
        Block {
            epoch: Epoch(0),
            round: Round(7),
            height: Height(height + 8),
            parent: Hash32([3; 32]),
            justify: QuorumCert::root(Epoch(0), Hash32([3; 32]), Height(height + 7)),
            timestamp_ms: 1,
            proposer: ValidatorId(0),
            payload: payload.encode_to_vec(),
            next_validators: None,
        }
    }

    /// A certificate by `signers` over a child of `block`.
    fn child_qc(keys: &[SigningKey], block: &Block, signers: &[u16]) -> QuorumCert {
        let vote = VoteData {
            epoch: Epoch(0),
            round: Round(block.round.0 + 1),
            block: Hash32([4; 32]),
            height: Height(block.height.0 + 1),
            parent: block.hash(),
            parent_round: block.round,
        };
        QuorumCert {
            vote,
            signatures: signers
                .iter()
                .map(|&signer| {
                    let signed = Vote::sign(&keys[usize::from(signer)], vote, ValidatorId(signer));
                    (ValidatorId(signer), signed.signature)
                })
                .collect(),
        }
    }

    fn fixture() -> Fixture {
        let keys = validator_keys();
        let validators = ValidatorSet::new(
            Epoch(0),
            keys.iter()
                .map(SigningKey::public_key)
                .collect::<Vec<PublicKey>>(),
        )
        .expect("a validator set");
        let mut chain = TestChain::new(1);
        let bank_key = chain.operators[0].clone();
        let issuer = chain.issuer.clone();
        let funding = chain.tx(&issuer, issue(address_of(&bank_key), 5_000));
        chain.apply(vec![funding]).expect("issue");
        let view = StateView::of(&chain.ledger);
        let bank = address_of(&bank_key);
        let proof = view.prove_account(&bank);
        let account = proof
            .value
            .as_deref()
            .map(|bytes| pb::Account::decode(bytes).expect("an account"));
        let block = block_claiming(view.height(), view.root());
        let commit_qc = child_qc(&keys, &block, &[0, 1, 3]);
        let certified = CommittedBlock {
            block,
            commit_qc,
            epoch_end: None,
        }
        .encode();
        Fixture {
            keys,
            validators,
            answer: pb::GetAccountResponse {
                account,
                height: view.height(),
                proof: Some(proof),
                certified,
                ..pb::GetAccountResponse::default()
            },
            bank,
        }
    }

    #[test]
    fn an_honest_answer_checks_out() {
        let fixture = fixture();
        let checked = check_account(&fixture.answer, &fixture.bank, &fixture.validators, 0)
            .expect("an honest answer");
        assert_eq!(checked.account.map(|account| account.balance), Some(5_000));
        assert_eq!(checked.signers, 3);
        assert_eq!(checked.height, 1);
        // An older state than asked for is refused, however well certified.
        let error = check_account(&fixture.answer, &fixture.bank, &fixture.validators, 2)
            .expect_err("too old");
        assert!(error.to_string().contains("older than"), "{error}");
    }

    fn refused(answer: &pb::GetAccountResponse, fixture: &Fixture, expect: &str) {
        let error = check_account(answer, &fixture.bank, &fixture.validators, 0)
            .expect_err("a tampered answer is refused");
        assert!(error.to_string().contains(expect), "{error}");
    }

    #[test]
    fn a_tampered_account_or_proof_is_refused() {
        let fixture = fixture();
        let mut richer = fixture.answer.clone();
        if let Some(account) = richer.account.as_mut() {
            account.balance += 1;
        }
        refused(&richer, &fixture, "not the record the proof proves");

        let mut hidden = fixture.answer.clone();
        hidden.account = None;
        refused(&hidden, &fixture, "proof proves one");

        let mut other_height = fixture.answer.clone();
        other_height.height += 1;
        refused(&other_height, &fixture, "claims height");

        let mut bad_proof = fixture.answer.clone();
        if let Some(proof) = bad_proof.proof.as_mut() {
            proof.siblings[3] = vec![9; 32];
        }
        refused(&bad_proof, &fixture, "does not lead to the certified root");

        // Someone else's account, proved honestly, is not this one's.
        let other = Address([1; 20]);
        let error = check_account(&fixture.answer, &other, &fixture.validators, 0)
            .expect_err("another key");
        assert!(error.to_string().contains("another state key"), "{error}");
    }

    #[test]
    fn a_weak_forged_or_unrelated_certificate_is_refused() {
        let fixture = fixture();
        let committed = CommittedBlock::decode(&fixture.answer.certified).expect("decodes");
        let with = |commit_qc: QuorumCert, block: Block| {
            let mut answer = fixture.answer.clone();
            answer.certified = CommittedBlock {
                block,
                commit_qc,
                epoch_end: None,
            }
            .encode();
            answer
        };
        // Two signers are not a quorum of four.
        let weak = child_qc(&fixture.keys, &committed.block, &[0, 1]);
        refused(&with(weak, committed.block.clone()), &fixture, "not valid");
        // A forged signature.
        let mut forged = committed.commit_qc.clone();
        forged.signatures[1].1 = forged.signatures[0].1;
        refused(
            &with(forged, committed.block.clone()),
            &fixture,
            "not valid",
        );
        // A valid certificate of an unrelated block.
        let unrelated = block_claiming(99, Hash32([5; 32]));
        let qc = child_qc(&fixture.keys, &unrelated, &[0, 1, 2]);
        refused(
            &with(qc, committed.block.clone()),
            &fixture,
            "neither the block",
        );
        // The certified block claiming another root.
        let lying = block_claiming(fixture.answer.height, Hash32([6; 32]));
        let qc = child_qc(&fixture.keys, &lying, &[0, 1, 2]);
        refused(
            &with(qc, lying),
            &fixture,
            "does not lead to the certified root",
        );
        // Validators of another chain.
        let strangers = ValidatorSet::new(
            Epoch(0),
            (0..4)
                .map(|i| SigningKey::for_test(&format!("stranger-{i}")).public_key())
                .collect(),
        )
        .expect("a set");
        let error = check_account(&fixture.answer, &fixture.bank, &strangers, 0)
            .expect_err("unknown signers");
        assert!(error.to_string().contains("not valid"), "{error}");
    }
}
