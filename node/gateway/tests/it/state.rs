//! GetAccount and ListAccountHistory: request shapes, waits and paging.

use std::time::{Duration, Instant};

use tonic::Code;
use yuchain_proto::pb;

use crate::errors::assert_reason;
use crate::support::{
    FAKE_HEIGHT, FAKE_HISTORY, FakeBackend, TestGateway, bounded, fake_account, fake_payment,
};

fn account_request(address: &[u8], min_height: u64, wait_ms: u32) -> pb::GetAccountRequest {
    pb::GetAccountRequest {
        address: address.to_vec(),
        min_height,
        wait_timeout_ms: wait_ms,
    }
}

fn history_request(address: &[u8], size: u32, token: &str) -> pb::ListAccountHistoryRequest {
    pb::ListAccountHistoryRequest {
        address: address.to_vec(),
        page_size: size,
        page_token: token.to_string(),
    }
}

#[tokio::test]
async fn get_account_answers_an_account_and_an_absent_one() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;
    let known = bounded(client.get_account(account_request(&fake_account().0, 0, 0)))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(known.height, FAKE_HEIGHT);
    assert_eq!(known.account.map(|account| account.balance), Some(1_234));
    let absent = bounded(client.get_account(account_request(&[1; 20], 0, 0)))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(absent.account, None);
}

#[tokio::test]
async fn get_payment_answers_a_payment_an_absent_one_and_refuses_a_bad_id() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;
    let request = |id: &[u8], min_height| pb::GetPaymentRequest {
        payment_id: id.to_vec(),
        min_height,
        wait_timeout_ms: 200,
    };
    let known = bounded(client.get_payment(request(&fake_payment().0, 0)))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(known.height, FAKE_HEIGHT);
    let payment = known.payment.expect("the payment");
    assert_eq!((payment.amount, payment.refunded), (2_500, 1_000));
    let absent = bounded(client.get_payment(request(&[1; 32], 0)))
        .await
        .expect("answered")
        .into_inner();
    assert_eq!(absent.payment, None);
    for length in [0usize, 20, 33] {
        let status = bounded(client.get_payment(request(&vec![1; length], 0)))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(&format!("{length} bytes")));
        assert_reason(&status, "INVALID_TX_ID");
    }
    let status = bounded(client.get_payment(request(&fake_payment().0, FAKE_HEIGHT + 1)))
        .await
        .expect_err("not reached");
    assert_eq!(status.code(), Code::Unavailable);
    assert_reason(&status, "CERTIFIED_HEIGHT_NOT_REACHED");
}

#[tokio::test]
async fn a_malformed_address_is_invalid_argument() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;
    for length in [0usize, 19, 32] {
        let status = bounded(client.get_account(account_request(&vec![1; length], 0, 0)))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert!(status.message().contains(&format!("{length} bytes")));
        assert_reason(&status, "INVALID_ADDRESS");
        let status = bounded(client.list_account_history(history_request(&vec![1; length], 0, "")))
            .await
            .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument);
        assert_reason(&status, "INVALID_ADDRESS");
    }
}

#[tokio::test]
async fn a_height_not_reached_in_the_wait_is_unavailable_after_the_wait() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;
    let started = Instant::now();
    let status =
        bounded(client.get_account(account_request(&fake_account().0, FAKE_HEIGHT + 1, 200)))
            .await
            .expect_err("not reached");
    assert_eq!(status.code(), Code::Unavailable);
    assert_reason(&status, "CERTIFIED_HEIGHT_NOT_REACHED");
    assert!(started.elapsed() >= Duration::from_millis(200));
    // A wait longer than the server's cap (2 s in tests) is capped.
    let started = Instant::now();
    let status = bounded(client.get_account(account_request(
        &fake_account().0,
        FAKE_HEIGHT + 1,
        u32::MAX,
    )))
    .await
    .expect_err("not reached");
    assert_eq!(status.code(), Code::Unavailable);
    assert!(started.elapsed() < Duration::from_secs(5));
}

#[tokio::test]
async fn a_page_the_node_cut_short_still_leads_to_the_rest() {
    let backend = FakeBackend::new();
    // The node reads at most 3 entries' blocks per page.
    backend
        .history_cap
        .store(3, std::sync::atomic::Ordering::Relaxed);
    let gateway = TestGateway::start(backend).await;
    let mut client = gateway.client().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    for _ in 0..100 {
        let page =
            bounded(client.list_account_history(history_request(&fake_account().0, 10, &token)))
                .await
                .expect("a page")
                .into_inner();
        assert!(page.entries.len() <= 3, "cut short by the node");
        seen.extend(page.entries.iter().map(|entry| entry.height));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
    }
    let expected: Vec<u64> = (1..=FAKE_HISTORY).rev().collect();
    assert_eq!(
        seen, expected,
        "every entry once, newest first, no page lost"
    );
}

#[tokio::test]
async fn history_pages_cover_every_entry_once_newest_first() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;
    let mut seen = Vec::new();
    let mut token = String::new();
    let mut pages = 0;
    loop {
        let page =
            bounded(client.list_account_history(history_request(&fake_account().0, 10, &token)))
                .await
                .expect("a page")
                .into_inner();
        pages += 1;
        assert!(page.entries.len() <= 10);
        seen.extend(page.entries.iter().map(|entry| entry.height));
        if page.next_page_token.is_empty() {
            break;
        }
        token = page.next_page_token;
        assert!(pages < 20, "paging ends");
    }
    let expected: Vec<u64> = (1..=FAKE_HISTORY).rev().collect();
    assert_eq!(seen, expected);
    assert_eq!(pages, 5, "45 entries in pages of 10");

    // Page size 0 is the default (20); a huge one is capped.
    let page = bounded(client.list_account_history(history_request(&fake_account().0, 0, "")))
        .await
        .expect("a page")
        .into_inner();
    assert_eq!(page.entries.len(), 20);
    let page =
        bounded(client.list_account_history(history_request(&fake_account().0, u32::MAX, "")))
            .await
            .expect("a page")
            .into_inner();
    assert_eq!(page.entries.len(), FAKE_HISTORY as usize);
    assert!(page.next_page_token.is_empty());
}

#[tokio::test]
async fn a_page_token_the_server_did_not_give_is_invalid_argument() {
    let gateway = TestGateway::start(FakeBackend::new()).await;
    let mut client = gateway.client().await;
    for token in ["x", "12", "1.2.3", "-1.0", "5.99999999999"] {
        let status =
            bounded(client.list_account_history(history_request(&fake_account().0, 0, token)))
                .await
                .expect_err("refused");
        assert_eq!(status.code(), Code::InvalidArgument, "{token}");
        assert_reason(&status, "INVALID_PAGE_TOKEN");
    }
}
