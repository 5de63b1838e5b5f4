//! What a committed block says about its transactions: id, type, validation code and chaincode
//! events, read the way Fabric's event services read them.

use ccvm_proto::Message;
use ccvm_proto::common::{Block, BlockMetadataIndex, ChannelHeader, Envelope, Payload};
use ccvm_proto::protos::{
    ChaincodeAction, ChaincodeActionPayload, ChaincodeEvent, ProposalResponsePayload, Transaction,
    TxValidationCode,
};

/// One transaction of a block.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct BlockTx {
    pub tx_id: String,
    /// A `common.HeaderType`.
    pub header_type: i32,
    /// A `protos.TxValidationCode`.
    pub code: i32,
    /// The chaincode events of its actions, each with chaincode, name and transaction id.
    pub events: Vec<ChaincodeEvent>,
}

impl BlockTx {
    pub fn is_valid(&self) -> bool {
        self.code == TxValidationCode::Valid as i32
    }
}

/// The transactions of `block`, in order; an entry that cannot be read has an empty id and no
/// events.
pub(crate) fn transactions(block: &Block) -> Vec<BlockTx> {
    let codes = block
        .metadata
        .as_ref()
        .and_then(|m| {
            m.metadata
                .get(BlockMetadataIndex::TransactionsFilter as usize)
        })
        .cloned()
        .unwrap_or_default();
    let data = block
        .data
        .as_ref()
        .map(|d| d.data.as_slice())
        .unwrap_or_default();
    data.iter()
        .enumerate()
        .map(|(position, raw)| {
            let code = codes
                .get(position)
                .map_or(TxValidationCode::InvalidOtherReason as i32, |code| {
                    i32::from(*code)
                });
            read_transaction(raw, code)
        })
        .collect()
}

fn read_transaction(raw: &[u8], code: i32) -> BlockTx {
    let mut tx = BlockTx {
        tx_id: String::new(),
        header_type: 0,
        code,
        events: Vec::new(),
    };
    let Some(payload) = Envelope::decode(raw)
        .ok()
        .and_then(|envelope| Payload::decode(envelope.payload.as_slice()).ok())
    else {
        return tx;
    };
    let Some(header) = payload
        .header
        .as_ref()
        .and_then(|header| ChannelHeader::decode(header.channel_header.as_slice()).ok())
    else {
        return tx;
    };
    tx.tx_id = header.tx_id;
    tx.header_type = header.r#type;
    let actions = Transaction::decode(payload.data.as_slice())
        .map(|transaction| transaction.actions)
        .unwrap_or_default();
    tx.events = actions
        .iter()
        .filter_map(|action| {
            let payload = ChaincodeActionPayload::decode(action.payload.as_slice()).ok()?;
            let response = ProposalResponsePayload::decode(
                payload.action?.proposal_response_payload.as_slice(),
            )
            .ok()?;
            let action = ChaincodeAction::decode(response.extension.as_slice()).ok()?;
            let event = ChaincodeEvent::decode(action.events.as_slice()).ok()?;
            let complete = !event.chaincode_id.is_empty()
                && !event.event_name.is_empty()
                && !event.tx_id.is_empty();
            complete.then_some(event)
        })
        .collect();
    tx
}
