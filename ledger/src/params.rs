//! Chain parameters and the genesis document.
//!
//! Limits and fees are chain parameters fixed in genesis, enforced at
//! execution with integer arithmetic. The defaults follow the digital-RMB
//! wallet classes: class 4 (phone number only) is the most limited, class 1
//! (full KYC) the least.

use serde::{Deserialize, Serialize};
use yuchain_proto::amount::FEN_PER_YUAN;
use yuchain_proto::pb::KycTier;
use yuchain_proto::{Address, PublicKey};

use crate::error::GenesisError;

/// Limits on one KYC class, in fen. `None` is no limit.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TierLimits {
    /// The most a wallet of this class may hold.
    pub balance_max: Option<u64>,
    /// The largest single payment it may send.
    pub per_payment_max: Option<u64>,
    /// The most it may send in one Asia/Shanghai day.
    pub daily_max: Option<u64>,
    /// The most it may send in one calendar year.
    pub annual_max: Option<u64>,
}

const fn yuan(amount: u64) -> Option<u64> {
    Some(amount * FEN_PER_YUAN)
}

/// A fee: `flat + amount × basis_points / 10,000`, at most `max`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeeRule {
    /// Fixed part, fen.
    pub flat: u64,
    /// Proportional part, in 1/10,000 of the amount, rounded down.
    pub basis_points: u32,
    /// Cap, fen.
    pub max: Option<u64>,
}

impl FeeRule {
    /// The fee for moving `amount` fen, or `None` on overflow.
    pub fn fee(&self, amount: u64) -> Option<u64> {
        let proportional = u128::from(amount) * u128::from(self.basis_points) / 10_000;
        let fee = u128::from(self.flat).checked_add(proportional)?;
        let fee = u64::try_from(fee).ok()?;
        Some(match self.max {
            Some(max) => fee.min(max),
            None => fee,
        })
    }
}

/// The fee schedule. Zero everywhere by default, as in the digital RMB.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FeeSchedule {
    /// Wallet-to-wallet transfers.
    pub transfer: FeeRule,
    /// Payments to merchants (paid by the payer).
    pub merchant_payment: FeeRule,
    /// Refunds (paid by the merchant).
    pub refund: FeeRule,
    /// Operator actions: registrations, freezes, key rotations, …
    /// (`flat` only). The issuer never pays fees.
    pub administrative: FeeRule,
}

/// Chain parameters.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ChainParams {
    /// Class 1: full KYC.
    pub class_1: TierLimits,
    /// Class 2.
    pub class_2: TierLimits,
    /// Class 3.
    pub class_3: TierLimits,
    /// Class 4: phone number only.
    pub class_4: TierLimits,
    /// Fees.
    #[serde(default)]
    pub fees: FeeSchedule,
}

impl Default for ChainParams {
    fn default() -> Self {
        ChainParams {
            class_1: TierLimits {
                balance_max: yuan(500_000),
                per_payment_max: yuan(50_000),
                daily_max: yuan(100_000),
                annual_max: None,
            },
            class_2: TierLimits {
                balance_max: yuan(200_000),
                per_payment_max: yuan(20_000),
                daily_max: yuan(50_000),
                annual_max: yuan(2_000_000),
            },
            class_3: TierLimits {
                balance_max: yuan(20_000),
                per_payment_max: yuan(5_000),
                daily_max: yuan(10_000),
                annual_max: yuan(200_000),
            },
            class_4: TierLimits {
                balance_max: yuan(10_000),
                per_payment_max: yuan(2_000),
                daily_max: yuan(5_000),
                annual_max: yuan(50_000),
            },
            fees: FeeSchedule::default(),
        }
    }
}

impl ChainParams {
    /// The limits of a class; `Unspecified` has none (never stored on a
    /// personal wallet).
    pub fn limits(&self, tier: KycTier) -> Option<&TierLimits> {
        match tier {
            KycTier::Class1 => Some(&self.class_1),
            KycTier::Class2 => Some(&self.class_2),
            KycTier::Class3 => Some(&self.class_3),
            KycTier::Class4 => Some(&self.class_4),
            KycTier::Unspecified => None,
        }
    }
}

/// An operator (bank) present from genesis.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GenesisOperator {
    /// The bank's name.
    pub name: String,
    /// Its reserve key, 64 hex digits.
    pub public_key: String,
}

/// The genesis document: everything a node needs to start the chain.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Genesis {
    /// The chain id every transaction names.
    pub chain_id: String,
    /// Genesis time, milliseconds since the Unix epoch.
    pub genesis_time_ms: u64,
    /// The issuer's (city treasury's) key, 64 hex digits.
    pub issuer_public_key: String,
    /// The operators present from the start.
    pub operators: Vec<GenesisOperator>,
    /// Limits and fees.
    #[serde(default)]
    pub params: ChainParams,
    /// Funded wallets for load tests and benchmarks, derived from a seed.
    /// Absent from a real chain's genesis (and then from its hash).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub load_test: Option<LoadTestWallets>,
}

