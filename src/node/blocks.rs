//! The block store as the query and configuration system chaincodes read it, through the
//! inproc VM's `ledger` interface.

use ccvm_proto::Refusal;
use prost::Message;

use crate::container::inproc::BlockStore;
use crate::ledger::Ledger;

/// The ledger's block store, answering with encoded protobuf messages.
pub(super) struct LedgerBlocks(pub Ledger);

impl BlockStore for LedgerBlocks {
    fn chain_info(&self, channel: &str) -> Result<Vec<u8>, String> {
        self.0
            .chain_info(channel)
            .map(|info| info.encode_to_vec())
            .map_err(|e| e.for_chaincode())
    }

    fn block_by_number(&self, channel: &str, number: u64) -> Result<Vec<u8>, String> {
        self.0
            .block(channel, number)
            .map(|block| block.encode_to_vec())
            .map_err(|e| e.for_chaincode())
    }

    fn block_by_hash(&self, channel: &str, hash: &[u8]) -> Result<Vec<u8>, String> {
        self.0
            .block_by_hash(channel, hash)
            .map(|block| block.encode_to_vec())
            .map_err(|e| e.for_chaincode())
    }

    fn block_by_tx_id(&self, channel: &str, tx_id: &str) -> Result<Vec<u8>, String> {
        self.0
            .block_by_tx_id(channel, tx_id)
            .map(|block| block.encode_to_vec())
            .map_err(|e| e.for_chaincode())
    }

    fn transaction_by_id(&self, channel: &str, tx_id: &str) -> Result<Vec<u8>, String> {
        self.0
            .transaction(channel, tx_id)
            .map(|processed| processed.encode_to_vec())
            .map_err(|e| e.for_chaincode())
    }

    fn channels(&self) -> Result<Vec<String>, String> {
        self.0.channels().map_err(|e| e.for_chaincode())
    }

    fn config_block(&self, channel: &str) -> Result<Vec<u8>, String> {
        self.0.chain_info(channel).map_err(|e| e.for_chaincode())?;
        let number = self
            .0
            .last_config(channel)
            .map_err(|e| e.for_chaincode())?
            .ok_or_else(|| {
                Refusal::NotFound.with(format!("channel {channel} has no configuration block"))
            })?;
        self.block_by_number(channel, number)
    }
}
