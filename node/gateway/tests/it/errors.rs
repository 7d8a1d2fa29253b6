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
