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

/// Prefixes and suffixes S3 keeps for its own names (access points, Object Lambda,
/// directory buckets, table buckets, examples, punycode).
const S3_RESERVED_PREFIXES: [&str; 3] = ["xn--", "sthree-", "amzn-s3-demo-"];
const S3_RESERVED_SUFFIXES: [&str; 5] = ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"];

/// The builtin `is_s3_bucket_name`: S3's rules for general purpose bucket names. The
/// stdlib checks `template_bucket` with it, so a typo fails `check` rather than the
/// first upload.
pub fn is_s3_bucket_name(s: &str) -> bool {
    let bytes = s.as_bytes();
    let edge = |b: Option<&u8>| b.is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit());
    (3..=63).contains(&bytes.len())
        && edge(bytes.first())
        && edge(bytes.last())
        && bytes
            .iter()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || *b == b'.' || *b == b'-')
        && !s.contains("..")
        && !s.contains(".-")
        && !s.contains("-.")
        && s.parse::<std::net::Ipv4Addr>().is_err()
        && !S3_RESERVED_PREFIXES.iter().any(|p| s.starts_with(p))
        && !S3_RESERVED_SUFFIXES.iter().any(|x| s.ends_with(x))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_bucket_names_follow_s3s_rules() {
        for good in [
            "abc",
            "my-templates",
            "templates.example.org",
            "1-bucket",
            &"a".repeat(63),
        ] {
            assert!(is_s3_bucket_name(good), "{good}");
        }
        for bad in [
            "ab",
            &"a".repeat(64),
            "My-Templates",
            "under_score",
            "-leading",
            "trailing-",
            ".leading",
            "two..dots",
            "dot.-dash",
            "dash-.dot",
            "192.168.5.4",
            "xn--bucket",
            "sthree-bucket",
            "bucket-s3alias",
            "bucket--ol-s3",
            "",
        ] {
            assert!(!is_s3_bucket_name(bad), "{bad}");
        }
    }
}
