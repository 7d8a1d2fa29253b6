//! Transactions: signing, ids, and stateless checks.
//!
//! A transaction is `{body, signature}`; the signature covers
//! [`TX_SIGNATURE_PREFIX`] followed by the exact body bytes, and the body is
//! decoded from those bytes, so a wallet in any language can sign. The bytes
//! must be the body's canonical protobuf encoding — fields in field-number
//! order, each at most once, none at its default value (0, empty), no
//! unknown fields, minimal varints and lengths — or the transaction is
//! refused ([`TxError::NonCanonical`]): one intent has one byte form and one
//! id. The encoding prost (and most protobuf libraries' deterministic mode)
//! writes is canonical; wallets should re-check theirs against it. [`decode`] turns a signed transaction into a typed
//! [`DecodedTx`] with every shape check done; [`decode_and_verify_all`] (and
//! [`decode_and_verify`] for one) adds the signature check, batched on all
//! cores, and is the only way to get a [`VerifiedTx`], the only thing the
//! ledger executes.

use prost::Message as _;

use crate::address::Address;
use crate::error::TxError;
use crate::hash::{Domain, Hash32};
use crate::keys::{PublicKey, Signature, SigningKey};
use crate::pb;
use crate::verify::{SignedMessage, verify_batch};

/// What precedes the body bytes in the message a transaction signature
/// covers. Changing it forks the chain.
pub const TX_SIGNATURE_PREFIX: &[u8] = b"yuchain v1 transaction signature\0";

/// The largest signed transaction accepted, in encoded bytes.
pub const TX_SIZE_BYTES_MAX: usize = 2_048;
/// The longest transfer memo, in bytes.
pub const MEMO_BYTES_MAX: usize = 256;
/// The longest merchant order id, in bytes.
pub const ORDER_ID_BYTES_MAX: usize = 64;
/// The longest operator or company name, in bytes.
pub const NAME_BYTES_MAX: usize = 128;
/// The longest chain id, in bytes.
pub const CHAIN_ID_BYTES_MAX: usize = 64;

/// The exact message a transaction signature covers.
pub fn signing_message(body: &[u8]) -> Vec<u8> {
    let mut message = Vec::with_capacity(TX_SIGNATURE_PREFIX.len() + body.len());
    message.extend_from_slice(TX_SIGNATURE_PREFIX);
    message.extend_from_slice(body);
    message
}

/// The transaction id: blake3 over the domain-tagged body and signature
/// bytes, as signed and sent.
pub fn tx_id(body: &[u8], signature: &[u8]) -> Hash32 {
    Domain::TxId.hash_parts(&[body, signature])
}

/// Encodes and signs a body.
pub fn sign(body: &pb::TransactionBody, key: &SigningKey) -> pb::SignedTransaction {
    let body = body.encode_to_vec();
    let signature = key.sign(&signing_message(&body));
    pb::SignedTransaction {
        body,
        signature: signature.0.to_vec(),
    }
}

/// Which kind of wallet an operator registers.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum WalletKind {
    /// A person, in a KYC class.
    Personal(pb::KycTier),
    /// A company.
    Corporate {
        /// Its registered name.
        name: String,
    },
    /// A merchant, in a category.
    Merchant(pb::MerchantCategory),
}

