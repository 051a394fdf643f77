//! `flotilla import-registry`: the reference system's cluster registry (YAML) → .flt.
//!
//! The registry is read leniently: unknown fields are ignored, numbers are accepted where
//! text is expected and text where numbers are. What cannot be carried over faithfully is
//! an error that names the cluster and the field, never a silent default.
//!
//! Config items that the stdlib's `ConfigItems` type declares become typed fields. Their
//! types are read from the embedded stdlib, so an item added there is imported typed
//! without a change here. Every other config item goes into `custom`, as text.
//!
//! **Secrets.** A config item (of a cluster or a node pool) becomes a `secret(…)` value in
//! `secrets` when its name, lower-cased with `-` read as `_`, contains one of
//! [`SECRET_NAME_PARTS`] (`password`, `passwd`, `secret`, `token`, `private_key`,
//! `credential`, `api_key`, `apikey`, `access_key`), or when its value is stored
//! encrypted the way the reference system stores it (`aws:kms:…`, a KMS ciphertext:
//! imported as it is, still encrypted, but never shown).
//!
//! **Cluster ids.** A registry id that is a DNS label is the cluster id. Other ids (the
//! reference system's `aws:123456789012:eu-central-1:kube-1`) are kept in `registry_id`
//! and the cluster id is, in this order: the registry's `alias` when it is a DNS label;
//! else `REGION-LOCAL_ID` (`eu-central-1-kube-1`), with `local_id` taken from the field
//! or the id's last `:` part, lower-cased and every other character run turned into
//! `-`; when several clusters of the registry would get the same `REGION-LOCAL_ID`, each
//! of them gets its account id appended (`eu-central-1-kube-1-123456789012`). `alias`,
//! `local_id` and `criticality_level` are kept as typed fields of the cluster, node
//! pool config items without a field of their own in the pool's `config_items`.

use std::collections::{BTreeMap, HashMap};
use std::fmt;

use serde::Deserialize;
use serde_yaml_ng::Value;

use crate::eval::Quantity;
use crate::resolve::{PRELUDE, STDLIB};
use crate::source::FileId;
use crate::syntax::ast::{Item, Member, TypeExpr, TypeExprKind};
use crate::units::{format_duration, parse_duration_ms};

/// How imported clusters are wired to channels.
pub struct ImportOptions {
    /// Import path of the channel declarations, written at the top of the output.
    pub channels_import: String,
    pub production_channel: String,
    pub test_channel: String,
}

/// Names that mark a config item as secret (see the module documentation).
pub const SECRET_NAME_PARTS: [&str; 9] = [
    "password",
    "passwd",
    "secret",
    "token",
    "private_key",
    "credential",
    "api_key",
    "apikey",
    "access_key",
];

/// How the reference system marks a value it stores encrypted (a KMS ciphertext).
pub const ENCRYPTED_PREFIX: &str = "aws:kms:";

