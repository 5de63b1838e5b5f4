//! Logging as a Fabric operator knows it: a spec in Fabric's syntax (`FABRIC_LOGGING_SPEC`,
//! `[logger[,logger...]=]level[:...]`, e.g. `ccvm.chaincode=debug:info`), plain or JSON lines
//! (`FABRIC_LOGGING_FORMAT=json`), colour only on a terminal, and a spec that can be changed
//! while the process runs (the operations endpoint's `/logspec`).
//!
//! A logger name is a tracing target with `.` between its parts instead of `::` (`ccvm.node`
//! is `ccvm::node`, `h2` is `h2`), and covers the targets beneath it.

use std::io::IsTerminal;
use std::sync::{Mutex, OnceLock};

use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Registry, reload};

/// The spec when none is given.
pub const DEFAULT_SPEC: &str = "info";

/// Why a spec was refused, in Fabric's words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LogSpecError {
    /// A segment is neither a level nor `loggers=level`.
    #[error("invalid logging specification '{spec}': bad segment '{segment}'")]
    BadSegment {
        /// The whole spec.
        spec: String,
        /// The segment.
        segment: String,
    },
    /// A segment names no logger before its `=`.
    #[error("invalid logging specification '{spec}': no logger specified in segment '{segment}'")]
    NoLogger {
        /// The whole spec.
        spec: String,
        /// The segment.
        segment: String,
    },
    /// A logger name holds characters a target cannot.
    #[error("invalid logging specification '{spec}': bad logger name '{name}'")]
    BadLoggerName {
        /// The whole spec.
        spec: String,
        /// The name.
        name: String,
    },
}

/// Levels in Fabric's names, as tracing's; Fabric accepts each all lower or all upper case.
fn level(text: &str) -> Option<&'static str> {
    let lower = text.to_ascii_lowercase();
    if text != lower && text != text.to_ascii_uppercase() {
        return None;
    }
    Some(match lower.as_str() {
        "payload" | "debug" => "debug",
        "info" | "notice" => "info",
        "warn" | "warning" => "warn",
        "error" | "critical" | "dpanic" | "panic" | "fatal" => "error",
        _ => return None,
    })
}

fn valid_logger(name: &str) -> bool {
    let name = name.strip_suffix('.').unwrap_or(name);
    !name.is_empty()
        && name.replace("::", ".").split('.').all(|part| {
            !part.is_empty()
                && part
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "_#-".contains(c))
        })
}

/// A parsed spec: the default level and each logger's, in the order given.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogSpec {
    default: &'static str,
    loggers: Vec<(String, &'static str)>,
}

impl LogSpec {
    /// Parses a spec in Fabric's syntax; an empty segment means `info`, and the last bare level
    /// is the default.
    ///
    /// # Errors
    /// [`LogSpecError`] naming the segment or logger that is wrong.
    pub fn parse(spec: &str) -> Result<Self, LogSpecError> {
        let mut parsed = Self {
            default: "info",
            loggers: Vec::new(),
        };
        for segment in spec.split(':') {
            let bad = || LogSpecError::BadSegment {
                spec: spec.to_owned(),
                segment: segment.to_owned(),
            };
            match segment.split_once('=') {
                None if segment.is_empty() => parsed.default = "info",
                None => parsed.default = level(segment).ok_or_else(bad)?,
                Some((names, level_text)) => {
                    if names.is_empty() {
                        return Err(LogSpecError::NoLogger {
                            spec: spec.to_owned(),
                            segment: segment.to_owned(),
                        });
                    }
                    let level = level(level_text).ok_or_else(bad)?;
                    for name in names.split(',') {
                        if !valid_logger(name) {
                            return Err(LogSpecError::BadLoggerName {
                                spec: spec.to_owned(),
                                name: name.to_owned(),
                            });
                        }
                        let target = name.trim_end_matches('.').replace('.', "::");
                        parsed.loggers.retain(|(known, _)| *known != target);
                        parsed.loggers.push((target, level));
                    }
                }
            }
        }
        Ok(parsed)
    }

    /// The spec in Fabric's canonical form: loggers sorted, then the default level.
    pub fn canonical(&self) -> String {
        let mut loggers: Vec<String> = self
            .loggers
            .iter()
            .map(|(name, level)| format!("{}={level}", name.replace("::", ".")))
            .collect();
        loggers.sort();
        loggers.push(self.default.to_owned());
        loggers.join(":")
    }

