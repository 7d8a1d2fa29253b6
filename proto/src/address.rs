//! Account addresses: 20 bytes derived once from an account's first auth key,
//! shown as checksummed bech32m text with the prefix `yu` (e.g.
//! `yu1qxy…`). The address stays when the key is rotated.

use std::fmt;
use std::str::FromStr;

use bech32::primitives::decode::CheckedHrpstring;
use bech32::{Bech32m, Hrp};

use crate::error::AddressError;
use crate::hash::Domain;
use crate::keys::PublicKey;

/// The human-readable prefix of yuchain addresses.
pub const ADDRESS_PREFIX: &str = "yu";

/// Length of an address in bytes.
pub const ADDRESS_LENGTH: usize = 20;

/// A 20-byte account address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Address(pub [u8; ADDRESS_LENGTH]);

impl Address {
    /// The address of an account whose first key is `public_key`.
    pub fn from_public_key(public_key: &PublicKey) -> Address {
        Address::derive(&public_key.0)
    }

    /// The address of a system account (such as the fee account) named by a
    /// fixed label; no key hashes to it in practice.
    pub fn system(label: &str) -> Address {
        let mut bytes = Vec::with_capacity(7 + label.len());
        bytes.extend_from_slice(b"system:");
        bytes.extend_from_slice(label.as_bytes());
        Address::derive(&bytes)
    }

    fn derive(bytes: &[u8]) -> Address {
        let hash = Domain::Address.hash(bytes);
        let mut address = [0u8; ADDRESS_LENGTH];
        address.copy_from_slice(&hash.0[..ADDRESS_LENGTH]);
        Address(address)
    }

    /// Parses exactly 20 bytes.
    pub fn from_slice(bytes: &[u8]) -> Result<Address, AddressError> {
        <[u8; ADDRESS_LENGTH]>::try_from(bytes)
            .map(Address)
            .map_err(|_| AddressError::Length(bytes.len()))
    }

    /// The address bytes.
    pub fn as_bytes(&self) -> &[u8; ADDRESS_LENGTH] {
        &self.0
    }
}

fn prefix() -> Hrp {
    // The constant is a valid prefix; `Hrp::parse_unchecked` skips the check.
    Hrp::parse_unchecked(ADDRESS_PREFIX)
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        bech32::encode_to_fmt::<Bech32m, _>(f, prefix(), &self.0).map_err(|_| fmt::Error)
    }
}

impl fmt::Debug for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{self}")
    }
}

impl FromStr for Address {
    type Err = AddressError;

    fn from_str(text: &str) -> Result<Address, AddressError> {
        let checked = CheckedHrpstring::new::<Bech32m>(text)
            .map_err(|error| AddressError::Text(error.to_string()))?;
        if checked.hrp() != prefix() {
            return Err(AddressError::Prefix(checked.hrp().to_string()));
        }
        let bytes: Vec<u8> = checked.byte_iter().collect();
        Address::from_slice(&bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::SigningKey;
    use proptest::prelude::*;

    #[test]
    fn text_form_round_trips_and_has_the_prefix() {
        let address = Address::from_public_key(&SigningKey::for_test("alice").public_key());
        let text = address.to_string();
        assert!(text.starts_with("yu1"), "{text}");
        assert_eq!(text.parse::<Address>().expect("parse"), address);
        assert_eq!(
            text.to_uppercase().parse::<Address>().expect("upper"),
            address
        );
    }

    #[test]
    fn a_typo_is_caught_by_the_checksum() {
        let text = Address::system("fees").to_string();
        let mut chars: Vec<char> = text.chars().collect();
        let last = chars.len() - 3;
        chars[last] = if chars[last] == 'q' { 'p' } else { 'q' };
        let typo: String = chars.into_iter().collect();
        assert!(matches!(
            typo.parse::<Address>(),
            Err(AddressError::Text(_))
        ));
    }

    #[test]
    fn other_prefixes_and_lengths_are_rejected() {
        let other =
            bech32::encode::<Bech32m>(Hrp::parse("bc").expect("hrp"), &[0u8; 20]).expect("encode");
        assert!(matches!(
            other.parse::<Address>(),
            Err(AddressError::Prefix(_))
        ));
        let short = bech32::encode::<Bech32m>(prefix(), &[0u8; 19]).expect("encode");
        assert!(matches!(
            short.parse::<Address>(),
            Err(AddressError::Length(19))
        ));
        assert!("".parse::<Address>().is_err());
    }

    proptest! {
        #[test]
        fn any_address_round_trips(bytes in any::<[u8; 20]>()) {
            let address = Address(bytes);
            prop_assert_eq!(address.to_string().parse::<Address>().ok(), Some(address));
        }
    }
}