/// Why a registry cannot be imported.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    #[error("invalid YAML: {0}")]
    Yaml(#[from] serde_yaml_ng::Error),
    #[error("{0}")]
    Document(String),
    #[error("{option}: {problem}")]
    Option {
        option: &'static str,
        #[source]
        problem: Problem,
    },
    /// A merge key (`<<`) that cannot be applied.
    #[error("{0}")]
    Merge(#[source] Problem),
    /// A cluster (or something inside it) that cannot be carried over.
    #[error("{at}: {problem}")]
    Entry {
        at: String,
        #[source]
        problem: Problem,
    },
    #[error("{at}: id `{id}` is already used by clusters[{first}]{hint}")]
    DuplicateId {
        at: String,
        id: String,
        first: usize,
        hint: DuplicateHint,
    },
    #[error("internal error: the generated source does not parse ({0}); please report this")]
    Generated(String),
    #[error("internal error: the stdlib declares no `ConfigItems` type; please report this")]
    NoConfigItemsType,
}

/// What is wrong with a value of the registry, or where it is (the `In…` variants wrap
/// the problem found inside).
#[derive(Debug, thiserror::Error)]
pub enum Problem {
    #[error("`{field}`: {problem}")]
    InField {
        field: &'static str,
        #[source]
        problem: Box<Problem>,
    },
    #[error("config item `{item}`: {problem}")]
    InConfigItem {
        item: String,
        #[source]
        problem: Box<Problem>,
    },
    /// Inside an element of a list, such as `node_pools[0] (name `a`)`.
    #[error("{at}: {problem}")]
    InElement {
        at: String,
        #[source]
        problem: Box<Problem>,
    },
    #[error("expected a mapping of {what} fields, found {found}")]
    NotAMapping {
        what: &'static str,
        found: &'static str,
    },
    #[error("{0}")]
    Fields(#[source] serde_yaml_ng::Error),
    #[error("expected text, a number or a boolean, found {0}")]
    NotScalar(&'static str),
    #[error("expected a whole number, found {0}")]
    NotWholeNumber(String),
    #[error("{0} is out of range")]
    OutOfRange(String),
    #[error("expected true or false, found {0}")]
    NotBool(String),
    #[error("expected a duration with a unit such as `90s`, `5m` or `1h30m`, found {0}")]
    NotDuration(String),
    #[error("expected a Kubernetes quantity such as `500Mi`, `2Gi` or `250m`, found `{0}`")]
    NotQuantity(String),
    #[error("the stdlib declares it as {0}, which import-registry cannot convert; set it by hand")]
    Unconvertible(String),
    #[error("`config_items` must be a mapping, found {0}")]
    ConfigItemsNotAMapping(&'static str),
    #[error("config item names must be text, found {0}")]
    ConfigItemName(&'static str),
    #[error("`node_pools` must be a list, found {0}")]
    NodePoolsNotAList(&'static str),
    #[error(
        "`id` `{id}` is not a DNS label and {why}, so no cluster id can be derived from it: \
         give the cluster an `alias` that is a DNS label (lower-case letters, digits and `-`, \
         starting with a letter, at most 63 characters)"
    )]
    NoClusterId { id: String, why: String },
    #[error("provider `{0}` is not supported: flotilla describes clusters on AWS")]
    Provider(String),
    #[error(
        "unknown environment `{0}`: expected `production` or `test` \
         (e2e, staging, dev and playground are read as test)"
    )]
    Environment(String),
    #[error(
        "unknown lifecycle_status `{0}`: expected requested, ready, \
         decommission-requested or decommissioned"
    )]
    LifecycleStatus(String),
    #[error("`infrastructure_account` `{0}` is not an AWS account (expected `aws:ID`)")]
    NotAnAwsAccount(String),
    #[error(
        "`{0}` is not a valid channel name (letters, digits and `_`, not starting with a digit)"
    )]
    ChannelName(String),
    #[error("unknown discount_strategy `{0}`: expected spot, spot_max_price or none")]
    DiscountStrategy(String),
    #[error("`instance_type` names no instance type")]
    NoInstanceType,
    #[error("label `{0}` is not `key=value`")]
    Label(String),
    #[error("taint `{0}` is not `key=value:Effect`")]
    Taint(String),
    #[error(
        "taint `{spec}` has effect `{effect}`: expected NoSchedule, PreferNoSchedule or NoExecute"
    )]
    TaintEffect { spec: String, effect: String },
    #[error("a merge key `<<` lists {0}: it takes mappings (`<<: [*a, *b]`)")]
    MergeListItem(&'static str),
    #[error(
        "a merge key `<<` is given {0}: it takes a mapping or a list of them (`<<: *defaults`)"
    )]
    MergeValue(&'static str),
}

impl Problem {
    fn in_field(field: &'static str) -> impl FnOnce(Problem) -> Problem {
        move |problem| Problem::InField {
            field,
            problem: Box::new(problem),
        }
    }

    fn in_config_item(item: &str) -> impl FnOnce(Problem) -> Problem + '_ {
        move |problem| Problem::InConfigItem {
            item: item.to_string(),
            problem: Box::new(problem),
        }
    }
}

/// What to do about a repeated cluster id: it depends on where the id came from.
#[derive(Debug)]
pub enum DuplicateHint {
    /// The registry itself repeats an id, or two aliases are the same.
    None,
    /// The id was derived from a non-DNS-label registry id.
    Derived,
}

impl fmt::Display for DuplicateHint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DuplicateHint::None => Ok(()),
            DuplicateHint::Derived => f.write_str(
                " (derived from the registry id; give one of the clusters an `alias` that is a DNS label)",
            ),
        }
    }
}

