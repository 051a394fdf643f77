//! The model: the evaluated fleet as Rust structs, the edge between the front end and
//! everything after it. render, compile, diff, plan and apply read these structs; only
//! [`Fleet::from_evaluated`] reads the evaluator's [`Data`] by field name, so a stdlib
//! field added, renamed or retyped without following it here fails loudly (E0307).
//!
//! The structs serialize exactly as the evaluated data does (field order, durations as
//! `3d`, quantities as `200Mi`, secrets redacted), so templates see the same context.
//! Adding a stdlib field: add it to the struct (in the stdlib's order) and read it in
//! the struct's `from_record`.

mod read;

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::diagnostic::Diagnostic;
use crate::eval::{self, Data, Quantity, SecretValue};
use crate::resolve::Program;
use crate::source::FileId;
use crate::span::Span;
use crate::syntax::ast::{Block, Entry, Item};

use read::{ModelError, Reader};

/// The evaluated fleet: channels sorted by name, clusters by id.
#[derive(Clone, Debug, Serialize)]
pub struct Fleet {
    pub channels: Vec<Channel>,
    pub clusters: Vec<Cluster>,
}

/// A release channel (`channel NAME { … }`).
#[derive(Clone, Debug, Serialize)]
pub struct Channel {
    pub name: String,
    pub kubernetes_version: String,
    pub config_ref: String,
    pub order: i64,
}

/// A Kubernetes cluster on AWS (`cluster "ID" { … }`).
#[derive(Clone, Debug, Serialize)]
pub struct Cluster {
    pub id: String,
    pub account: String,
    pub region: String,
    pub environment: Environment,
    pub channel: Channel,
    pub api_server_url: String,
    pub lifecycle_status: LifecycleStatus,
    pub kubernetes_version: String,
    pub owner: String,
    pub config_items: ConfigItems,
    pub node_pools: Vec<NodePool>,
    /// The id in the registry the cluster was imported from, when it is not `id`.
    pub registry_id: Option<String>,
    pub alias: Option<String>,
    pub local_id: Option<String>,
    pub criticality_level: Option<i64>,
    /// IAM role assumed for the cluster's AWS calls; `None`: the caller's credentials.
    pub aws_role_arn: Option<String>,
    /// S3 bucket for templates over CloudFormation's inline limit; `None`: such a
    /// stack cannot be applied.
    pub template_bucket: Option<String>,
    /// Where the cluster is declared.
    #[serde(skip)]
    pub source: Source,
}

/// Settings of the config set.
#[derive(Clone, Debug, Serialize)]
pub struct ConfigItems {
    pub etcd_instance_type: String,
    pub etcd_member_count: i64,
    #[serde(serialize_with = "duration_text")]
    pub etcd_backup_interval: Duration,
    #[serde(serialize_with = "duration_text")]
    pub etcd_backup_max_age: Duration,
    pub master_instance_type: String,
    /// Kubelet `maxPods` on control-plane nodes.
    pub master_max_pods: i64,
    pub master_node_count: i64,
    pub coredns_memory_limit: Quantity,
    pub coredns_cpu_request: Quantity,
    pub coredns_ndots: i64,
    /// No pod quota when unset.
    pub namespace_pod_quota: Option<i64>,
    #[serde(serialize_with = "duration_text")]
    pub cronjob_active_deadline: Duration,
    /// Availability zones the cluster's subnets span.
    pub zone_count: i64,
    pub cluster_autoscaler_enabled: bool,
    pub monitoring_enabled: bool,
    #[serde(serialize_with = "duration_text")]
    pub prometheus_retention: Duration,
    pub prometheus_memory: Quantity,
    pub prometheus_volume_size: Quantity,
    /// When set, apply refuses to update the cluster; the text says why.
    pub cluster_update_block: Option<String>,
    pub custom: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretValue>,
}

/// A group of identical worker nodes (`node_pool "NAME" { … }`).
#[derive(Clone, Debug, Serialize)]
pub struct NodePool {
    pub name: String,
    pub instance_types: Vec<String>,
    pub capacity_type: CapacityType,
    pub on_demand_base_capacity: i64,
    pub min_size: i64,
    pub max_size: i64,
    pub profile: String,
    pub labels: BTreeMap<String, String>,
    pub taints: Vec<Taint>,
    pub root_volume_size: Quantity,
    pub fallback_for: Option<String>,
    pub update: UpdateStrategy,
    /// Kubelet `maxPods`; the stdlib's checks make it known for every evaluated pool.
    pub max_pods: i64,
    /// Config items without a field of their own, as text.
    pub config_items: BTreeMap<String, String>,
    pub secrets: BTreeMap<String, SecretValue>,
    /// Where the pool is declared: its own `node_pool` block, or (for a pool from a
    /// spread or a comprehension) its cluster's label.
    #[serde(skip)]
    pub source: Source,
}

