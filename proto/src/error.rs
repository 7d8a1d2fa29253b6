//! Errors of the wire crate, one enum per concern.

use thiserror::Error;

/// Key and signature encodings, and key files.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum KeyError {
    /// A public key must be exactly 32 bytes.
    #[error("public key must be 32 bytes, got {0}")]
    PublicKeyLength(usize),
    /// A signature must be exactly 64 bytes.
    #[error("signature must be 64 bytes, got {0}")]
    SignatureLength(usize),
    /// The key bytes are not an ed25519 curve point.
    #[error("public key is not an ed25519 curve point")]
    NotAPoint,
    /// The key has small order: anyone could sign for it.
    #[error("public key has small order and would let anyone sign")]
    SmallOrder,
    /// The operating system's random source failed.
    #[error("no randomness for key generation: {0}")]
    Random(String),
    /// A PEM document that is not a PKCS#8 ed25519 key.
    #[error("not a PKCS#8 ed25519 PEM key: {0}")]
    Pem(String),
    /// Reading or writing a key file failed.
    #[error("key file {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// What went wrong.
        message: String,
    },
}

/// Why a signature does not verify under the consensus rule.
#[derive(Debug, Error, Clone, Copy, PartialEq, Eq)]
pub enum SignatureError {
    /// The public key bytes are not a curve point.
    #[error("public key is not a valid ed25519 point")]
    InvalidPublicKey,
    /// The signature does not verify.
    #[error("signature does not verify")]
    Invalid,
}

/// A malformed address.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AddressError {
    /// An address must be exactly 20 bytes.
    #[error("address must be 20 bytes, got {0}")]
    Length(usize),
    /// Not bech32m text, or the checksum fails (a typo).
    #[error("not a valid address: {0}")]
    Text(String),
    /// A bech32m string for another system.
    #[error("address prefix must be \"yu\", got {0:?}")]
    Prefix(String),
}

/// A malformed money amount.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum AmountError {
    /// Not a plain decimal yuan amount with at most two decimals.
    #[error("not an amount in yuan (like 12.34): {0:?}")]
    Invalid(String),
    /// Larger than the ledger can hold.
    #[error("amount too large: {0:?}")]
    Overflow(String),
}

/// Why a transaction is rejected before it reaches any state: it can never be
/// valid, so it is never included in a block.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum TxError {
    /// The signed transaction is larger than the limit.
    #[error("transaction is {size} bytes, the limit is {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The bytes are not a protobuf message of the right type.
    #[error("malformed transaction: {0}")]
    Malformed(String),
    /// The body bytes decode, but are not the body's canonical encoding (the
    /// one prost writes: fields in number order, each at most once, none at
    /// its default value, no unknown fields, minimal varints). Only the
    /// canonical form is accepted, so one intent has one byte form and one
    /// id.
    #[error("transaction body is not in canonical protobuf encoding")]
    NonCanonical,
    /// A field has the wrong length or an unknown enum value.
    #[error("invalid field {field}: {reason}")]
    InvalidField {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// The body carries no action.
    #[error("transaction has no action")]
    MissingAction,
    /// An amount of zero moves nothing and is refused.
    #[error("amount must be positive")]
    ZeroAmount,
    /// The transaction is for another chain.
    #[error("transaction is for chain {got:?}, this is {expected:?}")]
    WrongChain {
        /// This chain.
        expected: String,
        /// The transaction's chain.
        got: String,
    },
    /// The signature does not verify under the consensus rule.
    #[error("bad signature: {0}")]
    BadSignature(#[from] SignatureError),
}
