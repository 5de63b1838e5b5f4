//! The `ccvm.Admin` Launch stream: launches a chaincode unless it runs and forwards the steps
//! its launch reports, ending with how it ended.

use std::pin::Pin;

use ccvm_proto::ccvm::LaunchEvent;
use ccvm_proto::ccvm::launch_event::Stage;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::Stream;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;

use crate::chaincode::ChaincodeSupport;
use crate::container::{LaunchEvent as Step, LaunchStage};

/// Events buffered towards a slow watcher; the launch does not wait for it.
const BUFFER: usize = 256;

/// The stream the Launch call answers with.
pub(super) type LaunchEvents = Pin<Box<dyn Stream<Item = Result<LaunchEvent, Status>> + Send>>;

fn event(stage: Stage, detail: impl Into<String>) -> LaunchEvent {
    LaunchEvent {
        stage: stage as i32,
        detail: detail.into(),
    }
}

fn stage_of(stage: LaunchStage) -> Stage {
    match stage {
        LaunchStage::Starting => Stage::Starting,
        LaunchStage::Building => Stage::Building,
        LaunchStage::BuildOutput => Stage::BuildOutput,
        LaunchStage::Creating => Stage::Creating,
        LaunchStage::Started => Stage::Started,
    }
}

/// Launches `name` (or joins its launch under way) and streams its steps.
pub(super) fn launch(support: ChaincodeSupport, name: String) -> LaunchEvents {
    let (events, watched) = mpsc::channel(BUFFER);
    if support.registry().get(&name).is_some() {
        let _ = events.try_send(Ok(event(Stage::Running, name)));
        return Box::pin(ReceiverStream::new(watched));
    }
    let mut steps = support.launch_progress().subscribe();
    tokio::spawn(async move {
        let forward = |step: Step| {
            if step.chaincode == name {
                let _ = events.try_send(Ok(event(stage_of(step.stage), step.detail)));
            }
        };
        let launching = support.launch(&name);
        tokio::pin!(launching);
        let result = loop {
            tokio::select! {
                biased;
                step = steps.recv() => match step {
                    Ok(step) => forward(step),
                    Err(broadcast::error::RecvError::Lagged(_)) => {}
                    Err(broadcast::error::RecvError::Closed) => break (&mut launching).await,
                },
                result = &mut launching => break result,
            }
        };
        while let Ok(step) = steps.try_recv() {
            forward(step);
        }
        let last = match result {
            Ok(handle) => event(Stage::Registered, handle.name()),
            Err(e) => event(Stage::Failed, e.to_string()),
        };
        let _ = events.send(Ok(last)).await;
    });
    Box::pin(ReceiverStream::new(watched))
}
