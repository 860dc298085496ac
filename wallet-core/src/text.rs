//! Validated free-form inputs: descriptions, metadata and idempotency keys.
//!
//! Each type can only hold a valid value, so the rest of the code never re-checks them.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::error::{Error, Result};

/// Longest description, in characters.
pub const DESCRIPTION_CHARS_MAX: usize = 500;
/// Largest metadata object, in bytes of compact JSON.
pub const METADATA_BYTES_MAX: usize = 4096;
/// Deepest nesting of metadata (the top-level object is depth 1).
pub const METADATA_DEPTH_MAX: usize = 8;
/// Longest idempotency key, in bytes.
pub const IDEMPOTENCY_KEY_LEN_MAX: usize = 128;

/// Characters that can make text display differently from its logical order (the "Trojan
/// Source" family): explicit bidirectional embeddings, overrides and isolates.
fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{202A}'..='\u{202E}' | '\u{2066}'..='\u{2069}')
}

/// A transaction description: 1 to 500 characters, no control characters, no bidirectional
/// overrides. Other Unicode (accents, emoji, right-to-left scripts) is kept verbatim.
#[derive(Clone, PartialEq, Eq, Hash, Serialize)]
#[serde(transparent)]
pub struct Description(String);

impl Description {
    /// Validates a description.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let invalid = |reason| Err(Error::InvalidDescription { reason });
        if text.is_empty() {
            return invalid("empty");
        }
        // Byte length bounds the character count from above: cheap rejection of huge input.
        if text.len() > DESCRIPTION_CHARS_MAX * 4 || text.chars().count() > DESCRIPTION_CHARS_MAX {
            return invalid("longer than 500 characters");
        }
        if text.chars().any(char::is_control) {
            return invalid("contains control characters");
        }
        if text.chars().any(is_bidi_control) {
            return invalid("contains bidirectional control characters");
        }
        Ok(Description(text))
    }

    /// Validates an optional description; an empty string counts as none.
    pub fn optional(text: Option<String>) -> Result<Option<Self>> {
        match text {
            None => Ok(None),
            Some(t) if t.is_empty() => Ok(None),
            Some(t) => Description::new(t).map(Some),
        }
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for Description {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Description {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Description::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Caller-defined data attached to a transaction: a JSON object of at most 4 KiB (compact
/// form) and nesting depth 8. Keys are kept sorted, so equal objects serialize identically.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(transparent)]
pub struct Metadata(Map<String, Value>);

impl Metadata {
    /// Validates a JSON value as metadata.
    pub fn new(value: Value) -> Result<Self> {
        let invalid = |reason| Err(Error::InvalidMetadata { reason });
        let Value::Object(map) = value else {
            return invalid("must be a JSON object");
        };
        if depth_exceeds(&map, METADATA_DEPTH_MAX) {
            return invalid("nested too deeply");
        }
        let metadata = Metadata(map);
        if metadata.to_json().len() > METADATA_BYTES_MAX {
            return invalid("larger than 4096 bytes");
        }
        Ok(metadata)
    }

    /// Parses and validates JSON text.
    pub fn parse(json: &str) -> Result<Self> {
        if json.len() > METADATA_BYTES_MAX * 4 {
            return Err(Error::InvalidMetadata {
                reason: "larger than 4096 bytes",
            });
        }
        // serde_json limits recursion to 128 levels, so deep input cannot overflow the stack.
        let value: Value = serde_json::from_str(json).map_err(|_| Error::InvalidMetadata {
            reason: "not valid JSON",
        })?;
        Metadata::new(value)
    }

    /// Compact JSON text (keys sorted).
    pub fn to_json(&self) -> String {
        // Serializing a Map<String, Value> cannot fail: every key is a string and every value
        // came from JSON.
        serde_json::to_string(&self.0).unwrap_or_default()
    }

    /// The object.
    pub fn as_map(&self) -> &Map<String, Value> {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Metadata {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        Metadata::new(Value::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Whether `map` (depth 1) nests containers deeper than `limit` levels. Iterative, so hostile
/// input cannot exhaust the stack.
fn depth_exceeds(map: &Map<String, Value>, limit: usize) -> bool {
    let mut stack: Vec<(&Value, usize)> = map.values().map(|v| (v, 2)).collect();
    while let Some((value, level)) = stack.pop() {
        match value {
            Value::Object(_) | Value::Array(_) if level > limit => return true,
            Value::Object(m) => stack.extend(m.values().map(|c| (c, level + 1))),
            Value::Array(a) => stack.extend(a.iter().map(|c| (c, level + 1))),
            _ => {}
        }
    }
    false
}

/// A caller-chosen key that makes a command safe to retry: 1 to 128 visible ASCII characters
/// (UUIDs, hex and base64url strings all fit). Keys are scoped to the acting user.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Validates a key.
    pub fn new(key: impl Into<String>) -> Result<Self> {
        let key = key.into();
        let invalid = |reason| Err(Error::InvalidIdempotencyKey { reason });
        if key.is_empty() {
            return invalid("empty");
        }
        if key.len() > IDEMPOTENCY_KEY_LEN_MAX {
            return invalid("longer than 128 characters");
        }
        if !key.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("only visible ASCII characters are allowed");
        }
        Ok(IdempotencyKey(key))
    }

    /// The key.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for IdempotencyKey {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        IdempotencyKey::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

/// Longest external reference (a gateway reference or an order id), in bytes.
pub const EXTERNAL_REF_LEN_MAX: usize = 128;

/// An identifier chosen outside the ledger: a payment gateway's reference for a pending
/// top-up, or a merchant's order id. 1 to 128 visible ASCII characters, compared exactly.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(transparent)]
pub struct ExternalRef(String);

impl ExternalRef {
    /// Validates a reference.
    pub fn new(text: impl Into<String>) -> Result<Self> {
        let text = text.into();
        let invalid = |reason| Err(Error::InvalidQuery { reason });
        if text.is_empty() {
            return invalid("an external reference cannot be empty");
        }
        if text.len() > EXTERNAL_REF_LEN_MAX {
            return invalid("an external reference is at most 128 characters");
        }
        if !text.bytes().all(|b| b.is_ascii_graphic()) {
            return invalid("an external reference holds only visible ASCII characters");
        }
        Ok(ExternalRef(text))
    }

    /// The reference.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for ExternalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl fmt::Display for ExternalRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for ExternalRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Self, D::Error> {
        ExternalRef::new(String::deserialize(d)?).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn external_refs() {
        assert_eq!(
            ExternalRef::new("gw_123-ABC").unwrap().as_str(),
            "gw_123-ABC"
        );
        for bad in [
            String::new(),
            "a b".into(),
            "x".repeat(129),
            "é".into(),
            "a\n".into(),
        ] {
            assert_eq!(ExternalRef::new(bad).unwrap_err().code(), "invalid_query");
        }
        assert!(ExternalRef::new("x".repeat(128)).is_ok());
    }

    #[test]
    fn descriptions() {
        assert_eq!(
            Description::new("Rent, März 🏠").unwrap().as_str(),
            "Rent, März 🏠"
        );
        assert!(
            Description::new("שכר דירה").is_ok(),
            "right-to-left scripts are fine"
        );
        assert!(Description::new("x".repeat(500)).is_ok());
        assert!(
            Description::new("é".repeat(500)).is_ok(),
            "counted in characters"
        );
        assert!(
            Description::new("'; DROP TABLE wallets; --").is_ok(),
            "stored verbatim"
        );
        for bad in [
            "x".repeat(501),
            "a\nb".into(),
            "a\tb".into(),
            "nul\0".into(),
            "bell\u{7}".into(),
            "c1\u{85}".into(),
            "evil\u{202E}txt.exe".into(),
            "iso\u{2066}late".into(),
            String::new(),
        ] {
            assert_eq!(
                Description::new(bad.clone()).unwrap_err().code(),
                "invalid_description",
                "{bad:?}"
            );
        }
        assert_eq!(Description::optional(Some(String::new())).unwrap(), None);
        assert_eq!(Description::optional(None).unwrap(), None);
    }

    #[test]
    fn metadata() {
        let m = Metadata::new(json!({"b": 1, "a": [1, 2, {"c": null}]})).unwrap();
        assert_eq!(
            m.to_json(),
            r#"{"a":[1,2,{"c":null}],"b":1}"#,
            "keys sorted"
        );
        assert_eq!(
            Metadata::parse(r#"{"order": "A-17"}"#).unwrap().as_map()["order"],
            "A-17"
        );
        let deep = (0..METADATA_DEPTH_MAX).fold(json!(1), |v, _| json!({ "k": v }));
        assert!(Metadata::new(deep.clone()).is_ok());
        let too_deep = json!({ "k": deep });
        for (bad, why) in [
            (json!([1, 2]), "array"),
            (json!("text"), "string"),
            (json!(null), "null"),
            (too_deep, "too deep"),
            (json!({"big": "x".repeat(METADATA_BYTES_MAX)}), "too big"),
        ] {
            assert_eq!(
                Metadata::new(bad).unwrap_err().code(),
                "invalid_metadata",
                "{why}"
            );
        }
        assert_eq!(
            Metadata::parse("{not json").unwrap_err().code(),
            "invalid_metadata"
        );
        assert_eq!(
            Metadata::parse(&"[".repeat(100_000)).unwrap_err().code(),
            "invalid_metadata"
        );
        assert_eq!(
            Metadata::parse(&"[".repeat(1000)).unwrap_err().code(),
            "invalid_metadata"
        );
    }

    #[test]
    fn idempotency_keys() {
        assert!(IdempotencyKey::new("9b2f4c1e-0d1a-4c55-8f7e-3a1b2c3d4e5f").is_ok());
        assert!(IdempotencyKey::new("k".repeat(128)).is_ok());
        for bad in ["", "has space", "tab\t", "ünïcode", "nul\0"] {
            assert_eq!(
                IdempotencyKey::new(bad).unwrap_err().code(),
                "invalid_idempotency_key",
                "{bad:?}"
            );
        }
        assert_eq!(
            IdempotencyKey::new("k".repeat(129)).unwrap_err().code(),
            "invalid_idempotency_key"
        );
    }
}
