//! Why the gateway refuses a request, and how that becomes a gRPC status.
//!
//! Every refusal goes through one conversion, `From<SubmitError> for
//! tonic::Status`: the code comes from [`ErrorKind`], the message says what is
//! wrong and what to do, and the details carry a `google.rpc.ErrorInfo`
//! (`reason`, domain [`ERROR_DOMAIN`]) so clients branch on a stable code
//! instead of parsing text; INVALID_ARGUMENT also carries a
//! `google.rpc.BadRequest` field violation (the field at fault),
//! FAILED_PRECONDITION a `google.rpc.PreconditionFailure` violation (type =
//! the reason, subject = what it is about) and RESOURCE_EXHAUSTED a
//! `google.rpc.RetryInfo`. Every reason is in [`REASONS`], which the table
//! in docs/API.md matches.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::Duration;

use tonic::{Code, Status};
use tonic_types::{ErrorDetails, StatusExt};
use yuchain_proto::TxError;

/// The `google.rpc.ErrorInfo.domain` of every yuchain error.
pub const ERROR_DOMAIN: &str = "yuchain";

/// How long a client should wait before retrying a RESOURCE_EXHAUSTED refusal
/// (`google.rpc.RetryInfo.retry_delay`): long enough for a block or two to
/// drain the mempool.
pub const RETRY_DELAY: Duration = Duration::from_secs(1);

/// The class of a refusal; each maps to one gRPC status code.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorKind {
    /// The request or transaction can never be valid (bad signature,
    /// malformed or non-canonical bytes, wrong chain). Do not retry it as is.
    InvalidArgument,
    /// Valid in itself, but not in the current state (stale sequence, unknown
    /// sender, expired). Fix the state or the transaction first.
    FailedPrecondition,
    /// The node already holds this transaction.
    AlreadyExists,
    /// What was asked for does not exist (yet): a block above the head.
    NotFound,
    /// A limit is reached (mempool full, per-sender quota). Retry later.
    ResourceExhausted,
    /// The node cannot admit transactions now (starting, syncing). Retry,
    /// possibly against another node.
    Unavailable,
    /// A bug or an unexpected failure in the node.
    Internal,
}

impl ErrorKind {
    /// The gRPC status code of this kind.
    pub fn code(self) -> Code {
        match self {
            ErrorKind::InvalidArgument => Code::InvalidArgument,
            ErrorKind::FailedPrecondition => Code::FailedPrecondition,
            ErrorKind::AlreadyExists => Code::AlreadyExists,
            ErrorKind::NotFound => Code::NotFound,
            ErrorKind::ResourceExhausted => Code::ResourceExhausted,
            ErrorKind::Unavailable => Code::Unavailable,
            ErrorKind::Internal => Code::Internal,
        }
    }
}

/// Why a transaction (or a request) was refused.
///
/// `reason` is a stable machine-readable code in SCREAMING_SNAKE case
/// ("BAD_SIGNATURE", "NON_CANONICAL_BODY", "WRONG_CHAIN", "MALFORMED",
/// "STALE_SEQUENCE", "UNKNOWN_SENDER", "EXPIRED", "MEMPOOL_FULL", "DUPLICATE",
/// "NOT_READY", ...): it is sent as the `google.rpc.ErrorInfo` reason and
/// never changes meaning. `message` is for people: what is wrong and what to
/// do.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct SubmitError {
    /// The class, which sets the gRPC status code.
    pub kind: ErrorKind,
    /// The stable machine-readable code.
    pub reason: &'static str,
    /// What is wrong and what to do, for people.
    pub message: String,
    /// The request field at fault (INVALID_ARGUMENT: the BadRequest field
    /// violation's `field`) or the subject of a failed precondition (its
    /// PreconditionFailure violation's `subject`), e.g.
    /// `transaction.body.chain_id` or `sender`.
    pub field: Option<String>,
}

