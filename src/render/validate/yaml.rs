//! Strict YAML parsing: one document as JSON, rejecting a mapping key that appears twice.

use std::cell::RefCell;
use std::fmt;

use serde::de::{self, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer};
use serde_json::{Map, Value};

/// Why rendered text is not acceptable YAML.
#[derive(Debug, thiserror::Error)]
pub enum YamlError {
    /// The YAML parser's own error.
    #[error("not valid YAML: {0}")]
    Syntax(#[source] serde_yaml_ng::Error),
    /// A mapping has the same key twice (which plain deserialization would collapse
    /// into the last one); the message names the key, the mapping and the lines.
    #[error("{0}")]
    RepeatedKey(String),
}

/// Parse one YAML document as JSON, rejecting a mapping key that appears twice.
pub fn yaml(text: &str) -> Result<Value, YamlError> {
    strict_document(serde_yaml_ng::Deserializer::from_str(text), text, Keep::All)
}

/// Check one YAML document (syntax, and no mapping key twice) without building it, for
/// text that is written as it is (userdata).
pub fn check_yaml(text: &str) -> Result<(), YamlError> {
    strict_document(
        serde_yaml_ng::Deserializer::from_str(text),
        text,
        Keep::Nothing,
    )
    .map(drop)
}

/// What of a document to build as JSON; the rest is read, checked for repeated keys
/// and dropped, which costs far less than building it.
#[derive(Clone, Copy)]
pub(super) enum Keep {
    All,
    /// Of a mapping, only these keys, each with what to keep of its value (a scalar
    /// is kept whole, a sequence kept empty).
    Keys(&'static [(&'static str, Keep)]),
    Nothing,
}

/// One document of `text` as JSON (as much of it as `keep` says), rejecting repeated keys.
pub(super) fn strict_document<'de>(
    document: serde_yaml_ng::Deserializer<'de>,
    text: &str,
    keep: Keep,
) -> Result<Value, YamlError> {
    let repeated = RefCell::new(None);
    let seed = StrictValue {
        at: At::Root,
        keep,
        repeated: &repeated,
    };
    seed.deserialize(document)
        .map_err(|e| match repeated.take() {
            Some(Repeated { at, key }) => YamlError::RepeatedKey(repeated_key(text, &e, &at, &key)),
            None => YamlError::Syntax(e),
        })
}

/// "key `name` appears twice in /metadata (lines 3 and 5)": the lines are found by
/// looking for the key at the indentation of the block mapping, which starts where
/// the parser's error points; for a flow mapping (`{a: 1, a: 2}`) only its start is known.
fn repeated_key(text: &str, error: &serde_yaml_ng::Error, at: &str, key: &str) -> String {
    let mapping = if at.is_empty() {
        "the top-level mapping".to_string()
    } else {
        at.to_string()
    };
    let place = match error.location() {
        Some(start) => {
            let lines = key_lines(text, start.line(), start.column(), key);
            match lines.as_slice() {
                [first, second, ..] => format!(" (lines {first} and {second})"),
                _ => format!(" (the mapping at line {})", start.line()),
            }
        }
        None => String::new(),
    };
    format!(
        "key `{key}` appears twice in {mapping}{place}; CloudFormation and kubectl reject repeated keys (other YAML readers keep only the last), so remove one"
    )
}

