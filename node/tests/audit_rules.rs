//! The auditor (`yuchain audit`, in the CLI) checks batches, certificates
//! and the genesis hash with rules of its own, written apart from the
//! node's on purpose (an auditor does not run the code it audits). These
//! tests keep the two in step: the same inputs give the same digests, the
//! same verdicts and the same genesis hash.

use yuchain_cli::audit::batches as audit;
use yuchain_cli::audit::fixture;
use yuchain_consensus::ValidatorSet;
use yuchain_consensus::types::{Epoch, ValidatorId};
use yuchain_ledger::testkit::{TestChain, address_of, transfer};
use yuchain_node::batch::{self, Batch, BatchRef};
use yuchain_node::genesis::GenesisFile;
use yuchain_proto::SigningKey;

#[test]
fn the_auditors_batch_rules_are_the_nodes() {
    let keys = fixture::validator_keys();
    let validators = ValidatorSet::new(
        yuchain_consensus::ChainTag::for_test(),
        Epoch(0),
        keys.iter().map(SigningKey::public_key).collect(),
    )
    .expect("a set");
    let mut chain = TestChain::new(2);
    let operator = chain.operators[0].clone();
    let to = address_of(&chain.operators[1]);
    let transactions = (0..3)
        .map(|i| chain.tx(&operator, transfer(to, 100 + i, "")))
        .collect();
    let message = yuchain_proto::pb::Batch {
        author: keys[2].public_key().0.to_vec(),
        epoch: 0,
        sequence: 41,
        transactions,
    };
    let node = Batch::check(message, chain.ledger.chain_id(), &validators).expect("a batch");
    let ids: Vec<_> = node.verified.iter().map(|tx| tx.id).collect();
    let digest = audit::batch_digest(&keys[2].public_key(), Epoch(0), 41, &ids);
    assert_eq!(digest, node.reference.digest);
    let reference: BatchRef = node.reference;
    let certified = audit::CertifiedBatch::from_pb(&reference.to_pb()).expect("a reference");
    assert_eq!(certified.signing_digest(), reference.signing_digest());

    let certificate = |signers: &[usize]| yuchain_proto::pb::BatchCertificate {
        batch: Some(reference.to_pb()),
        signatures: signers
            .iter()
            .map(|&signer| {
                let ack = batch::acknowledge(&keys[signer], ValidatorId(signer as u16), &reference);
                yuchain_proto::pb::BatchSignature {
                    signer: ack.signer,
                    signature: ack.signature,
                }
            })
            .collect(),
    };
    let mut forged = certificate(&[1, 2]);
    forged.signatures[0].signature[9] ^= 1;
    for (case, expect_valid) in [
        (certificate(&[1, 2]), true),
        (certificate(&[0, 1, 2, 3]), true),
        (certificate(&[3]), false),
        (certificate(&[2, 1]), false),
        (forged, false),
    ] {
        let node_verdict = batch::check_certificate(&case, &validators).is_ok();
        let audit_verdict = audit::check_certificate(&case, &validators).is_ok();
        assert_eq!(node_verdict, expect_valid);
        assert_eq!(audit_verdict, node_verdict, "{case:?}");
    }
}

#[test]
fn the_auditors_genesis_hash_is_the_nodes() {
    let chain = TestChain::new(2);
    let document = fixture::genesis_document(chain.genesis.clone());
    let text = toml::to_string_pretty(&document).expect("toml");
    let dir = tempfile::tempdir().expect("a dir");
    let path = dir.path().join("genesis.toml");
    std::fs::write(&path, format!("# a comment the hash ignores\n{text}")).expect("written");
    let node = GenesisFile::load(&path).expect("the node reads it");
    let auditor = yuchain_cli::audit::AuditGenesis::load(&path).expect("the auditor reads it");
    assert_eq!(auditor.hash, node.hash().expect("a hash"));
    assert_eq!(
        auditor.validators.keys(),
        node.consensus_genesis()
            .expect("a consensus genesis")
            .validators
            .as_slice()
    );
}