/// A transaction's action, with every field checked for shape.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Action {
    /// Issuer: create money in an operator's reserve.
    Issue {
        /// The operator.
        operator: Address,
        /// Fen, positive.
        amount: u64,
    },
    /// Issuer: withdraw money from an operator's reserve.
    Redeem {
        /// The operator.
        operator: Address,
        /// Fen, positive.
        amount: u64,
    },
    /// Issuer: admit an operator.
    RegisterOperator {
        /// The operator's reserve key.
        public_key: PublicKey,
        /// Its name.
        name: String,
    },
    /// Operator: open a wallet.
    RegisterWallet {
        /// The wallet's first key; its address derives from it.
        public_key: PublicKey,
        /// What kind of wallet.
        kind: WalletKind,
    },
    /// Operator: change a personal wallet's KYC class.
    SetTier {
        /// The wallet.
        wallet: Address,
        /// The new class.
        tier: pb::KycTier,
    },
    /// Operator: freeze a wallet.
    Freeze {
        /// The wallet.
        wallet: Address,
        /// Full, or receive-only.
        mode: pb::FreezeMode,
    },
    /// Operator: lift a freeze.
    Unfreeze {
        /// The wallet.
        wallet: Address,
    },
    /// Operator: replace a wallet's auth key.
    RotateKey {
        /// The wallet.
        wallet: Address,
        /// The new key.
        new_public_key: PublicKey,
    },
    /// Operator: close a wallet at zero balance.
    CloseWallet {
        /// The wallet.
        wallet: Address,
    },
    /// A payment between wallets.
    Transfer {
        /// The recipient.
        to: Address,
        /// Fen, positive.
        amount: u64,
        /// Free text.
        memo: String,
    },
    /// A payment to a merchant for an order.
    MerchantPayment {
        /// The merchant.
        merchant: Address,
        /// Fen, positive.
        amount: u64,
        /// The merchant's order id.
        order_id: String,
    },
    /// Merchant: return (part of) a payment.
    Refund {
        /// The id of the merchant payment transaction.
        payment_id: Hash32,
        /// Fen, positive.
        amount: u64,
    },
    /// Issuer: suspend an operator.
    SuspendOperator {
        /// The operator.
        operator: Address,
    },
    /// Issuer: lift an operator's suspension.
    ReinstateOperator {
        /// The operator.
        operator: Address,
    },
    /// Issuer: replace an operator's auth key.
    RotateOperatorKey {
        /// The operator.
        operator: Address,
        /// Its new key (usable: a curve point, not of small order).
        new_public_key: PublicKey,
    },
    /// Issuer: replace the issuer key (and the fee account's, which it
    /// controls).
    RotateIssuerKey {
        /// The new key (usable).
        new_public_key: PublicKey,
    },
}

/// A transaction whose bytes are well formed. Whether its signature is valid
/// is a separate question: see [`decode_and_verify_all`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecodedTx {
    /// The transaction id.
    pub id: Hash32,
    /// The sender.
    pub sender: Address,
    /// The key that signed it.
    pub public_key: PublicKey,
    /// The signature.
    pub signature: Signature,
    /// The sender's sequence number.
    pub sequence: u64,
    /// The last height it may be included at.
    pub expiry_height: u64,
    /// The most fee the sender pays, in fen.
    pub max_fee: u64,
    /// What it does.
    pub action: Action,
}

/// A transaction whose signature verified under the consensus rule: only
/// [`decode_and_verify_all`] and [`decode_and_verify`] build one (its field
/// is private), so code that takes a `VerifiedTx` cannot be handed an
/// unchecked signature. It reads as the [`DecodedTx`] it wraps.
///
/// Decoding alone gives no `VerifiedTx`, and one cannot be assembled by
/// hand:
///
/// ```compile_fail
/// use yuchain_proto::tx::{DecodedTx, VerifiedTx};
/// fn forge(tx: DecodedTx) -> VerifiedTx {
///     VerifiedTx(tx)
/// }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VerifiedTx(DecodedTx);

impl VerifiedTx {
    /// The decoded transaction.
    pub fn decoded(&self) -> &DecodedTx {
        &self.0
    }

    /// Gives up the proof of verification.
    pub fn into_decoded(self) -> DecodedTx {
        self.0
    }

    /// Treats `tx` as verified without checking anything. Only with the
    /// `bench-unverified` feature, which benchmarks of execution enable for
    /// synthetic loads whose keys are not even curve points; a node or CLI
    /// build never has it (`cargo tree -e features -i yuchain-proto` shows
    /// who enables it).
    #[cfg(feature = "bench-unverified")]
    #[doc(hidden)]
    pub fn assume_verified_for_benchmarks(tx: DecodedTx) -> VerifiedTx {
        VerifiedTx(tx)
    }
}

impl std::ops::Deref for VerifiedTx {
    type Target = DecodedTx;

    fn deref(&self) -> &DecodedTx {
        &self.0
    }
}

