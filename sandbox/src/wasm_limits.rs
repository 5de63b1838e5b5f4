//! The limits of one wasm guest, the same wherever it runs: inside the peer (the inproc VM) or in
//! a container under the wasm runner, which reads them from the environment the peer gives it.

use std::time::Duration;

use crate::limits::{
    DEFAULT_MAX_MEMORY_BYTES, DEFAULT_MAX_MESSAGE_BYTES, DEFAULT_MAX_STACK_BYTES,
    DEFAULT_TX_DEADLINE, runner_env,
};

/// Limits of one guest instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WasmLimits {
    /// Longest a transaction may run before the guest is stopped.
    pub tx_deadline: Duration,
    /// Most linear memory, in bytes.
    pub max_memory_bytes: usize,
    /// Deepest wasm stack, in bytes.
    pub max_stack_bytes: usize,
    /// Largest message the guest may send, in bytes.
    pub max_message_bytes: usize,
}

impl Default for WasmLimits {
    fn default() -> Self {
        Self {
            tx_deadline: DEFAULT_TX_DEADLINE,
            max_memory_bytes: DEFAULT_MAX_MEMORY_BYTES,
            max_stack_bytes: DEFAULT_MAX_STACK_BYTES,
            max_message_bytes: DEFAULT_MAX_MESSAGE_BYTES,
        }
    }
}

impl WasmLimits {
    /// Reads the limits from `env` (the [`runner_env`] variables), with the defaults for those
    /// not set.
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
        let defaults = Self::default();
        Ok(Self {
            tx_deadline: Duration::from_millis(number(
                runner_env::TX_DEADLINE_MS,
                u64::try_from(defaults.tx_deadline.as_millis()).unwrap_or(u64::MAX),
            )?),
            max_memory_bytes: size(runner_env::MAX_MEMORY_BYTES, defaults.max_memory_bytes)?,
            max_stack_bytes: size(runner_env::MAX_STACK_BYTES, defaults.max_stack_bytes)?,
            max_message_bytes: size(runner_env::MAX_MESSAGE_BYTES, defaults.max_message_bytes)?,
        })
    }

    /// The `NAME=value` environment that gives a runner these limits.
    #[must_use]
    pub fn to_env(&self) -> [String; 4] {
        [
            format!(
                "{}={}",
                runner_env::TX_DEADLINE_MS,
                self.tx_deadline.as_millis()
            ),
            format!("{}={}", runner_env::MAX_MEMORY_BYTES, self.max_memory_bytes),
            format!("{}={}", runner_env::MAX_STACK_BYTES, self.max_stack_bytes),
            format!(
                "{}={}",
                runner_env::MAX_MESSAGE_BYTES,
                self.max_message_bytes
            ),
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unset_limits_take_the_defaults_and_set_ones_are_read() -> Result<(), String> {
        assert_eq!(WasmLimits::from_env(|_| None)?, WasmLimits::default());
        let set = WasmLimits::from_env(|name| match name {
            runner_env::TX_DEADLINE_MS => Some("250".to_owned()),
            runner_env::MAX_STACK_BYTES => Some("65536".to_owned()),
            _ => None,
        })?;
        assert_eq!(set.tx_deadline, Duration::from_millis(250));
        assert_eq!(set.max_stack_bytes, 65536);
        Ok(())
    }

    #[test]
    fn limits_given_as_environment_read_back_the_same() -> Result<(), String> {
        let limits = WasmLimits {
            tx_deadline: Duration::from_millis(1500),
            max_memory_bytes: 1 << 24,
            max_stack_bytes: 1 << 16,
            max_message_bytes: 1 << 20,
        };
        let env = limits.to_env();
        let read = WasmLimits::from_env(|name| {
            env.iter()
                .find_map(|pair| pair.strip_prefix(name)?.strip_prefix('='))
                .map(str::to_owned)
        })?;
        assert_eq!(read, limits);
        Ok(())
    }

    #[test]
    fn a_limit_that_is_not_a_number_is_named() {
        let refused = WasmLimits::from_env(|name| {
            (name == runner_env::MAX_MEMORY_BYTES).then(|| "lots".to_owned())
        });
        assert_eq!(
            refused,
            Err("CCVM_WASM_MAX_MEMORY_BYTES must be a whole number, not \"lots\"".to_owned())
        );
    }
}
