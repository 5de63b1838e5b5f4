//! Container and image names, as Fabric's Docker VM forms them.

use sha2::{Digest, Sha256};

/// Replaces every character Docker does not take in a name (`[^a-zA-Z0-9-_.]`) with `-`.
pub fn sanitize(name: &str) -> String {
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// `NETWORKID-PEERID-CCID`, leaving out empty parts.
fn qualified(network_id: &str, peer_id: &str, ccid: &str) -> String {
    [network_id, peer_id, ccid]
        .iter()
        .filter(|part| !part.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("-")
}

/// The container of chaincode `ccid` (its package id) on this peer.
pub fn container_name(network_id: &str, peer_id: &str, ccid: &str) -> String {
    sanitize(&qualified(network_id, peer_id, ccid))
}

/// The image of chaincode `ccid`: the sanitized name and the hex SHA-256 of the name, lowercased
/// (image names may not hold capitals).
pub fn image_name(network_id: &str, peer_id: &str, ccid: &str) -> String {
    let name = qualified(network_id, peer_id, ccid);
    let hash = hex::encode(Sha256::digest(name.as_bytes()));
    format!("{}-{hash}", sanitize(&name)).to_lowercase()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_follow_fabrics_rules() {
        assert_eq!(sanitize("basic_1.0:ab/cd ef"), "basic_1.0-ab-cd-ef");
        assert_eq!(
            container_name("dev", "peer0", "basic_1.0:abc"),
            "dev-peer0-basic_1.0-abc"
        );
        let image = image_name("dev", "Peer0", "Basic:abc");
        let hash = hex::encode(Sha256::digest(b"dev-Peer0-Basic:abc"));
        assert_eq!(image, format!("dev-peer0-basic-abc-{hash}"));
        assert_eq!(container_name("", "", "cc:1"), "cc-1");
    }
}
