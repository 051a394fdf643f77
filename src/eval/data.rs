//! The evaluated fleet: plain data with every default filled in, serialisable with serde.

use std::collections::BTreeMap;

use serde::ser::{SerializeMap, SerializeSeq};
use serde::{Serialize, Serializer};

use crate::units::scale_decimal;

/// An evaluated value. Records keep their fields in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub enum Data {
    Null,
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    /// Milliseconds.
    Duration(i64),
    Quantity(Quantity),
    Secret(SecretValue),
    Enum(String),
    List(Vec<Data>),
    Map(BTreeMap<String, Data>),
    Record(Record),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Record {
    pub type_name: String,
    pub fields: Vec<(String, Data)>,
}

impl Data {
    /// A field of a record (`None` for other values or unknown fields).
    pub fn get(&self, field: &str) -> Option<&Data> {
        match self {
            Data::Record(r) => r.fields.iter().find(|(n, _)| n == field).map(|(_, v)| v),
            Data::Map(m) => m.get(field),
            _ => None,
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Data::String(s) | Data::Enum(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Data::Int(n) => Some(*n),
            _ => None,
        }
    }

    pub fn as_list(&self) -> &[Data] {
        match self {
            Data::List(items) => items,
            _ => &[],
        }
    }
}

/// A Kubernetes quantity: exact value in milli-units plus the suffix to print it with.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Quantity {
    pub milli: i128,
    pub suffix: String,
}

impl Quantity {
    pub fn factor(suffix: &str) -> Option<i128> {
        Some(match suffix {
            "m" => 1,
            "" => 1_000,
            "k" => 1_000_000,
            "M" => 1_000_000_000,
            "G" => 1_000_000_000_000,
            "T" => 1_000_000_000_000_000,
            "P" => 1_000_000_000_000_000_000,
            "E" => 1_000_000_000_000_000_000_000,
            "Ki" => 1_024_000,
            "Mi" => 1_024 * 1_024_000,
            "Gi" => 1_024 * 1_024 * 1_024_000,
            "Ti" => 1_024 * 1_024 * 1_024 * 1_024_000,
            "Pi" => 1_024 * 1_024 * 1_024 * 1_024 * 1_024_000,
            "Ei" => 1_024 * 1_024 * 1_024 * 1_024 * 1_024 * 1_024_000,
            _ => return None,
        })
    }

    /// Parse `number` (decimal) with `suffix`; `None` if not exact in milli-units.
    pub fn parse(number: &str, suffix: &str) -> Option<Quantity> {
        Some(Quantity {
            milli: scale_decimal(number, Self::factor(suffix)?)?,
            suffix: suffix.to_string(),
        })
    }

    /// Bytes (or cores) as a whole number, rounding milli-units up.
    pub fn whole_units(&self) -> i128 {
        (self.milli + 999).div_euclid(1000)
    }
}

impl std::fmt::Display for Quantity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let factor = Self::factor(&self.suffix).unwrap_or(1);
        if self.milli % factor == 0 {
            write!(f, "{}{}", self.milli / factor, self.suffix)
        } else if self.milli % 1000 == 0 {
            write!(f, "{}", self.milli / 1000)
        } else {
            write!(f, "{}m", self.milli)
        }
    }
}

/// A secret: its plain value is available to renderers but never printed.
#[derive(Clone, PartialEq)]
pub struct SecretValue {
    pub name: String,
    value: String,
}

impl SecretValue {
    pub fn new(name: String, value: String) -> SecretValue {
        SecretValue { name, value }
    }

    /// The plain text, for renderers that must place it into a cluster.
    pub fn reveal(&self) -> &str {
        &self.value
    }

    /// `<secret:NAME hmac-sha256:…>`: shows that a secret changed without showing it;
    /// the digest is keyed ([`crate::redact::secret_digest`]) so it cannot be used to
    /// test guesses. Without a key: `<secret:NAME>`.
    pub fn redacted(&self) -> String {
        match crate::redact::secret_digest(&self.value) {
            Some(digest) => format!("<secret:{} hmac-sha256:{digest}>", self.name),
            None => format!("<secret:{}>", self.name),
        }
    }
}

impl std::fmt::Debug for SecretValue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.redacted())
    }
}

impl Serialize for Quantity {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

/// Only ever serialized redacted.
impl Serialize for SecretValue {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.redacted())
    }
}

impl Serialize for Data {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Data::Null => s.serialize_none(),
            Data::Bool(b) => s.serialize_bool(*b),
            Data::Int(n) => s.serialize_i64(*n),
            Data::Float(x) => s.serialize_f64(*x),
            Data::String(t) | Data::Enum(t) => s.serialize_str(t),
            Data::Duration(ms) => s.serialize_str(&crate::units::format_duration(*ms)),
            Data::Quantity(q) => q.serialize(s),
            Data::Secret(secret) => secret.serialize(s),
            Data::List(items) => {
                let mut seq = s.serialize_seq(Some(items.len()))?;
                for item in items {
                    seq.serialize_element(item)?;
                }
                seq.end()
            }
            Data::Map(entries) => {
                let mut map = s.serialize_map(Some(entries.len()))?;
                for (k, v) in entries {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
            Data::Record(record) => {
                let mut map = s.serialize_map(Some(record.fields.len()))?;
                for (k, v) in &record.fields {
                    map.serialize_entry(k, v)?;
                }
                map.end()
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities_are_exact_and_keep_their_suffix() {
        let q = Quantity::parse("1.5", "Gi").unwrap();
        assert_eq!(q.milli, 1536 * 1024 * 1024 * 1000);
        assert_eq!(q.to_string(), "1610612736");
        assert_eq!(Quantity::parse("250", "m").unwrap().to_string(), "250m");
        assert_eq!(Quantity::parse("0.5", "m"), None);
    }
}
