//! Durations in the policy file, written as `"10s"`, `"250ms"`, `"1m 30s"`.

use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Deserialises a human-readable duration.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    humantime::parse_duration(&s).map_err(|e| {
        serde::de::Error::custom(format!(
            "invalid duration `{s}` ({e}); write e.g. \"10s\", \"250ms\", \"2m\""
        ))
    })
}

/// Deserialises an optional human-readable duration.
pub fn deserialize_opt<'de, D: Deserializer<'de>>(d: D) -> Result<Option<Duration>, D::Error> {
    deserialize(d).map(Some)
}
