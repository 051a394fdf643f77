//! Reading evaluated records by field name: the one place that does. Every field the
//! model reads must be there with the expected kind, and every field of the record must
//! be read, so the stdlib and the model cannot drift apart unnoticed.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::eval::{Data, Quantity, Record, SecretValue};

use super::Source;

/// Why an evaluated value does not fit the model.
#[derive(Debug, thiserror::Error)]
pub(super) enum ModelError {
    #[error("expected a `{expected}` record, found {found}")]
    NotARecord {
        expected: &'static str,
        found: String,
    },
    #[error("`{record}` has no field `{field}`, which flotilla reads")]
    Missing {
        record: &'static str,
        field: &'static str,
    },
    #[error("`{record}` has a field `{field}` that flotilla does not read")]
    Unread { record: &'static str, field: String },
    #[error("`{record}.{field}` is {found}, but flotilla expects {expected}")]
    WrongKind {
        record: &'static str,
        field: &'static str,
        expected: &'static str,
        found: String,
    },
    #[error("`{record}.{field}` is `{variant}`, which is not a `{enumeration}` flotilla knows")]
    UnknownVariant {
        record: &'static str,
        field: &'static str,
        enumeration: &'static str,
        variant: String,
    },
    #[error("`{record}.{field}` is a negative duration")]
    NegativeDuration {
        record: &'static str,
        field: &'static str,
    },
    #[error("cluster `{0}` was evaluated but has no declaration")]
    Undeclared(String),
}

impl ModelError {
    /// E0307 at the cluster's label when it is known.
    pub(super) fn diagnostic(&self, cluster: Option<&Source>) -> Diagnostic {
        let d = Diagnostic::error(Code::E0307, format!("the evaluated fleet does not fit flotilla's model: {self}"))
            .help("the stdlib (stdlib/std) and src/model.rs must declare the same fields: update both together");
        match cluster {
            Some(source) => d.at(source.file, source.label, "in this cluster"),
            None => d,
        }
    }
}

/// An enum declared in the stdlib, read from its variant name.
pub(super) trait StdlibEnum: Sized {
    const TYPE: &'static str;
    fn from_name(text: &str) -> Option<Self>;
}

/// The fields of one evaluated record, each to be read exactly once.
pub(super) struct Reader<'a> {
    record: &'static str,
    fields: &'a [(String, Data)],
    read: Vec<bool>,
}

type Read<T> = Result<T, ModelError>;

