//! Ledger state: accounts, refundable merchant payments and chain totals,
//! and how each is keyed and encoded in the state tree.

use prost::Message as _;
use yuchain_proto::pb::{self, AccountKind, AccountStatus, KycTier, MerchantCategory};
use yuchain_proto::{Address, Hash32, PublicKey};

use crate::error::LoadError;

/// An account.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Account {
    /// Its address, fixed for life.
    pub address: Address,
    /// The key that must sign its transactions.
    pub auth_key: PublicKey,
    /// Fen.
    pub balance: u64,
    /// The sequence number its next transaction must carry.
    pub next_sequence: u64,
    /// What it is.
    pub kind: AccountKind,
    /// The operator that registered it (wallets only).
    pub operator: Option<Address>,
    /// KYC class (personal wallets only).
    pub tier: KycTier,
    /// Active, frozen, receive-only or closed.
    pub status: AccountStatus,
    /// Merchant category (merchants only).
    pub category: MerchantCategory,
    /// Operator or company name.
    pub name: String,
    /// Asia/Shanghai day of `spent_day`.
    pub spend_day: u64,
    /// Fen sent on `spend_day`.
    pub spent_day: u64,
    /// Calendar year of `spent_year`.
    pub spend_year: u32,
    /// Fen sent in `spend_year`.
    pub spent_year: u64,
}

impl Account {
    /// A new active account with a zero balance.
    pub fn new(auth_key: PublicKey, kind: AccountKind) -> Account {
        Account {
            address: Address::from_public_key(&auth_key),
            auth_key,
            balance: 0,
            next_sequence: 0,
            kind,
            operator: None,
            tier: KycTier::Unspecified,
            status: AccountStatus::Active,
            category: MerchantCategory::Unspecified,
            name: String::new(),
            spend_day: 0,
            spent_day: 0,
            spend_year: 0,
            spent_year: 0,
        }
    }

    /// The wire form.
    pub fn to_proto(&self) -> pb::Account {
        pb::Account {
            address: self.address.0.to_vec(),
            auth_key: self.auth_key.0.to_vec(),
            balance: self.balance,
            next_sequence: self.next_sequence,
            kind: self.kind as i32,
            operator: self.operator.map(|a| a.0.to_vec()).unwrap_or_default(),
            tier: self.tier as i32,
            status: self.status as i32,
            category: self.category as i32,
            name: self.name.clone(),
            spend_day: self.spend_day,
            spent_day: self.spent_day,
            spend_year: self.spend_year,
            spent_year: self.spent_year,
        }
    }

    /// Reads the wire form back, checking every field.
    pub fn from_proto(account: &pb::Account) -> Result<Account, String> {
        let address = Address::from_slice(&account.address).map_err(|e| e.to_string())?;
        let operator = if account.operator.is_empty() {
            None
        } else {
            Some(Address::from_slice(&account.operator).map_err(|e| e.to_string())?)
        };
        Ok(Account {
            address,
            auth_key: PublicKey::from_slice(&account.auth_key).map_err(|e| e.to_string())?,
            balance: account.balance,
            next_sequence: account.next_sequence,
            kind: AccountKind::try_from(account.kind).map_err(|e| e.to_string())?,
            operator,
            tier: KycTier::try_from(account.tier).map_err(|e| e.to_string())?,
            status: AccountStatus::try_from(account.status).map_err(|e| e.to_string())?,
            category: MerchantCategory::try_from(account.category).map_err(|e| e.to_string())?,
            name: account.name.clone(),
            spend_day: account.spend_day,
            spent_day: account.spent_day,
            spend_year: account.spend_year,
            spent_year: account.spent_year,
        })
    }
}

/// A merchant payment that may be refunded.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Payment {
    /// Who paid.
    pub payer: Address,
    /// Who was paid.
    pub merchant: Address,
    /// Fen paid.
    pub amount: u64,
    /// Fen refunded so far; never above `amount`.
    pub refunded: u64,
    /// The merchant's order id.
    pub order_id: String,
}

impl Payment {
    /// The wire form.
    pub fn to_proto(&self) -> pb::PaymentRecord {
        pb::PaymentRecord {
            payer: self.payer.0.to_vec(),
            merchant: self.merchant.0.to_vec(),
            amount: self.amount,
            refunded: self.refunded,
            order_id: self.order_id.clone(),
        }
    }

    /// Reads the wire form back.
    pub fn from_proto(record: &pb::PaymentRecord) -> Result<Payment, String> {
        Ok(Payment {
            payer: Address::from_slice(&record.payer).map_err(|e| e.to_string())?,
            merchant: Address::from_slice(&record.merchant).map_err(|e| e.to_string())?,
            amount: record.amount,
            refunded: record.refunded,
            order_id: record.order_id.clone(),
        })
    }
}

/// What a state-tree entry is. Its byte form is the key stored and proved.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum StateKey {
    /// An account, by address.
    Account(Address),
    /// A merchant payment, by its transaction id.
    Payment(Hash32),
    /// Chain-wide totals and height.
    Chain,
}

const ACCOUNT_TAG: u8 = 1;
const PAYMENT_TAG: u8 = 2;
const CHAIN_TAG: u8 = 3;

