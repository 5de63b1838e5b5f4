//! Low-S ECDSA signatures: Fabric accepts a signature only when its S lies in the lower half of
//! the curve's order, so that each signature has one form. Signatures this node makes are
//! brought there; others are checked for it.

use std::sync::OnceLock;

use x509_parser::der_parser::der::{parse_der_integer, parse_der_sequence_defined_g};
use x509_parser::der_parser::error::BerResult;
use x509_parser::num_bigint::BigUint;

use super::identity::Curve;

/// The order of the curve's base point and half of it, computed once per curve.
fn order(curve: Curve) -> &'static (BigUint, BigUint) {
    static P256: OnceLock<(BigUint, BigUint)> = OnceLock::new();
    static P384: OnceLock<(BigUint, BigUint)> = OnceLock::new();
    let (cell, hex): (_, &[u8]) = match curve {
        Curve::P256 => (
            &P256,
            b"ffffffff00000000ffffffffffffffffbce6faada7179e84f3b9cac2fc632551",
        ),
        Curve::P384 => (
            &P384,
            b"ffffffffffffffffffffffffffffffffffffffffffffffffc7634d81f4372ddf581a0db248b0a77aecec196accc52973",
        ),
    };
    cell.get_or_init(|| {
        let order = BigUint::parse_bytes(hex, 16).unwrap_or_default();
        let half = order.clone() >> 1u32;
        (order, half)
    })
}

/// R and S of an ASN.1 DER ECDSA signature.
fn parse(signature: &[u8]) -> Option<(BigUint, BigUint)> {
    let parsed: BerResult<(BigUint, BigUint)> = parse_der_sequence_defined_g(|content, _| {
        let (rest, r) = parse_der_integer(content)?;
        let (rest, s) = parse_der_integer(rest)?;
        let unsigned = |object: &x509_parser::der_parser::ber::BerObject| {
            object.as_biguint().unwrap_or_default()
        };
        Ok((rest, (unsigned(&r), unsigned(&s))))
    })(signature);
    match parsed {
        Ok(([], values)) => Some(values),
        _ => None,
    }
}

/// Whether `signature` is a well-formed DER signature whose S is at most half the order.
pub(super) fn is_low_s(signature: &[u8], curve: Curve) -> bool {
    parse(signature).is_some_and(|(_, s)| s <= order(curve).1)
}

/// `signature` with S replaced by `order - S` when S is in the upper half; the same signature
/// for the same message, in Fabric's form.
pub(super) fn to_low_s(signature: Vec<u8>, curve: Curve) -> Vec<u8> {
    let Some((r, s)) = parse(&signature) else {
        return signature;
    };
    let (order, half) = order(curve);
    if s <= *half {
        return signature;
    }
    encode(&r, &(order - s))
}

/// DER `SEQUENCE { INTEGER r, INTEGER s }`; both fit the short length form for P-256 and P-384.
fn encode(r: &BigUint, s: &BigUint) -> Vec<u8> {
    let integer = |value: &BigUint| {
        let mut bytes = value.to_bytes_be();
        if bytes.first().is_some_and(|first| first & 0x80 != 0) {
            bytes.insert(0, 0);
        }
        let mut encoded = vec![0x02, u8::try_from(bytes.len()).unwrap_or(u8::MAX)];
        encoded.extend(bytes);
        encoded
    };
    let body = [integer(r), integer(s)].concat();
    let mut encoded = vec![0x30, u8::try_from(body.len()).unwrap_or(u8::MAX)];
    encoded.extend(body);
    encoded
}

/// `signature` with S replaced by `order - S`: the same signature in its other form.
#[cfg(test)]
pub(super) fn flip_s_for_tests(signature: &[u8], curve: Curve) -> Vec<u8> {
    let (r, s) = parse(signature).expect("a DER signature");
    encode(&r, &(&order(curve).0 - s))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_signature_and_its_high_s_twin_fold_to_one_form() {
        let low = encode(&BigUint::from(7u32), &BigUint::from(5u32));
        assert!(is_low_s(&low, Curve::P256));
        let high = flip_s_for_tests(&low, Curve::P256);
        assert!(!is_low_s(&high, Curve::P256));
        assert_eq!(to_low_s(high, Curve::P256), low);
        assert!(!is_low_s(b"not DER", Curve::P256));
    }
}
