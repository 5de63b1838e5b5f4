//! Channels: the configuration a channel's configuration blocks carry, and the genesis
//! transaction that creates a channel.

mod config;

pub use config::{
    APPLICATION_GROUP, Batching, CONSENSUS_TYPE, ChannelConfig, ConfigError, ORDERER_GROUP,
    OrdererOrg, config_of_envelope, genesis_envelope,
};