/// The most load-test wallets a genesis may fund.
pub const LOAD_TEST_WALLETS_MAX: u64 = 2_000_000;

/// Class-1 wallets of the first operator, funded at genesis, whose keys
/// anyone can derive from `seed`: a benchmark's load generator signs for
/// them without a million registrations first. Never for a real chain: the
/// keys are as secret as the seed, which is in the genesis file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoadTestWallets {
    /// How many wallets.
    pub count: u64,
    /// The balance of each, in fen.
    pub balance: u64,
    /// 64 hex digits; wallet `i`'s key is derived from it and `i`.
    pub seed: String,
}

impl LoadTestWallets {
    /// The seed's bytes.
    pub fn seed_bytes(&self) -> Result<[u8; 32], GenesisError> {
        let bytes = hex::decode(&self.seed).map_err(|error| {
            GenesisError::Invalid(format!("load_test.seed is not hex: {error}"))
        })?;
        bytes.try_into().map_err(|_| {
            GenesisError::Invalid("load_test.seed must be 32 bytes (64 hex digits)".into())
        })
    }

    /// Wallet `index`'s signing key.
    pub fn key(seed: &[u8; 32], index: u64) -> yuchain_proto::SigningKey {
        let mut material = [0u8; 40];
        material[..32].copy_from_slice(seed);
        material[32..].copy_from_slice(&index.to_le_bytes());
        yuchain_proto::SigningKey::from_seed(blake3::derive_key(
            "yuchain load-test wallet v1",
            &material,
        ))
    }

    /// Every wallet's public key, derived on all cores.
    pub fn public_keys(&self) -> Result<Vec<PublicKey>, GenesisError> {
        use rayon::prelude::*;
        if self.count > LOAD_TEST_WALLETS_MAX {
            return Err(GenesisError::Invalid(format!(
                "load_test.count {} is above the most, {LOAD_TEST_WALLETS_MAX}",
                self.count
            )));
        }
        let seed = self.seed_bytes()?;
        Ok((0..self.count)
            .into_par_iter()
            .map(|index| LoadTestWallets::key(&seed, index).public_key())
            .collect())
    }
}

/// The fee account's address.
pub fn fee_account() -> Address {
    Address::system("fees")
}

impl Genesis {
    /// Parses a TOML genesis document.
    pub fn from_toml(text: &str) -> Result<Genesis, GenesisError> {
        toml::from_str(text).map_err(|error| GenesisError::Parse(error.to_string()))
    }

    /// The genesis document as TOML.
    pub fn to_toml(&self) -> Result<String, GenesisError> {
        toml::to_string_pretty(self).map_err(|error| GenesisError::Parse(error.to_string()))
    }

    /// The genesis hash: blake3 (genesis domain) of the canonical TOML form.
    /// It stands as the parent hash of block 1.
    pub fn hash(&self) -> Result<yuchain_proto::Hash32, GenesisError> {
        Ok(yuchain_proto::Domain::Genesis.hash(self.to_toml()?.as_bytes()))
    }

    /// The issuer's key.
    pub fn issuer_key(&self) -> Result<PublicKey, GenesisError> {
        parse_key("issuer_public_key", &self.issuer_public_key)
    }

    /// The operators' names and keys.
    pub fn operator_keys(&self) -> Result<Vec<(String, PublicKey)>, GenesisError> {
        self.operators
            .iter()
            .map(|operator| {
                Ok((
                    operator.name.clone(),
                    parse_key(&operator.name, &operator.public_key)?,
                ))
            })
            .collect()
    }

    /// Checks the document: chain id, keys, distinct accounts, sane limits.
    pub fn validate(&self) -> Result<(), GenesisError> {
        if self.chain_id.is_empty() || self.chain_id.len() > yuchain_proto::tx::CHAIN_ID_BYTES_MAX {
            return Err(GenesisError::Invalid(format!(
                "chain_id must be 1 to {} bytes",
                yuchain_proto::tx::CHAIN_ID_BYTES_MAX
            )));
        }
        let issuer = Address::from_public_key(&self.issuer_key()?);
        let mut seen = std::collections::BTreeSet::from([issuer, fee_account()]);
        for (name, key) in self.operator_keys()? {
            if !seen.insert(Address::from_public_key(&key)) {
                return Err(GenesisError::Invalid(format!(
                    "operator {name:?} has the same key as another account"
                )));
            }
        }
        for (class, limits) in [
            ("class_1", &self.params.class_1),
            ("class_2", &self.params.class_2),
            ("class_3", &self.params.class_3),
            ("class_4", &self.params.class_4),
        ] {
            if let (Some(per_payment), Some(daily)) = (limits.per_payment_max, limits.daily_max)
                && per_payment > daily
            {
                return Err(GenesisError::Invalid(format!(
                    "{class}: per_payment_max is above daily_max"
                )));
            }
        }
        Ok(())
    }
}

