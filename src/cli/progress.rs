//! Progress on stderr while the node works: a first call to a chaincode may build its image and
//! start its container, which takes a moment. Nothing is drawn when stderr is not a terminal.

use std::io::IsTerminal;
use std::time::Duration;

use ccvm_proto::ccvm::launch_event::Stage;
use indicatif::{ProgressBar, ProgressStyle};

use crate::client::Admin;

/// A spinner saying `message`, with the time spent; clear it with `finish_and_clear`.
pub(super) fn spinner(message: String) -> ProgressBar {
    let bar = if std::io::stderr().is_terminal() {
        ProgressBar::new_spinner()
    } else {
        ProgressBar::hidden()
    };
    if let Ok(style) = ProgressStyle::with_template("{spinner} [{elapsed}] {wide_msg}") {
        bar.set_style(style);
    }
    bar.set_message(message);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

/// Launches the chaincode `name` on the node at `peer` unless it runs, showing each step (an
/// image build's output line by line) on a spinner; an error says why the launch failed, and the
/// caller gives up rather than wait for a second launch. A node that cannot say is not waited
/// for: a call that follows launches the chaincode itself.
pub(super) async fn launch(admin: anyhow::Result<Admin>, name: &str) -> Result<(), String> {
    let Ok(mut admin) = admin else {
        return Ok(());
    };
    let Ok(mut events) = admin.launch(name).await else {
        return Ok(());
    };
    let mut outcome = Ok(());
    let bar = spinner(format!("launching {name}"));
    while let Ok(Some(event)) = events.message().await {
        let detail = event.detail;
        match Stage::try_from(event.stage) {
            Ok(Stage::Starting) => bar.set_message(format!("launching {detail}")),
            Ok(Stage::Building) => bar.set_message(format!("building the image of {name}")),
            Ok(Stage::BuildOutput) => {
                if detail.starts_with("Step ") {
                    bar.println(format!("  {detail}"));
                }
                bar.set_message(format!("building: {detail}"));
            }
            Ok(Stage::Creating) => bar.set_message(format!("creating the container of {name}")),
            Ok(Stage::Started) => bar.set_message(format!("waiting for {name} to register")),
            Ok(Stage::Failed) => {
                outcome = Err(detail);
                break;
            }
            Ok(Stage::Registered | Stage::Running) | Err(_) => break,
        }
    }
    bar.finish_and_clear();
    outcome
}