/// Convert a registry document to formatted .flt source.
pub fn import(yaml: &str, options: &ImportOptions) -> Result<String, RegistryError> {
    let option_error = |option| move |problem| RegistryError::Option { option, problem };
    let production_channel =
        channel_name(&options.production_channel).map_err(option_error("production channel"))?;
    let test_channel = channel_name(&options.test_channel).map_err(option_error("test channel"))?;
    let mut document: Value = serde_yaml_ng::from_str(yaml)?;
    apply_merge_keys(&mut document).map_err(RegistryError::Merge)?;
    if !document.is_mapping() {
        return Err(RegistryError::Document(format!(
            "the registry must be a mapping with a `clusters:` list, found {}",
            kind(&document)
        )));
    }
    let registry: Registry = serde_yaml_ng::from_value(document)
        .map_err(|e| RegistryError::Document(format!("registry: {e}")))?;
    let clusters = match &registry.clusters {
        Value::Sequence(clusters) => clusters.as_slice(),
        Value::Null => &[],
        other => {
            return Err(RegistryError::Document(format!(
                "`clusters` must be a list, found {}",
                kind(other)
            )));
        }
    };
    let config_types = config_item_types().ok_or(RegistryError::NoConfigItemsType)?;
    let defaults = ChannelDefaults {
        production: production_channel,
        test: test_channel,
    };
    let shared_region_ids = shared_region_ids(clusters);

    let mut out = Writer::default();
    out.line(&format!("import {}", quote(&options.channels_import)));
    let mut first_index_of_id: HashMap<String, usize> = HashMap::new();
    for (index, raw) in clusters.iter().enumerate() {
        let at = position("clusters", index, raw, "id");
        let id = write_cluster(&mut out, raw, &defaults, &config_types, &shared_region_ids)
            .map_err(|problem| RegistryError::Entry {
                at: at.clone(),
                problem,
            })?;
        if let Some(first) = first_index_of_id.insert(id.id.clone(), index) {
            return Err(RegistryError::DuplicateId {
                at,
                id: id.id,
                first,
                hint: if id.derived {
                    DuplicateHint::Derived
                } else {
                    DuplicateHint::None
                },
            });
        }
    }
    crate::format::format_source(FileId(0), &out.text).map_err(|diagnostics| {
        let messages: Vec<String> = diagnostics.into_iter().map(|d| d.message).collect();
        RegistryError::Generated(messages.join("; "))
    })
}

// ---- the registry format -----------------------------------------------------------

#[derive(Deserialize)]
struct Registry {
    clusters: Value,
}

/// One `clusters:` entry. Scalars stay `Value`s so that conversion errors can name the
/// field; serde still reports missing required fields by name.
#[derive(Deserialize)]
struct RegistryCluster {
    id: Value,
    api_server_url: Value,
    environment: Value,
    region: Value,
    infrastructure_account: Value,
    lifecycle_status: Option<Value>,
    channel: Option<Value>,
    owner: Option<Value>,
    alias: Option<Value>,
    local_id: Option<Value>,
    criticality_level: Option<Value>,
    provider: Option<Value>,
    config_items: Option<Value>,
    node_pools: Option<Value>,
}

#[derive(Deserialize)]
struct RegistryNodePool {
    name: Value,
    /// One type, a comma-separated list, or a YAML list.
    #[serde(alias = "instance_types")]
    instance_type: Value,
    min_size: Option<Value>,
    max_size: Value,
    profile: Option<Value>,
    /// `spot` or `spot_max_price` buy spot capacity; `none` on-demand.
    discount_strategy: Option<Value>,
    config_items: Option<Value>,
}

struct ChannelDefaults<'a> {
    production: &'a str,
    test: &'a str,
}

// ---- clusters -----------------------------------------------------------------------

/// A cluster's id in the output, and whether it was derived from another registry id.
struct ClusterId {
    id: String,
    derived: bool,
}

/// `REGION-LOCAL_ID` of a cluster whose registry id is not a DNS label, before any
/// account is appended; `None` when the id is usable as it is or the entry is malformed
/// (its own error is reported when it is written).
fn region_local_id(raw: &Value) -> Option<String> {
    let id = scalar(raw.get("id")?).ok()?;
    if crate::dns::is_dns_label(&id) {
        return None;
    }
    if let Some(alias) = raw.get("alias").and_then(|a| scalar(a).ok())
        && crate::dns::is_dns_label(&alias)
    {
        return None;
    }
    let region = scalar(raw.get("region")?).ok()?;
    let local_id = match raw.get("local_id") {
        Some(local_id) => scalar(local_id).ok()?,
        None => id.rsplit(':').next()?.to_string(),
    };
    Some(dns_label_from(&format!("{region}-{local_id}")))
}

/// The `REGION-LOCAL_ID` ids that more than one cluster of the registry would get.
fn shared_region_ids(clusters: &[Value]) -> std::collections::HashSet<String> {
    let mut counts: HashMap<String, usize> = HashMap::new();
    for id in clusters.iter().filter_map(region_local_id) {
        *counts.entry(id).or_default() += 1;
    }
    counts
        .into_iter()
        .filter(|(_, count)| *count > 1)
        .map(|(id, _)| id)
        .collect()
}

/// Lower-case ASCII letters and digits kept, every run of anything else one `-`, no
/// `-` at either end.
fn dns_label_from(text: &str) -> String {
    let mut label = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_ascii_alphanumeric() {
            label.push(c.to_ascii_lowercase());
        } else if !label.is_empty() && !label.ends_with('-') {
            label.push('-');
        }
    }
    label.trim_end_matches('-').to_string()
}

