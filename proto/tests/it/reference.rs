//! ZIP-215 written straight from the spec on curve25519-dalek, independent of
//! ed25519-zebra, and the point and scalar facts the vectors are about.

use curve25519_dalek::edwards::{CompressedEdwardsY, EdwardsPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::IsIdentity;
use sha2::{Digest, Sha512};

/// Where a point lives in the group of order 8·L.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Order {
    /// In the 8-torsion subgroup (order 1, 2, 4 or 8).
    Small,
    /// A torsion component and a prime-order component.
    Mixed,
    /// In the prime-order subgroup (order L).
    Prime,
}

/// Splits a signature into the bytes of R and of s.
pub(crate) fn split(signature: &[u8; 64]) -> ([u8; 32], [u8; 32]) {
    let mut r = [0u8; 32];
    let mut s = [0u8; 32];
    r.copy_from_slice(&signature[..32]);
    s.copy_from_slice(&signature[32..]);
    (r, s)
}

/// The order class of the point `encoding` decodes to, if it decodes.
pub(crate) fn order(encoding: &[u8; 32]) -> Option<Order> {
    let point = CompressedEdwardsY(*encoding).decompress()?;
    Some(if point.is_small_order() {
        Order::Small
    } else if point.is_torsion_free() {
        Order::Prime
    } else {
        Order::Mixed
    })
}

/// The exact order of a small-order point (1, 2, 4 or 8).
pub(crate) fn small_order(encoding: &[u8; 32]) -> Option<u32> {
    let mut multiple = CompressedEdwardsY(*encoding).decompress()?;
    let mut order = 1;
    while order <= 8 {
        if multiple.is_identity() {
            return Some(order);
        }
        multiple = multiple + multiple;
        order *= 2;
    }
    None
}

/// The point an encoding decodes to.
pub(crate) fn point(encoding: &[u8; 32]) -> Option<EdwardsPoint> {
    CompressedEdwardsY(*encoding).decompress()
}

/// Whether `encoding` decodes and is the canonical encoding of its point
/// (y < p, and no sign bit on x = 0).
pub(crate) fn is_canonical_point(encoding: &[u8; 32]) -> bool {
    point(encoding).is_some_and(|point| point.compress().0 == *encoding)
}

/// Whether `bytes` is a canonical scalar, i.e. less than L.
pub(crate) fn is_canonical_scalar(bytes: &[u8; 32]) -> bool {
    Scalar::from_canonical_bytes(*bytes).is_some().into()
}

/// k = SHA-512(R ‖ A ‖ M) over the bytes as given, reduced mod L.
fn challenge(r_bytes: &[u8; 32], public_key: &[u8; 32], message: &[u8]) -> Scalar {
    Scalar::from_hash(
        Sha512::new()
            .chain_update(r_bytes)
            .chain_update(public_key)
            .chain_update(message),
    )
}

/// [s]B − [k]A − R, or `None` if A or R does not decode or s is not
/// canonical.
fn residue(public_key: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> Option<EdwardsPoint> {
    let (r_bytes, s_bytes) = split(signature);
    let a = point(public_key)?;
    let r = point(&r_bytes)?;
    let s = Option::<Scalar>::from(Scalar::from_canonical_bytes(s_bytes))?;
    let k = challenge(&r_bytes, public_key, message);
    Some(EdwardsPoint::vartime_double_scalar_mul_basepoint(&k, &-a, &s) - r)
}

/// ZIP-215: A and R are any encodings that decode to curve points (canonical
/// or not, any order); s must be canonical (s < L); k is hashed over the
/// encodings as given; and the cofactored equation [8][s]B = [8]R + [8][k]A
/// must hold.
pub(crate) fn zip215_valid(public_key: &[u8; 32], signature: &[u8; 64], message: &[u8]) -> bool {
    residue(public_key, signature, message).is_some_and(|p| p.mul_by_cofactor().is_identity())
}

/// The cofactorless equation [s]B = R + [k]A under the same decoding rules:
/// not the consensus rule, shown for contrast in the verdict table.
pub(crate) fn cofactorless_valid(
    public_key: &[u8; 32],
    signature: &[u8; 64],
    message: &[u8],
) -> bool {
    residue(public_key, signature, message).is_some_and(|p| p.is_identity())
}
