//! The object store: objects keyed by resource, namespace and name, plus the counters and clock
//! that stamp them.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::catalog::ResourceType;

/// Where an object lives. Objects are stored once per group and resource, whatever version they
/// were written with; the ordering (namespace, then name) is the order lists come out in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct ObjectKey {
    pub(crate) group: String,
    pub(crate) plural: String,
    /// Empty for cluster-scoped objects.
    pub(crate) namespace: String,
    pub(crate) name: String,
}

impl ObjectKey {
    pub(crate) fn new(resource: &ResourceType, namespace: &str, name: &str) -> Self {
        ObjectKey {
            group: resource.group.clone(),
            plural: resource.plural.clone(),
            namespace: if resource.namespaced() {
                namespace.to_string()
            } else {
                String::new()
            },
            name: name.to_string(),
        }
    }

    pub(crate) fn namespace_object(name: &str) -> Self {
        ObjectKey {
            group: String::new(),
            plural: "namespaces".into(),
            namespace: String::new(),
            name: name.to_string(),
        }
    }
}

/// The time objects are stamped with until a test moves the clock.
pub(crate) const DEFAULT_TIME: &str = "2026-01-01T00:00:00Z";

#[derive(Debug)]
pub(crate) struct Store {
    objects: BTreeMap<ObjectKey, Value>,
    /// The global resourceVersion: bumped by every stored change.
    revision: u64,
    uids_issued: u64,
    /// RFC 3339; fixed so tests are deterministic.
    now: String,
}

impl Store {
    pub(crate) fn new() -> Self {
        Store {
            objects: BTreeMap::new(),
            revision: 0,
            uids_issued: 0,
            now: DEFAULT_TIME.to_string(),
        }
    }

    pub(crate) fn revision(&self) -> String {
        self.revision.to_string()
    }

    pub(crate) fn next_revision(&mut self) -> String {
        self.revision += 1;
        self.revision.to_string()
    }

    /// UUID-shaped and deterministic: the n-th uid this server issued.
    pub(crate) fn next_uid(&mut self) -> String {
        self.uids_issued += 1;
        format!("00000000-0000-4000-8000-{:012x}", self.uids_issued)
    }

    /// Five characters for `generateName`, from the alphabet apimachinery uses.
    pub(crate) fn next_name_suffix(&mut self) -> String {
        const ALPHABET: &[u8] = b"bcdfghjklmnpqrstvwxz2456789";
        self.uids_issued += 1;
        let mut n = self.uids_issued;
        (0..5)
            .map(|_| {
                let c = ALPHABET[(n % ALPHABET.len() as u64) as usize] as char;
                n /= ALPHABET.len() as u64;
                c
            })
            .collect()
    }

    pub(crate) fn now(&self) -> &str {
        &self.now
    }

    pub(crate) fn set_now(&mut self, time: &str) {
        self.now = time.to_string();
    }

    pub(crate) fn get(&self, key: &ObjectKey) -> Option<&Value> {
        self.objects.get(key)
    }

    pub(crate) fn put(&mut self, key: ObjectKey, object: Value) {
        self.objects.insert(key, object);
    }

    pub(crate) fn remove(&mut self, key: &ObjectKey) -> Option<Value> {
        self.objects.remove(key)
    }

    pub(crate) fn namespace_exists(&self, namespace: &str) -> bool {
        self.objects
            .contains_key(&ObjectKey::namespace_object(namespace))
    }

    /// Objects of one resource, in one namespace or (`None`) in all.
    pub(crate) fn list<'a>(
        &'a self,
        resource: &'a ResourceType,
        namespace: Option<&'a str>,
    ) -> impl Iterator<Item = (&'a ObjectKey, &'a Value)> + 'a {
        self.objects.iter().filter(move |(key, _)| {
            key.group == resource.group
                && key.plural == resource.plural
                && namespace.is_none_or(|ns| key.namespace == ns)
        })
    }

    pub(crate) fn all(&self) -> impl Iterator<Item = (&ObjectKey, &Value)> {
        self.objects.iter()
    }
}