/// Every reason the gateway sends, with its class: the one registry. The
/// table in docs/API.md lists exactly these (a test compares them), and a
/// debug build refuses to make a [`SubmitError`] with a reason or class not
/// in it.
pub const REASONS: &[(&str, ErrorKind)] = &[
    ("TOO_LARGE", ErrorKind::InvalidArgument),
    ("MALFORMED", ErrorKind::InvalidArgument),
    ("NON_CANONICAL_BODY", ErrorKind::InvalidArgument),
    ("INVALID_FIELD", ErrorKind::InvalidArgument),
    ("MISSING_ACTION", ErrorKind::InvalidArgument),
    ("ZERO_AMOUNT", ErrorKind::InvalidArgument),
    ("WRONG_CHAIN", ErrorKind::InvalidArgument),
    ("BAD_SIGNATURE", ErrorKind::InvalidArgument),
    ("MISSING_TRANSACTION", ErrorKind::InvalidArgument),
    ("INVALID_TX_ID", ErrorKind::InvalidArgument),
    ("INVALID_ADDRESS", ErrorKind::InvalidArgument),
    ("INVALID_PAGE_TOKEN", ErrorKind::InvalidArgument),
    ("UNKNOWN_SENDER", ErrorKind::FailedPrecondition),
    ("WRONG_KEY", ErrorKind::FailedPrecondition),
    ("SENDER_CLOSED", ErrorKind::FailedPrecondition),
    ("EXPIRED", ErrorKind::FailedPrecondition),
    ("STALE_SEQUENCE", ErrorKind::FailedPrecondition),
    ("SEQUENCE_TOO_FAR", ErrorKind::FailedPrecondition),
    ("NOT_A_VALIDATOR", ErrorKind::FailedPrecondition),
    ("DUPLICATE", ErrorKind::AlreadyExists),
    ("SEQUENCE_TAKEN", ErrorKind::AlreadyExists),
    ("BLOCK_NOT_FOUND", ErrorKind::NotFound),
    ("MEMPOOL_FULL", ErrorKind::ResourceExhausted),
    ("SENDER_FULL", ErrorKind::ResourceExhausted),
    ("VERIFY_QUEUE_FULL", ErrorKind::ResourceExhausted),
    ("STREAMS_FULL", ErrorKind::ResourceExhausted),
    ("STREAM_STALLED", ErrorKind::ResourceExhausted),
    ("NOT_READY", ErrorKind::Unavailable),
    ("CERTIFIED_HEIGHT_NOT_REACHED", ErrorKind::Unavailable),
    ("SHUTTING_DOWN", ErrorKind::Unavailable),
    ("INTERNAL", ErrorKind::Internal),
];

/// Whether `reason` is registered in [`REASONS`] with class `kind`.
pub fn is_registered(reason: &str, kind: ErrorKind) -> bool {
    REASONS
        .iter()
        .any(|(known, class)| *known == reason && *class == kind)
}

impl SubmitError {
    /// A refusal of the given kind with a stable `reason` code (one of
    /// [`REASONS`]).
    pub fn new(kind: ErrorKind, reason: &'static str, message: impl Into<String>) -> Self {
        debug_assert!(
            is_registered(reason, kind),
            "{reason} as {kind:?} is not in yuchain_gateway::REASONS (and docs/API.md)"
        );
        SubmitError {
            kind,
            reason,
            message: message.into(),
            field: None,
        }
    }

    /// The same refusal naming the field at fault (or the precondition's
    /// subject).
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.field = Some(field.into());
        self
    }

    /// The refusal for a transaction that fails the stateless checks. Such a
    /// transaction can never be valid here, so every variant is
    /// INVALID_ARGUMENT; the reason names the check.
    pub fn from_tx_error(error: &TxError) -> Self {
        // An exhaustive match: a new `TxError` variant must choose its reason
        // here before the gateway compiles.
        let (reason, field, advice) = match error {
            TxError::TooLarge { .. } => (
                "TOO_LARGE",
                "transaction".to_string(),
                "shorten the memo or order id and sign the transaction again",
            ),
            TxError::Malformed(_) => (
                "MALFORMED",
                "transaction".to_string(),
                "send a protobuf-encoded yuchain.v1.SignedTransaction whose body is a TransactionBody",
            ),
            TxError::NonCanonical => (
                "NON_CANONICAL_BODY",
                "transaction.body".to_string(),
                "encode the body canonically (fields in number order, no defaults, no unknown fields, as prost writes it) and sign those exact bytes",
            ),
            TxError::InvalidField { field, .. } => (
                "INVALID_FIELD",
                format!("transaction.body.{field}"),
                "correct the field and sign the transaction again",
            ),
            TxError::MissingAction => (
                "MISSING_ACTION",
                "transaction.body.action".to_string(),
                "set exactly one action in the transaction body",
            ),
            TxError::ZeroAmount => (
                "ZERO_AMOUNT",
                "transaction.body.action.amount".to_string(),
                "send a positive amount",
            ),
            TxError::WrongChain { .. } => (
                "WRONG_CHAIN",
                "transaction.body.chain_id".to_string(),
                "sign the transaction for this chain's id, or send it to a node of its own chain",
            ),
            TxError::BadSignature(_) => (
                "BAD_SIGNATURE",
                "transaction.signature".to_string(),
                "sign the exact body bytes with the key in the body's public_key",
            ),
        };
        SubmitError::new(
            ErrorKind::InvalidArgument,
            reason,
            format!("{error}; {advice}"),
        )
        .with_field(field)
    }
}

