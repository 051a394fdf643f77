//! Content digests: short, stable names for text. A leaf: it depends on nothing else
//! in the crate.

use sha2::{Digest, Sha256};

/// Bytes as lower-case hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// First 64 bits of the SHA-256 of a text, hex: a short, stable name for content.
pub fn short_digest(text: &str) -> String {
    hex(&Sha256::digest(text.as_bytes())[..8])
}