/// Decodes a signed transaction and checks everything that needs no state and
/// no signature check: size, encoding (which must be canonical: see
/// [`TxError::NonCanonical`]), field lengths, enum values, positive amounts
/// and the chain id.
pub fn decode(signed: &pb::SignedTransaction, chain_id: &str) -> Result<DecodedTx, TxError> {
    let size = signed.encoded_len();
    if size > TX_SIZE_BYTES_MAX {
        return Err(TxError::TooLarge {
            size,
            limit: TX_SIZE_BYTES_MAX,
        });
    }
    let signature =
        Signature::from_slice(&signed.signature).map_err(|error| TxError::InvalidField {
            field: "signature",
            reason: error.to_string(),
        })?;
    let body = pb::TransactionBody::decode(signed.body.as_slice())
        .map_err(|error| TxError::Malformed(error.to_string()))?;
    // One intent, one byte form: prost skips unknown fields, keeps the last
    // of a repeated scalar and reads non-minimal varints, so many byte
    // strings decode to this body. Only the one prost writes is accepted.
    if body.encoded_len() != signed.body.len() || body.encode_to_vec() != signed.body {
        return Err(TxError::NonCanonical);
    }
    if body.chain_id != chain_id {
        return Err(TxError::WrongChain {
            expected: chain_id.to_string(),
            got: truncated(&body.chain_id, CHAIN_ID_BYTES_MAX),
        });
    }
    let action = body.action.ok_or(TxError::MissingAction)?;
    Ok(DecodedTx {
        id: tx_id(&signed.body, &signed.signature),
        sender: address(&body.sender, "sender")?,
        public_key: public_key(&body.public_key, "public_key")?,
        signature,
        sequence: body.sequence,
        expiry_height: body.expiry_height,
        max_fee: body.max_fee,
        action: decode_action(action)?,
    })
}

/// Decodes a signed transaction from its encoded bytes (as received from the
/// network or a wallet) and checks it like [`decode`].
pub fn decode_bytes(bytes: &[u8], chain_id: &str) -> Result<DecodedTx, TxError> {
    if bytes.len() > TX_SIZE_BYTES_MAX {
        return Err(TxError::TooLarge {
            size: bytes.len(),
            limit: TX_SIZE_BYTES_MAX,
        });
    }
    let signed = pb::SignedTransaction::decode(bytes)
        .map_err(|error| TxError::Malformed(error.to_string()))?;
    decode(&signed, chain_id)
}

/// Decodes one transaction and verifies its signature (singly, under the
/// consensus rule).
pub fn decode_and_verify(
    signed: &pb::SignedTransaction,
    chain_id: &str,
) -> Result<VerifiedTx, TxError> {
    let tx = decode(signed, chain_id)?;
    crate::verify::verify_one(
        &tx.public_key,
        &signing_message(&signed.body),
        &tx.signature,
    )?;
    Ok(VerifiedTx(tx))
}

/// Decodes every transaction and verifies all their signatures in one batch
/// on all cores. The result has one entry per input, in order.
pub fn decode_and_verify_all(
    signed: &[pb::SignedTransaction],
    chain_id: &str,
) -> Vec<Result<VerifiedTx, TxError>> {
    let mut results: Vec<Result<DecodedTx, TxError>> =
        signed.iter().map(|tx| decode(tx, chain_id)).collect();
    let messages: Vec<(usize, Vec<u8>)> = results
        .iter()
        .enumerate()
        .filter(|(_, result)| result.is_ok())
        .map(|(index, _)| (index, signing_message(&signed[index].body)))
        .collect();
    let items: Vec<SignedMessage<'_>> = messages
        .iter()
        .filter_map(|(index, message)| {
            results[*index].as_ref().ok().map(|tx| SignedMessage {
                public_key: tx.public_key,
                signature: tx.signature,
                message,
            })
        })
        .collect();
    for bad in verify_batch(&items) {
        let index = messages[bad].0;
        let error = crate::verify::verify_one(
            &items[bad].public_key,
            items[bad].message,
            &items[bad].signature,
        )
        .err()
        .unwrap_or(crate::error::SignatureError::Invalid);
        results[index] = Err(TxError::BadSignature(error));
    }
    // Every entry still `Ok` is one whose signature the batch accepted.
    results
        .into_iter()
        .map(|result| result.map(VerifiedTx))
        .collect()
}

