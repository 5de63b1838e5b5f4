//! Conventions of Fabric's transaction protocol that a client and the peer share, so that both
//! compute them the same way: how a transaction id is derived, which chaincode statuses are
//! errors, and how an endorsed proposal becomes a transaction.

use ccvm_proto::Message;
use ccvm_proto::common::{Header, Payload};
use ccvm_proto::protos::{
    ChaincodeActionPayload, ChaincodeEndorsedAction, Endorsement, Transaction, TransactionAction,
};
use sha2::{Digest, Sha256};

/// The largest gRPC message a peer and its clients send or accept by default (Fabric's
/// `peer.maxRecvMsgSize` and `peer.maxSendMsgSize`).
pub const DEFAULT_MAX_GRPC_MESSAGE_BYTES: usize = 100 * 1024 * 1024;

/// Chaincode statuses from here up are errors and are not endorsed (Fabric's `ERRORTHRESHOLD`).
pub const ERROR_THRESHOLD: i32 = 400;

/// Fabric's transaction id: hex SHA-256 of the nonce followed by the serialized creator.
pub fn compute_tx_id(nonce: &[u8], creator: &[u8]) -> String {
    let mut hasher = Sha256::new();
    hasher.update(nonce);
    hasher.update(creator);
    hex::encode(hasher.finalize())
}

/// Fabric's proposal hash, which an endorsement's response payload carries: SHA-256 over the
/// channel header, the signature header and the proposal payload without its transient data.
pub fn proposal_hash(
    channel_header: &[u8],
    signature_header: &[u8],
    payload_without_transient: &[u8],
) -> Vec<u8> {
    let mut hasher = Sha256::new();
    hasher.update(channel_header);
    hasher.update(signature_header);
    hasher.update(payload_without_transient);
    hasher.finalize().to_vec()
}

/// The payload of the transaction that carries an endorsed proposal: the proposal's `header`,
/// its payload without transient data, and the endorsers' common response payload with their
/// endorsements. Its creator signs the encoded payload into the envelope.
pub fn endorsed_transaction(
    header: Header,
    payload_without_transient: Vec<u8>,
    proposal_response_payload: Vec<u8>,
    endorsements: Vec<Endorsement>,
) -> Payload {
    let action = ChaincodeActionPayload {
        chaincode_proposal_payload: payload_without_transient,
        action: Some(ChaincodeEndorsedAction {
            proposal_response_payload,
            endorsements,
        }),
    };
    let transaction = Transaction {
        actions: vec![TransactionAction {
            header: header.signature_header.clone(),
            payload: action.encode_to_vec(),
        }],
    };
    Payload {
        header: Some(header),
        data: transaction.encode_to_vec(),
    }
}
