//! Validation of rendered artifacts: CloudFormation structure and references,
//! Kubernetes object identity, and the deletions list.

mod cloudformation;
mod deletions;
mod manifests;
mod yaml;

pub use cloudformation::{MAX_TEMPLATE_BYTES, TemplateError, cloudformation};
pub use deletions::{DeletionEntry, Deletions, DeletionsError, EntryProblem, deletions};
pub use manifests::{
    ManifestError, NameProblem, ObjectIndex, ObjectKey, Objects, deletions_spare, manifests,
    objects,
};
pub use yaml::{YamlError, check_yaml, yaml};

#[cfg(test)]
mod tests {
    use serde_json::Value;

    use super::*;

    #[test]
    fn dangling_ref_is_rejected() {
        let text = "Resources:\n  Group:\n    Type: AWS::AutoScaling::AutoScalingGroup\n    Properties:\n      LaunchTemplate:\n        LaunchTemplateId:\n          Ref: Template\n";
        let err = cloudformation(text).unwrap_err().to_string();
        assert!(err.contains("`Ref` to `Template`"), "{err}");
        assert!(
            err.contains("/Resources/Group/Properties/LaunchTemplate/LaunchTemplateId/Ref"),
            "{err}"
        );
    }

    #[test]
    fn unused_parameter_and_sub_references_are_checked() {
        let base = "Parameters:\n  VpcId:\n    Type: String\n  Unused:\n    Type: String\nResources:\n  Sg:\n    Type: AWS::EC2::SecurityGroup\n    Properties:\n      GroupDescription:\n        Fn::Sub: \"sg in ${VpcId} for ${AWS::StackName}\"\n";
        assert!(
            cloudformation(base)
                .unwrap_err()
                .to_string()
                .contains("`Unused`")
        );
        let fixed = base.replace("  Unused:\n    Type: String\n", "");
        assert!(cloudformation(&fixed).is_ok());
        let dangling = fixed.replace("${VpcId}", "${Missing.Arn}");
        assert!(
            cloudformation(&dangling)
                .unwrap_err()
                .to_string()
                .contains("`Missing`")
        );
    }

    #[test]
    fn manifest_names_must_be_dns_1123_and_unique() {
        let mut index = ObjectIndex::default();
        let bad = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: Cluster_Info\n";
        assert!(
            manifests(bad, &mut index)
                .unwrap_err()
                .to_string()
                .contains("DNS-1123")
        );
        let good = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: cluster-info\n  namespace: kube-system\n";
        manifests(good, &mut index).unwrap();
        assert!(
            manifests(good, &mut index)
                .unwrap_err()
                .to_string()
                .contains("declared twice")
        );
        let other_namespace = good.replace("kube-system", "default");
        manifests(&other_namespace, &mut index).unwrap();
    }

