//! Label selectors (the `labelSelector` query string and `LabelSelector` objects) and field
//! selectors.

use serde_json::{Map, Value};

#[derive(Debug, Clone, PartialEq)]
enum Requirement {
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
    Exists(String),
    DoesNotExist(String),
    GreaterThan(String, i64),
    LessThan(String, i64),
}

impl Requirement {
    fn matches(&self, labels: &Map<String, Value>) -> bool {
        let value = |key: &str| labels.get(key).and_then(Value::as_str);
        match self {
            Requirement::Equals(k, v) => value(k) == Some(v.as_str()),
            // As in apimachinery: `!=` and `notin` also select objects without the label.
            Requirement::NotEquals(k, v) => value(k) != Some(v.as_str()),
            Requirement::In(k, vs) => value(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::NotIn(k, vs) => !value(k).is_some_and(|x| vs.iter().any(|v| v == x)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::GreaterThan(k, n) => value(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::LessThan(k, n) => value(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        }
    }
}

/// A conjunction of label requirements; empty selects everything.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct LabelSelector {
    requirements: Vec<Requirement>,
    /// A `LabelSelector` object that can never match (policy/v1's null PDB selector).
    selects_nothing: bool,
}

impl LabelSelector {
    pub(crate) fn nothing() -> Self {
        LabelSelector {
            requirements: Vec::new(),
            selects_nothing: true,
        }
    }

    /// Parses the string form: `k=v,k!=v,k,!k,k in (a,b),k notin (a,b)` (also `==`, `>`, `<`).
    pub(crate) fn parse(text: &str) -> Result<Self, String> {
        let mut requirements = Vec::new();
        for part in split_top_level(text)? {
            let part = part.trim();
            if part.is_empty() {
                continue;
            }
            requirements.push(parse_requirement(part)?);
        }
        Ok(LabelSelector {
            requirements,
            selects_nothing: false,
        })
    }

    /// Reads a `metav1.LabelSelector` object (`matchLabels` and `matchExpressions`).
    pub(crate) fn from_object(selector: &Value) -> Result<Self, String> {
        let mut requirements = Vec::new();
        if let Some(labels) = selector["matchLabels"].as_object() {
            for (key, value) in labels {
                let value = value
                    .as_str()
                    .ok_or_else(|| format!("matchLabels value for {key} is not a string"))?;
                requirements.push(Requirement::Equals(key.clone(), value.to_string()));
            }
        }
        for expression in selector["matchExpressions"]
            .as_array()
            .into_iter()
            .flatten()
        {
            let key = expression["key"]
                .as_str()
                .ok_or("matchExpressions entry without a key")?
                .to_string();
            let values: Vec<String> = expression["values"]
                .as_array()
                .into_iter()
                .flatten()
                .filter_map(|v| v.as_str().map(String::from))
                .collect();
            let requirement = match expression["operator"].as_str() {
                Some("In") if !values.is_empty() => Requirement::In(key, values),
                Some("NotIn") if !values.is_empty() => Requirement::NotIn(key, values),
                Some("Exists") if values.is_empty() => Requirement::Exists(key),
                Some("DoesNotExist") if values.is_empty() => Requirement::DoesNotExist(key),
                other => {
                    return Err(format!(
                        "invalid matchExpressions operator {other:?} for {key}"
                    ));
                }
            };
            requirements.push(requirement);
        }
        Ok(LabelSelector {
            requirements,
            selects_nothing: false,
        })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        if self.selects_nothing {
            return false;
        }
        let empty = Map::new();
        let labels = object["metadata"]["labels"].as_object().unwrap_or(&empty);
        self.requirements.iter().all(|r| r.matches(labels))
    }
}

/// Splits on commas outside parentheses, so `k in (a,b),x` is two requirements.
fn split_top_level(text: &str) -> Result<Vec<&str>, String> {
    let mut parts = Vec::new();
    let mut depth = 0usize;
    let mut start = 0;
    for (i, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.checked_sub(1).ok_or_else(|| {
                    format!("unable to parse requirement: unmatched ')' in {text:?}")
                })?
            }
            ',' if depth == 0 => {
                parts.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    if depth != 0 {
        return Err(format!(
            "unable to parse requirement: unmatched '(' in {text:?}"
        ));
    }
    parts.push(&text[start..]);
    Ok(parts)
}

fn is_key_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/')
}

fn checked_word<'a>(word: &'a str, what: &str, requirement: &str) -> Result<&'a str, String> {
    if word.chars().all(is_key_char) {
        Ok(word)
    } else {
        Err(format!(
            "unable to parse requirement: invalid {what} {word:?} in {requirement:?}"
        ))
    }
}

fn parse_requirement(part: &str) -> Result<Requirement, String> {
    if let Some(key) = part.strip_prefix('!') {
        let key = checked_word(key.trim(), "label key", part)?;
        return Ok(Requirement::DoesNotExist(key.to_string()));
    }
    let key_end = part.find(|c: char| !is_key_char(c)).unwrap_or(part.len());
    let key = &part[..key_end];
    if key.is_empty() {
        return Err(format!(
            "unable to parse requirement: missing label key in {part:?}"
        ));
    }
    let rest = part[key_end..].trim_start();
    let key = key.to_string();
    let value = |v: &str| checked_word(v.trim(), "label value", part).map(String::from);
    let set = |v: &str| -> Result<Vec<String>, String> {
        let inner = v
            .trim()
            .strip_prefix('(')
            .and_then(|s| s.strip_suffix(')'))
            .ok_or_else(|| format!("unable to parse requirement: expected (values) in {part:?}"))?;
        let values = inner.split(',').map(value).collect::<Result<Vec<_>, _>>()?;
        if values.iter().all(String::is_empty) {
            return Err(format!(
                "unable to parse requirement: for 'in', 'notin' operators, values set can't be empty in {part:?}"
            ));
        }
        Ok(values)
    };
    let number = |v: &str| {
        v.trim()
            .parse::<i64>()
            .map_err(|_| format!("unable to parse requirement: expected an integer in {part:?}"))
    };
    if rest.is_empty() {
        Ok(Requirement::Exists(key))
    } else if let Some(v) = rest.strip_prefix("!=") {
        Ok(Requirement::NotEquals(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix("==").or_else(|| rest.strip_prefix('=')) {
        Ok(Requirement::Equals(key, value(v)?))
    } else if let Some(v) = rest.strip_prefix("notin") {
        Ok(Requirement::NotIn(key, set(v)?))
    } else if let Some(v) = rest.strip_prefix("in") {
        Ok(Requirement::In(key, set(v)?))
    } else if let Some(v) = rest.strip_prefix('>') {
        Ok(Requirement::GreaterThan(key, number(v)?))
    } else if let Some(v) = rest.strip_prefix('<') {
        Ok(Requirement::LessThan(key, number(v)?))
    } else {
        Err(format!(
            "unable to parse requirement: unknown operator in {part:?}"
        ))
    }
}

/// A `fieldSelector`: `path=value`, `path==value` and `path!=value` terms, all of which must hold.
#[derive(Debug, Clone, PartialEq, Default)]
pub(crate) struct FieldSelector {
    terms: Vec<(String, bool, String)>,
}

impl FieldSelector {
    /// Parses and checks the keys against those the resource supports (`metadata.name` and
    /// `metadata.namespace` always), answering like the API server for others.
    pub(crate) fn parse(text: &str, supported: &[String]) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in text.split(',').map(str::trim).filter(|t| !t.is_empty()) {
            let (path, equal, value) = if let Some((p, v)) = term.split_once("!=") {
                (p, false, v)
            } else if let Some((p, v)) = term.split_once("==") {
                (p, true, v)
            } else if let Some((p, v)) = term.split_once('=') {
                (p, true, v)
            } else {
                return Err(format!(
                    "invalid selector: '{text}'; can't understand '{term}'"
                ));
            };
            let path = path.trim();
            let known = path == "metadata.name"
                || path == "metadata.namespace"
                || supported.iter().any(|s| s == path);
            if !known {
                return Err(format!("field label not supported: {path}"));
            }
            terms.push((path.to_string(), equal, value.trim().to_string()));
        }
        Ok(FieldSelector { terms })
    }

    pub(crate) fn matches(&self, object: &Value) -> bool {
        self.terms.iter().all(|(path, equal, expected)| {
            let actual = path
                .split('.')
                .try_fold(object, |v, segment| v.get(segment))
                .map(field_text)
                .unwrap_or_default();
            (actual == *expected) == *equal
        })
    }
}

/// How a field compares in a selector: strings as is, other scalars in their JSON form, absent
/// as the empty string (so `spec.nodeName=` selects unscheduled pods).
fn field_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labelled(labels: Value) -> Value {
        json!({ "metadata": { "labels": labels } })
    }

    #[test]
    fn set_based_requirements() {
        let selector =
            LabelSelector::parse("app in (web, api),tier notin (db),!legacy,env").unwrap();
        assert!(selector.matches(&labelled(json!({"app": "web", "env": "prod"}))));
        assert!(!selector.matches(&labelled(json!({"app": "web", "tier": "db", "env": "x"}))));
        assert!(!selector.matches(&labelled(json!({"app": "web", "env": "x", "legacy": "1"}))));
        assert!(!selector.matches(&labelled(json!({"app": "web"}))));
    }

    #[test]
    fn not_equals_selects_objects_without_the_label() {
        let selector = LabelSelector::parse("app!=web").unwrap();
        assert!(selector.matches(&labelled(json!({}))));
        assert!(selector.matches(&json!({})));
        assert!(!selector.matches(&labelled(json!({"app": "web"}))));
    }

    #[test]
    fn equality_forms() {
        let selector = LabelSelector::parse("a=1,b==2").unwrap();
        assert!(selector.matches(&labelled(json!({"a": "1", "b": "2"}))));
        assert!(!selector.matches(&labelled(json!({"a": "1", "b": "3"}))));
    }

    #[test]
    fn malformed_selectors_are_errors() {
        assert!(LabelSelector::parse("a in (b").is_err());
        assert!(LabelSelector::parse("a in ()").is_err());
        assert!(LabelSelector::parse("a=b c").is_err());
        assert!(LabelSelector::parse("=x").is_err());
    }

    #[test]
    fn label_selector_objects() {
        let selector = LabelSelector::from_object(&json!({
            "matchLabels": {"app": "web"},
            "matchExpressions": [{"key": "track", "operator": "NotIn", "values": ["canary"]}]
        }))
        .unwrap();
        assert!(selector.matches(&labelled(json!({"app": "web"}))));
        assert!(!selector.matches(&labelled(json!({"app": "web", "track": "canary"}))));
        assert!(
            LabelSelector::from_object(&json!({}))
                .unwrap()
                .matches(&json!({}))
        );
        assert!(!LabelSelector::nothing().matches(&json!({})));
    }

    #[test]
    fn field_selectors() {
        let pod = json!({"metadata": {"name": "a"}, "spec": {"nodeName": "n1"}});
        let supported = vec!["spec.nodeName".to_string()];
        let on_n1 = FieldSelector::parse("spec.nodeName=n1,metadata.name!=b", &supported).unwrap();
        assert!(on_n1.matches(&pod));
        let unscheduled = FieldSelector::parse("spec.nodeName=", &supported).unwrap();
        assert!(unscheduled.matches(&json!({"spec": {}})));
        assert!(!unscheduled.matches(&pod));
        assert_eq!(
            FieldSelector::parse("spec.foo=1", &supported).unwrap_err(),
            "field label not supported: spec.foo"
        );
    }
}
