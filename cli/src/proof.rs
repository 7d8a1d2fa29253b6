//! Checking a `GetAccount` (or `GetPayment`) answer with the validators'
//! keys alone, so a wallet, a merchant or an auditor trusts no node.
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
            "the node's answer does not check out: {}",
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

/// What a certified proof proves: the state root of `height`, vouched for
/// by a quorum, and the record under the key there (`None`: absent).
struct Proved {
    state_root: Hash32,
    record: Option<Vec<u8>>,
    certified_by: u64,
    signers: usize,
}

/// Checks conditions 1 to 4 and 6 of the module docs for the record under
/// `key`, answered at `height` with `proof` and the `certified` block.
fn check_certified(
    height: u64,
    certified: &[u8],
    proof: Option<&pb::StateProof>,
    key: &StateKey,
    validators: &ValidatorSet,
    min_height: u64,
) -> Result<Proved, CheckError> {
    if height < min_height {
        return Err(refuse(format!(
            "it is the state of height {height}, older than the {min_height} asked for"
        )));
    }
    let committed = CommittedBlock::decode(certified)
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
    if claim.height != height {
        return Err(refuse(format!(
            "the certified block claims height {}, the answer says {height}",
            claim.height
        )));
    }
    let state_root = Hash32::from_slice(&claim.state_root)
        .ok_or_else(|| refuse("the claimed state root is not 32 bytes"))?;
    let proof = proof.ok_or_else(|| refuse("the answer has no proof"))?;
    if proof.key != key.to_bytes() {
        return Err(refuse("the proof is for another state key"));
    }
    let record = verify_proof(&state_root, proof).map_err(|error| {
        refuse(format!(
            "the proof does not lead to the certified root: {error}"
        ))
    })?;
    Ok(Proved {
        state_root,
        record,
        certified_by: committed.block.height.0,
        signers: qc.signatures.len(),
    })
}

/// Condition 5: the record the answer shows is the one proved (or both
/// say there is none). `what` names the record in errors.
fn shown_is_proved<M: prost::Message + Default + PartialEq>(
    proved: Option<Vec<u8>>,
    shown: Option<&M>,
    what: &str,
) -> Result<Option<M>, CheckError> {
    match (proved, shown) {
        (None, None) => Ok(None),
        (Some(bytes), Some(shown)) => {
            let record = M::decode(bytes.as_slice())
                .map_err(|_| refuse(format!("the proved record is not {what}")))?;
            if record != *shown {
                return Err(refuse(format!(
                    "the {what} in the answer is not the record the proof proves"
                )));
            }
            Ok(Some(record))
        }
        (None, Some(_)) => Err(refuse(format!(
            "the answer shows {what} the proof proves absent"
        ))),
        (Some(_), None) => Err(refuse(format!(
            "the answer shows no {what}, but the proof proves one"
        ))),
    }
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
    let proved = check_certified(
        answer.height,
        &answer.certified,
        answer.proof.as_ref(),
        &StateKey::Account(*address),
        validators,
        min_height,
    )?;
    let account = shown_is_proved(proved.record, answer.account.as_ref(), "account")?;
    if account
        .as_ref()
        .is_some_and(|record| record.address != address.0)
    {
        return Err(refuse("the proved account has another address"));
    }
    Ok(CheckedAccount {
        height: answer.height,
        state_root: proved.state_root,
        account,
        certified_by: proved.certified_by,
        signers: proved.signers,
    })
}

/// What a checked `GetPayment` answer proves.
#[derive(Clone, Debug, PartialEq)]
pub struct CheckedPayment {
    /// The height whose state it is.
    pub height: u64,
    /// The merchant payment (`None`: no payment has this id at that
    /// height: not made, not yet certified, or not a merchant payment).
    pub payment: Option<pb::PaymentRecord>,
    /// The height of the consensus block whose certificate vouches for it.
    pub certified_by: u64,
    /// How many validators signed that certificate.
    pub signers: usize,
}