/// The cluster id for a registry entry (the rule is in the module documentation).
fn cluster_id(
    entry: &RegistryCluster,
    raw: &Value,
    shared: &std::collections::HashSet<String>,
) -> Result<ClusterId, Problem> {
    let registry_id = text(&entry.id, "id")?;
    if crate::dns::is_dns_label(&registry_id) {
        return Ok(ClusterId {
            id: registry_id,
            derived: false,
        });
    }
    if let Some(alias) = &entry.alias {
        let alias = text(alias, "alias")?;
        if crate::dns::is_dns_label(&alias) {
            return Ok(ClusterId {
                id: alias,
                derived: false,
            });
        }
    }
    let unusable = |why: String| Problem::NoClusterId {
        id: registry_id.clone(),
        why,
    };
    let Some(base) = region_local_id(raw) else {
        return Err(unusable("its `region` or `local_id` is missing".into()));
    };
    let mut id = base.clone();
    if shared.contains(&base) {
        id = format!("{base}-{}", account(&entry.infrastructure_account)?);
    }
    if !crate::dns::is_dns_label(&id) {
        return Err(unusable(format!(
            "`{id}` (region, local id and account) is not one either"
        )));
    }
    Ok(ClusterId { id, derived: true })
}

/// Write one cluster; returns its id.
fn write_cluster(
    out: &mut Writer,
    raw: &Value,
    defaults: &ChannelDefaults,
    config_types: &[(String, ItemType)],
    shared_region_ids: &std::collections::HashSet<String>,
) -> Result<ClusterId, Problem> {
    if !raw.is_mapping() {
        return Err(Problem::NotAMapping {
            what: "cluster",
            found: kind(raw),
        });
    }
    let entry: RegistryCluster = serde_yaml_ng::from_value(raw.clone()).map_err(Problem::Fields)?;
    let cluster_id = cluster_id(&entry, raw, shared_region_ids)?;
    let registry_id = text(&entry.id, "id")?;
    let id = &cluster_id.id;
    let environment = environment(&text(&entry.environment, "environment")?)?;
    let channel = match &entry.channel {
        Some(value) => channel_name(&text(value, "channel")?)?.to_string(),
        None if environment == "production" => defaults.production.to_string(),
        None => defaults.test.to_string(),
    };
    if let Some(provider) = &entry.provider {
        let provider = text(provider, "provider")?;
        if !provider.to_ascii_lowercase().contains("aws") {
            return Err(Problem::Provider(provider));
        }
    }

    out.line("");
    out.open(&format!("cluster {}", quote(id)));
    if registry_id != *id {
        out.line(&format!("registry_id = {}", quote(&registry_id)));
    }
    if let Some(alias) = &entry.alias {
        out.line(&format!("alias = {}", quote(&text(alias, "alias")?)));
    }
    if let Some(local_id) = &entry.local_id {
        out.line(&format!(
            "local_id = {}",
            quote(&text(local_id, "local_id")?)
        ));
    }
    if let Some(level) = &entry.criticality_level {
        let level = whole_number(level).map_err(Problem::in_field("criticality_level"))?;
        out.line(&format!("criticality_level = {level}"));
    }
    out.line(&format!(
        "account = {}",
        quote(&account(&entry.infrastructure_account)?)
    ));
    out.line(&format!(
        "region = {}",
        quote(&text(&entry.region, "region")?)
    ));
    out.line(&format!("environment = {environment}"));
    out.line(&format!("channel = {channel}"));
    out.line(&format!(
        "api_server_url = {}",
        quote(&text(&entry.api_server_url, "api_server_url")?)
    ));
    if let Some(status) = &entry.lifecycle_status {
        let status = lifecycle_status(&text(status, "lifecycle_status")?)?;
        out.line(&format!("lifecycle_status = {status}"));
    }
    if let Some(owner) = &entry.owner {
        out.line(&format!("owner = {}", quote(&text(owner, "owner")?)));
    }
    if let Some(items) = &entry.config_items {
        write_config_items(out, items, config_types)?;
    }
    match &entry.node_pools {
        None | Some(Value::Null) => {}
        Some(Value::Sequence(pools)) => {
            for (index, raw_pool) in pools.iter().enumerate() {
                let context = position("node_pools", index, raw_pool, "name");
                write_node_pool(out, raw_pool).map_err(|problem| Problem::InElement {
                    at: context,
                    problem: Box::new(problem),
                })?;
            }
        }
        Some(other) => {
            return Err(Problem::NodePoolsNotAList(kind(other)));
        }
    }
    out.close();
    Ok(cluster_id)
}

fn environment(value: &str) -> Result<&'static str, Problem> {
    match value.trim().to_ascii_lowercase().as_str() {
        "production" | "prod" => Ok("production"),
        "test" | "testing" | "e2e" | "staging" | "stage" | "dev" | "development" | "playground"
        | "sandbox" => Ok("test"),
        _ => Err(Problem::Environment(value.to_string())),
    }
}

