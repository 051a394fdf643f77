//! The builtin functions, each defined once: name, signature, documentation (shown by
//! hover and completion), arity, type rule (used by the checker) and evaluation (used
//! by the evaluator). Adding a builtin is adding one entry to the `builtins!` list below.
//!
//! Neither stage is imported here: the checker lends its argument types through
//! [`ArgTypes`] and the evaluator its argument values through [`Args`], so the pipeline
//! still flows one way (types → eval) and both read the same table.

use std::cmp::Ordering;
use std::collections::BTreeMap;

use base64::Engine as _;
use sha2::Digest as _;

use crate::codes::Code;
use crate::types::Ty;

/// A builtin's entry in [`BUILTINS`]; its evaluation is reached through [`evaluate`].
pub struct Def {
    pub name: &'static str,
    pub builtin: Builtin,
    /// Shown in help, hover, completion and argument errors.
    pub signature: &'static str,
    /// One line of documentation.
    pub doc: &'static str,
    pub arity: usize,
    /// The type of a call whose argument count is right; argument errors go through `ArgTypes`.
    pub check: fn(&mut dyn ArgTypes) -> Ty,
}

/// The arguments of one call, as the type checker sees them.
pub trait ArgTypes {
    /// The type of argument `i`, inferred without an expected type.
    fn infer(&mut self, i: usize) -> Ty;
    /// Checks argument `i` against `ty` (a mismatch is reported).
    fn expect(&mut self, i: usize, ty: &Ty);
    /// Reports that argument `i`, of type `ty`, is not what the builtin takes; `Ty::Error`.
    fn reject(&mut self, i: usize, ty: &Ty) -> Ty;
}

/// What builtins see inside a value; the rest is opaque to them.
pub enum View<'v, V> {
    Str(&'v str),
    Int(i64),
    /// Milliseconds.
    Duration(i64),
    List(&'v [V]),
    Map(&'v BTreeMap<&'v str, V>),
    Other,
}

/// The evaluated arguments of one call, and how to look into and make values.
pub trait Args {
    type Value: Clone;
    fn arg(&self, i: usize) -> &Self::Value;
    fn view<'v>(&self, value: &'v Self::Value) -> View<'v, Self::Value>;
    /// A value as interpolation shows it.
    fn to_text(&self, value: &Self::Value) -> String;
    fn equal(&self, a: &Self::Value, b: &Self::Value) -> bool;
    fn compare(&self, a: &Self::Value, b: &Self::Value) -> Option<Ordering>;
    fn str(&self, s: String) -> Self::Value;
    fn int(&self, n: i64) -> Self::Value;
    fn bool(&self, b: bool) -> Self::Value;
    fn list(&self, items: Vec<Self::Value>) -> Self::Value;
    fn secret(&self, name: String, value: String) -> Self::Value;

    /// Argument `i` as a string (the checker made it one).
    fn text(&self, i: usize) -> &str {
        match self.view(self.arg(i)) {
            View::Str(s) => s,
            _ => "",
        }
    }

    /// Argument `i` as an Int (the checker made it one).
    fn number(&self, i: usize) -> Option<i64> {
        match self.view(self.arg(i)) {
            View::Int(n) => Some(n),
            _ => None,
        }
    }
}

/// Why a call could not be evaluated.
#[derive(Debug, PartialEq)]
pub enum Fault {
    /// The arguments are not of the types the checker guaranteed: a bug, not bad input.
    Internal,
    /// Well-typed arguments the builtin cannot take (a range too large, no such subnet).
    Invalid {
        code: Code,
        message: String,
        /// The argument to point at; `None` points at the whole call.
        arg: Option<usize>,
        label: &'static str,
        help: Option<&'static str>,
    },
}

type Evaluated<A> = Result<<A as Args>::Value, Fault>;

