//! `ccvm channel getinfo | fetch`: a channel's chain, read through `qscc` as Fabric's `peer
//! channel` commands read it, and printed or written as they print and write it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::lifecycle::TargetArgs;
use crate::node::QSCC;
use crate::proto::Message;
use crate::proto::common::BlockchainInfo;

#[derive(Subcommand)]
pub(super) enum ChannelCommand {
    /// The channel's height and the hashes of its last two blocks, as `peer channel getinfo`
    /// prints them.
    #[command(name = "getinfo")]
    GetInfo(TargetArgs),
    /// Writes one block of the channel to a file, as `peer channel fetch` does.
    Fetch(FetchArgs),
}

#[derive(Args)]
pub(super) struct FetchArgs {
    /// `newest`, `oldest` or a block number.
    which: String,
    /// The file to write; CHANNEL_WHICH.block by default.
    output: Option<PathBuf>,
    #[command(flatten)]
    target: TargetArgs,
}

/// `BlockchainInfo` as Fabric's CLI prints it: Go's JSON of the message, hashes in base64.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ChainInfo {
    #[serde(skip_serializing_if = "is_zero")]
    height: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    current_block_hash: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    previous_block_hash: String,
}

#[expect(
    clippy::trivially_copy_pass_by_ref,
    reason = "serde's skip_serializing_if passes a reference"
)]
fn is_zero(value: &u64) -> bool {
    *value == 0
}

pub(super) async fn run(command: ChannelCommand) -> anyhow::Result<()> {
    match command {
        ChannelCommand::GetInfo(target) => {
            let info = chain_info(&target).await?;
            let base64 = |hash: &[u8]| base64::engine::general_purpose::STANDARD.encode(hash);
            let printed = ChainInfo {
                height: info.height,
                current_block_hash: base64(&info.current_block_hash),
                previous_block_hash: base64(&info.previous_block_hash),
            };
            println!("Blockchain info: {}", serde_json::to_string(&printed)?);
            Ok(())
        }
        ChannelCommand::Fetch(args) => fetch(&args).await,
    }
}

async fn fetch(args: &FetchArgs) -> anyhow::Result<()> {
    let target = &args.target;
    let number = match args.which.as_str() {
        "oldest" => 0,
        "newest" => match chain_info(target).await?.height.checked_sub(1) {
            Some(newest) => newest,
            None => bail!("channel {} has no block yet", target.channel),
        },
        "config" => bail!(
            "channel {} has no configuration block: its chain starts with its first transaction",
            target.channel
        ),
        number => number.parse().with_context(|| {
            format!("{number:?} is not newest, oldest, config or a block number")
        })?,
    };
    let block = target
        .evaluate(
            QSCC,
            vec![
                b"GetBlockByNumber".to_vec(),
                target.channel.clone().into_bytes(),
                number.to_string().into_bytes(),
            ],
        )
        .await?;
    let output = args
        .output
        .clone()
        .unwrap_or_else(|| PathBuf::from(format!("{}_{}.block", target.channel, args.which)));
    std::fs::write(&output, block).with_context(|| format!("writing {}", output.display()))?;
    eprintln!("Received block: {number}");
    Ok(())
}

/// The channel's `BlockchainInfo`.
async fn chain_info(target: &TargetArgs) -> anyhow::Result<BlockchainInfo> {
    let payload = target
        .evaluate(
            QSCC,
            vec![
                b"GetChainInfo".to_vec(),
                target.channel.clone().into_bytes(),
            ],
        )
        .await?;
    BlockchainInfo::decode(payload.as_slice()).context("qscc answered with no chain info")
}
