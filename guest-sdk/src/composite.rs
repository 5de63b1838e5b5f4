//! Composite keys: an object type and attributes joined so that a partial key is a range prefix.
//! The encoding is Fabric's, so keys written by any shim read back in any other.

use crate::error::ShimError;

/// Starts every composite key and separates its parts.
const SEPARATOR: char = '\u{0}';
/// Sorts after every valid key character; ends a partial-key range.
pub(crate) const MAX_UNICODE_RUNE: char = '\u{10FFFF}';

/// Builds the composite key `\0type\0attr1\0attr2\0...`.
///
/// ```
/// use ccvm_guest_sdk::create_composite_key;
///
/// let key = create_composite_key("owner", &["alice", "asset1"])?;
/// assert_eq!(key, "\u{0}owner\u{0}alice\u{0}asset1\u{0}");
/// assert!(create_composite_key("owner", &["a\u{0}b"]).is_err());
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
///
/// # Errors
/// [`ShimError::InvalidArgument`] when a part contains U+0000 or U+10FFFF.
pub fn create_composite_key(object_type: &str, attributes: &[&str]) -> Result<String, ShimError> {
    let mut key = String::with_capacity(object_type.len() + 2);
    key.push(SEPARATOR);
    for part in std::iter::once(object_type).chain(attributes.iter().copied()) {
        if part.contains(SEPARATOR) || part.contains(MAX_UNICODE_RUNE) {
            return Err(ShimError::InvalidArgument(format!(
                "composite key part {part:?} contains U+0000 or U+10FFFF"
            )));
        }
        key.push_str(part);
        key.push(SEPARATOR);
    }
    Ok(key)
}

/// Splits a composite key into its object type and attributes.
///
/// ```
/// use ccvm_guest_sdk::{create_composite_key, split_composite_key};
///
/// let key = create_composite_key("owner", &["alice", "asset1"])?;
/// let (object_type, attributes) = split_composite_key(&key)?;
/// assert_eq!((object_type.as_str(), attributes.as_slice()), ("owner", &["alice".to_owned(), "asset1".to_owned()][..]));
/// # Ok::<(), ccvm_guest_sdk::ShimError>(())
/// ```
///
/// # Errors
/// [`ShimError::InvalidArgument`] when `key` is not a composite key.
pub fn split_composite_key(key: &str) -> Result<(String, Vec<String>), ShimError> {
    let inner = key
        .strip_prefix(SEPARATOR)
        .and_then(|rest| rest.strip_suffix(SEPARATOR))
        .ok_or_else(|| ShimError::InvalidArgument(format!("{key:?} is not a composite key")))?;
    let mut parts = inner.split(SEPARATOR).map(str::to_owned);
    let object_type = parts.next().unwrap_or_default();
    Ok((object_type, parts.collect()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn composite_keys_round_trip() -> Result<(), ShimError> {
        let key = create_composite_key("asset", &["blue", "7"])?;
        assert_eq!(key, "\u{0}asset\u{0}blue\u{0}7\u{0}");
        assert_eq!(
            split_composite_key(&key)?,
            ("asset".to_owned(), vec!["blue".to_owned(), "7".to_owned()])
        );
        Ok(())
    }

    #[test]
    fn composite_key_parts_may_not_hold_separators() {
        assert!(create_composite_key("a\u{0}b", &[]).is_err());
        assert!(create_composite_key("a", &["\u{10FFFF}"]).is_err());
        assert!(split_composite_key("plain").is_err());
    }
}
