//! SubmitTransaction: ids, waiting for the commit, timeouts.

use std::time::{Duration, Instant};

use yuchain_proto::pb;
use yuchain_proto::pb::TransactionStatus;

use crate::support::{
    AUTO_COMMIT_HEIGHT, FakeBackend, TestGateway, bounded, id_of, receipt, submit_request,
    transaction,
};

#[tokio::test]
async fn submit_returns_the_transaction_id_and_pending() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    let signed = transaction(1);

    let response = bounded(client.submit_transaction(submit_request(signed.clone(), false, 0)))
        .await
        .expect("admitted")
        .into_inner();

    assert_eq!(response.tx_id, id_of(&signed).as_bytes().to_vec());
    assert_eq!(response.status(), TransactionStatus::Pending);
    assert_eq!(response.receipt, None);
    assert_eq!(response.height, 0);
}

#[tokio::test]
async fn submit_waiting_for_commit_returns_the_receipt_once_committed() {
    let backend = FakeBackend::new();
    backend.auto_commit(Duration::from_millis(100));
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    let signed = transaction(2);
    let id = id_of(&signed);

    let response = bounded(client.submit_transaction(submit_request(signed, true, 1_500)))
        .await
        .expect("admitted")
        .into_inner();

    assert_eq!(response.status(), TransactionStatus::Committed);
    assert_eq!(response.tx_id, id.as_bytes().to_vec());
    assert_eq!(response.height, AUTO_COMMIT_HEIGHT);
    assert_eq!(response.receipt, Some(receipt(id, AUTO_COMMIT_HEIGHT)));
}

#[tokio::test]
async fn submit_waiting_past_the_timeout_returns_pending() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;

    let started = Instant::now();
    let response = bounded(client.submit_transaction(submit_request(transaction(3), true, 200)))
        .await
        .expect("admitted")
        .into_inner();

    assert_eq!(response.status(), TransactionStatus::Pending);
    assert_eq!(response.receipt, None);
    assert!(
        started.elapsed() >= Duration::from_millis(200),
        "the gateway waited the time asked: {:?}",
        started.elapsed()
    );
}

#[tokio::test]
async fn submit_wait_of_zero_uses_the_default_and_long_waits_are_capped() {
    let backend = FakeBackend::new();
    // test_config: default 300 ms, max 2 s.
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;

    let started = Instant::now();
    let response = bounded(client.submit_transaction(submit_request(transaction(4), true, 0)))
        .await
        .expect("admitted")
        .into_inner();
    let waited = started.elapsed();
    assert_eq!(response.status(), TransactionStatus::Pending);
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(2),
        "0 ms means the default wait: {waited:?}"
    );

    let started = Instant::now();
    let response =
        bounded(client.submit_transaction(submit_request(transaction(5), true, u32::MAX)))
            .await
            .expect("admitted")
            .into_inner();
    let waited = started.elapsed();
    assert_eq!(response.status(), TransactionStatus::Pending);
    assert!(
        waited >= Duration::from_secs(2) && waited < Duration::from_secs(5),
        "a wait is capped at the maximum: {waited:?}"
    );
}

#[tokio::test]
async fn submit_waiting_reports_an_expiry_as_expired() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    let signed = transaction(6);
    let id = id_of(&signed);

    let expire = {
        let backend = backend.clone();
        tokio::spawn(async move {
            // Expire it once the gateway has admitted it.
            loop {
                if backend.status_of(id) == yuchain_gateway::TxStatus::Pending {
                    backend.set(id, yuchain_gateway::TxStatus::Expired);
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };
    let response = bounded(client.submit_transaction(submit_request(signed, true, 1_500)))
        .await
        .expect("admitted")
        .into_inner();
    bounded(expire).await.expect("the expiring task ran");

    assert_eq!(response.status(), TransactionStatus::Expired);
    assert_eq!(response.receipt, None);
}

#[tokio::test]
async fn submit_without_a_transaction_is_invalid_argument() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;

    let status = bounded(client.submit_transaction(pb::SubmitTransactionRequest::default()))
        .await
        .expect_err("refused");

    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    assert!(
        status.message().contains("transaction is not set"),
        "{}",
        status.message()
    );
    crate::errors::assert_reason(&status, "MISSING_TRANSACTION");
}