impl StateKey {
    /// The key bytes: a tag byte, then the id.
    pub fn to_bytes(&self) -> Vec<u8> {
        match self {
            StateKey::Account(address) => [&[ACCOUNT_TAG][..], &address.0].concat(),
            StateKey::Payment(id) => [&[PAYMENT_TAG][..], &id.0].concat(),
            StateKey::Chain => vec![CHAIN_TAG],
        }
    }

    /// Parses key bytes.
    pub fn from_bytes(bytes: &[u8]) -> Option<StateKey> {
        match bytes.split_first()? {
            (&ACCOUNT_TAG, rest) => Address::from_slice(rest).ok().map(StateKey::Account),
            (&PAYMENT_TAG, rest) => Hash32::from_slice(rest).map(StateKey::Payment),
            (&CHAIN_TAG, []) => Some(StateKey::Chain),
            _ => None,
        }
    }
}

/// Chain-wide totals.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ChainTotals {
    /// Height of the last applied block.
    pub height: u64,
    /// Its timestamp.
    pub timestamp_ms: u64,
    /// Fen issued in all.
    pub issued: u64,
    /// Fen redeemed in all.
    pub redeemed: u64,
    /// Hash of the last applied block (of the genesis document at height 0).
    pub block_hash: Hash32,
    /// Root of the last applied block's receipts.
    pub receipts_root: Hash32,
}

impl ChainTotals {
    /// The wire form.
    pub fn to_proto(self) -> pb::ChainState {
        pb::ChainState {
            height: self.height,
            timestamp_ms: self.timestamp_ms,
            issued: self.issued,
            redeemed: self.redeemed,
            block_hash: self.block_hash.0.to_vec(),
            receipts_root: self.receipts_root.0.to_vec(),
        }
    }

    /// Money in circulation: issued minus redeemed.
    pub fn outstanding(&self) -> u64 {
        // Redemption only ever takes money that was issued.
        self.issued
            .checked_sub(self.redeemed)
            .expect("redeemed never exceeds issued")
    }
}

/// Decodes a stored state entry into its record.
pub(crate) enum StateValue {
    Account(Account),
    Payment(Payment),
    Chain(ChainTotals),
}

pub(crate) fn decode_entry(key: &[u8], value: &[u8]) -> Result<(StateKey, StateValue), LoadError> {
    let corrupt = |reason: String| LoadError::Corrupt {
        what: format!("state entry {}", hex::encode(key)),
        reason,
    };
    let state_key = StateKey::from_bytes(key).ok_or_else(|| corrupt("unknown key".into()))?;
    let value = match state_key {
        StateKey::Account(address) => {
            let account = pb::Account::decode(value).map_err(|e| corrupt(e.to_string()))?;
            let account = Account::from_proto(&account).map_err(corrupt)?;
            if account.address != address {
                return Err(corrupt("address does not match its key".into()));
            }
            StateValue::Account(account)
        }
        StateKey::Payment(_) => {
            let record = pb::PaymentRecord::decode(value).map_err(|e| corrupt(e.to_string()))?;
            StateValue::Payment(Payment::from_proto(&record).map_err(corrupt)?)
        }
        StateKey::Chain => {
            let chain = pb::ChainState::decode(value).map_err(|e| corrupt(e.to_string()))?;
            let hash = |bytes: &[u8], what: &str| {
                Hash32::from_slice(bytes).ok_or_else(|| corrupt(format!("{what} must be 32 bytes")))
            };
            StateValue::Chain(ChainTotals {
                height: chain.height,
                timestamp_ms: chain.timestamp_ms,
                issued: chain.issued,
                redeemed: chain.redeemed,
                block_hash: hash(&chain.block_hash, "block_hash")?,
                receipts_root: hash(&chain.receipts_root, "receipts_root")?,
            })
        }
    };
    Ok((state_key, value))
}

/// Encodes a record for the tree and the store.
pub(crate) fn encode<M: prost::Message>(message: &M) -> Vec<u8> {
    message.encode_to_vec()
}

#[cfg(test)]
mod tests {
    use super::*;
    use yuchain_proto::SigningKey;

    #[test]
    fn state_keys_round_trip_and_reject_garbage() {
        let address = Address::system("x");
        for key in [
            StateKey::Account(address),
            StateKey::Payment(Hash32([4; 32])),
            StateKey::Chain,
        ] {
            assert_eq!(StateKey::from_bytes(&key.to_bytes()), Some(key));
        }
        assert_eq!(StateKey::from_bytes(&[]), None);
        assert_eq!(StateKey::from_bytes(&[9, 1, 2]), None);
        assert_eq!(StateKey::from_bytes(&[ACCOUNT_TAG, 1, 2]), None);
    }

    #[test]
    fn accounts_round_trip_through_the_wire_form() {
        let mut account = Account::new(
            SigningKey::for_test("a").public_key(),
            AccountKind::Personal,
        );
        account.operator = Some(Address::system("bank"));
        account.tier = KycTier::Class3;
        account.balance = 12_345;
        account.spent_year = 7;
        let bytes = encode(&account.to_proto());
        match decode_entry(&StateKey::Account(account.address).to_bytes(), &bytes) {
            Ok((_, StateValue::Account(back))) => assert_eq!(back, account),
            _ => panic!("account did not round trip"),
        }
        // Stored under another address: corruption, not silently accepted.
        assert!(
            decode_entry(
                &StateKey::Account(Address::system("other")).to_bytes(),
                &bytes
            )
            .is_err()
        );
    }
}