/// Declares every builtin: the `Builtin` enum, the `BUILTINS` table and `evaluate`, so
/// that a builtin's parts cannot be spread out or left out.
macro_rules! builtins {
    ($(
        $variant:ident {
            name: $name:literal,
            signature: $signature:literal,
            doc: $doc:literal,
            arity: $arity:literal,
            check: |$t:ident| $check:expr,
            eval: |$a:ident| $eval:expr $(,)?
        }
    )*) => {
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum Builtin {
            $($variant,)*
        }

        pub const BUILTINS: &[Def] = &[$(
            Def {
                name: $name,
                builtin: Builtin::$variant,
                signature: $signature,
                doc: $doc,
                arity: $arity,
                check: {
                    fn check($t: &mut dyn ArgTypes) -> Ty {
                        $check
                    }
                    check
                },
            },
        )*];

        /// The value of a call of `builtin` with arguments the checker accepted.
        pub fn evaluate<A: Args>(builtin: Builtin, args: &A) -> Evaluated<A> {
            match builtin {
                $(Builtin::$variant => {
                    let $a = args;
                    $eval
                })*
            }
        }
    };
}

builtins! {
    Len {
        name: "len",
        signature: "len(x: String | [T] | {String: T}) -> Int",
        doc: "Number of characters, elements or entries.",
        arity: 1,
        check: |t| match t.infer(0) {
            Ty::String | Ty::List(_) | Ty::Map(_) | Ty::Error => Ty::Int,
            other => t.reject(0, &other),
        },
        eval: |a| {
            let n = match a.view(a.arg(0)) {
                View::Str(s) => s.chars().count(),
                View::List(l) => l.len(),
                View::Map(m) => m.len(),
                _ => return Err(Fault::Internal),
            };
            Ok(a.int(n as i64))
        },
    }
    Lower {
        name: "lower",
        signature: "lower(s: String) -> String",
        doc: "Lower-case copy of a string.",
        arity: 1,
        check: |t| strings(t, 1, Ty::String),
        eval: |a| Ok(a.str(a.text(0).to_lowercase())),
    }
    Upper {
        name: "upper",
        signature: "upper(s: String) -> String",
        doc: "Upper-case copy of a string.",
        arity: 1,
        check: |t| strings(t, 1, Ty::String),
        eval: |a| Ok(a.str(a.text(0).to_uppercase())),
    }
    Join {
        name: "join",
        signature: "join(items: [String], separator: String) -> String",
        doc: "Strings joined with a separator.",
        arity: 2,
        check: |t| {
            t.expect(0, &Ty::List(Box::new(Ty::String)));
            t.expect(1, &Ty::String);
            Ty::String
        },
        eval: |a| {
            let View::List(items) = a.view(a.arg(0)) else {
                return Err(Fault::Internal);
            };
            let parts: Vec<String> = items.iter().map(|v| a.to_text(v)).collect();
            Ok(a.str(parts.join(a.text(1))))
        },
    }
    Split {
        name: "split",
        signature: "split(s: String, separator: String) -> [String]",
        doc: "Parts of a string between separators.",
        arity: 2,
        check: |t| strings(t, 2, Ty::List(Box::new(Ty::String))),
        eval: |a| {
            let parts = a.text(0).split(a.text(1)).map(|s| a.str(s.to_string()));
            Ok(a.list(parts.collect()))
        },
    }
    Contains {
        name: "contains",
        signature: "contains(haystack: [T] | {String: T} | String, needle: T | String) -> Bool",
        doc: "Whether a list has an element, a map a key, or a string a substring.",
        arity: 2,
        check: |t| {
            match t.infer(0) {
                Ty::List(elem) => t.expect(1, &elem),
                Ty::Map(_) | Ty::String => t.expect(1, &Ty::String),
                Ty::Error => {
                    t.infer(1);
                }
                other => {
                    t.reject(0, &other);
                }
            }
            Ty::Bool
        },
        eval: |a| {
            let found = match a.view(a.arg(0)) {
                View::List(l) => l.iter().any(|v| a.equal(v, a.arg(1))),
                View::Map(m) => m.contains_key(a.text(1)),
                View::Str(s) => s.contains(a.text(1)),
                _ => return Err(Fault::Internal),
            };
            Ok(a.bool(found))
        },
    }
    StartsWith {
        name: "starts_with",
        signature: "starts_with(s: String, prefix: String) -> Bool",
        doc: "Whether a string starts with a prefix.",
        arity: 2,
        check: |t| strings(t, 2, Ty::Bool),
        eval: |a| Ok(a.bool(a.text(0).starts_with(a.text(1)))),
    }
    EndsWith {
        name: "ends_with",
        signature: "ends_with(s: String, suffix: String) -> Bool",
        doc: "Whether a string ends with a suffix.",
        arity: 2,
        check: |t| strings(t, 2, Ty::Bool),
        eval: |a| Ok(a.bool(a.text(0).ends_with(a.text(1)))),
    }
    Replace {
        name: "replace",
        signature: "replace(s: String, from: String, to: String) -> String",
        doc: "Every occurrence of `from` replaced by `to`.",
        arity: 3,
        check: |t| strings(t, 3, Ty::String),
        eval: |a| Ok(a.str(a.text(0).replace(a.text(1), a.text(2)))),
    }
    IsDigits {
        name: "is_digits",
        signature: "is_digits(s: String) -> Bool",
        doc: "Whether a string is non-empty and only ASCII digits.",
        arity: 1,
        check: |t| strings(t, 1, Ty::Bool),
        eval: |a| {
            let s = a.text(0);
            Ok(a.bool(!s.is_empty() && s.bytes().all(|b| b.is_ascii_digit())))
        },
    }
    IsDnsLabel {
        name: "is_dns_label",
        signature: "is_dns_label(s: String) -> Bool",
        doc: "Whether a string is a DNS label that starts with a letter (RFC 1035): at most 63 characters, lower-case letters, digits and `-`, not ending in `-`. Such names are safe in stack names, file names and Kubernetes labels.",
        arity: 1,
        check: |t| strings(t, 1, Ty::Bool),
        eval: |a| Ok(a.bool(crate::dns::is_dns_label(a.text(0)))),
    }
    IsS3BucketName {
        name: "is_s3_bucket_name",
        signature: "is_s3_bucket_name(s: String) -> Bool",
        doc: "Whether a string is a valid S3 bucket name: 3 to 63 characters, lower-case letters, digits, `.` and `-`, starting and ending with a letter or digit, no `..`, `.-` or `-.`, not an IP address, and none of the prefixes and suffixes S3 reserves (`xn--`, `sthree-`, `-s3alias`, `--ol-s3` …).",
        arity: 1,
        check: |t| strings(t, 1, Ty::Bool),
        eval: |a| Ok(a.bool(crate::dns::is_s3_bucket_name(a.text(0)))),
    }
    ToString {
        name: "to_string",
        signature: "to_string(x: Int | Float | Bool | Duration | Quantity | enum) -> String",
        doc: "The value as text.",
        arity: 1,
        check: |t| match t.infer(0) {
            Ty::String
            | Ty::Int
            | Ty::Float
            | Ty::Bool
            | Ty::Duration
            | Ty::Quantity
            | Ty::Enum(_)
            | Ty::Error => Ty::String,
            other => t.reject(0, &other),
        },
        eval: |a| Ok(a.str(a.to_text(a.arg(0)))),
    }
    Base64 {
        name: "base64",
        signature: "base64(s: String) -> String",
        doc: "Standard base64 encoding of the UTF-8 bytes.",
        arity: 1,
        check: |t| strings(t, 1, Ty::String),
        eval: |a| Ok(a.str(base64::engine::general_purpose::STANDARD.encode(a.text(0)))),
    }
    Sha256 {
        name: "sha256",
        signature: "sha256(s: String) -> String",
        doc: "Lower-case hex SHA-256 of the UTF-8 bytes.",
        arity: 1,
        check: |t| strings(t, 1, Ty::String),
        eval: |a| {
            let digest = sha2::Sha256::digest(a.text(0).as_bytes());
            Ok(a.str(digest.iter().map(|b| format!("{b:02x}")).collect()))
        },
    }
    Secret {
        name: "secret",
        signature: "secret(name: String, value: String) -> Secret",
        doc: "A secret value; printed only as `<secret:NAME hmac-sha256:…>` (a digest keyed per repository).",
        arity: 2,
        check: |t| strings(t, 2, Ty::Secret),
        eval: |a| Ok(a.secret(a.text(0).to_string(), a.text(1).to_string())),
    }
    Keys {
        name: "keys",
        signature: "keys(m: {String: T}) -> [String]",
        doc: "Keys of a map, sorted.",
        arity: 1,
        check: |t| match t.infer(0) {
            Ty::Map(_) | Ty::Error => Ty::List(Box::new(Ty::String)),
            other => t.reject(0, &other),
        },
        eval: |a| {
            let View::Map(m) = a.view(a.arg(0)) else {
                return Err(Fault::Internal);
            };
            Ok(a.list(m.keys().map(|k| a.str(k.to_string())).collect()))
        },
    }
    Values {
        name: "values",
        signature: "values(m: {String: T}) -> [T]",
        doc: "Values of a map, in key order.",
        arity: 1,
        check: |t| match t.infer(0) {
            Ty::Map(v) => Ty::List(v),
            Ty::Error => Ty::Error,
            other => t.reject(0, &other),
        },
        eval: |a| {
            let View::Map(m) = a.view(a.arg(0)) else {
                return Err(Fault::Internal);
            };
            Ok(a.list(m.values().cloned().collect()))
        },
    }
    Min {
        name: "min",
        signature: "min(a: T, b: T) -> T",
        doc: "The smaller of two numbers, durations or quantities.",
        arity: 2,
        check: |t| ordered_pair(t),
        eval: |a| pick(a, Ordering::is_le),
    }
    Max {
        name: "max",
        signature: "max(a: T, b: T) -> T",
        doc: "The larger of two numbers, durations or quantities.",
        arity: 2,
        check: |t| ordered_pair(t),
        eval: |a| pick(a, Ordering::is_ge),
    }
    Range {
        name: "range",
        signature: "range(n: Int) -> [Int]",
        doc: "The integers 0, 1, …, n-1.",
        arity: 1,
        check: |t| {
            t.expect(0, &Ty::Int);
            Ty::List(Box::new(Ty::Int))
        },
        eval: |a| {
            let n = a.number(0).ok_or(Fault::Internal)?;
            if !(0..=100_000).contains(&n) {
                return Err(Fault::Invalid {
                    code: Code::E0304,
                    message: format!("range({n}) is out of bounds"),
                    arg: Some(0),
                    label: "must be between 0 and 100000",
                    help: None,
                });
            }
            Ok(a.list((0..n).map(|i| a.int(i)).collect()))
        },
    }
    Seconds {
        name: "seconds",
        signature: "seconds(d: Duration) -> Int",
        doc: "A duration in whole seconds.",
        arity: 1,
        check: |t| {
            t.expect(0, &Ty::Duration);
            Ty::Int
        },
        eval: |a| match a.view(a.arg(0)) {
            View::Duration(ms) => Ok(a.int(ms / 1000)),
            _ => Err(Fault::Internal),
        },
    }
    CidrSubnet {
        name: "cidr_subnet",
        signature: "cidr_subnet(prefix: String, newbits: Int, netnum: Int) -> String",
        doc: "The netnum-th subnet of an IPv4 prefix, newbits longer.",
        arity: 3,
        check: |t| {
            t.expect(0, &Ty::String);
            t.expect(1, &Ty::Int);
            t.expect(2, &Ty::Int);
            Ty::String
        },
        eval: |a| {
            let (Some(newbits), Some(netnum)) = (a.number(1), a.number(2)) else {
                return Err(Fault::Internal);
            };
            match cidr_subnet(a.text(0), newbits, netnum) {
                Some(s) => Ok(a.str(s)),
                None => Err(Fault::Invalid {
                    code: Code::E0304,
                    message: "cidr_subnet: no such subnet".into(),
                    arg: None,
                    label: "invalid prefix, newbits or netnum",
                    help: Some(
                        "the prefix is an IPv4 CIDR like \"10.0.0.0/16\"; prefix length + newbits ≤ 32 and netnum < 2^newbits",
                    ),
                }),
            }
        },
    }
}