/// How the outdated nodes of a pool are replaced.
#[derive(Clone, Debug, Serialize)]
pub struct UpdateStrategy {
    pub max_surge: i64,
    pub max_unavailable: i64,
    pub respect_pdbs: bool,
    #[serde(serialize_with = "duration_text")]
    pub force_terminate_after: Duration,
    #[serde(serialize_with = "duration_text")]
    pub min_pod_age_for_force: Duration,
    #[serde(serialize_with = "duration_text")]
    pub force_delete_interval: Duration,
    /// Why the pool departs from the stdlib's lessons, when it does.
    pub reason: Option<String>,
}

/// A Kubernetes taint on every node of a pool.
#[derive(Clone, Debug, Serialize)]
pub struct Taint {
    pub key: String,
    pub value: String,
    pub effect: TaintEffect,
}

/// Where a cluster or node pool is written in the fleet sources.
#[derive(Clone, Debug, PartialEq)]
pub struct Source {
    pub file: FileId,
    /// The declaration's label (`"ID"` of a cluster, `"NAME"` of a node pool); for a
    /// pool that has no block of its own, the label of its cluster.
    pub label: Span,
    /// Whether `label` is this value's own declaration.
    pub declared: bool,
    /// Fields assigned in the declaration's body (the value's span), by field name.
    fields: BTreeMap<String, Span>,
}

impl Source {
    fn field(&self, name: &str) -> Option<Span> {
        self.fields.get(name).copied()
    }
}

impl NodePool {
    /// Where the pool's `profile` is written, if it is written in the pool's own block.
    pub fn profile_span(&self) -> Option<Span> {
        self.source.field("profile")
    }
}

/// Declares a stdlib enum once: its Rust variants with their names in the language.
macro_rules! stdlib_enum {
    ($(#[$doc:meta])* $name:ident { $($variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            const NAMES: &[($name, &'static str)] = &[$(($name::$variant, $text)),+];

            /// The variant's name as written in the language.
            pub fn as_str(self) -> &'static str {
                Self::NAMES.iter().find(|(v, _)| *v == self).map_or("", |(_, t)| t)
            }

            fn from_name(text: &str) -> Option<$name> {
                Self::NAMES.iter().find(|(_, t)| *t == text).map(|(v, _)| *v)
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl read::StdlibEnum for $name {
            const TYPE: &'static str = stringify!($name);
            fn from_name(text: &str) -> Option<$name> {
                $name::from_name(text)
            }
        }
    };
}

stdlib_enum!(
    /// How carefully a cluster is treated.
    Environment { Production = "production", Test = "test" }
);
stdlib_enum!(
    /// Where a cluster is in its life.
    LifecycleStatus {
        Requested = "requested",
        Ready = "ready",
        DecommissionRequested = "decommission_requested",
        Decommissioned = "decommissioned",
    }
);
stdlib_enum!(
    /// The EC2 market a node pool buys capacity on.
    CapacityType { OnDemand = "on_demand", Spot = "spot" }
);
stdlib_enum!(
    /// What a taint does to pods that do not tolerate it.
    TaintEffect {
        NoSchedule = "NoSchedule",
        PreferNoSchedule = "PreferNoSchedule",
        NoExecute = "NoExecute",
    }
);

impl LifecycleStatus {
    /// Decommissioned, or on its way there: flotilla no longer changes the cluster.
    pub fn is_retired(self) -> bool {
        matches!(
            self,
            LifecycleStatus::Decommissioned | LifecycleStatus::DecommissionRequested
        )
    }
}

impl Fleet {
    pub fn cluster(&self, id: &str) -> Option<&Cluster> {
        self.clusters.iter().find(|c| c.id == id)
    }

    pub fn cluster_ids(&self) -> impl Iterator<Item = &str> {
        self.clusters.iter().map(|c| c.id.as_str())
    }

    /// The model of an evaluated fleet, with each cluster's and node pool's place in
    /// `program`'s sources. A cluster that does not fit the model is reported (E0307)
    /// and left out, as the evaluator does with a cluster that fails to evaluate.
    pub fn from_evaluated(program: &Program, evaluated: &eval::Fleet) -> (Fleet, Vec<Diagnostic>) {
        let reader = ClusterReader::new(program);
        let (channels, mut problems) = read_channels(&evaluated.channels);
        // Each cluster is read on its own, so runs of them are read on all cores.
        let read = eval::in_runs(&evaluated.clusters, |run| {
            run.iter().map(|data| reader.read(data)).collect()
        });
        let mut clusters = Vec::with_capacity(read.len());
        for result in read {
            match result {
                Ok(cluster) => clusters.push(cluster),
                Err(d) => problems.push(d),
            }
        }
        (Fleet { channels, clusters }, problems)
    }
}

/// The model of evaluated channels, each that does not fit it reported (E0307).
pub fn read_channels(evaluated: &[Data]) -> (Vec<Channel>, Vec<Diagnostic>) {
    let mut channels = Vec::new();
    let mut problems = Vec::new();
    for data in evaluated {
        match Reader::record(data, "Channel").and_then(Channel::from_record) {
            Ok(channel) => channels.push(channel),
            Err(e) => problems.push(e.diagnostic(None)),
        }
    }
    (channels, problems)
}

/// Reads evaluated clusters into the model one at a time (from any thread), each with
/// its place in the program's sources.
pub struct ClusterReader<'a> {
    declared: Declarations<'a>,
}

