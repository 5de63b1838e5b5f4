//! The node's channels: each one's configuration, read from its latest configuration block,
//! and what follows from it: who may do what on the channel, and how its transactions are
//! ordered into blocks and validated.

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use ccvm_proto::Message;
use ccvm_proto::common::{Block, Envelope};
use tracing::{info, warn};

use tokio_util::task::TaskTracker;

use super::access::Access;
use super::committer::{BlockCutter, BlockCutting, CutterParts, OnRedefined};
use crate::channel::{ChannelConfig, ConfigError, config_of_envelope, genesis_envelope};
use crate::ledger::{Ledger, LedgerError};
use crate::msp::{MspError, OwnSignatures};
use crate::sync::{read, write};
use crate::validation::{TxValidator, ValidationState};

/// Most characters in a channel name, as Fabric allows.
pub const MAX_CHANNEL_NAME_CHARS: usize = 249;

/// Why a channel could not be created or read.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChannelError {
    /// The name is not one Fabric accepts.
    #[error(
        "channel name {0:?} is invalid: it must start with a lowercase letter, hold only lowercase letters, digits, '.' and '-', and have at most {MAX_CHANNEL_NAME_CHARS} characters"
    )]
    InvalidName(String),
    /// The ledger failed, or has the channel already.
    #[error(transparent)]
    Ledger(#[from] LedgerError),
    /// The channel's configuration block cannot be used.
    #[error("channel {channel}: {source}")]
    Config {
        /// The channel.
        channel: String,
        /// What is wrong with its configuration.
        source: ConfigError,
    },
    /// An organization of the channel's configuration cannot be trusted as given.
    #[error("channel {channel}: {source}")]
    Msp {
        /// The channel.
        channel: String,
        /// What is wrong with the organization.
        source: MspError,
    },
}

/// One channel as the node serves it.
pub(crate) struct Channel {
    /// Its configuration.
    pub config: ChannelConfig,
    /// Its organizations, policies and ACLs, applied to signed requests.
    pub access: Arc<Access>,
    /// Orders its transactions into blocks and commits them.
    pub cutter: BlockCutter,
}

/// What every channel's access and validation share: the node's organization, whether messages
/// must be bound to the client's TLS certificate, and what validation reads.
pub(crate) struct ChannelContext {
    /// The MSP id of the node's organization.
    pub local_msp_id: String,
    /// Messages must carry the hash of the client's TLS certificate.
    pub tls_binding: bool,
    /// The endorsements the node made itself.
    pub own_signatures: Arc<OwnSignatures>,
    /// Committed state, as validation reads it.
    pub state: Arc<dyn ValidationState>,
    /// Told the chaincodes whose new definitions a block committed.
    pub on_redefined: OnRedefined,
    /// Where each channel's block cutter runs.
    pub tasks: TaskTracker,
}

/// The node's channels by name.
pub(crate) struct Channels {
    ledger: Ledger,
    context: ChannelContext,
    /// The configuration of a new channel, and of a channel created before channels had
    /// configuration blocks: the node's organizations and settings.
    template: ChannelConfig,
    by_name: RwLock<HashMap<String, Arc<Channel>>>,
}

impl Channels {
    /// Reads the configuration of every channel in `ledger`.
    ///
    /// # Errors
    /// A channel whose configuration block cannot be read or used.
    pub fn open(
        ledger: Ledger,
        context: ChannelContext,
        template: ChannelConfig,
    ) -> Result<Self, ChannelError> {
        let channels = Self {
            ledger,
            context,
            template,
            by_name: RwLock::default(),
        };
        for name in channels.ledger.channels()? {
            let config = channels.stored_config(&name)?;
            let channel = channels.serve(&name, config)?;
            write(&channels.by_name).insert(name, channel);
        }
        Ok(channels)
    }

    /// The channel named `name`, if the node has it.
    pub fn get(&self, name: &str) -> Option<Arc<Channel>> {
        read(&self.by_name).get(name).cloned()
    }

    /// Creates channel `name` with the node's organizations and settings, and answers its
    /// block 0, which holds the configuration transaction.
    ///
    /// # Errors
    /// [`ChannelError::InvalidName`], or [`LedgerError::ChannelExists`] for a channel the node
    /// has.
    pub fn create(&self, name: &str) -> Result<Block, ChannelError> {
        check_name(name)?;
        let genesis = genesis_envelope(name, &self.template.to_proto());
        let channel = self.serve(name, self.template.clone())?;
        self.ledger.create_channel(name, &genesis)?;
        write(&self.by_name).insert(name.to_owned(), channel);
        info!(%name, "created channel");
        Ok(self.ledger.block(name, 0)?)
    }

    /// The configuration in the channel's latest configuration block, or the template for a
    /// channel created without one.
    fn stored_config(&self, name: &str) -> Result<ChannelConfig, ChannelError> {
        let Some(number) = self.ledger.last_config(name)? else {
            warn!(
                channel = %name,
                "the channel has no configuration block: it is served with the node's organizations and settings"
            );
            return Ok(self.template.clone());
        };
        let invalid = |source: ConfigError| ChannelError::Config {
            channel: name.to_owned(),
            source,
        };
        let block = self.ledger.block(name, number)?;
        let envelope = block
            .data
            .and_then(|data| data.data.into_iter().next())
            .ok_or_else(|| {
                invalid(ConfigError::NotConfig(format!(
                    "block {number} holds no transaction"
                )))
            })?;
        let envelope = Envelope::decode(envelope.as_slice()).map_err(|_| {
            invalid(ConfigError::NotConfig(format!(
                "the transaction of block {number} does not decode"
            )))
        })?;
        let config = config_of_envelope(&envelope).map_err(invalid)?;
        ChannelConfig::from_proto(&config).map_err(invalid)
    }

    /// The channel as served under `config`.
    fn serve(&self, name: &str, config: ChannelConfig) -> Result<Arc<Channel>, ChannelError> {
        let access = Access::of_channel(
            &config,
            &self.context.local_msp_id,
            self.context.tls_binding,
        )
        .map_err(|source| ChannelError::Msp {
            channel: name.to_owned(),
            source,
        })?;
        let validator = TxValidator::new(
            Arc::clone(&access.trust),
            Arc::clone(&self.context.own_signatures),
            Arc::clone(&access.policies),
            Arc::clone(&self.context.state),
        );
        let cutter = BlockCutter::start(
            CutterParts {
                channel: name.to_owned(),
                ledger: self.ledger.clone(),
                validator: Arc::new(validator),
                cutting: BlockCutting::of(&config.batching),
                on_redefined: Arc::clone(&self.context.on_redefined),
            },
            &self.context.tasks,
        );
        Ok(Arc::new(Channel {
            config,
            access: Arc::new(access),
            cutter,
        }))
    }
}

/// Checks a channel name as Fabric does: `[a-z][a-z0-9.-]*`, at most
/// [`MAX_CHANNEL_NAME_CHARS`] characters.
fn check_name(name: &str) -> Result<(), ChannelError> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|first| first.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '.' || c == '-')
        && name.len() <= MAX_CHANNEL_NAME_CHARS;
    if valid {
        Ok(())
    } else {
        Err(ChannelError::InvalidName(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn channel_names_follow_fabric() {
        for good in ["mychannel", "a", "ch-1.test"] {
            assert!(check_name(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "MyChannel",
            "1channel",
            "my_channel",
            "my channel",
            &"a".repeat(250),
        ] {
            let refused = check_name(bad).unwrap_err();
            assert!(
                refused
                    .to_string()
                    .contains("must start with a lowercase letter"),
                "{bad}: {refused}"
            );
        }
    }
}
