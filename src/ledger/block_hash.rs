//! Block hashes as Fabric computes them, so that clients and tools that follow a chain by hash
//! (Fabric's SDKs, block explorers) agree with ccvm's blocks: the data hash is SHA-256 of the
//! transactions' bytes joined, and the header hash is SHA-256 of the DER encoding of the ASN.1
//! `SEQUENCE { number INTEGER, previousHash OCTET STRING, dataHash OCTET STRING }`.

use ccvm_proto::common::BlockHeader;
use sha2::{Digest, Sha256};

const DER_INTEGER: u8 = 0x02;
const DER_OCTET_STRING: u8 = 0x04;
const DER_SEQUENCE: u8 = 0x30;

/// The hash of a block's data: SHA-256 of its transactions, one after another.
pub(crate) fn data_hash(transactions: &[Vec<u8>]) -> Vec<u8> {
    let mut hasher = Sha256::new();
    for transaction in transactions {
        hasher.update(transaction);
    }
    hasher.finalize().to_vec()
}

/// The hash of a block, which the next block carries as its previous hash.
pub(crate) fn header_hash(header: &BlockHeader) -> Vec<u8> {
    Sha256::digest(header_der(header)).to_vec()
}

fn header_der(header: &BlockHeader) -> Vec<u8> {
    let mut body = Vec::with_capacity(80);
    der_unsigned_integer(&mut body, header.number);
    der_element(&mut body, DER_OCTET_STRING, &header.previous_hash);
    der_element(&mut body, DER_OCTET_STRING, &header.data_hash);
    let mut der = Vec::with_capacity(body.len() + 4);
    der_element(&mut der, DER_SEQUENCE, &body);
    der
}

/// A non-negative INTEGER: its big-endian bytes without leading zeros, with one zero byte added
/// when the top bit is set (DER integers are signed).
fn der_unsigned_integer(out: &mut Vec<u8>, value: u64) {
    let bytes = value.to_be_bytes();
    let first = bytes
        .iter()
        .position(|b| *b != 0)
        .unwrap_or(bytes.len() - 1);
    let mut content = Vec::with_capacity(9);
    if bytes[first] & 0x80 != 0 {
        content.push(0);
    }
    content.extend_from_slice(&bytes[first..]);
    der_element(out, DER_INTEGER, &content);
}

/// One element: its tag, its length (short form below 128, long form above), its content.
fn der_element(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let length = content.len();
    if length < 0x80 {
        out.push(length as u8);
    } else {
        let bytes = length.to_be_bytes();
        let first = bytes
            .iter()
            .position(|b| *b != 0)
            .unwrap_or(bytes.len() - 1);
        out.push(0x80 | (bytes.len() - first) as u8);
        out.extend_from_slice(&bytes[first..]);
    }
    out.extend_from_slice(content);
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;

    use super::*;

    fn header(number: u64, previous_hash: &[u8], data_hash: &[u8]) -> BlockHeader {
        BlockHeader {
            number,
            previous_hash: previous_hash.to_vec(),
            data_hash: data_hash.to_vec(),
        }
    }

    #[test]
    fn a_block_of_a_fabric_network_hashes_as_fabric_hashed_it() -> Result<(), base64::DecodeError> {
        let previous = STANDARD.decode("JJZLIU7NUrZu488klZQ1qXKCrotVFdqCRJV0BqPoas4=")?;
        let data = STANDARD.decode("SyjV20FFUsxhX9d0+s6rYNoZspWV3jL6/GlePRekkDk=")?;
        assert_eq!(
            STANDARD.encode(header_hash(&header(1, &previous, &data))),
            "PD+1AReN2lI4Rqan4AoaCHN5i4xsiggyCIMzIKSAixc="
        );
        Ok(())
    }

    #[test]
    fn integers_are_minimal_and_never_negative() {
        let integer = |value| {
            let mut out = Vec::new();
            der_unsigned_integer(&mut out, value);
            out
        };
        assert_eq!(integer(0), [0x02, 0x01, 0x00]);
        assert_eq!(integer(127), [0x02, 0x01, 0x7f]);
        assert_eq!(integer(128), [0x02, 0x02, 0x00, 0x80]);
        assert_eq!(integer(0x0102), [0x02, 0x02, 0x01, 0x02]);
        assert_eq!(
            integer(u64::MAX),
            [
                0x02, 0x09, 0x00, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
            ]
        );
    }

    #[test]
    fn long_contents_take_the_long_length_form() {
        let mut out = Vec::new();
        der_element(&mut out, DER_OCTET_STRING, &[7; 200]);
        assert_eq!(out[..3], [0x04, 0x81, 200]);
        assert_eq!(out.len(), 203);
    }

    #[test]
    fn the_first_block_has_an_empty_previous_hash() {
        let der = header_der(&header(0, &[], &[1; 32]));
        assert_eq!(
            der[..9],
            [0x30, 0x27, 0x02, 0x01, 0x00, 0x04, 0x00, 0x04, 0x20]
        );
    }
}