impl<'a> ClusterReader<'a> {
    pub fn new(program: &'a Program) -> ClusterReader<'a> {
        ClusterReader {
            declared: Declarations::of(program),
        }
    }

    /// The model of one evaluated cluster; E0307 at its label when it does not fit.
    pub fn read(&self, data: &Data) -> Result<Cluster, Diagnostic> {
        Reader::record(data, "Cluster")
            .and_then(|r| Cluster::from_record(r, &self.declared))
            .map_err(|e| {
                let id = data.get("id").and_then(Data::as_str).unwrap_or_default();
                e.diagnostic(self.declared.cluster(id).map(|(s, _)| s))
            })
    }
}

impl Channel {
    fn from_record(mut r: Reader) -> Result<Channel, ModelError> {
        let channel = Channel {
            name: r.string("name")?,
            kubernetes_version: r.string("kubernetes_version")?,
            config_ref: r.string("config_ref")?,
            order: r.int("order")?,
        };
        r.finish()?;
        Ok(channel)
    }
}

impl Cluster {
    fn from_record(mut r: Reader, declared: &Declarations) -> Result<Cluster, ModelError> {
        let id = r.string("id")?;
        let declaration = declared
            .cluster(&id)
            .ok_or_else(|| ModelError::Undeclared(id.clone()))?;
        let cluster = Cluster {
            account: r.string("account")?,
            region: r.string("region")?,
            environment: r.enumeration("environment")?,
            channel: Channel::from_record(r.record_field("channel", "Channel")?)?,
            api_server_url: r.string("api_server_url")?,
            lifecycle_status: r.enumeration("lifecycle_status")?,
            kubernetes_version: r.string("kubernetes_version")?,
            owner: r.string("owner")?,
            config_items: ConfigItems::from_record(r.record_field("config_items", "ConfigItems")?)?,
            node_pools: r
                .records("node_pools", "NodePool")?
                .into_iter()
                .map(|pool| NodePool::from_record(pool, declaration))
                .collect::<Result<_, _>>()?,
            registry_id: r.optional_string("registry_id")?,
            alias: r.optional_string("alias")?,
            local_id: r.optional_string("local_id")?,
            criticality_level: r.optional_int("criticality_level")?,
            aws_role_arn: r.optional_string("aws_role_arn")?,
            template_bucket: r.optional_string("template_bucket")?,
            source: declaration.0.clone(),
            id,
        };
        r.finish()?;
        Ok(cluster)
    }
}

impl ConfigItems {
    fn from_record(mut r: Reader) -> Result<ConfigItems, ModelError> {
        let items = ConfigItems {
            etcd_instance_type: r.string("etcd_instance_type")?,
            etcd_member_count: r.int("etcd_member_count")?,
            etcd_backup_interval: r.duration("etcd_backup_interval")?,
            etcd_backup_max_age: r.duration("etcd_backup_max_age")?,
            master_instance_type: r.string("master_instance_type")?,
            master_max_pods: r.int("master_max_pods")?,
            master_node_count: r.int("master_node_count")?,
            coredns_memory_limit: r.quantity("coredns_memory_limit")?,
            coredns_cpu_request: r.quantity("coredns_cpu_request")?,
            coredns_ndots: r.int("coredns_ndots")?,
            namespace_pod_quota: r.optional_int("namespace_pod_quota")?,
            cronjob_active_deadline: r.duration("cronjob_active_deadline")?,
            zone_count: r.int("zone_count")?,
            cluster_autoscaler_enabled: r.bool("cluster_autoscaler_enabled")?,
            monitoring_enabled: r.bool("monitoring_enabled")?,
            prometheus_retention: r.duration("prometheus_retention")?,
            prometheus_memory: r.quantity("prometheus_memory")?,
            prometheus_volume_size: r.quantity("prometheus_volume_size")?,
            cluster_update_block: r.optional_string("cluster_update_block")?,
            custom: r.string_map("custom")?,
            secrets: r.secret_map("secrets")?,
        };
        r.finish()?;
        Ok(items)
    }
}

impl NodePool {
    fn from_record(mut r: Reader, cluster: &(Source, &Block)) -> Result<NodePool, ModelError> {
        let name = r.string("name")?;
        let source = pool_source(cluster, &name);
        let pool = NodePool {
            instance_types: r.strings("instance_types")?,
            capacity_type: r.enumeration("capacity_type")?,
            on_demand_base_capacity: r.int("on_demand_base_capacity")?,
            min_size: r.int("min_size")?,
            max_size: r.int("max_size")?,
            profile: r.string("profile")?,
            labels: r.string_map("labels")?,
            taints: r
                .records("taints", "Taint")?
                .into_iter()
                .map(Taint::from_record)
                .collect::<Result<_, _>>()?,
            root_volume_size: r.quantity("root_volume_size")?,
            fallback_for: r.optional_string("fallback_for")?,
            update: UpdateStrategy::from_record(r.record_field("update", "UpdateStrategy")?)?,
            max_pods: r.int("max_pods")?,
            config_items: r.string_map("config_items")?,
            secrets: r.secret_map("secrets")?,
            name,
            source,
        };
        r.finish()?;
        Ok(pool)
    }
}

impl UpdateStrategy {
    fn from_record(mut r: Reader) -> Result<UpdateStrategy, ModelError> {
        let strategy = UpdateStrategy {
            max_surge: r.int("max_surge")?,
            max_unavailable: r.int("max_unavailable")?,
            respect_pdbs: r.bool("respect_pdbs")?,
            force_terminate_after: r.duration("force_terminate_after")?,
            min_pod_age_for_force: r.duration("min_pod_age_for_force")?,
            force_delete_interval: r.duration("force_delete_interval")?,
            reason: r.optional_string("reason")?,
        };
        r.finish()?;
        Ok(strategy)
    }
}

impl Taint {
    fn from_record(mut r: Reader) -> Result<Taint, ModelError> {
        let taint = Taint {
            key: r.string("key")?,
            value: r.string("value")?,
            effect: r.enumeration("effect")?,
        };
        r.finish()?;
        Ok(taint)
    }
}

/// Each cluster's declaration, by id: where its label is, and its body (for the
/// blocks of its node pools).
struct Declarations<'a>(BTreeMap<String, (Source, &'a Block)>);