/// Registry spellings (`decommission-requested`) become the stdlib's variant names.
fn lifecycle_status(value: &str) -> Result<String, Problem> {
    const VARIANTS: [&str; 4] = [
        "requested",
        "ready",
        "decommission_requested",
        "decommissioned",
    ];
    let variant = value.trim().to_ascii_lowercase().replace('-', "_");
    if VARIANTS.contains(&variant.as_str()) {
        Ok(variant)
    } else {
        Err(Problem::LifecycleStatus(value.to_string()))
    }
}

/// `aws:123456789012` (the registry's form) or a bare account id.
fn account(value: &Value) -> Result<String, Problem> {
    let account = text(value, "infrastructure_account")?;
    match account.split_once(':') {
        Some(("aws", id)) => Ok(id.trim().to_string()),
        Some(_) => Err(Problem::NotAnAwsAccount(account)),
        None => Ok(account.trim().to_string()),
    }
}

/// A name written bare in the output must be an identifier of the language.
fn channel_name(name: &str) -> Result<&str, Problem> {
    let mut chars = name.chars();
    let starts_well = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_');
    if starts_well
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
        && !crate::syntax::is_keyword(name)
    {
        Ok(name)
    } else {
        Err(Problem::ChannelName(name.to_string()))
    }
}

// ---- node pools ---------------------------------------------------------------------

fn write_node_pool(out: &mut Writer, raw: &Value) -> Result<(), Problem> {
    if !raw.is_mapping() {
        return Err(Problem::NotAMapping {
            what: "node pool",
            found: kind(raw),
        });
    }
    let pool: RegistryNodePool = serde_yaml_ng::from_value(raw.clone()).map_err(Problem::Fields)?;
    let name = text(&pool.name, "name")?;
    let types = instance_types(&pool.instance_type)?;
    let spot = match &pool.discount_strategy {
        None => false,
        Some(value) => match text(value, "discount_strategy")?.as_str() {
            "spot" | "spot_max_price" => true,
            "none" | "" => false,
            other => {
                return Err(Problem::DiscountStrategy(other.to_string()));
            }
        },
    };

    out.line("");
    out.open(&format!("node_pool {}", quote(&name)));
    let quoted: Vec<String> = types.iter().map(|t| quote(t)).collect();
    out.line(&format!("instance_types = [{}]", quoted.join(", ")));
    if spot {
        out.line("capacity_type = spot");
    }
    if let Some(min_size) = &pool.min_size {
        out.line(&format!(
            "min_size = {}",
            whole_number(min_size).map_err(Problem::in_field("min_size"))?
        ));
    }
    let max_size = whole_number(&pool.max_size).map_err(Problem::in_field("max_size"))?;
    out.line(&format!("max_size = {max_size}"));
    if let Some(profile) = &pool.profile {
        out.line(&format!("profile = {}", quote(&text(profile, "profile")?)));
    }
    if let Some(items) = &pool.config_items {
        write_node_pool_config_items(out, items)?;
    }
    out.close();
    Ok(())
}

fn instance_types(value: &Value) -> Result<Vec<String>, Problem> {
    let parts = match value {
        Value::Sequence(items) => items
            .iter()
            .map(|item| text(item, "instance_type"))
            .collect::<Result<Vec<_>, _>>()?,
        other => text(other, "instance_type")?
            .split(',')
            .map(str::to_string)
            .collect(),
    };
    let types: Vec<String> = parts
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    if types.is_empty() {
        return Err(Problem::NoInstanceType);
    }
    Ok(types)
}

/// Node pool config items that have a typed home (`labels`, `taints`) are converted;
/// secrets go to the pool's `secrets`, the others to its `config_items`, as text.
fn write_node_pool_config_items(out: &mut Writer, items: &Value) -> Result<(), Problem> {
    let mut items = config_map(items)?;
    items.retain(|_, value| !value.is_null());
    let mut rest = TextItems::default();
    for (key, value) in &items {
        let value = scalar(value).map_err(Problem::in_config_item(key))?;
        match key.as_str() {
            "labels" => {
                let labels = labels(&value)?;
                if !labels.is_empty() {
                    let entries: Vec<String> = labels
                        .iter()
                        .map(|(k, v)| format!("{}: {}", quote(k), quote(v)))
                        .collect();
                    out.line(&format!("labels = {{ {} }}", entries.join(", ")));
                }
            }
            "taints" => {
                for spec in value.split(',').map(str::trim).filter(|s| !s.is_empty()) {
                    let taint = taint(spec)?;
                    out.open("taint");
                    out.line(&format!("key = {}", quote(&taint.key)));
                    if !taint.value.is_empty() {
                        out.line(&format!("value = {}", quote(&taint.value)));
                    }
                    out.line(&format!("effect = {}", taint.effect));
                    out.close();
                }
            }
            _ => rest.add(key, value),
        }
    }
    rest.write(out, "config_items");
    Ok(())
}

