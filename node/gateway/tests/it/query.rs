//! GetTransaction for each status, and malformed ids.

use yuchain_gateway::TxStatus;
use yuchain_proto::pb;
use yuchain_proto::pb::TransactionStatus;

use crate::support::{
    FakeBackend, TestGateway, bounded, id_of, receipt, submit_request, transaction,
};

fn get(id: &[u8]) -> pb::GetTransactionRequest {
    pb::GetTransactionRequest { tx_id: id.to_vec() }
}

#[tokio::test]
async fn get_transaction_answers_unknown_pending_committed_and_expired() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;

    let unknown = [7u8; 32];
    let response = bounded(client.get_transaction(get(&unknown)))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(response.status(), TransactionStatus::Unknown);
    assert_eq!(response.tx_id, unknown.to_vec());
    assert_eq!(response.receipt, None);

    let signed = transaction(1);
    let id = id_of(&signed);
    bounded(client.submit_transaction(submit_request(signed, false, 0)))
        .await
        .expect("admitted");
    let response = bounded(client.get_transaction(get(id.as_bytes())))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(response.status(), TransactionStatus::Pending);
    assert_eq!(response.receipt, None);
    assert_eq!(response.height, 0);

    backend.commit(id, 12);
    let response = bounded(client.get_transaction(get(id.as_bytes())))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(response.status(), TransactionStatus::Committed);
    assert_eq!(response.tx_id, id.as_bytes().to_vec());
    assert_eq!(response.height, 12);
    assert_eq!(response.receipt, Some(receipt(id, 12)));

    let expired = id_of(&transaction(2));
    backend.set(expired, TxStatus::Expired);
    let response = bounded(client.get_transaction(get(expired.as_bytes())))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(response.status(), TransactionStatus::Expired);
    assert_eq!(response.receipt, None);
}

#[tokio::test]
async fn get_transaction_with_an_id_not_32_bytes_is_invalid_argument() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;

    for length in [0usize, 31, 33] {
        let status = bounded(client.get_transaction(get(&vec![1u8; length])))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert!(
            status.message().contains(&format!("{length} bytes")),
            "{}",
            status.message()
        );
        crate::errors::assert_reason(&status, "INVALID_TX_ID");
    }
}

#[tokio::test]
async fn chain_info_and_blocks_are_served_and_a_block_above_the_head_is_not_found() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend).await;
    let mut client = gateway.client().await;
    let info = bounded(client.get_chain_info(pb::GetChainInfoRequest {}))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(info.chain_id, crate::support::FAKE_CHAIN_ID);
    assert_eq!(info.height, crate::support::FAKE_HEIGHT);
    let block = bounded(client.get_block(pb::GetBlockRequest { height: 2 }))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!((block.height, block.state_root), (2, vec![2; 32]));
    let missing = bounded(client.get_block(pb::GetBlockRequest {
        height: crate::support::FAKE_HEIGHT + 1,
    }))
    .await
    .expect_err("above the head");
    assert_eq!(missing.code(), tonic::Code::NotFound);
    assert!(
        missing.message().contains("GetChainInfo"),
        "{}",
        missing.message()
    );
}