/// Attests that some honest party already verified these signatures: what a
/// [`VerifiedTx`] built by [`decode_attested_all`] rests on instead of a
/// signature check here. Made only by code that holds such proof, and says
/// which in `reason` (for the reader of the call; nothing checks it).
#[derive(Clone, Copy, Debug)]
pub struct Attestation {
    /// Why the signatures are known valid, e.g. "a batch certificate of
    /// f + 1 validators, each attesting it verified every signature".
    pub reason: &'static str,
}

/// Decodes every transaction like [`decode`] (so all stateless checks still
/// run) and treats its signature as verified on the strength of
/// `attestation`, without checking it.
///
/// The node uses it for a batch whose availability certificate it has
/// checked: f + 1 validators signed that they verified every signature of
/// exactly these transactions (the batch digest covers each transaction id,
/// a hash of its body and signature), at most f validators are Byzantine, so
/// at least one honest validator ran the consensus rule on them, and the rule
/// gives every honest node the same verdict. Auditors replaying the chain
/// verify everything again.
pub fn decode_attested_all(
    signed: &[pb::SignedTransaction],
    chain_id: &str,
    _attestation: Attestation,
) -> Vec<Result<VerifiedTx, TxError>> {
    signed
        .iter()
        .map(|tx| decode(tx, chain_id).map(VerifiedTx))
        .collect()
}

fn truncated(text: &str, limit: usize) -> String {
    text.char_indices()
        .take_while(|(index, _)| *index < limit)
        .map(|(_, c)| c)
        .collect()
}

fn address(bytes: &[u8], field: &'static str) -> Result<Address, TxError> {
    Address::from_slice(bytes).map_err(|error| TxError::InvalidField {
        field,
        reason: error.to_string(),
    })
}

fn public_key(bytes: &[u8], field: &'static str) -> Result<PublicKey, TxError> {
    PublicKey::from_slice(bytes).map_err(|error| TxError::InvalidField {
        field,
        reason: error.to_string(),
    })
}

/// A key that an action gives authority to: it must be usable (see
/// [`PublicKey::check_usable`]).
fn authority_key(bytes: &[u8], field: &'static str) -> Result<PublicKey, TxError> {
    let key = public_key(bytes, field)?;
    key.check_usable().map_err(|error| TxError::InvalidField {
        field,
        reason: error.to_string(),
    })?;
    Ok(key)
}

fn amount(value: u64) -> Result<u64, TxError> {
    if value == 0 {
        Err(TxError::ZeroAmount)
    } else {
        Ok(value)
    }
}

fn text(value: String, field: &'static str, limit: usize) -> Result<String, TxError> {
    if value.len() > limit {
        return Err(TxError::InvalidField {
            field,
            reason: format!("{} bytes, the limit is {limit}", value.len()),
        });
    }
    Ok(value)
}

fn tier(value: i32) -> Result<pb::KycTier, TxError> {
    match pb::KycTier::try_from(value) {
        Ok(pb::KycTier::Unspecified) | Err(_) => Err(TxError::InvalidField {
            field: "tier",
            reason: format!("{value} is not a KYC class (1 to 4)"),
        }),
        Ok(tier) => Ok(tier),
    }
}