/// Config items without a typed field: text in a map, secrets in `secrets`.
#[derive(Default)]
struct TextItems {
    text: Vec<String>,
    secrets: Vec<String>,
}

impl TextItems {
    fn add(&mut self, key: &str, value: String) {
        if is_secret(key, &value) {
            self.secrets.push(format!(
                "{}: secret({}, {}),",
                quote(key),
                quote(key),
                quote(&value)
            ));
        } else {
            self.text
                .push(format!("{}: {},", quote(key), quote(&value)));
        }
    }

    fn is_empty(&self) -> bool {
        self.text.is_empty() && self.secrets.is_empty()
    }

    /// `text_field = { … }` and `secrets = { … }`, each only when it has entries.
    fn write(&self, out: &mut Writer, text_field: &str) {
        for (field, entries) in [(text_field, &self.text), ("secrets", &self.secrets)] {
            if entries.is_empty() {
                continue;
            }
            out.line(&format!("{field} = {{"));
            out.depth += 1;
            for entry in entries {
                out.line(entry);
            }
            out.depth -= 1;
            out.line("}");
        }
    }
}

/// Whether a config item is a secret: by its name, or because the reference system
/// stores its value encrypted.
fn is_secret(name: &str, value: &str) -> bool {
    let name = name.to_ascii_lowercase().replace('-', "_");
    SECRET_NAME_PARTS.iter().any(|part| name.contains(part))
        || value.trim_start().starts_with(ENCRYPTED_PREFIX)
}

/// `key=value,key2=value2`, the registry's way of writing node labels.
fn labels(spec: &str) -> Result<BTreeMap<String, String>, Problem> {
    spec.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(|pair| match pair.split_once('=') {
            Some((key, value)) => Ok((key.trim().to_string(), value.trim().to_string())),
            None => Err(Problem::Label(pair.to_string())),
        })
        .collect()
}

struct TaintSpec {
    key: String,
    value: String,
    effect: String,
}

/// `key=value:Effect` or `key:Effect`, as `kubectl taint` writes them.
fn taint(spec: &str) -> Result<TaintSpec, Problem> {
    const EFFECTS: [&str; 3] = ["NoSchedule", "PreferNoSchedule", "NoExecute"];
    let bad = || Problem::Taint(spec.to_string());
    let (key_value, effect) = spec.rsplit_once(':').ok_or_else(bad)?;
    let (key, value) = key_value.split_once('=').unwrap_or((key_value, ""));
    if key.trim().is_empty() {
        return Err(bad());
    }
    let effect = effect.trim();
    if !EFFECTS.contains(&effect) {
        return Err(Problem::TaintEffect {
            spec: spec.to_string(),
            effect: effect.to_string(),
        });
    }
    Ok(TaintSpec {
        key: key.trim().to_string(),
        value: value.trim().to_string(),
        effect: effect.to_string(),
    })
}

// ---- config items -------------------------------------------------------------------

/// How a config item declared in `ConfigItems` is written as a literal.
enum ItemType {
    Text,
    Int,
    Bool,
    Duration,
    Quantity,
    /// A type the importer does not convert, by name.
    Unsupported(String),
}

/// The scalar fields of the stdlib's `ConfigItems`, in declaration order. Map fields
/// (`custom`) are left out: a registry value is never a map.
fn config_item_types() -> Option<Vec<(String, ItemType)>> {
    let (_, prelude) = STDLIB.iter().find(|(name, _)| *name == PRELUDE)?;
    let (module, _) = crate::syntax::parse(FileId(0), prelude);
    let fields = module.items.iter().find_map(|item| match item {
        Item::Type(decl) if decl.name.name == "ConfigItems" => Some(&decl.members),
        _ => None,
    })?;
    // The prelude's type aliases (`type InstanceType = String`), to see through them.
    let aliases: HashMap<&str, &TypeExpr> = module
        .items
        .iter()
        .filter_map(|item| match item {
            Item::Alias(alias) => Some((alias.name.name.as_str(), &alias.ty)),
            _ => None,
        })
        .collect();
    Some(
        fields
            .iter()
            .filter_map(|member| match member {
                Member::Field(field) => {
                    item_type(&field.ty, &aliases).map(|ty| (field.name.name.clone(), ty))
                }
                Member::Check(_) => None,
            })
            .collect(),
    )
}