impl Builtin {
    fn def(self) -> &'static Def {
        // The table lists the variants in declaration order (the macro writes both).
        &BUILTINS[self as usize]
    }

    pub fn name(self) -> &'static str {
        self.def().name
    }

    pub fn signature(self) -> &'static str {
        self.def().signature
    }

    pub fn doc(self) -> &'static str {
        self.def().doc
    }

    pub fn arity(self) -> usize {
        self.def().arity
    }

    pub fn check(self, args: &mut dyn ArgTypes) -> Ty {
        (self.def().check)(args)
    }
}

pub fn lookup(name: &str) -> Option<Builtin> {
    BUILTINS.iter().find(|d| d.name == name).map(|d| d.builtin)
}

/// `count` String arguments, and the result type.
fn strings(t: &mut dyn ArgTypes, count: usize, result: Ty) -> Ty {
    for i in 0..count {
        t.expect(i, &Ty::String);
    }
    result
}

/// Two numbers, durations or quantities of one type, and that type.
fn ordered_pair(t: &mut dyn ArgTypes) -> Ty {
    match t.infer(0) {
        a @ (Ty::Int | Ty::Float | Ty::Duration | Ty::Quantity) => {
            t.expect(1, &a);
            a
        }
        Ty::Error => {
            t.infer(1);
            Ty::Error
        }
        other => t.reject(0, &other),
    }
}

