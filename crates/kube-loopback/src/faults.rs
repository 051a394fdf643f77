//! Injected failures: requests that match a rule get an error `Status` instead of an answer.

use crate::status::ApiError;

/// A rule making matching requests fail with `status` (500, 503, 429, 403, ...) and a `Status`
/// body whose reason matches the code.
///
/// ```
/// # use kube_loopback::Failure;
/// // The next two PATCHes of anything under /apis/apps fail with 500.
/// let rule = Failure::new(500).method("PATCH").path_prefix("/apis/apps").times(2);
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Failure {
    status: u16,
    method: Option<String>,
    path_prefix: String,
    message: Option<String>,
    remaining: Option<u32>,
}

impl Failure {
    /// Fails every request, until cleared, with this HTTP status.
    pub fn new(status: u16) -> Self {
        Failure {
            status,
            method: None,
            path_prefix: "/".into(),
            message: None,
            remaining: None,
        }
    }

    /// Only requests with this method (`"GET"`, `"PATCH"`, ...; any case).
    pub fn method(mut self, method: &str) -> Self {
        self.method = Some(method.to_ascii_uppercase());
        self
    }

    /// Only requests whose path (without the query) starts with this.
    pub fn path_prefix(mut self, prefix: &str) -> Self {
        self.path_prefix = prefix.to_string();
        self
    }

    /// The `Status` message instead of the default one.
    pub fn message(mut self, message: &str) -> Self {
        self.message = Some(message.to_string());
        self
    }

    /// Only the next `n` matching requests; then the rule is gone.
    pub fn times(mut self, n: u32) -> Self {
        self.remaining = Some(n);
        self
    }

    fn matches(&self, method: &str, path: &str) -> bool {
        self.remaining != Some(0)
            && self.method.as_deref().is_none_or(|m| m == method)
            && path.starts_with(&self.path_prefix)
    }
}

#[derive(Debug, Default)]
pub(crate) struct Faults {
    rules: Vec<Failure>,
}

impl Faults {
    pub(crate) fn add(&mut self, rule: Failure) {
        self.rules.push(rule);
    }

    pub(crate) fn clear(&mut self) {
        self.rules.clear();
    }

    /// The error for this request if a rule matches, using up one of a counted rule's turns.
    pub(crate) fn take(&mut self, method: &str, path: &str) -> Option<ApiError> {
        let index = self.rules.iter().position(|r| r.matches(method, path))?;
        let rule = &mut self.rules[index];
        let message = rule
            .message
            .clone()
            .unwrap_or_else(|| format!("injected failure for {method} {path}"));
        let error = ApiError::for_code(rule.status, message);
        if let Some(remaining) = &mut rule.remaining {
            *remaining = remaining.saturating_sub(1);
            if *remaining == 0 {
                self.rules.remove(index);
            }
        }
        Some(error)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counted_rules_run_out() {
        let mut faults = Faults::default();
        faults.add(
            Failure::new(503)
                .method("get")
                .path_prefix("/api/v1")
                .times(1),
        );
        assert!(faults.take("POST", "/api/v1/pods").is_none());
        assert_eq!(
            faults.take("GET", "/api/v1/pods").map(|e| e.code),
            Some(503)
        );
        assert!(faults.take("GET", "/api/v1/pods").is_none());
    }
}