fn item_type(ty: &TypeExpr, aliases: &HashMap<&str, &TypeExpr>) -> Option<ItemType> {
    match &ty.kind {
        TypeExprKind::Optional(inner) => item_type(inner, aliases),
        TypeExprKind::Map(_) => None,
        TypeExprKind::List(_) => Some(ItemType::Unsupported("list".into())),
        TypeExprKind::Named { module: None, name } if aliases.contains_key(name.name.as_str()) => {
            // Following an alias without itself in the map ends a cycle instead of looping.
            let mut rest = aliases.clone();
            let target = rest.remove(name.name.as_str())?;
            item_type(target, &rest)
        }
        TypeExprKind::Named { name, .. } => Some(match name.name.as_str() {
            "String" => ItemType::Text,
            "Int" => ItemType::Int,
            "Bool" => ItemType::Bool,
            "Duration" => ItemType::Duration,
            "Quantity" => ItemType::Quantity,
            other => ItemType::Unsupported(other.to_string()),
        }),
    }
}

fn write_config_items(
    out: &mut Writer,
    items: &Value,
    config_types: &[(String, ItemType)],
) -> Result<(), Problem> {
    let mut items = config_map(items)?;
    // A null item is unset: the stdlib default applies.
    items.retain(|_, value| !value.is_null());
    let mut lines = Vec::new();
    for (name, ty) in config_types {
        if let Some(value) = items.remove(name) {
            let literal = literal(ty, value).map_err(Problem::in_config_item(name))?;
            lines.push(format!("{name} = {literal}"));
        }
    }
    let mut rest = TextItems::default();
    for (key, value) in &items {
        let value = scalar(value).map_err(Problem::in_config_item(key))?;
        rest.add(key, value);
    }
    if lines.is_empty() && rest.is_empty() {
        return Ok(());
    }
    out.line("");
    out.open("config_items");
    for line in &lines {
        out.line(line);
    }
    rest.write(out, "custom");
    out.close();
    Ok(())
}

/// A `config_items` mapping with text keys, sorted by key.
fn config_map(value: &Value) -> Result<BTreeMap<String, &Value>, Problem> {
    let Value::Mapping(mapping) = value else {
        return Err(Problem::ConfigItemsNotAMapping(kind(value)));
    };
    mapping
        .iter()
        .map(|(key, value)| match key {
            Value::String(key) => Ok((key.clone(), value)),
            other => Err(Problem::ConfigItemName(kind(other))),
        })
        .collect()
}

fn literal(ty: &ItemType, value: &Value) -> Result<String, Problem> {
    match ty {
        ItemType::Text => Ok(quote(&scalar(value)?)),
        ItemType::Int => whole_number(value).map(|n| n.to_string()),
        ItemType::Bool => match value {
            Value::Bool(b) => Ok(b.to_string()),
            Value::String(s) if s.trim().eq_ignore_ascii_case("true") => Ok("true".into()),
            Value::String(s) if s.trim().eq_ignore_ascii_case("false") => Ok("false".into()),
            other => Err(Problem::NotBool(shown(other))),
        },
        ItemType::Duration => duration(value),
        ItemType::Quantity => quantity(value),
        ItemType::Unsupported(name) => Err(Problem::Unconvertible(name.clone())),
    }
}

fn whole_number(value: &Value) -> Result<i64, Problem> {
    let number: Option<i64> = match value {
        Value::Number(n) => n.as_i64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    };
    match number {
        // Written as `-` applied to 9223372036854775808, which is not an Int.
        Some(i64::MIN) => Err(Problem::OutOfRange(shown(value))),
        Some(n) => Ok(n),
        None => Err(Problem::NotWholeNumber(shown(value))),
    }
}

/// `90s`, `1h30m`, `1.5h` (the registry uses Go's duration syntax) → one literal such as `90m`.
fn duration(value: &Value) -> Result<String, Problem> {
    let bad = || Problem::NotDuration(shown(value));
    let Value::String(spec) = value else {
        return Err(bad());
    };
    let mut rest = spec.trim();
    if rest.is_empty() {
        return Err(bad());
    }
    let mut total_ms: i64 = 0;
    while !rest.is_empty() {
        let number_end = rest
            .find(|c: char| !is_number_char(c))
            .unwrap_or(rest.len());
        let (number, after) = rest.split_at(number_end);
        let unit_end = after.find(is_number_char).unwrap_or(after.len());
        let (unit, after) = after.split_at(unit_end);
        let part = is_decimal(number)
            .then(|| parse_duration_ms(number, unit))
            .flatten();
        total_ms = part
            .and_then(|ms| total_ms.checked_add(ms))
            .ok_or_else(bad)?;
        rest = after;
    }
    Ok(format_duration(total_ms))
}

