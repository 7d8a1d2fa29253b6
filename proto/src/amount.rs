//! Money amounts: an integer number of fen (0.01 CNY) in `u64`, shown and
//! typed by people in yuan (`12.34`). No floating point is ever involved.

use crate::error::AmountError;

/// Fen in one yuan.
pub const FEN_PER_YUAN: u64 = 100;

/// Parses a yuan amount such as `12`, `12.3` or `12.34` into fen. Rejects
/// signs, more than two decimals, separators, empty parts and overflow.
pub fn parse_yuan(text: &str) -> Result<u64, AmountError> {
    let invalid = || AmountError::Invalid(text.to_string());
    let (whole, fraction) = match text.split_once('.') {
        Some((whole, fraction)) => (whole, Some(fraction)),
        None => (text, None),
    };
    if whole.is_empty() || !whole.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    let mut fen: u64 = 0;
    for digit in whole.bytes() {
        fen = fen
            .checked_mul(10)
            .and_then(|value| value.checked_add(u64::from(digit - b'0')))
            .ok_or_else(|| AmountError::Overflow(text.to_string()))?;
    }
    fen = fen
        .checked_mul(FEN_PER_YUAN)
        .ok_or_else(|| AmountError::Overflow(text.to_string()))?;
    if let Some(fraction) = fraction {
        if fraction.is_empty()
            || fraction.len() > 2
            || !fraction.bytes().all(|b| b.is_ascii_digit())
        {
            return Err(invalid());
        }
        let mut cents = 0u64;
        for digit in fraction.bytes() {
            cents = cents * 10 + u64::from(digit - b'0');
        }
        if fraction.len() == 1 {
            cents *= 10;
        }
        fen = fen
            .checked_add(cents)
            .ok_or_else(|| AmountError::Overflow(text.to_string()))?;
    }
    Ok(fen)
}

/// Formats fen as yuan with two decimals, e.g. `1234` → `12.34`.
pub fn format_yuan(fen: u64) -> String {
    format!("{}.{:02}", fen / FEN_PER_YUAN, fen % FEN_PER_YUAN)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_the_usual_forms() {
        assert_eq!(parse_yuan("12"), Ok(1200));
        assert_eq!(parse_yuan("12.3"), Ok(1230));
        assert_eq!(parse_yuan("12.34"), Ok(1234));
        assert_eq!(parse_yuan("0.01"), Ok(1));
        assert_eq!(format_yuan(1234), "12.34");
        assert_eq!(format_yuan(5), "0.05");
    }

    #[test]
    fn rejects_what_a_person_might_mistype() {
        for text in [
            "", ".5", "1.", "1.234", "-1", "+1", "1,000", "1e3", "１２", " 1", "1.2.3",
        ] {
            assert!(
                matches!(parse_yuan(text), Err(AmountError::Invalid(_))),
                "{text:?} must be rejected"
            );
        }
        assert!(matches!(
            parse_yuan("184467440737095517"),
            Err(AmountError::Overflow(_))
        ));
    }

    proptest! {
        #[test]
        fn format_then_parse_is_identity(fen in any::<u64>()) {
            prop_assert_eq!(parse_yuan(&format_yuan(fen)), Ok(fen));
        }
    }
}
