//! Calls of built-in functions.

use std::rc::Rc;

use base64::Engine as _;
use sha2::Digest;

use super::expr::compare;
use super::{Env, Evaluator, Instance, Result, Value, internal};
use crate::codes::Code;
use crate::diagnostic::Diagnostic;
use crate::eval::data::SecretValue;
use crate::syntax::ast::*;
use crate::types::{Builtin, Resolution};

impl<'p> Evaluator<'p> {
    pub(super) fn call(
        &self,
        expr: &'p Expr,
        name: &'p Ident,
        args: &'p [Expr],
        env: &Env<'p>,
        cluster: Option<&Rc<Instance<'p>>>,
    ) -> Result<Value<'p>> {
        let file = env.file;
        let Some(Resolution::Builtin(builtin)) = self.resolution(file, name.span) else {
            return Err(internal(file, expr.span));
        };
        let values: Vec<Value<'p>> = args
            .iter()
            .map(|a| self.eval(a, env, cluster))
            .collect::<Result<_>>()?;
        let text = |i: usize| -> Rc<str> {
            match &values[i] {
                Value::Str(s) => s.clone(),
                _ => "".into(),
            }
        };
        use Builtin::*;
        Ok(match builtin {
            Len => Value::Int(match &values[0] {
                Value::Str(s) => s.chars().count() as i64,
                Value::List(l) => l.len() as i64,
                Value::Map(m) => m.len() as i64,
                _ => 0,
            }),
            Lower => Value::Str(text(0).to_lowercase().into()),
            Upper => Value::Str(text(0).to_uppercase().into()),
            Join => {
                let parts: Vec<String> = match &values[0] {
                    Value::List(l) => l.iter().map(|v| self.to_text(v)).collect(),
                    _ => Vec::new(),
                };
                Value::Str(parts.join(&text(1)).into())
            }
            Split => Value::List(Rc::new(
                text(0)
                    .split(&*text(1))
                    .map(|s| Value::Str(s.into()))
                    .collect(),
            )),
            Contains => Value::Bool(match &values[0] {
                Value::List(l) => l.iter().any(|v| self.equal(v, &values[1])),
                Value::Map(m) => m.contains_key(&*text(1)),
                Value::Str(s) => s.contains(&*text(1)),
                _ => false,
            }),
            StartsWith => Value::Bool(text(0).starts_with(&*text(1))),
            EndsWith => Value::Bool(text(0).ends_with(&*text(1))),
            Replace => Value::Str(text(0).replace(&*text(1), &text(2)).into()),
            IsDigits => {
                Value::Bool(!text(0).is_empty() && text(0).bytes().all(|b| b.is_ascii_digit()))
            }
            IsDnsLabel => Value::Bool(crate::dns::is_dns_label(&text(0))),
            ToString => Value::Str(self.to_text(&values[0]).into()),
            Base64 => Value::Str(
                base64::engine::general_purpose::STANDARD
                    .encode(text(0).as_bytes())
                    .into(),
            ),
            Sha256 => {
                let digest = sha2::Sha256::digest(text(0).as_bytes());
                Value::Str(
                    digest
                        .iter()
                        .map(|b| format!("{b:02x}"))
                        .collect::<String>()
                        .into(),
                )
            }
            Secret => Value::Secret(Rc::new(SecretValue::new(
                text(0).to_string(),
                text(1).to_string(),
            ))),
            Keys => Value::List(Rc::new(match &values[0] {
                Value::Map(m) => m.keys().map(|k| Value::Str(k.as_str().into())).collect(),
                _ => Vec::new(),
            })),
            Values => Value::List(Rc::new(match &values[0] {
                Value::Map(m) => m.values().cloned().collect(),
                _ => Vec::new(),
            })),
            Min | Max => {
                let ord =
                    compare(&values[0], &values[1]).ok_or_else(|| internal(file, expr.span))?;
                let first_wins = if *builtin == Min {
                    ord.is_le()
                } else {
                    ord.is_ge()
                };
                if first_wins {
                    values[0].clone()
                } else {
                    values[1].clone()
                }
            }
            Range => {
                let n = match values[0] {
                    Value::Int(n) => n,
                    _ => 0,
                };
                if !(0..=100_000).contains(&n) {
                    return Err(Diagnostic::error(
                        Code::E0304,
                        format!("range({n}) is out of bounds"),
                    )
                    .at(file, args[0].span, "must be between 0 and 100000"));
                }
                Value::List(Rc::new((0..n).map(Value::Int).collect()))
            }
            Seconds => Value::Int(match values[0] {
                Value::Duration(ms) => ms / 1000,
                _ => 0,
            }),
            CidrSubnet => {
                let (newbits, netnum) = match (&values[1], &values[2]) {
                    (Value::Int(a), Value::Int(b)) => (*a, *b),
                    _ => return Err(internal(file, expr.span)),
                };
                match cidr_subnet(&text(0), newbits, netnum) {
                    Some(s) => Value::Str(s.into()),
                    None => {
                        return Err(Diagnostic::error(Code::E0304, "cidr_subnet: no such subnet")
                            .at(file, expr.span, "invalid prefix, newbits or netnum")
                            .help("the prefix is an IPv4 CIDR like \"10.0.0.0/16\"; prefix length + newbits ≤ 32 and netnum < 2^newbits"));
                    }
                }
            }
        })
    }
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