impl<'a> Declarations<'a> {
    fn of(program: &'a Program) -> Declarations<'a> {
        let mut clusters = BTreeMap::new();
        for module in program.module_ids().map(|id| program.module(id)) {
            if module.is_std {
                continue;
            }
            for item in &module.ast.items {
                if let Item::Cluster(decl) = item {
                    let source = Source {
                        file: module.file,
                        label: decl.id.span,
                        declared: true,
                        fields: assigned_fields(&decl.body),
                    };
                    clusters.insert(decl.id.value.clone(), (source, &decl.body));
                }
            }
        }
        Declarations(clusters)
    }

    fn cluster(&self, id: &str) -> Option<&(Source, &'a Block)> {
        self.0.get(id)
    }
}

/// Where node pool `name` of a cluster is declared: its `node_pool "NAME" { … }` block,
/// else (a pool from a spread or a comprehension) the cluster's label.
fn pool_source((cluster, body): &(Source, &Block), name: &str) -> Source {
    let block = body.entries.iter().find_map(|entry| match entry {
        Entry::Block {
            name: block,
            label: Some(label),
            body,
            ..
        } if block.name == "node_pool" && label.value == name => Some((label, body)),
        _ => None,
    });
    match block {
        Some((label, body)) => Source {
            file: cluster.file,
            label: label.span,
            declared: true,
            fields: assigned_fields(body),
        },
        None => Source {
            declared: false,
            fields: BTreeMap::new(),
            ..cluster.clone()
        },
    }
}

/// `name = value` entries of a block: the span of each value, by name.
fn assigned_fields(body: &Block) -> BTreeMap<String, Span> {
    body.entries
        .iter()
        .filter_map(|entry| match entry {
            Entry::Field { name, value, .. } => Some((name.name.clone(), value.span)),
            _ => None,
        })
        .collect()
}

/// A duration as the language writes it (`3d`, `90s`), as the evaluated data serializes.
fn duration_text<S: Serializer>(duration: &Duration, s: S) -> Result<S::Ok, S::Error> {
    let ms = i64::try_from(duration.as_millis()).map_err(serde::ser::Error::custom)?;
    s.serialize_str(&crate::units::format_duration(ms))
}
