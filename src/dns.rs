//! DNS names: what may name a stack, a directory, a DNS record or a Kubernetes object.
//! A leaf: it depends on nothing else in the crate.

/// The builtin `is_dns_label`: an RFC 1035 label, a lower-case letter first, then
/// letters, digits and `-`, not ending in `-`, at most 63 characters. The stdlib checks
/// cluster ids and node pool names with it.
pub fn is_dns_label(s: &str) -> bool {
    let bytes = s.as_bytes();
    matches!(bytes.first(), Some(b'a'..=b'z'))
        && bytes.len() <= 63
        && !s.ends_with('-')
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'-')
}
