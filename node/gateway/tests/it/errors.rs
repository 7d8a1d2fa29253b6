//! Refusals: each ErrorKind's status code and the ErrorInfo reason.

use std::time::Duration;

use tonic::Code;
use tonic_types::StatusExt;
use yuchain_gateway::{ERROR_DOMAIN, ErrorKind, SubmitError};
use yuchain_proto::TxError;

use crate::support::{FakeBackend, TestGateway, bounded, submit_request, transaction};

/// The status carries an ErrorInfo with `reason` in the yuchain domain.
pub(crate) fn assert_reason(status: &tonic::Status, reason: &str) {
    let info = status
        .get_details_error_info()
        .unwrap_or_else(|| panic!("no ErrorInfo in {status:?}"));
    assert_eq!(info.reason, reason);
    assert_eq!(info.domain, ERROR_DOMAIN);
}

#[tokio::test]
async fn every_error_kind_maps_to_its_status_code_with_the_reason() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    let cases = [
        (
            ErrorKind::InvalidArgument,
            "BAD_SIGNATURE",
            Code::InvalidArgument,
        ),
        (
            ErrorKind::FailedPrecondition,
            "STALE_SEQUENCE",
            Code::FailedPrecondition,
        ),
        (ErrorKind::AlreadyExists, "DUPLICATE", Code::AlreadyExists),
        (ErrorKind::NotFound, "BLOCK_NOT_FOUND", Code::NotFound),
        (
            ErrorKind::ResourceExhausted,
            "MEMPOOL_FULL",
            Code::ResourceExhausted,
        ),
        (ErrorKind::Unavailable, "NOT_READY", Code::Unavailable),
        (ErrorKind::Internal, "INTERNAL", Code::Internal),
    ];
    for (seed, (kind, reason, code)) in (0u8..).zip(cases) {
        let message = format!("refused because {reason}; do something else");
        backend.refuse_next(SubmitError::new(kind, reason, message.clone()));

        let status =
            bounded(client.submit_transaction(submit_request(transaction(seed), false, 0)))
                .await
                .expect_err("refused");

        assert_eq!(status.code(), code, "{kind:?}");
        assert_eq!(status.message(), message);
        assert_reason(&status, reason);
        let retry = status.get_details_retry_info();
        if kind == ErrorKind::ResourceExhausted {
            let retry = retry.expect("RESOURCE_EXHAUSTED says when to retry");
            assert_eq!(retry.retry_delay, Some(Duration::from_secs(1)));
        } else {
            assert!(retry.is_none(), "{kind:?} carries no RetryInfo");
        }
    }
}

#[tokio::test]
async fn a_stateless_check_failure_reaches_the_client_with_its_reason() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;
    backend.refuse_next(SubmitError::from_tx_error(&TxError::NonCanonical));

    let status = bounded(client.submit_transaction(submit_request(transaction(9), false, 0)))
        .await
        .expect_err("refused");

    assert_eq!(status.code(), Code::InvalidArgument);
    assert!(
        status.message().contains("canonical"),
        "{}",
        status.message()
    );
    assert_reason(&status, "NON_CANONICAL_BODY");
}

/// The gRPC code's name as docs/API.md writes it.
fn code_name(kind: ErrorKind) -> &'static str {
    match kind.code() {
        Code::InvalidArgument => "INVALID_ARGUMENT",
        Code::FailedPrecondition => "FAILED_PRECONDITION",
        Code::AlreadyExists => "ALREADY_EXISTS",
        Code::NotFound => "NOT_FOUND",
        Code::ResourceExhausted => "RESOURCE_EXHAUSTED",
        Code::Unavailable => "UNAVAILABLE",
        Code::Internal => "INTERNAL",
        other => panic!("no error kind maps to {other:?}"),
    }
}

#[test]
fn the_api_docs_table_lists_exactly_the_registered_reasons() {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../docs/API.md");
    let text = std::fs::read_to_string(path).expect("docs/API.md");
    let mut documented: Vec<(String, String)> = text
        .lines()
        .filter_map(|line| {
            let rest = line.strip_prefix("| `")?;
            let (reason, rest) = rest.split_once('`')?;
            let code = rest.trim_start_matches(" |").split('|').next()?.trim();
            Some((reason.to_string(), code.to_string()))
        })
        .collect();
    let mut registered: Vec<(String, String)> = yuchain_gateway::REASONS
        .iter()
        .map(|(reason, kind)| (reason.to_string(), code_name(*kind).to_string()))
        .collect();
    documented.sort();
    registered.sort();
    assert_eq!(
        documented, registered,
        "docs/API.md's table and REASONS differ"
    );
}

#[tokio::test]
async fn bad_arguments_name_their_field_and_failed_preconditions_their_subject() {
    let backend = FakeBackend::new();
    let gateway = TestGateway::start(backend.clone()).await;
    let mut client = gateway.client().await;

    backend.refuse_next(SubmitError::from_tx_error(&TxError::WrongChain {
        expected: "a".into(),
        got: "b".into(),
    }));
    let status = bounded(client.submit_transaction(submit_request(transaction(1), false, 0)))
        .await
        .expect_err("refused");
    let bad = status.get_details_bad_request().expect("a BadRequest");
    assert_eq!(bad.field_violations.len(), 1);
    assert_eq!(bad.field_violations[0].field, "transaction.body.chain_id");
    assert!(status.get_details_precondition_failure().is_none());

    backend.refuse_next(
        SubmitError::new(ErrorKind::FailedPrecondition, "STALE_SEQUENCE", "used")
            .with_field("sequence"),
    );
    let status = bounded(client.submit_transaction(submit_request(transaction(2), false, 0)))
        .await
        .expect_err("refused");
    let failure = status
        .get_details_precondition_failure()
        .expect("a PreconditionFailure");
    assert_eq!(failure.violations.len(), 1);
    assert_eq!(failure.violations[0].r#type, "STALE_SEQUENCE");
    assert_eq!(failure.violations[0].subject, "sequence");
    assert_eq!(failure.violations[0].description, "used");

    // A malformed request field is named too.
    let status = bounded(
        client.get_transaction(yuchain_proto::pb::GetTransactionRequest { tx_id: vec![1; 3] }),
    )
    .await
    .expect_err("refused");
    let bad = status.get_details_bad_request().expect("a BadRequest");
    assert_eq!(bad.field_violations[0].field, "tx_id");
}

#[test]
#[should_panic(expected = "not in yuchain_gateway::REASONS")]
#[cfg(debug_assertions)]
fn an_unregistered_reason_is_caught_in_debug_builds() {
    let _ = SubmitError::new(ErrorKind::Internal, "SOMETHING_NEW", "x");
}