    /// Manifests are read only for their identity; the rest must still be checked.
    #[test]
    fn a_manifest_read_for_its_identity_is_still_checked_in_full() {
        let mut index = ObjectIndex::default();
        let listed = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n- name: a\n";
        assert!(
            manifests(listed, &mut index)
                .unwrap_err()
                .to_string()
                .contains("no `metadata.name`")
        );
        let deep = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  labels: {x: '1', x: '2'}\ndata:\n  k: [1, {y: 2, y: 3}]\n";
        let err = manifests(deep, &mut index).unwrap_err().to_string();
        assert!(
            err.contains("key `x` appears twice in /metadata/labels"),
            "{err}"
        );
        let fixed = deep.replace("x: '2'", "z: '2'");
        let err = manifests(&fixed, &mut index).unwrap_err().to_string();
        assert!(err.contains("key `y` appears twice in /data/k/1"), "{err}");
        let syntax = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\ndata: [1\n";
        assert!(manifests(syntax, &mut index).is_err());
    }

    #[test]
    fn deleting_an_applied_object_is_rejected() {
        let mut index = ObjectIndex::default();
        manifests("apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: coredns\n  namespace: kube-system\n", &mut index).unwrap();
        let d = deletions(
            "post_apply:\n- kind: Deployment\n  namespace: kube-system\n  name: coredns\n",
        )
        .unwrap();
        assert!(
            deletions_spare(&d, &index)
                .unwrap_err()
                .to_string()
                .contains("which the manifests apply")
        );
        let other =
            deletions("post_apply:\n- kind: Deployment\n  namespace: default\n  name: coredns\n")
                .unwrap();
        deletions_spare(&other, &index).unwrap();
    }

    #[test]
    fn deletion_entries_need_exactly_one_selector() {
        assert!(deletions("pre_apply:\n- kind: Deployment\n  namespace: kube-system\n").is_err());
        assert!(deletions("post_apply:\n- kind: Deployment\n  namespace: kube-system\n  name: a\n  labels: {app: a}\n").is_err());
        let ok = deletions("pre_apply:\n- kind: Deployment\n  namespace: kube-system\n  name: old\n  propagation_policy: Orphan\n").unwrap();
        assert_eq!(ok.pre_apply[0].name.as_deref(), Some("old"));
    }

    /// A small valid template, with `extra` appended to its `Resources`.
    fn template(extra: &str) -> String {
        format!(
            "Resources:\n  Bucket:\n    Type: AWS::S3::Bucket\n  Queue:\n    Type: AWS::SQS::Queue\n{extra}"
        )
    }

    #[test]
    fn repeated_keys_in_a_template_are_rejected_with_their_lines() {
        let err = cloudformation("Resources:\n  A:\n    Type: X\n  A:\n    Type: Y\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `A` appears twice in /Resources (lines 2 and 4)"),
            "{err}"
        );
        let nested = template(
            "  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName: a\n      # comment\n      TopicName: b\n",
        );
        let err = cloudformation(&nested).unwrap_err().to_string();
        assert!(
            err.contains(
                "key `TopicName` appears twice in /Resources/Topic/Properties (lines 9 and 11)"
            ),
            "{err}"
        );
        let top = format!("{}Resources:\n  C:\n    Type: Z\n", template(""));
        let err = cloudformation(&top).unwrap_err().to_string();
        assert!(
            err.contains("in the top-level mapping (lines 1 and 6)"),
            "{err}"
        );
        // A flow mapping: only where it starts is known.
        let flow = template(
            "  Topic:\n    Type: AWS::SNS::Topic\n    Properties: {TopicName: a, TopicName: b}\n",
        );
        let err = cloudformation(&flow).unwrap_err().to_string();
        assert!(err.contains("key `TopicName` appears twice"), "{err}");
        assert!(err.contains("(the mapping at line 8)"), "{err}");
    }

    #[test]
    fn strict_parsing_reads_values_like_serde_json() {
        let text = "a: 1\nb: -2\nc: 1.5\nd: ~\ne: [x, {f: true}]\ng: 18446744073709551615\nh: '07'\ni: .nan\n";
        let strict = yaml(text).map_err(|e| e.to_string()).unwrap();
        let plain: Value = serde_yaml_ng::from_str(text).unwrap();
        assert_eq!(strict, plain);
        assert!(matches!(yaml("a: [1"), Err(YamlError::Syntax(_))));
    }

    /// Userdata is checked without building its value; it must fail exactly where the
    /// full reading fails.
    #[test]
    fn checking_without_building_rejects_what_reading_rejects() {
        let good =
            "write_files:\n- path: /etc/a\n  content: |\n    x: 1\n    x: 1\nruncmd: [a, {b: c}]\n";
        assert!(yaml(good).is_ok());
        check_yaml(good).unwrap();
        let repeated = "write_files:\n- path: /etc/a\n  path: /etc/b\n";
        let read = yaml(repeated).unwrap_err().to_string();
        let checked = check_yaml(repeated).unwrap_err().to_string();
        assert_eq!(checked, read);
        assert!(
            checked.contains("key `path` appears twice in /write_files/0 (lines 2 and 3)"),
            "{checked}"
        );
        let nested = "a:\n  b: [1, {c: 2, c: 3}]\n";
        assert_eq!(
            check_yaml(nested).unwrap_err().to_string(),
            yaml(nested).unwrap_err().to_string()
        );
        assert!(matches!(check_yaml("a: [1"), Err(YamlError::Syntax(_))));
    }

