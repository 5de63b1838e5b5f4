//! The sandbox limits the runner applies, read from the environment the peer gives the
//! container: the same settings as the peer's own wasm guests.

use std::time::Duration;

use ccvm_sandbox::runner_env::{MAX_MEMORY_BYTES, MAX_STACK_BYTES, TX_DEADLINE_MS};
use ccvm_sandbox::{DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_STACK_BYTES};

/// Fabric's default execute timeout, used when the peer sets no deadline.
const DEFAULT_TX_DEADLINE: Duration = Duration::from_secs(30);

/// Limits of the chaincode instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Longest a transaction may compute before the chaincode is stopped.
    pub tx_deadline: Duration,
    /// Most linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Deepest wasm stack, in bytes.
    pub max_stack_bytes: usize,
}

impl Limits {
    /// Reads the limits from `env`, with the sandbox's defaults for those not set.
    ///
    /// # Errors
    /// The variable whose value is not a whole number.
    pub fn from_env(env: impl Fn(&str) -> Option<String>) -> Result<Self, String> {
        let number = |name: &str, default: u64| -> Result<u64, String> {
            env(name).map_or(Ok(default), |value| {
                value
                    .trim()
                    .parse()
                    .map_err(|_| format!("{name} must be a whole number, not {value:?}"))
            })
        };
        let size = |name: &str, default: usize| -> Result<usize, String> {
            let value = number(name, default as u64)?;
            usize::try_from(value).map_err(|_| format!("{name} is too large: {value}"))
        };
        Ok(Self {
            tx_deadline: Duration::from_millis(number(
                TX_DEADLINE_MS,
                DEFAULT_TX_DEADLINE.as_millis() as u64,
            )?),
            max_memory_bytes: size(MAX_MEMORY_BYTES, DEFAULT_MAX_MEMORY_BYTES)?,
            max_stack_bytes: size(MAX_STACK_BYTES, DEFAULT_MAX_STACK_BYTES)?,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_limits_take_the_defaults_and_set_ones_are_read() -> Result<(), String> {
        let defaults = Limits::from_env(|_| None)?;
        assert_eq!(defaults.tx_deadline, DEFAULT_TX_DEADLINE);
        assert_eq!(defaults.max_memory_bytes, DEFAULT_MAX_MEMORY_BYTES);
        let set = Limits::from_env(|name| match name {
            TX_DEADLINE_MS => Some("250".to_owned()),
            MAX_STACK_BYTES => Some("65536".to_owned()),
            _ => None,
        })?;
        assert_eq!(set.tx_deadline, Duration::from_millis(250));
        assert_eq!(set.max_stack_bytes, 65536);
        Ok(())
    }

    #[test]
    fn a_limit_that_is_not_a_number_is_named() {
        let refused =
            Limits::from_env(|name| (name == MAX_MEMORY_BYTES).then(|| "lots".to_owned()));
        assert_eq!(
            refused,
            Err("CCVM_WASM_MAX_MEMORY_BYTES must be a whole number, not \"lots\"".to_owned())
        );
    }
}
