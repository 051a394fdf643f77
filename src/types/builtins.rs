//! The pure builtin functions, with the signatures shown in help and completion.

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Builtin {
    Len,
    Lower,
    Upper,
    Join,
    Split,
    Contains,
    StartsWith,
    EndsWith,
    Replace,
    IsDigits,
    IsDnsLabel,
    ToString,
    Base64,
    Sha256,
    Secret,
    Keys,
    Values,
    Min,
    Max,
    Range,
    Seconds,
    CidrSubnet,
}

/// Name, builtin, signature and one line of documentation.
pub const BUILTINS: &[(&str, Builtin, &str, &str)] = &[
    (
        "len",
        Builtin::Len,
        "len(x: String | [T] | {String: T}) -> Int",
        "Number of characters, elements or entries.",
    ),
    (
        "lower",
        Builtin::Lower,
        "lower(s: String) -> String",
        "Lower-case copy of a string.",
    ),
    (
        "upper",
        Builtin::Upper,
        "upper(s: String) -> String",
        "Upper-case copy of a string.",
    ),
    (
        "join",
        Builtin::Join,
        "join(items: [String], separator: String) -> String",
        "Strings joined with a separator.",
    ),
    (
        "split",
        Builtin::Split,
        "split(s: String, separator: String) -> [String]",
        "Parts of a string between separators.",
    ),
    (
        "contains",
        Builtin::Contains,
        "contains(haystack: [T] | {String: T} | String, needle: T | String) -> Bool",
        "Whether a list has an element, a map a key, or a string a substring.",
    ),
    (
        "starts_with",
        Builtin::StartsWith,
        "starts_with(s: String, prefix: String) -> Bool",
        "Whether a string starts with a prefix.",
    ),
    (
        "ends_with",
        Builtin::EndsWith,
        "ends_with(s: String, suffix: String) -> Bool",
        "Whether a string ends with a suffix.",
    ),
    (
        "replace",
        Builtin::Replace,
        "replace(s: String, from: String, to: String) -> String",
        "Every occurrence of `from` replaced by `to`.",
    ),
    (
        "is_digits",
        Builtin::IsDigits,
        "is_digits(s: String) -> Bool",
        "Whether a string is non-empty and only ASCII digits.",
    ),
    (
        "is_dns_label",
        Builtin::IsDnsLabel,
        "is_dns_label(s: String) -> Bool",
        "Whether a string is a DNS label that starts with a letter (RFC 1035): at most 63 characters, lower-case letters, digits and `-`, not ending in `-`. Such names are safe in stack names, file names and Kubernetes labels.",
    ),
    (
        "to_string",
        Builtin::ToString,
        "to_string(x: Int | Float | Bool | Duration | Quantity | enum) -> String",
        "The value as text.",
    ),
    (
        "base64",
        Builtin::Base64,
        "base64(s: String) -> String",
        "Standard base64 encoding of the UTF-8 bytes.",
    ),
    (
        "sha256",
        Builtin::Sha256,
        "sha256(s: String) -> String",
        "Lower-case hex SHA-256 of the UTF-8 bytes.",
    ),
    (
        "secret",
        Builtin::Secret,
        "secret(name: String, value: String) -> Secret",
        "A secret value; printed only as `<secret:NAME hmac-sha256:…>` (a digest keyed per repository).",
    ),
    (
        "keys",
        Builtin::Keys,
        "keys(m: {String: T}) -> [String]",
        "Keys of a map, sorted.",
    ),
    (
        "values",
        Builtin::Values,
        "values(m: {String: T}) -> [T]",
        "Values of a map, in key order.",
    ),
    (
        "min",
        Builtin::Min,
        "min(a: T, b: T) -> T",
        "The smaller of two numbers, durations or quantities.",
    ),
    (
        "max",
        Builtin::Max,
        "max(a: T, b: T) -> T",
        "The larger of two numbers, durations or quantities.",
    ),
    (
        "range",
        Builtin::Range,
        "range(n: Int) -> [Int]",
        "The integers 0, 1, …, n-1.",
    ),
    (
        "seconds",
        Builtin::Seconds,
        "seconds(d: Duration) -> Int",
        "A duration in whole seconds.",
    ),
    (
        "cidr_subnet",
        Builtin::CidrSubnet,
        "cidr_subnet(prefix: String, newbits: Int, netnum: Int) -> String",
        "The netnum-th subnet of an IPv4 prefix, newbits longer.",
    ),
];

pub fn lookup(name: &str) -> Option<Builtin> {
    BUILTINS
        .iter()
        .find(|(n, ..)| *n == name)
        .map(|(_, b, ..)| *b)
}

pub fn signature(builtin: Builtin) -> &'static str {
    BUILTINS
        .iter()
        .find(|(_, b, ..)| *b == builtin)
        .map(|(_, _, s, _)| *s)
        .unwrap_or("")
}