fn decode_action(action: pb::transaction_body::Action) -> Result<Action, TxError> {
    use pb::transaction_body::Action as A;
    Ok(match action {
        A::Issue(issue) => Action::Issue {
            operator: address(&issue.operator, "issue.operator")?,
            amount: amount(issue.amount)?,
        },
        A::Redeem(redeem) => Action::Redeem {
            operator: address(&redeem.operator, "redeem.operator")?,
            amount: amount(redeem.amount)?,
        },
        A::RegisterOperator(register) => Action::RegisterOperator {
            public_key: authority_key(&register.public_key, "register_operator.public_key")?,
            name: text(register.name, "register_operator.name", NAME_BYTES_MAX)?,
        },
        A::RegisterWallet(register) => {
            use pb::register_wallet::Kind;
            let kind = match register.kind {
                Some(Kind::Personal(value)) => WalletKind::Personal(tier(value)?),
                Some(Kind::Corporate(corporate)) => WalletKind::Corporate {
                    name: text(
                        corporate.name,
                        "register_wallet.corporate.name",
                        NAME_BYTES_MAX,
                    )?,
                },
                Some(Kind::Merchant(value)) => match pb::MerchantCategory::try_from(value) {
                    Ok(pb::MerchantCategory::Unspecified) | Err(_) => {
                        return Err(TxError::InvalidField {
                            field: "register_wallet.merchant",
                            reason: format!("{value} is not a merchant category"),
                        });
                    }
                    Ok(category) => WalletKind::Merchant(category),
                },
                None => {
                    return Err(TxError::InvalidField {
                        field: "register_wallet.kind",
                        reason: "missing".to_string(),
                    });
                }
            };
            Action::RegisterWallet {
                public_key: authority_key(&register.public_key, "register_wallet.public_key")?,
                kind,
            }
        }
        A::SetTier(set) => Action::SetTier {
            wallet: address(&set.wallet, "set_tier.wallet")?,
            tier: tier(set.tier)?,
        },
        A::Freeze(freeze) => Action::Freeze {
            wallet: address(&freeze.wallet, "freeze.wallet")?,
            mode: match pb::FreezeMode::try_from(freeze.mode) {
                Ok(pb::FreezeMode::Unspecified) | Err(_) => {
                    return Err(TxError::InvalidField {
                        field: "freeze.mode",
                        reason: format!("{} is not a freeze mode", freeze.mode),
                    });
                }
                Ok(mode) => mode,
            },
        },
        A::Unfreeze(unfreeze) => Action::Unfreeze {
            wallet: address(&unfreeze.wallet, "unfreeze.wallet")?,
        },
        A::RotateKey(rotate) => Action::RotateKey {
            wallet: address(&rotate.wallet, "rotate_key.wallet")?,
            new_public_key: authority_key(&rotate.new_public_key, "rotate_key.new_public_key")?,
        },
        A::CloseWallet(close) => Action::CloseWallet {
            wallet: address(&close.wallet, "close_wallet.wallet")?,
        },
        A::Transfer(transfer) => Action::Transfer {
            to: address(&transfer.to, "transfer.to")?,
            amount: amount(transfer.amount)?,
            memo: text(transfer.memo, "transfer.memo", MEMO_BYTES_MAX)?,
        },
        A::MerchantPayment(payment) => Action::MerchantPayment {
            merchant: address(&payment.merchant, "merchant_payment.merchant")?,
            amount: amount(payment.amount)?,
            order_id: text(
                payment.order_id,
                "merchant_payment.order_id",
                ORDER_ID_BYTES_MAX,
            )?,
        },
        A::Refund(refund) => Action::Refund {
            payment_id: Hash32::from_slice(&refund.payment_id).ok_or_else(|| {
                TxError::InvalidField {
                    field: "refund.payment_id",
                    reason: format!("must be 32 bytes, got {}", refund.payment_id.len()),
                }
            })?,
            amount: amount(refund.amount)?,
        },
        A::SuspendOperator(suspend) => Action::SuspendOperator {
            operator: address(&suspend.operator, "suspend_operator.operator")?,
        },
        A::ReinstateOperator(reinstate) => Action::ReinstateOperator {
            operator: address(&reinstate.operator, "reinstate_operator.operator")?,
        },
        A::RotateOperatorKey(rotate) => Action::RotateOperatorKey {
            operator: address(&rotate.operator, "rotate_operator_key.operator")?,
            new_public_key: authority_key(
                &rotate.new_public_key,
                "rotate_operator_key.new_public_key",
            )?,
        },
        A::RotateIssuerKey(rotate) => Action::RotateIssuerKey {
            new_public_key: authority_key(
                &rotate.new_public_key,
                "rotate_issuer_key.new_public_key",
            )?,
        },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHAIN: &str = "yuchain-test";

    fn transfer_body(key: &SigningKey, amount: u64) -> pb::TransactionBody {
        pb::TransactionBody {
            chain_id: CHAIN.to_string(),
            sender: Address::from_public_key(&key.public_key()).0.to_vec(),
            public_key: key.public_key().0.to_vec(),
            sequence: 0,
            expiry_height: 100,
            max_fee: 0,
            action: Some(pb::transaction_body::Action::Transfer(pb::Transfer {
                to: Address::system("bob").0.to_vec(),
                amount,
                memo: "lunch".to_string(),
            })),
        }
    }

    #[test]
    fn a_signed_transfer_decodes_and_verifies() {
        let key = SigningKey::for_test("alice");
        let signed = sign(&transfer_body(&key, 500), &key);
        let results = decode_and_verify_all(std::slice::from_ref(&signed), CHAIN);
        let tx = results[0].as_ref().expect("valid");
        assert_eq!(tx.id, tx_id(&signed.body, &signed.signature));
        assert!(matches!(tx.action, Action::Transfer { amount: 500, .. }));
    }

    #[test]
    fn each_kind_of_bad_input_has_its_own_error() {
        let key = SigningKey::for_test("alice");
        let good = sign(&transfer_body(&key, 500), &key);

        let mut tampered = good.clone();
        let last = tampered.body.len() - 1;
        tampered.body[last] ^= 1;
        let mut bad_sig = good.clone();
        bad_sig.signature[3] ^= 1;
        let mut short_sig = good.clone();
        short_sig.signature.truncate(63);
        let garbage = pb::SignedTransaction {
            body: vec![0xff, 0xff, 0xff],
            signature: good.signature.clone(),
        };
        let zero = sign(&transfer_body(&key, 0), &key);
        let mut other_chain_body = transfer_body(&key, 1);
        other_chain_body.chain_id = "elsewhere".to_string();
        let other_chain = sign(&other_chain_body, &key);
        let mut no_action_body = transfer_body(&key, 1);
        no_action_body.action = None;
        let no_action = sign(&no_action_body, &key);
        let mut long_memo_body = transfer_body(&key, 1);
        if let Some(pb::transaction_body::Action::Transfer(transfer)) =
            long_memo_body.action.as_mut()
        {
            transfer.memo = "x".repeat(MEMO_BYTES_MAX + 1);
        }
        let long_memo = sign(&long_memo_body, &key);

        let inputs = vec![
            good,
            tampered,
            bad_sig,
            short_sig,
            garbage,
            zero,
            other_chain,
            no_action,
            long_memo,
        ];
        let results = decode_and_verify_all(&inputs, CHAIN);
        assert!(results[0].is_ok());
        // A flipped body byte either breaks the encoding or the signature.
        assert!(matches!(
            results[1],
            Err(TxError::BadSignature(_))
                | Err(TxError::Malformed(_))
                | Err(TxError::InvalidField { .. })
        ));
        assert!(matches!(results[2], Err(TxError::BadSignature(_))));
        assert!(matches!(
            results[3],
            Err(TxError::InvalidField {
                field: "signature",
                ..
            })
        ));
        assert!(matches!(results[4], Err(TxError::Malformed(_))));
        assert!(matches!(results[5], Err(TxError::ZeroAmount)));
        assert!(matches!(results[6], Err(TxError::WrongChain { .. })));
        assert!(matches!(results[7], Err(TxError::MissingAction)));
        assert!(matches!(
            results[8],
            Err(TxError::InvalidField {
                field: "transfer.memo",
                ..
            })
        ));
    }

    #[test]
    fn only_a_good_signature_gives_a_verified_transaction() {
        let key = SigningKey::for_test("alice");
        let good = sign(&transfer_body(&key, 500), &key);
        let verified = decode_and_verify(&good, CHAIN).expect("valid");
        assert_eq!(verified.decoded(), &decode(&good, CHAIN).expect("decodes"));
        let mut forged = good.clone();
        forged.signature[5] ^= 1;
        // Decoding does not look at the signature; verification does.
        assert!(decode(&forged, CHAIN).is_ok());
        assert!(matches!(
            decode_and_verify(&forged, CHAIN),
            Err(TxError::BadSignature(_))
        ));
        let by_another = sign(&transfer_body(&key, 500), &SigningKey::for_test("mallory"));
        assert!(matches!(
            decode_and_verify(&by_another, CHAIN),
            Err(TxError::BadSignature(_))
        ));
    }

    #[test]
    fn oversized_bytes_are_refused_before_decoding() {
        let bytes = vec![0u8; TX_SIZE_BYTES_MAX + 1];
        assert!(matches!(
            decode_bytes(&bytes, CHAIN),
            Err(TxError::TooLarge { .. })
        ));
    }

    /// Signs raw body bytes as they are.
    fn sign_bytes(body: Vec<u8>, key: &SigningKey) -> pb::SignedTransaction {
        let signature = key.sign(&signing_message(&body));
        pb::SignedTransaction {
            body,
            signature: signature.0.to_vec(),
        }
    }

    #[test]
    fn only_the_canonical_encoding_of_a_body_is_accepted() {
        // One payment, one byte form, one id: every other encoding that
        // decodes to the same body is refused, even though it is signed.
        let key = SigningKey::for_test("alice");
        let mut body = transfer_body(&key, 500);
        body.sequence = 7;
        body.max_fee = 3;
        // Each field encoded alone; the canonical body is them in field
        // order.
        let only = |f: &dyn Fn(&mut pb::TransactionBody)| {
            let mut part = pb::TransactionBody::default();
            f(&mut part);
            part.encode_to_vec()
        };
        let chain = only(&|b| b.chain_id = body.chain_id.clone());
        let sender = only(&|b| b.sender = body.sender.clone());
        let public_key = only(&|b| b.public_key = body.public_key.clone());
        let sequence = only(&|b| b.sequence = body.sequence);
        let expiry = only(&|b| b.expiry_height = body.expiry_height);
        let max_fee = only(&|b| b.max_fee = body.max_fee);
        let action = only(&|b| b.action = body.action.clone());
        assert_eq!(sequence, vec![0x20, 0x07]);
        let join = |parts: &[&Vec<u8>]| {
            parts
                .iter()
                .flat_map(|p| p.iter().copied())
                .collect::<Vec<u8>>()
        };
        let canonical = join(&[
            &chain,
            &sender,
            &public_key,
            &sequence,
            &expiry,
            &max_fee,
            &action,
        ]);
        assert_eq!(canonical, body.encode_to_vec());

        let mut unknown_field = canonical.clone();
        unknown_field.extend_from_slice(&[0xf8, 0x06, 0x01]); // field 111, varint 1
        let repeated_scalar = join(&[
            &chain,
            &sender,
            &public_key,
            &sequence,
            &sequence,
            &expiry,
            &max_fee,
            &action,
        ]);
        let non_minimal_varint = join(&[
            &chain,
            &sender,
            &public_key,
            &vec![0x20, 0x87, 0x00], // 7 in two bytes
            &expiry,
            &max_fee,
            &action,
        ]);
        let swapped = join(&[
            &sender,
            &chain,
            &public_key,
            &sequence,
            &expiry,
            &max_fee,
            &action,
        ]);
        let explicit_default = join(&[
            &chain,
            &sender,
            &public_key,
            &sequence,
            &expiry,
            &max_fee,
            &vec![0x30, 0x00], // max_fee = 0 again, written out
            &action,
        ]);
        let mut long_length = chain.clone();
        long_length[1] |= 0x80; // the chain id's length in two bytes
        long_length.insert(2, 0x00);
        let non_minimal_length = join(&[
            &long_length,
            &sender,
            &public_key,
            &sequence,
            &expiry,
            &max_fee,
            &action,
        ]);

        let variants = [
            ("unknown field", unknown_field),
            ("repeated scalar", repeated_scalar),
            ("non-minimal varint", non_minimal_varint),
            ("fields out of order", swapped),
            ("default value written out", explicit_default),
            ("non-minimal length", non_minimal_length),
        ];
        let mut inputs = vec![sign_bytes(canonical.clone(), &key)];
        for (name, bytes) in &variants {
            // Each still decodes to the same body: only its form is wrong.
            let decoded = pb::TransactionBody::decode(bytes.as_slice()).expect(name);
            assert_eq!(decoded.chain_id, body.chain_id, "{name}");
            assert_eq!(decoded.sequence, 7, "{name}");
            inputs.push(sign_bytes(bytes.clone(), &key));
        }
        let results = decode_and_verify_all(&inputs, CHAIN);
        let tx = results[0].as_ref().expect("the canonical body is accepted");
        assert_eq!(tx.id, tx_id(&canonical, &inputs[0].signature));
        for ((name, _), result) in variants.iter().zip(&results[1..]) {
            assert_eq!(
                result.as_ref().err(),
                Some(&TxError::NonCanonical),
                "{name}"
            );
        }
    }
}