/// The first argument where `first_wins` holds for its ordering against the second,
/// otherwise the second (so equal values give the first, as `min` and `max` promise).
fn pick<A: Args>(a: &A, first_wins: fn(Ordering) -> bool) -> Evaluated<A> {
    let ord = a.compare(a.arg(0), a.arg(1)).ok_or(Fault::Internal)?;
    Ok(if first_wins(ord) {
        a.arg(0).clone()
    } else {
        a.arg(1).clone()
    })
}

fn cidr_subnet(prefix: &str, newbits: i64, netnum: i64) -> Option<String> {
    let (addr, len) = prefix.split_once('/')?;
    let len: u32 = len.parse().ok()?;
    let octets: Vec<u32> = addr
        .split('.')
        .map(|o| o.parse::<u8>().ok().map(u32::from))
        .collect::<Option<_>>()?;
    if octets.len() != 4 || !(0..=32).contains(&newbits) || netnum < 0 {
        return None;
    }
    let new_len = len + newbits as u32;
    if len > 32 || new_len > 32 || (netnum as u64) >= (1u64 << newbits) {
        return None;
    }
    let base = octets.iter().fold(0u32, |acc, o| (acc << 8) | o);
    let mask = if len == 0 { 0 } else { u32::MAX << (32 - len) };
    let shift = 32 - new_len;
    let addr = (base & mask) | ((netnum as u32).checked_shl(shift).unwrap_or(0));
    Some(format!(
        "{}.{}.{}.{}/{new_len}",
        addr >> 24,
        (addr >> 16) & 255,
        (addr >> 8) & 255,
        addr & 255
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every entry is reachable from its variant, and its signature names it with as
    /// many parameters as its arity (what hover, completion and argument errors show).
    #[test]
    fn every_builtin_entry_is_consistent() {
        for (index, def) in BUILTINS.iter().enumerate() {
            assert_eq!(def.builtin as usize, index, "{} is out of order", def.name);
            assert_eq!(lookup(def.name), Some(def.builtin));
            let params = def
                .signature
                .strip_prefix(def.name)
                .and_then(|s| s.strip_prefix('('))
                .and_then(|s| s.split_once(") -> "))
                .map(|(params, _)| params)
                .unwrap_or_else(|| panic!("{}: signature {:?}", def.name, def.signature));
            // Parameters are `name: Type`; types hold no `:` but maps' `{String: T}`.
            let count = params.matches(": ").count() - params.matches("{String: ").count();
            assert_eq!(
                count, def.arity,
                "{}: arity vs {:?}",
                def.name, def.signature
            );
            assert!(!def.doc.is_empty(), "{} has no documentation", def.name);
        }
    }

    #[test]
    fn cidr_subnet_splits_prefixes() {
        assert_eq!(
            cidr_subnet("10.0.0.0/16", 8, 3).as_deref(),
            Some("10.0.3.0/24")
        );
        assert_eq!(
            cidr_subnet("10.0.0.0/16", 0, 0).as_deref(),
            Some("10.0.0.0/16")
        );
        assert_eq!(cidr_subnet("10.0.0.0/16", 8, 256), None);
        assert_eq!(cidr_subnet("10.0.0.0/30", 3, 0), None);
        assert_eq!(cidr_subnet("10.0.0/16", 8, 0), None);
    }
}
