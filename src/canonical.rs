//! Canonical form (placeholder until the real module lands).
/// Returns the value unchanged.
pub fn canonicalize(v: serde_json::Value) -> serde_json::Value {
    v
}