    /// The spec as tracing's filter.
    fn filter(&self) -> EnvFilter {
        let mut directives = vec![self.default.to_owned()];
        directives.extend(
            self.loggers
                .iter()
                .map(|(target, level)| format!("{target}={level}")),
        );
        EnvFilter::new(directives.join(","))
    }
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines; coloured only when stderr is a terminal.
    Text,
    /// One JSON object per line.
    Json,
}

impl LogFormat {
    /// `json` (any case) is [`LogFormat::Json`]; anything else is text.
    pub fn from_name(name: &str) -> Self {
        if name.eq_ignore_ascii_case("json") {
            Self::Json
        } else {
            Self::Text
        }
    }
}

/// The running process's log filter, which can be changed while it runs.
pub struct LogControl {
    handle: reload::Handle<EnvFilter, Registry>,
    spec: Mutex<LogSpec>,
}

impl LogControl {
    /// The spec in force, in Fabric's canonical form.
    pub fn spec(&self) -> String {
        self.spec
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .canonical()
    }

    /// Puts `spec` in force at once.
    ///
    /// # Errors
    /// A spec that does not parse; the one in force stays.
    pub fn set(&self, spec: &str) -> Result<(), LogSpecError> {
        let parsed = LogSpec::parse(spec)?;
        let mut current = self
            .spec
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The subscriber outlives every handle, so the reload cannot fail.
        let _ = self.handle.reload(parsed.filter());
        *current = parsed;
        Ok(())
    }
}

static CONTROL: OnceLock<LogControl> = OnceLock::new();

/// Installs this process's logging to stderr with `spec` and `format`, once; later calls leave
/// it as it is.
///
/// # Errors
/// A spec that does not parse.
pub fn install(spec: &str, format: LogFormat) -> Result<(), LogSpecError> {
    let parsed = LogSpec::parse(spec)?;
    CONTROL.get_or_init(|| {
        let (filter, handle) = reload::Layer::new(parsed.filter());
        let ansi = std::io::stderr().is_terminal();
        let registry = tracing_subscriber::registry().with(filter);
        let _ = match format {
            LogFormat::Text => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .with_writer(std::io::stderr)
                        .with_ansi(ansi),
                )
                .try_init(),
            LogFormat::Json => registry
                .with(
                    tracing_subscriber::fmt::layer()
                        .json()
                        .with_writer(std::io::stderr),
                )
                .try_init(),
        };
        LogControl {
            handle,
            spec: Mutex::new(parsed),
        }
    });
    Ok(())
}

/// The process's log control, when [`install`] has run.
pub fn control() -> Option<&'static LogControl> {
    CONTROL.get()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fabric_specs_parse_to_their_canonical_form() {
        assert_eq!(LogSpec::parse("info").unwrap().canonical(), "info");
        assert_eq!(
            LogSpec::parse("grpc=debug:info").unwrap().canonical(),
            "grpc=debug:info"
        );
        assert_eq!(
            LogSpec::parse("ccvm.node,h2=WARNING:ccvm.ledger=debug:error")
                .unwrap()
                .canonical(),
            "ccvm.ledger=debug:ccvm.node=warn:h2=warn:error"
        );
        assert_eq!(LogSpec::parse("debug:").unwrap().canonical(), "info");
        assert_eq!(
            LogSpec::parse("ccvm.chaincode=debug")
                .unwrap()
                .filter()
                .to_string(),
            "ccvm::chaincode=debug,info"
        );
    }

    #[test]
    fn bad_specs_are_refused_in_fabrics_words() {
        let refused = |spec: &str| LogSpec::parse(spec).unwrap_err().to_string();
        assert_eq!(
            refused("grpc=loud"),
            "invalid logging specification 'grpc=loud': bad segment 'grpc=loud'"
        );
        assert_eq!(
            refused("Info"),
            "invalid logging specification 'Info': bad segment 'Info'"
        );
        assert_eq!(
            refused("=debug"),
            "invalid logging specification '=debug': no logger specified in segment '=debug'"
        );
        assert_eq!(
            refused("a b=debug"),
            "invalid logging specification 'a b=debug': bad logger name 'a b'"
        );
    }
}
