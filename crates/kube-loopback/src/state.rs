//! Everything the server holds, behind one lock: served types, objects, injected failures, and a
//! log of the requests it answered.

use std::fmt;

use serde_json::{Value, json};

use crate::catalog::Catalog;
use crate::faults::Faults;
use crate::store::{ObjectKey, Store};
use crate::verbs::{apply_create_defaults, meta_str, set_meta};

/// One request the server answered, for tests that check what a client did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordedRequest {
    pub method: String,
    pub path: String,
    /// The raw query string, without `?`.
    pub query: String,
    pub status: u16,
}

/// Why an object could not be seeded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SeedError {
    /// No served resource has this `apiVersion` and `kind`.
    UnknownKind { api_version: String, kind: String },
    /// The object lacks what every object needs (a map with `apiVersion`, `kind`, `metadata.name`).
    Malformed(String),
}

impl fmt::Display for SeedError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SeedError::UnknownKind { api_version, kind } => {
                write!(f, "no resource is served for {api_version} {kind}")
            }
            SeedError::Malformed(why) => write!(f, "cannot seed object: {why}"),
        }
    }
}

impl std::error::Error for SeedError {}

#[derive(Debug)]
pub(crate) struct State {
    pub(crate) catalog: Catalog,
    pub(crate) store: Store,
    pub(crate) faults: Faults,
    pub(crate) requests: Vec<RecordedRequest>,
    /// `host:port`, as `/api` reports it.
    pub(crate) address: String,
}

/// The namespaces a new cluster has.
const INITIAL_NAMESPACES: [&str; 4] = ["default", "kube-system", "kube-public", "kube-node-lease"];

impl State {
    pub(crate) fn new(address: String) -> Self {
        let mut state = State {
            catalog: Catalog::builtin(),
            store: Store::new(),
            faults: Faults::default(),
            requests: Vec::new(),
            address,
        };
        for namespace in INITIAL_NAMESPACES {
            let object =
                json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}});
            // Built-in kind, well-formed object: seeding cannot fail.
            let _ = state.seed(object);
        }
        state
    }

    /// Stores an object as given, replacing any with the same name: no validation, no
    /// namespace check, no ownership records. Fills in what the server would have set and the
    /// object lacks (uid, creationTimestamp, generation), always bumps `resourceVersion`.
    pub(crate) fn seed(&mut self, mut object: Value) -> Result<Value, SeedError> {
        let api_version = object["apiVersion"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        let kind = object["kind"].as_str().unwrap_or_default().to_string();
        let resource = self
            .catalog
            .find_kind(&api_version, &kind)
            .ok_or(SeedError::UnknownKind { api_version, kind })?;
        if !object["metadata"].is_object() {
            return Err(SeedError::Malformed("metadata must be an object".into()));
        }
        let name = meta_str(&object, "name")
            .filter(|n| !n.is_empty())
            .ok_or_else(|| SeedError::Malformed("metadata.name is required".into()))?
            .to_string();
        let namespace = if resource.namespaced() {
            let namespace = meta_str(&object, "namespace")
                .unwrap_or("default")
                .to_string();
            set_meta(&mut object, "namespace", json!(namespace));
            namespace
        } else {
            if let Some(metadata) = object["metadata"].as_object_mut() {
                metadata.remove("namespace");
            }
            String::new()
        };
        let key = ObjectKey::new(&resource, &namespace, &name);
        let previous = self.store.get(&key).cloned();
        let fill = |object: &mut Value, field: &str, value: Value| {
            if object["metadata"][field].is_null() {
                set_meta(object, field, value);
            }
        };
        let uid = match previous.as_ref().and_then(|p| meta_str(p, "uid")) {
            Some(uid) => uid.to_string(),
            None => self.store.next_uid(),
        };
        fill(&mut object, "uid", json!(uid));
        fill(&mut object, "creationTimestamp", json!(self.store.now()));
        fill(&mut object, "generation", json!(1));
        if previous.is_none() {
            apply_create_defaults(&resource, &mut object);
        }
        set_meta(
            &mut object,
            "resourceVersion",
            json!(self.store.next_revision()),
        );
        self.store.put(key, object.clone());
        if resource.is("apiextensions.k8s.io", "customresourcedefinitions") {
            self.catalog.define(&object);
        }
        Ok(object)
    }
}