/// Lines (1-based) where `key` is an entry of the block mapping whose first key is at
/// `line`, `column` (1-based).
fn key_lines(text: &str, line: usize, column: usize, key: &str) -> Vec<usize> {
    let indent = column.saturating_sub(1);
    let forms = [
        format!("{key}:"),
        format!("\"{key}\":"),
        format!("'{key}':"),
    ];
    let is_entry = |rest: &str| {
        forms.iter().any(|form| {
            rest.strip_prefix(form.as_str())
                .is_some_and(|after| after.is_empty() || after.starts_with([' ', '\t']))
        })
    };
    let mut found = Vec::new();
    for (n, content) in text.lines().enumerate().skip(line.saturating_sub(1)) {
        let rest = if n + 1 == line {
            // The mapping may start after a `- ` or on a `key:` line's remainder.
            content.get(indent..).unwrap_or("")
        } else {
            let trimmed = content.trim_start_matches(' ');
            if trimmed.is_empty() || trimmed.starts_with('#') {
                continue;
            }
            let own = content.len() - trimmed.len();
            if own < indent || trimmed.starts_with("---") || trimmed.starts_with("...") {
                break;
            }
            if own > indent {
                continue;
            }
            trimmed
        };
        if is_entry(rest) {
            found.push(n + 1);
        }
    }
    found
}

/// The first repeated key found while parsing, and the path of its mapping.
struct Repeated {
    at: String,
    key: String,
}

/// Where a value is in the document, as a chain of borrowed steps: spelled out as a
/// JSON pointer only for a repeated key, not built for every value parsed.
#[derive(Clone, Copy)]
enum At<'p> {
    Root,
    Key(&'p At<'p>, &'p str),
    Index(&'p At<'p>, usize),
}

impl fmt::Display for At<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            At::Root => Ok(()),
            At::Key(parent, key) => write!(f, "{parent}/{key}"),
            At::Index(parent, index) => write!(f, "{parent}/{index}"),
        }
    }
}

/// Deserializes any YAML value into JSON like `serde_json::Value` does, but fails on
/// a mapping key that appears twice, recording it in `repeated`.
struct StrictValue<'a, 'p> {
    at: At<'p>,
    keep: Keep,
    repeated: &'a RefCell<Option<Repeated>>,
}

impl<'de> DeserializeSeed<'de> for StrictValue<'_, '_> {
    type Value = Value;

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        deserializer.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for StrictValue<'_, '_> {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any valid JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }

    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }

    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Value, E> {
        Value::deserialize(de::value::I128Deserializer::<E>::new(v))
    }

    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Value, E> {
        Value::deserialize(de::value::U128Deserializer::<E>::new(v))
    }

    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(serde_json::Number::from_f64(v).map_or(Value::Null, Value::Number))
    }

    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(match self.keep {
            Keep::Nothing => Value::Null,
            _ => Value::String(v.to_string()),
        })
    }

    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }

    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }

    fn visit_some<D: Deserializer<'de>>(self, deserializer: D) -> Result<Value, D::Error> {
        self.deserialize(deserializer)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::new();
        let mut index = 0;
        let keep = match self.keep {
            Keep::All => Keep::All,
            _ => Keep::Nothing,
        };
        while let Some(item) = seq.next_element_seed(StrictValue {
            at: At::Index(&self.at, index),
            keep,
            repeated: self.repeated,
        })? {
            index += 1;
            if let Keep::All = keep {
                items.push(item);
            }
        }
        Ok(Value::Array(items))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut object = Map::new();
        // The keys seen, where their values are not kept in `object`.
        let mut dropped: Vec<String> = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            if object.contains_key(&key) || dropped.contains(&key) {
                let message = format!("duplicate key `{key}`");
                *self.repeated.borrow_mut() = Some(Repeated {
                    at: self.at.to_string(),
                    key,
                });
                return Err(de::Error::custom(message));
            }
            let keep = match self.keep {
                Keep::All => Keep::All,
                Keep::Keys(wanted) => wanted
                    .iter()
                    .find(|(name, _)| *name == key)
                    .map_or(Keep::Nothing, |(_, keep)| *keep),
                Keep::Nothing => Keep::Nothing,
            };
            let value = map.next_value_seed(StrictValue {
                at: At::Key(&self.at, &key),
                keep,
                repeated: self.repeated,
            })?;
            match keep {
                Keep::Nothing => dropped.push(key),
                _ => {
                    object.insert(key, value);
                }
            }
        }
        Ok(Value::Object(object))
    }
}