fn parse_key(what: &str, hex_text: &str) -> Result<PublicKey, GenesisError> {
    let bytes = hex::decode(hex_text)
        .map_err(|error| GenesisError::Invalid(format!("{what}: key is not hex: {error}")))?;
    PublicKey::from_slice(&bytes).map_err(|error| GenesisError::Invalid(format!("{what}: {error}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_limits_follow_the_wallet_classes() {
        let params = ChainParams::default();
        assert_eq!(params.class_4.balance_max, Some(1_000_000));
        assert_eq!(params.class_4.per_payment_max, Some(200_000));
        assert_eq!(params.class_4.daily_max, Some(500_000));
        assert_eq!(params.class_1.balance_max, Some(50_000_000));
        assert_eq!(params.class_1.per_payment_max, Some(5_000_000));
        assert_eq!(params.class_1.daily_max, Some(10_000_000));
    }

    #[test]
    fn fee_rules_are_integer_and_capped() {
        let rule = FeeRule {
            flat: 10,
            basis_points: 30,
            max: Some(500),
        };
        assert_eq!(rule.fee(10_000), Some(40));
        assert_eq!(rule.fee(1_000_000_000), Some(500));
        let uncapped = FeeRule {
            flat: u64::MAX,
            basis_points: 10_000,
            max: None,
        };
        assert_eq!(uncapped.fee(1), None);
        assert_eq!(FeeRule::default().fee(u64::MAX), Some(0));
    }

    #[test]
    fn genesis_round_trips_through_toml_and_rejects_bad_keys() {
        let genesis = Genesis {
            chain_id: "yuchain-test".into(),
            genesis_time_ms: 1,
            issuer_public_key: hex::encode([7u8; 32]),
            operators: vec![GenesisOperator {
                name: "bank".into(),
                public_key: hex::encode([9u8; 32]),
            }],
            params: ChainParams::default(),
            load_test: None,
        };
        let text = genesis.to_toml().expect("toml");
        assert_eq!(Genesis::from_toml(&text).expect("parse"), genesis);
        let mut bad = genesis.clone();
        bad.operators[0].public_key = "zz".into();
        assert!(matches!(bad.validate(), Err(GenesisError::Invalid(_))));
        let mut duplicate = genesis.clone();
        duplicate.operators[0].public_key = duplicate.issuer_public_key.clone();
        assert!(matches!(
            duplicate.validate(),
            Err(GenesisError::Invalid(_))
        ));
        assert!(Genesis::from_toml("chain_id = 5").is_err());
    }

    #[test]
    fn load_test_wallets_are_funded_from_a_seed_and_absent_from_a_real_genesis() {
        let issuer = yuchain_proto::SigningKey::for_test("issuer");
        let bank = yuchain_proto::SigningKey::for_test("bank");
        let mut genesis = Genesis {
            chain_id: "yuchain-test".into(),
            genesis_time_ms: 1,
            issuer_public_key: hex::encode(issuer.public_key().0),
            operators: vec![GenesisOperator {
                name: "bank".into(),
                public_key: hex::encode(bank.public_key().0),
            }],
            params: ChainParams::default(),
            load_test: None,
        };
        // A genesis without load-test wallets says nothing of them, so the
        // hash of every existing genesis file is unchanged.
        assert!(!genesis.to_toml().expect("toml").contains("load_test"));
        let plain_hash = genesis.hash().expect("hash");
        genesis.load_test = Some(LoadTestWallets {
            count: 3,
            balance: 5_000,
            seed: hex::encode([4u8; 32]),
        });
        assert_ne!(genesis.hash().expect("hash"), plain_hash);
        let text = genesis.to_toml().expect("toml");
        assert_eq!(Genesis::from_toml(&text).expect("parse"), genesis);
        let (ledger, _) = crate::Ledger::genesis(&genesis).expect("genesis");
        for index in 0..3 {
            let key = LoadTestWallets::key(&[4u8; 32], index);
            let account = ledger
                .account(&Address::from_public_key(&key.public_key()))
                .expect("a funded wallet");
            assert_eq!(account.balance, 5_000);
            assert_eq!(account.tier, KycTier::Class1);
        }
        assert_ne!(
            LoadTestWallets::key(&[4u8; 32], 0).public_key(),
            LoadTestWallets::key(&[4u8; 32], 1).public_key()
        );
        let mut too_many = genesis.clone();
        too_many.load_test = Some(LoadTestWallets {
            count: LOAD_TEST_WALLETS_MAX + 1,
            balance: 1,
            seed: hex::encode([4u8; 32]),
        });
        assert!(crate::Ledger::genesis(&too_many).is_err());
        let mut bad_seed = genesis;
        bad_seed.load_test = Some(LoadTestWallets {
            count: 1,
            balance: 1,
            seed: "abcd".into(),
        });
        assert!(crate::Ledger::genesis(&bad_seed).is_err());
    }
}