impl From<SubmitError> for Status {
    fn from(error: SubmitError) -> Status {
        let mut details = ErrorDetails::with_error_info(error.reason, ERROR_DOMAIN, HashMap::new());
        match error.kind {
            ErrorKind::ResourceExhausted => {
                details.set_retry_info(Some(RETRY_DELAY));
            }
            ErrorKind::InvalidArgument => {
                let field = error.field.clone().unwrap_or_else(|| "request".to_string());
                details.add_bad_request_violation(field, error.message.clone());
            }
            ErrorKind::FailedPrecondition => {
                let subject = error
                    .field
                    .clone()
                    .unwrap_or_else(|| "transaction".to_string());
                details.add_precondition_failure_violation(
                    error.reason,
                    subject,
                    error.message.clone(),
                );
            }
            _ => {}
        }
        Status::with_error_details(error.kind.code(), error.message, details)
    }
}

impl From<&TxError> for SubmitError {
    fn from(error: &TxError) -> SubmitError {
        SubmitError::from_tx_error(error)
    }
}

/// Why the gateway could not start or stopped serving.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// The listen address could not be bound (in use, no permission, not a
    /// local address).
    #[error("cannot listen on {address}: {source}")]
    Bind {
        /// The address asked for.
        address: SocketAddr,
        /// The operating system's error.
        source: std::io::Error,
    },
    /// A setting that cannot work (a zero limit).
    #[error("invalid gateway config: {0}")]
    Config(String),
    /// The gRPC server failed while serving.
    #[error("gateway server failed: {0}")]
    Serve(#[from] tonic::transport::Error),
}

/// The gateway's results.
pub type Result<T, E = GatewayError> = std::result::Result<T, E>;

/// An error with its sources, `: `-separated, each said once (tonic's
/// transport and TLS errors keep the useful part, such as rustls's reason
/// for refusing a certificate, in a source).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_proto::error::SignatureError;

    #[test]
    fn every_tx_error_is_invalid_argument_with_its_own_reason() {
        let cases = [
            (TxError::TooLarge { size: 9, limit: 8 }, "TOO_LARGE"),
            (TxError::Malformed("eof".into()), "MALFORMED"),
            (TxError::NonCanonical, "NON_CANONICAL_BODY"),
            (
                TxError::InvalidField {
                    field: "sender",
                    reason: "19 bytes".into(),
                },
                "INVALID_FIELD",
            ),
            (TxError::MissingAction, "MISSING_ACTION"),
            (TxError::ZeroAmount, "ZERO_AMOUNT"),
            (
                TxError::WrongChain {
                    expected: "yuchain-main".into(),
                    got: "yuchain-test".into(),
                },
                "WRONG_CHAIN",
            ),
            (
                TxError::BadSignature(SignatureError::Invalid),
                "BAD_SIGNATURE",
            ),
        ];
        for (error, reason) in cases {
            let refusal = SubmitError::from_tx_error(&error);
            assert_eq!(refusal.kind, ErrorKind::InvalidArgument, "{error}");
            assert_eq!(refusal.reason, reason, "{error}");
            assert!(
                refusal.message.starts_with(&error.to_string()),
                "the message says what is wrong: {}",
                refusal.message
            );
        }
    }

    #[test]
    fn status_carries_code_error_info_and_retry_info() {
        let status = Status::from(SubmitError::new(
            ErrorKind::ResourceExhausted,
            "MEMPOOL_FULL",
            "the mempool is full; retry in a second",
        ));
        assert_eq!(status.code(), Code::ResourceExhausted);
        assert_eq!(status.message(), "the mempool is full; retry in a second");
        let info = status.get_details_error_info().expect("ErrorInfo");
        assert_eq!(info.reason, "MEMPOOL_FULL");
        assert_eq!(info.domain, ERROR_DOMAIN);
        let retry = status.get_details_retry_info().expect("RetryInfo");
        assert_eq!(retry.retry_delay, Some(RETRY_DELAY));

        let status = Status::from(SubmitError::new(
            ErrorKind::FailedPrecondition,
            "STALE_SEQUENCE",
            "stale",
        ));
        assert_eq!(status.code(), Code::FailedPrecondition);
        assert!(status.get_details_retry_info().is_none());
    }
}