/// `500Mi`, `250m`, `2` → a quantity literal. The language needs a unit on every quantity,
/// so a bare number gets the largest suffix that keeps it exact (`2` → `2000m`).
fn quantity(value: &Value) -> Result<String, Problem> {
    let spec = scalar(value)?;
    let spec = spec.trim();
    let bad = || Problem::NotQuantity(spec.to_string());
    let (number, suffix) = spec.split_at(
        spec.find(|c: char| !is_number_char(c))
            .unwrap_or(spec.len()),
    );
    if !is_decimal(number) {
        return Err(bad());
    }
    let parsed = Quantity::parse(number, suffix).ok_or_else(bad)?;
    if !suffix.is_empty() {
        return Ok(format!("{number}{suffix}"));
    }
    const SUFFIXES: [&str; 12] = [
        "Ei", "Pi", "Ti", "Gi", "Mi", "Ki", "E", "P", "T", "G", "M", "k",
    ];
    let exact = SUFFIXES.iter().find_map(|suffix| {
        let factor = Quantity::factor(suffix)?;
        (parsed.milli != 0 && parsed.milli % factor == 0)
            .then(|| format!("{}{suffix}", parsed.milli / factor))
    });
    Ok(exact.unwrap_or_else(|| format!("{}m", parsed.milli)))
}

fn is_number_char(c: char) -> bool {
    c.is_ascii_digit() || c == '.'
}

/// Digits with an optional fraction: what the grammar accepts before a unit.
fn is_decimal(number: &str) -> bool {
    let (whole, fraction) = number.split_once('.').unwrap_or((number, "0"));
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    digits(whole) && digits(fraction)
}

// ---- values and text ----------------------------------------------------------------

/// Apply YAML merge keys (`<<: *defaults`, `<<: [*a, *b]`): keys written in a mapping win
/// over merged ones, earlier merged mappings over later ones. Unlike
/// `Value::apply_merge`, a merged mapping that itself merges (`<<` inside an anchor)
/// is applied too rather than left behind as a `<<` key.
fn apply_merge_keys(document: &mut Value) -> Result<(), Problem> {
    let mut stack = vec![document];
    while let Some(node) = stack.pop() {
        match node {
            Value::Mapping(mapping) => {
                // Each pass removes one level of nesting from the (finite) merged value.
                while let Some(merge) = mapping.remove("<<") {
                    let sources = match merge {
                        Value::Mapping(source) => vec![source],
                        Value::Sequence(items) => items
                            .into_iter()
                            .map(|item| match item {
                                Value::Mapping(source) => Ok(source),
                                other => Err(Problem::MergeListItem(kind(&other))),
                            })
                            .collect::<Result<_, _>>()?,
                        other => {
                            return Err(Problem::MergeValue(kind(&other)));
                        }
                    };
                    for source in sources {
                        for (key, value) in source {
                            mapping.entry(key).or_insert(value);
                        }
                    }
                }
                stack.extend(mapping.values_mut());
            }
            Value::Sequence(items) => stack.extend(items),
            Value::Tagged(tagged) => stack.push(&mut tagged.value),
            _ => {}
        }
    }
    Ok(())
}

/// A scalar as text; `field` names it in the error.
fn text(value: &Value, field: &'static str) -> Result<String, Problem> {
    scalar(value).map_err(Problem::in_field(field))
}

fn scalar(value: &Value) -> Result<String, Problem> {
    match value {
        Value::String(s) => Ok(s.clone()),
        Value::Number(n) => Ok(n.to_string()),
        Value::Bool(b) => Ok(b.to_string()),
        other => Err(Problem::NotScalar(kind(other))),
    }
}

/// A value for an error message: scalars as written, other values by kind.
fn shown(value: &Value) -> String {
    match scalar(value) {
        Ok(text) => format!("`{text}`"),
        Err(_) => kind(value).to_string(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "nothing (null)",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "text",
        Value::Sequence(_) => "a list",
        Value::Mapping(_) => "a mapping",
        Value::Tagged(_) => "a tagged value",
    }
}

/// `clusters[2] (id `foo`)`: where in the registry an entry is, for error messages.
fn position(list: &str, index: usize, raw: &Value, key: &str) -> String {
    match raw.get(key).map(scalar) {
        Some(Ok(name)) => format!("{list}[{index}] ({key} `{name}`)"),
        _ => format!("{list}[{index}]"),
    }
}

/// A string literal: `"`, `\`, `$` (the interpolation marker) and control characters escaped.
fn quote(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '$' => out.push_str("\\$"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            // ESC, BEL and the rest never reach the written file raw (issue 11 item 11).
            c if c.is_control() => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Source text built line by line, indented two spaces per level.
#[derive(Default)]
struct Writer {
    text: String,
    depth: usize,
}

impl Writer {
    fn line(&mut self, line: &str) {
        if !line.is_empty() {
            self.text.push_str(&"  ".repeat(self.depth));
            self.text.push_str(line);
        }
        self.text.push('\n');
    }

    fn open(&mut self, header: &str) {
        self.line(&format!("{header} {{"));
        self.depth += 1;
    }

    fn close(&mut self) {
        self.depth -= 1;
        self.line("}");
    }
}