    #[test]
    fn repeated_keys_in_manifests_and_deletions_are_rejected() {
        let mut index = ObjectIndex::default();
        let text = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: x\n---\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: b\n  namespace: x\n  name: c\n";
        let err = manifests(text, &mut index).unwrap_err().to_string();
        assert!(
            err.starts_with("document 2: key `name` appears twice in /metadata (lines 10 and 12)"),
            "{err}"
        );
        let containers = "apiVersion: v1\nkind: Pod\nmetadata:\n  name: p\nspec:\n  containers:\n  - name: a\n    image: x\n    name: b\n";
        let err = manifests(containers, &mut ObjectIndex::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("key `name` appears twice in /spec/containers/0 (lines 7 and 9)"),
            "{err}"
        );
        let err = deletions(
            "pre_apply:\n- kind: Deployment\n  namespace: a\n  labels:\n    app: x\n    app: y\n",
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("key `app` appears twice in /pre_apply/0/labels (lines 5 and 6)"),
            "{err}"
        );
    }

    #[test]
    fn logical_ids_must_be_alphanumeric_and_short() {
        let err = cloudformation(&template(
            "  etcd-backup_bucket:\n    Type: AWS::S3::Bucket\n",
        ))
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("logical id `etcd-backup_bucket` at /Resources is not alphanumeric"),
            "{err}"
        );
        assert!(err.contains("`EtcdBackupBucket`"), "{err}");
        let err = cloudformation(&format!(
            "{}Outputs:\n  Bucket.Name:\n    Value: x\n",
            template("")
        ))
        .unwrap_err()
        .to_string();
        assert!(err.contains("`Bucket.Name` at /Outputs"), "{err}");
        let long = "A".repeat(256);
        let err = cloudformation(&template(&format!(
            "  {long}:\n    Type: AWS::S3::Bucket\n"
        )))
        .unwrap_err()
        .to_string();
        assert!(err.contains("has 256 characters"), "{err}");
        let longest = "A".repeat(255);
        cloudformation(&template(&format!(
            "  {longest}:\n    Type: AWS::S3::Bucket\n"
        )))
        .unwrap();
        let both = format!("Parameters:\n  Bucket:\n    Type: String\n{}", template(""));
        let err = cloudformation(&both).unwrap_err().to_string();
        assert!(
            err.contains("`Bucket` is both a parameter and a resource"),
            "{err}"
        );
    }

    #[test]
    fn depends_on_must_name_other_resources() {
        let ok = template("  Topic:\n    Type: AWS::SNS::Topic\n    DependsOn: [Bucket, Queue]\n");
        cloudformation(&ok).unwrap();
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "[Bucket, Missing]"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`DependsOn` to `Missing` at /Resources/Topic/DependsOn/1 names no resource"
        );
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "Missing"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(
                "`DependsOn` to `Missing` at /Resources/Topic/DependsOn names no resource"
            ),
            "{err}"
        );
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "Topic"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("names the resource itself"), "{err}");
        let err = cloudformation(&ok.replace("[Bucket, Queue]", "{Ref: Bucket}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("`DependsOn` at /Resources/Topic/DependsOn is not a resource name"),
            "{err}"
        );
    }

    #[test]
    fn find_in_map_must_name_a_mapping_and_its_literal_keys() {
        let ok = format!(
            "Mappings:\n  RegionMap:\n    eu-west-1:\n      Ami: ami-1\n{}  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName:\n        Fn::FindInMap: [RegionMap, {{Ref: AWS::Region}}, Ami]\n",
            template("")
        );
        cloudformation(&ok).unwrap();
        cloudformation(&ok.replace("{Ref: AWS::Region}", "eu-west-1")).unwrap();
        let err = cloudformation(&ok.replace("[RegionMap,", "[ZoneMap,"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "`Fn::FindInMap` on `ZoneMap` at /Resources/Topic/Properties/TopicName/Fn::FindInMap names no mapping in `Mappings`"
        );
        let err = cloudformation(&ok.replace("{Ref: AWS::Region}", "us-east-1"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("mapping `RegionMap` has no key `us-east-1`"),
            "{err}"
        );
        let err = cloudformation(
            &ok.replace(", Ami]", ", Kernel]")
                .replace("{Ref: AWS::Region}", "eu-west-1"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("has no key `Kernel`"), "{err}");
        // With a default value (fourth argument) missing keys are allowed.
        cloudformation(&ok.replace(", Ami]", ", Kernel, {DefaultValue: x}]")).unwrap();
        let no_mappings = template(
            "  Topic:\n    Type: AWS::SNS::Topic\n    Properties:\n      TopicName:\n        Fn::FindInMap: [RegionMap, a, b]\n",
        );
        assert!(
            cloudformation(&no_mappings)
                .unwrap_err()
                .to_string()
                .contains("names no mapping")
        );
    }

    #[test]
    fn conditions_must_be_declared() {
        let ok = format!(
            "Parameters:\n  Env:\n    Type: String\nConditions:\n  IsProd:\n    Fn::Equals: [{{Ref: Env}}, production]\n{}  Topic:\n    Type: AWS::SNS::Topic\n    Condition: IsProd\n    Properties:\n      TopicName:\n        Fn::If: [IsProd, a, b]\n      Condition: NotACondition\n",
            template("")
        );
        // `Condition` inside Properties is an ordinary property.
        cloudformation(&ok).unwrap();
        let err = cloudformation(&ok.replace("Condition: IsProd", "Condition: IsTest"))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "condition `IsTest` at /Resources/Topic/Condition is not declared in `Conditions`"
        );
        let err = cloudformation(&ok.replace("[IsProd, a, b]", "[IsTest, a, b]"))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("condition `IsTest` at /Resources/Topic/Properties/TopicName/Fn::If"),
            "{err}"
        );
    }

    #[test]
    fn template_sections_are_limited() {
        let resources = |n: usize| {
            (0..n)
                .map(|i| format!("  R{i}:\n    Type: AWS::SNS::Topic\n"))
                .collect::<String>()
        };
        cloudformation(&format!("Resources:\n{}", resources(500))).unwrap();
        let err = cloudformation(&format!("Resources:\n{}", resources(501)))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("`Resources` has 501 entries; CloudFormation accepts at most 500"),
            "{err}"
        );
        let parameters: String = (0..201)
            .map(|i| format!("  P{i}:\n    Type: String\n"))
            .collect();
        let err = cloudformation(&format!("Parameters:\n{parameters}{}", template("")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Parameters` has 201 entries"), "{err}");
        let outputs: String = (0..201)
            .map(|i| format!("  O{i}:\n    Value: x\n"))
            .collect();
        let err = cloudformation(&format!("{}Outputs:\n{outputs}", template("")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Outputs` has 201 entries"), "{err}");
        let mappings: String = (0..201)
            .map(|i| format!("  M{i}:\n    a:\n      b: c\n"))
            .collect();
        let err = cloudformation(&format!("Mappings:\n{mappings}{}", template("")))
            .unwrap_err()
            .to_string();
        assert!(err.contains("`Mappings` has 201 entries"), "{err}");
    }

    #[test]
    fn deletions_need_a_namespace_exactly_for_namespaced_kinds() {
        let err = deletions("post_apply:\n- kind: Deployment\n  name: coredns\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("post_apply[0] (Deployment): needs a `namespace`: without one it selects Deployment objects in every namespace"),
            "{err}"
        );
        // Unknown kinds (custom resources) are namespaced unless listed.
        let err = deletions("pre_apply:\n- kind: Certificate\n  labels: {app: x}\n")
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("custom resources included, needs one"),
            "{err}"
        );
        let err = deletions(
            "pre_apply:\n- kind: ClusterRole\n  namespace: kube-system\n  name: system:coredns\n",
        )
        .unwrap_err()
        .to_string();
        assert_eq!(
            err,
            "pre_apply[0] (ClusterRole): ClusterRole is cluster-scoped, so it takes no `namespace` (found `kube-system`); remove it"
        );
        deletions("pre_apply:\n- kind: ClusterRole\n  name: system:coredns\n- kind: Namespace\n  name: old\n- kind: StorageClass\n  selector: app=x\n").unwrap();
        let err =
            deletions("pre_apply:\n- kind: Deployment\n  namespace: Kube_System\n  name: a\n")
                .unwrap_err()
                .to_string();
        assert!(
            err.contains("namespace `Kube_System` is not a valid DNS-1123 label"),
            "{err}"
        );
    }

    #[test]
    fn deletion_names_and_selectors_are_bounded() {
        let entry = |rest: &str| {
            deletions(&format!(
                "post_apply:\n- kind: Deployment\n  namespace: kube-system\n{rest}"
            ))
        };
        let err = entry("  name: Core_DNS\n").unwrap_err().to_string();
        assert_eq!(
            err,
            "post_apply[0] (Deployment): name `Core_DNS` is not a valid DNS-1123 subdomain (lower-case letters, digits, `-` and `.`; at most 253 characters)"
        );
        assert!(entry("  name: a:b\n").is_err());
        for empty in ["  selector: \"\"\n", "  selector: \"  \"\n"] {
            let err = entry(empty).unwrap_err().to_string();
            assert!(
                err.contains(
                    "`selector` is empty, which selects every Deployment in the namespace"
                ),
                "{err}"
            );
        }
        let err = entry("  labels: {}\n").unwrap_err().to_string();
        assert!(
            err.contains("`labels` is empty, which selects every Deployment in the namespace"),
            "{err}"
        );
        for negative in ["!app", "app!=x,!tier", "app notin (a,b)"] {
            let err = entry(&format!("  selector: {negative:?}\n"))
                .unwrap_err()
                .to_string();
            assert!(
                err.contains("has no requirement an object must meet"),
                "{negative}: {err}"
            );
        }
        for positive in [
            "app=x",
            "app",
            "app in (a,b),!tier",
            "k8s-app=metrics-server,!app.kubernetes.io/managed-by",
        ] {
            entry(&format!("  selector: {positive:?}\n")).unwrap();
        }
        assert!(
            deletions("pre_apply:\n- kind: \"\"\n  name: a\n")
                .unwrap_err()
                .to_string()
                .contains("`kind` is empty")
        );
        assert!(
            entry("  name: a\n  propagation_policy: Later\n")
                .unwrap_err()
                .to_string()
                .contains("propagation_policy")
        );
    }

    #[test]
    fn rbac_names_are_path_segments() {
        let role = "apiVersion: rbac.authorization.k8s.io/v1\nkind: ClusterRole\nmetadata:\n  name: system:flotilla\n";
        manifests(role, &mut ObjectIndex::default()).unwrap();
        let err = manifests(
            &role.replace("system:flotilla", "a/b"),
            &mut ObjectIndex::default(),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("is not a valid path segment name"), "{err}");
        let map = "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: system:flotilla\n";
        assert!(
            manifests(map, &mut ObjectIndex::default())
                .unwrap_err()
                .to_string()
                .contains("DNS-1123")
        );
    }
}
