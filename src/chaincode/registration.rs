//! Judging a chaincode's REGISTER: whether it may register under the name it gives, and its
//! handle in the registry if it may.

use std::sync::Arc;

use ccvm_proto::Message;
use ccvm_proto::protos::{ChaincodeId, ChaincodeMessage};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info};

use super::error::ChaincodeError;
use super::registry::HandlerHandle;
use super::support::ChaincodeSupport;
use super::tx_context::TxContexts;
use crate::container::OutboundMessages;

/// One connection's side of a registration: where its chaincode is reached and what the peer
/// knows about it.
pub(crate) struct Registrant<'a> {
    pub support: &'a ChaincodeSupport,
    pub outbound: &'a OutboundMessages,
    pub contexts: &'a Arc<TxContexts>,
    /// The name the peer launched the chaincode as, if it did (its launch is logged, so its
    /// registration is only logged at debug level).
    pub launched_as: Option<&'a str>,
    /// The common name of the chaincode's client certificate, if it showed one.
    pub authenticated_as: Option<&'a str>,
    /// Ends the chaincode when one of its transactions times out, for one running inside the
    /// peer.
    pub end_on_timeout: Option<&'a CancellationToken>,
    /// Cancelled when the chaincode is retired.
    pub retired: &'a CancellationToken,
}

impl Registrant<'_> {
    /// Judges the REGISTER `message` and registers its chaincode; returns the new handle, or why
    /// the chaincode may not register (then nothing is registered).
    pub fn register(&self, message: &ChaincodeMessage) -> Result<HandlerHandle, String> {
        let name = match ChaincodeId::decode(message.payload.as_slice()) {
            Ok(id) if !id.name.is_empty() => id.name,
            Ok(_) => return Err("REGISTER carries no chaincode name".to_owned()),
            Err(e) => return Err(format!("malformed REGISTER: {e}")),
        };
        let config = self.support.config();
        if config.require_client_certs
            && self.launched_as.is_none()
            && self.authenticated_as != Some(name.as_str())
        {
            let refusal = ChaincodeError::WrongCertificate {
                name,
                certificate: self.authenticated_as.map(str::to_owned),
            };
            return Err(refusal.to_string());
        }
        let launched = self.launched_as == Some(name.as_str()) || self.support.expects(&name);
        if !launched {
            if !config.dev_mode {
                return Err(ChaincodeError::NotLaunched { name }.to_string());
            }
            let chaincode = name.split_once(':').map_or(name.as_str(), |(name, _)| name);
            if self.support.launchable(chaincode) {
                return Err(ChaincodeError::Reserved { name }.to_string());
            }
        }
        let handle = HandlerHandle::new(
            name.clone(),
            self.outbound.clone(),
            Arc::clone(self.contexts),
        )
        .retired_through(self.retired.clone())
        .ended_on_timeout_by(self.end_on_timeout.cloned());
        if self.launched_as == Some(name.as_str()) {
            self.support.registry().join(handle.clone());
        } else {
            self.support
                .registry()
                .register(handle.clone())
                .map_err(|refusal| refusal.to_string())?;
        }
        if self.launched_as.is_some() {
            debug!(chaincode = %name, "chaincode registered");
        } else {
            info!(chaincode = %name, "chaincode registered");
        }
        Ok(handle)
    }
}