impl<'a> Reader<'a> {
    pub(super) fn record(data: &'a Data, expected: &'static str) -> Read<Reader<'a>> {
        match data {
            Data::Record(Record { type_name, fields }) if type_name == expected => Ok(Reader {
                record: expected,
                fields,
                read: vec![false; fields.len()],
            }),
            other => Err(ModelError::NotARecord {
                expected,
                found: kind_of(other),
            }),
        }
    }

    /// Every field was read; one that was not is a field the model does not know.
    pub(super) fn finish(self) -> Read<()> {
        match self.fields.iter().zip(&self.read).find(|(_, read)| !**read) {
            Some(((field, _), _)) => Err(ModelError::Unread {
                record: self.record,
                field: field.clone(),
            }),
            None => Ok(()),
        }
    }

    fn take(&mut self, field: &'static str) -> Read<&'a Data> {
        let index = self
            .fields
            .iter()
            .position(|(name, _)| name == field)
            .ok_or(ModelError::Missing {
                record: self.record,
                field,
            })?;
        self.read[index] = true;
        Ok(&self.fields[index].1)
    }

    fn wrong(&self, field: &'static str, expected: &'static str, found: &Data) -> ModelError {
        ModelError::WrongKind {
            record: self.record,
            field,
            expected,
            found: kind_of(found),
        }
    }

    pub(super) fn string(&mut self, field: &'static str) -> Read<String> {
        match self.take(field)? {
            Data::String(text) => Ok(text.clone()),
            other => Err(self.wrong(field, "a String", other)),
        }
    }

    pub(super) fn optional_string(&mut self, field: &'static str) -> Read<Option<String>> {
        match self.take(field)? {
            Data::String(text) => Ok(Some(text.clone())),
            Data::Null => Ok(None),
            other => Err(self.wrong(field, "a String or null", other)),
        }
    }

    pub(super) fn int(&mut self, field: &'static str) -> Read<i64> {
        match self.take(field)? {
            Data::Int(n) => Ok(*n),
            other => Err(self.wrong(field, "an Int", other)),
        }
    }

    pub(super) fn optional_int(&mut self, field: &'static str) -> Read<Option<i64>> {
        match self.take(field)? {
            Data::Int(n) => Ok(Some(*n)),
            Data::Null => Ok(None),
            other => Err(self.wrong(field, "an Int or null", other)),
        }
    }

    pub(super) fn bool(&mut self, field: &'static str) -> Read<bool> {
        match self.take(field)? {
            Data::Bool(b) => Ok(*b),
            other => Err(self.wrong(field, "a Bool", other)),
        }
    }

    pub(super) fn duration(&mut self, field: &'static str) -> Read<Duration> {
        match self.take(field)? {
            Data::Duration(ms) => u64::try_from(*ms).map(Duration::from_millis).map_err(|_| {
                ModelError::NegativeDuration {
                    record: self.record,
                    field,
                }
            }),
            other => Err(self.wrong(field, "a Duration", other)),
        }
    }

    pub(super) fn quantity(&mut self, field: &'static str) -> Read<Quantity> {
        match self.take(field)? {
            Data::Quantity(q) => Ok(q.clone()),
            other => Err(self.wrong(field, "a Quantity", other)),
        }
    }

    pub(super) fn enumeration<E: StdlibEnum>(&mut self, field: &'static str) -> Read<E> {
        match self.take(field)? {
            Data::Enum(variant) => {
                E::from_name(variant).ok_or_else(|| ModelError::UnknownVariant {
                    record: self.record,
                    field,
                    enumeration: E::TYPE,
                    variant: variant.clone(),
                })
            }
            other => Err(self.wrong(field, E::TYPE, other)),
        }
    }

    pub(super) fn strings(&mut self, field: &'static str) -> Read<Vec<String>> {
        match self.take(field)? {
            Data::List(items) => items
                .iter()
                .map(|item| match item {
                    Data::String(text) => Ok(text.clone()),
                    other => Err(self.wrong(field, "a list of String", other)),
                })
                .collect(),
            other => Err(self.wrong(field, "a list of String", other)),
        }
    }

    pub(super) fn string_map(&mut self, field: &'static str) -> Read<BTreeMap<String, String>> {
        self.map(field, "a map of String", |value| match value {
            Data::String(text) => Some(text.clone()),
            _ => None,
        })
    }

    pub(super) fn secret_map(
        &mut self,
        field: &'static str,
    ) -> Read<BTreeMap<String, SecretValue>> {
        self.map(field, "a map of Secret", |value| match value {
            Data::Secret(secret) => Some(secret.clone()),
            _ => None,
        })
    }

    fn map<T>(
        &mut self,
        field: &'static str,
        expected: &'static str,
        value: impl Fn(&Data) -> Option<T>,
    ) -> Read<BTreeMap<String, T>> {
        match self.take(field)? {
            Data::Map(entries) => entries
                .iter()
                .map(|(key, v)| {
                    value(v)
                        .map(|v| (key.clone(), v))
                        .ok_or_else(|| self.wrong(field, expected, v))
                })
                .collect(),
            other => Err(self.wrong(field, expected, other)),
        }
    }

    /// A nested record of type `expected`.
    pub(super) fn record_field(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Read<Reader<'a>> {
        Reader::record(self.take(field)?, expected)
    }

    /// A list of records of type `expected`.
    pub(super) fn records(
        &mut self,
        field: &'static str,
        expected: &'static str,
    ) -> Read<Vec<Reader<'a>>> {
        match self.take(field)? {
            Data::List(items) => items
                .iter()
                .map(|item| Reader::record(item, expected))
                .collect(),
            other => Err(self.wrong(field, "a list of records", other)),
        }
    }
}

/// What kind of value `data` is, for messages.
fn kind_of(data: &Data) -> String {
    match data {
        Data::Null => "null".into(),
        Data::Bool(_) => "a Bool".into(),
        Data::Int(_) => "an Int".into(),
        Data::Float(_) => "a Float".into(),
        Data::String(_) => "a String".into(),
        Data::Duration(_) => "a Duration".into(),
        Data::Quantity(_) => "a Quantity".into(),
        Data::Secret(_) => "a Secret".into(),
        Data::Enum(variant) => format!("the enum variant `{variant}`"),
        Data::List(_) => "a list".into(),
        Data::Map(_) => "a map".into(),
        Data::Record(record) => format!("a `{}` record", record.type_name),
    }
}