/// Checks `answer` to a `GetPayment` for `id` against `validators`, as
/// [`check_account`].
pub fn check_payment(
    answer: &pb::GetPaymentResponse,
    id: &Hash32,
    validators: &ValidatorSet,
    min_height: u64,
) -> Result<CheckedPayment, CheckError> {
    let proved = check_certified(
        answer.height,
        &answer.certified,
        answer.proof.as_ref(),
        &StateKey::Payment(*id),
        validators,
        min_height,
    )?;
    let payment = shown_is_proved(proved.record, answer.payment.as_ref(), "payment")?;
    Ok(CheckedPayment {
        height: answer.height,
        payment,
        certified_by: proved.certified_by,
        signers: proved.signers,
    })
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use yuchain_consensus::types::{Epoch, Height, Round, ValidatorId, Vote, VoteData};
    use yuchain_consensus::{Block, QuorumCert};
    use yuchain_ledger::StateView;
    use yuchain_ledger::testkit::{TestChain, address_of, issue};
    use yuchain_proto::{PublicKey, SigningKey};

    /// An honest GetAccount answer for a funded bank, certified by 3 of 4
    /// test validators.
    pub(crate) struct Fixture {
        pub(crate) keys: Vec<SigningKey>,
        pub(crate) validators: ValidatorSet,
        pub(crate) answer: pb::GetAccountResponse,
        pub(crate) bank: Address,
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
                    let signed = Vote::sign(
                        &keys[usize::from(signer)],
                        &yuchain_consensus::ChainTag::for_test(),
                        vote,
                        ValidatorId(signer),
                    );
                    (ValidatorId(signer), signed.signature)
                })
                .collect(),
        }
    }

    pub(crate) fn fixture() -> Fixture {
        let keys = validator_keys();
        let validators = ValidatorSet::new(
            yuchain_consensus::ChainTag::for_test(),
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
            yuchain_consensus::ChainTag::for_test(),
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

    #[test]
    fn a_payment_answer_is_checked_and_a_tampered_one_refused() {
        use yuchain_ledger::testkit::{merchant_payment, register_merchant, register_personal};
        let keys = validator_keys();
        let validators = ValidatorSet::new(
            yuchain_consensus::ChainTag::for_test(),
            Epoch(0),
            keys.iter().map(SigningKey::public_key).collect(),
        )
        .expect("a validator set");
        let mut chain = TestChain::new(1);
        let bank = chain.operators[0].clone();
        let issuer = chain.issuer.clone();
        let alice = SigningKey::for_test("alice");
        let shop = SigningKey::for_test("shop");
        let setup = vec![
            chain.tx(&issuer, issue(address_of(&bank), 100_000)),
            chain.tx(&bank, register_personal(&alice, pb::KycTier::Class2)),
            chain.tx(
                &bank,
                register_merchant(&shop, pb::MerchantCategory::Retail),
            ),
        ];
        chain.apply(setup).expect("setup");
        let top_up = chain.tx(
            &bank,
            yuchain_ledger::testkit::transfer(address_of(&alice), 10_000, ""),
        );
        chain.apply(vec![top_up]).expect("top-up");
        let pay = chain.tx(
            &alice,
            merchant_payment(address_of(&shop), 2_500, "order-1"),
        );
        let id = yuchain_proto::tx::tx_id(&pay.body, &pay.signature);
        chain.apply(vec![pay]).expect("paid");
        let view = StateView::of(&chain.ledger);
        let proof = view.prove_payment(&id);
        let payment = proof
            .value
            .as_deref()
            .map(|bytes| pb::PaymentRecord::decode(bytes).expect("a record"));
        let block = block_claiming(view.height(), view.root());
        let certified = CommittedBlock {
            commit_qc: child_qc(&keys, &block, &[0, 2, 3]),
            block,
            epoch_end: None,
        }
        .encode();
        let answer = pb::GetPaymentResponse {
            payment,
            height: view.height(),
            proof: Some(proof),
            certified,
        };
        let checked = check_payment(&answer, &id, &validators, 0).expect("an honest answer");
        let record = checked.payment.expect("the payment");
        assert_eq!((record.amount, record.refunded), (2_500, 0));
        assert_eq!(record.merchant, address_of(&shop).0.to_vec());

        let mut inflated = answer.clone();
        if let Some(payment) = inflated.payment.as_mut() {
            payment.amount = 25_000;
        }
        let error = check_payment(&inflated, &id, &validators, 0).expect_err("inflated");
        assert!(error.to_string().contains("not the record"), "{error}");
        // A payment that was never made cannot be shown as made.
        let never = Hash32([9; 32]);
        let error = check_payment(&answer, &never, &validators, 0).expect_err("another id");
        assert!(error.to_string().contains("another state key"), "{error}");
        let absent_view = view.prove_payment(&never);
        let mut invented = answer.clone();
        invented.proof = Some(absent_view);
        let error = check_payment(&invented, &never, &validators, 0).expect_err("invented");
        assert!(error.to_string().contains("proves absent"), "{error}");
    }
}
