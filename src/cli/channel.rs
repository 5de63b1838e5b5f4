//! `ccvm channel create | list | getinfo | fetch`: the node's channels, created through its
//! admin service and listed through `cscc`, and a channel's chain, read through `qscc` and
//! `cscc` as Fabric's `peer channel` commands read it, printed or written as they print and
//! write it.

use std::path::PathBuf;

use anyhow::{Context, bail};
use base64::Engine;
use clap::{Args, Subcommand};
use serde::Serialize;

use super::ClientArgs;
use super::lifecycle::TargetArgs;
use crate::config::DEFAULT_LISTEN;
use crate::node::{CSCC, QSCC};
use crate::proto::Message;
use crate::proto::common::{Block, BlockchainInfo};
use crate::proto::protos::ChannelQueryResponse;

#[derive(Subcommand)]
pub(super) enum ChannelCommand {
    /// Creates a channel whose members are the node's organizations and writes its genesis
    /// block, as `peer channel create` does (signed by an admin of the node's organization).
    Create(CreateArgs),
    /// The channels the node has, as `peer channel list` prints them.
    List(NodeArgs),
    /// The channel's height and the hashes of its last two blocks, as `peer channel getinfo`
    /// prints them.
    #[command(name = "getinfo")]
    GetInfo(TargetArgs),
    /// Writes one block of the channel to a file, as `peer channel fetch` does.
    Fetch(FetchArgs),
}

#[derive(Args)]
pub(super) struct CreateArgs {
    /// The channel's name: lowercase letters, digits, '.' and '-', starting with a letter.
    #[arg(short = 'c', long = "channelID")]
    channel: String,
    /// Where to write the genesis block; CHANNEL.block by default.
    #[arg(long = "outputBlock")]
    output: Option<PathBuf>,
    #[command(flatten)]
    node: NodeArgs,
}

/// The node a channel command talks to, and who signs.
#[derive(Args)]
pub(super) struct NodeArgs {
    /// The node's client address (Fabric's `CORE_PEER_ADDRESS`).
    #[arg(long, env = "CORE_PEER_ADDRESS", default_value = DEFAULT_LISTEN)]
    peer: String,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Args)]
pub(super) struct FetchArgs {
    /// `newest`, `oldest`, `config` or a block number.
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
        ChannelCommand::Create(args) => {
            let genesis = args
                .node
                .client
                .admin(&args.node.peer)
                .await?
                .create_channel(&args.channel)
                .await?;
            let output = args
                .output
                .unwrap_or_else(|| PathBuf::from(format!("{}.block", args.channel)));
            std::fs::write(&output, genesis)
                .with_context(|| format!("writing {}", output.display()))?;
            eprintln!(
                "created channel {}; its genesis block is in {}",
                args.channel,
                output.display()
            );
            Ok(())
        }
        ChannelCommand::List(args) => {
            let answer = args
                .client
                .client(&args.peer)
                .await?
                .query("", CSCC, vec![b"GetChannels".to_vec()], Default::default())
                .await?;
            let channels = ChannelQueryResponse::decode(answer.payload.as_slice())
                .context("cscc answered with no channel list")?;
            println!("Channels peers has joined: ");
            for channel in channels.channels {
                println!("{}", channel.channel_id);
            }
            Ok(())
        }
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
    let channel = target.channel.clone().into_bytes();
    let number = match args.which.as_str() {
        "oldest" => Some(0),
        "newest" => match chain_info(target).await?.height.checked_sub(1) {
            Some(newest) => Some(newest),
            None => bail!("channel {} has no block yet", target.channel),
        },
        "config" => None,
        number => Some(number.parse().with_context(|| {
            format!("{number:?} is not newest, oldest, config or a block number")
        })?),
    };
    let block = match number {
        Some(number) => {
            target
                .evaluate(
                    QSCC,
                    vec![
                        b"GetBlockByNumber".to_vec(),
                        channel,
                        number.to_string().into_bytes(),
                    ],
                )
                .await?
        }
        None => {
            target
                .evaluate(CSCC, vec![b"GetConfigBlock".to_vec(), channel])
                .await?
        }
    };
    let number = match number {
        Some(number) => number,
        None => Block::decode(block.as_slice())
            .context("cscc answered with no block")?
            .header
            .map_or(0, |header| header.number),
    };
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
