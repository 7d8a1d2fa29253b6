//! Test fixtures shared by the node's unit tests.

use std::sync::Arc;

use yuchain_consensus::types::{Epoch, ValidatorId};
use yuchain_consensus::{Core, ValidatorSet};
use yuchain_ledger::testkit::{TestChain, address_of, transfer};
use yuchain_network::{Limits, NetworkConfig, NetworkKey};
use yuchain_proto::{SigningKey, pb, tx};
use yuchain_storage::RocksStore;

use crate::batch::{self, Batch};
use crate::chain::{open_ledger, restore_consensus};
use crate::config::NodeConfig;
use crate::genesis::{GenesisFile, ValidatorCard};
use crate::metrics::Metrics;
use crate::shared::{PeerMap, Shared};

/// A one-validator node: its shared state with one certified batch
/// waiting (its reference and certificate), and its core.
pub(crate) struct OneValidator {
    pub(crate) _dir: tempfile::TempDir,
    pub(crate) shared: Arc<Shared>,
    pub(crate) core: Core,
    pub(crate) reference: batch::BatchRef,
    pub(crate) certificate: pb::BatchCertificate,
}

pub(crate) async fn one_validator() -> OneValidator {
    let dir = tempfile::tempdir().expect("tempdir");
    let key = SigningKey::for_test("only validator");
    let net = SigningKey::for_test("only validator/net");
    let mut chain = TestChain::new(2);
    let genesis = GenesisFile {
        ledger: chain.genesis.clone(),
        validators: vec![ValidatorCard {
            name: "only".into(),
            consensus_public_key: hex::encode(key.public_key().0),
            network_public_key: hex::encode(net.public_key().0),
            address: "127.0.0.1:1".into(),
        }],
    };
    let store = Arc::new(RocksStore::create(dir.path().join("db")).expect("store"));
    let ledger = open_ledger(&store, &genesis).expect("ledger");
    let restored = restore_consensus(store.as_ref(), None, &genesis, 0).expect("restore");
    let (network, _events) = yuchain_network::spawn(NetworkConfig {
        key: NetworkKey::from_seed(net.seed()),
        listen: "127.0.0.1:0".parse().expect("address"),
        dial: Vec::new(),
        allowed: Vec::new(),
        limits: Limits::default(),
    })
    .await
    .expect("network");
    let validators = ValidatorSet::new(
        yuchain_consensus::ChainTag::for_test(),
        Epoch(0),
        vec![key.public_key()],
    )
    .expect("set");
    let shared = Arc::new(Shared::new(
        NodeConfig::default(),
        genesis.hash().expect("hash"),
        key.clone(),
        validators.clone(),
        PeerMap::default(),
        store,
        ledger,
        Metrics::new(),
        network,
    ));
    let signed = chain.tx(
        &chain.operators[0].clone(),
        transfer(address_of(&chain.operators[1]), 1, ""),
    );
    let verified = tx::decode_and_verify(&signed, &chain.genesis.chain_id).expect("valid");
    let batch = Batch::own(key.public_key(), Epoch(0), 0, vec![(signed, verified)]);
    let reference = batch.reference;
    let certificate = {
        let ack = batch::check_ack(
            &batch::acknowledge(&key, ValidatorId(0), &reference),
            &validators,
        )
        .expect("ack");
        let mut batches = shared.batches();
        batches.store.insert(batch);
        batches.acks.expect(reference);
        let certificate = batches.acks.add(ack, 1).expect("certified");
        batches.add_certified(reference, certificate.clone());
        certificate
    };
    let core = Core::new(
        key,
        yuchain_consensus::Config::default(),
        genesis.consensus_genesis().expect("genesis"),
        restored,
    )
    .expect("core");
    OneValidator {
        _dir: dir,
        shared,
        core,
        reference,
        certificate,
    }
}
