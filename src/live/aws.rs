//! [`Cloud`] on the AWS SDK. Credentials and region come from the standard chain;
//! an endpoint URL (flag or `AWS_ENDPOINT_URL`) points every client at an emulator.

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, TemplateStage,
};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{
    AutoScalingGroupState, ChangeSetView, Cloud, GroupInstance, InstanceState, LiveError,
    LiveResult, ParameterValue, ResourceChange, StackState,
};

pub struct AwsCloud {
    endpoint: Option<String>,
    /// One SDK configuration per region, created on first use.
    configs: Mutex<HashMap<String, SdkConfig>>,
}

impl AwsCloud {
    pub fn new(endpoint: Option<String>) -> AwsCloud {
        AwsCloud {
            endpoint,
            configs: Mutex::new(HashMap::new()),
        }
    }

    async fn config(&self, region: &str) -> SdkConfig {
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(region) {
            return c.clone();
        }
        // The SDK retries throttling and 5xx itself (standard mode, with jitter).
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(200)),
            );
        if let Some(url) = &self.endpoint {
            loader = loader.endpoint_url(url);
        }
        let config = loader.load().await;
        configs.insert(region.to_string(), config.clone());
        config
    }

    async fn cfn(&self, region: &str) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.config(region).await)
    }
}

fn failure<E>(operation: String, err: SdkError<E>) -> LiveError
where
    E: ProvideErrorMetadata + std::error::Error + 'static,
{
    let retryable = match &err {
        SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) | SdkError::ResponseError(_) => {
            true
        }
        SdkError::ServiceError(e) => {
            e.raw().status().is_server_error()
                || matches!(
                    e.err().code(),
                    Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
                )
        }
        _ => false,
    };
    let message = match err.as_service_error() {
        Some(e) => format!(
            "{}: {}",
            e.code().unwrap_or("error"),
            e.message().unwrap_or("no message")
        ),
        None => aws_smithy_error_chain(&err),
    };
    LiveError {
        operation,
        message,
        retryable,
    }
}

/// The error with its sources, which hold the useful part for connection failures.
fn aws_smithy_error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

#[async_trait]
impl Cloud for AwsCloud {
    async fn describe_stack(&self, region: &str, name: &str) -> LiveResult<Option<StackState>> {
        let client = self.cfn(region).await;
        let result = client.describe_stacks().stack_name(name).send().await;
        let out = match result {
            Ok(out) => out,
            Err(err) => {
                // The only answer that means "absent".
                let missing = err.as_service_error().is_some_and(|e| {
                    e.code() == Some("ValidationError")
                        && e.message().is_some_and(|m| m.contains("does not exist"))
                });
                if missing {
                    return Ok(None);
                }
                return Err(failure(format!("describe stack {name}"), err));
            }
        };
        let Some(stack) = out.stacks().first() else {
            return Err(LiveError {
                operation: format!("describe stack {name}"),
                message: "CloudFormation answered without the stack".into(),
                retryable: true,
            });
        };
        let status = stack
            .stack_status()
            .map(|s| s.as_str().to_string())
            .unwrap_or_default();
        if status == "DELETE_COMPLETE" {
            return Ok(None);
        }
        let time = stack
            .last_updated_time()
            .or(stack.creation_time())
            .map(|t| t.to_string())
            .unwrap_or_default();
        Ok(Some(StackState {
            name: name.to_string(),
            id: stack.stack_id().unwrap_or_default().to_string(),
            status,
            last_updated: time,
            parameters: stack
                .parameters()
                .iter()
                .map(|p| pair(p.parameter_key(), p.parameter_value()))
                .collect(),
            tags: stack
                .tags()
                .iter()
                .map(|t| pair(t.key(), t.value()))
                .collect(),
        }))
    }

    async fn get_template(&self, region: &str, name: &str) -> LiveResult<Value> {
        let client = self.cfn(region).await;
        let out = client
            .get_template()
            .stack_name(name)
            .template_stage(TemplateStage::Original)
            .send()
            .await
            .map_err(|e| failure(format!("get template of {name}"), e))?;
        let body = out.template_body().unwrap_or_default();
        serde_json::from_str(body)
            .or_else(|_| serde_yaml_ng::from_str(body))
            .map_err(|e| LiveError {
                operation: format!("get template of {name}"),
                message: format!("the template is neither JSON nor YAML: {e}"),
                retryable: false,
            })
    }

    async fn preview_update(
        &self,
        region: &str,
        name: &str,
        template: &str,
        parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView> {
        let client = self.cfn(region).await;
        let parameters: Vec<Parameter> = parameters
            .iter()
            .map(|(key, value)| match value {
                ParameterValue::UsePrevious => Parameter::builder()
                    .parameter_key(key)
                    .use_previous_value(true)
                    .build(),
                ParameterValue::Value(v) => Parameter::builder()
                    .parameter_key(key)
                    .parameter_value(v)
                    .build(),
            })
            .collect();
        // Unique per run, so concurrent plans of one stack do not delete each other's.
        let change_set = format!(
            "flotilla-plan-{}-{:08x}",
            &crate::digest::short_digest(template),
            rand::random::<u32>()
        );
        let created = client
            .create_change_set()
            .stack_name(name)
            .change_set_name(&change_set)
            .change_set_type(ChangeSetType::Update)
            .template_body(template)
            .set_parameters(Some(parameters))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam)
            .send()
            .await
            .map_err(|e| failure(format!("create change set for {name}"), e))?;
        let id = created.id().unwrap_or(&change_set).to_string();
        let view = describe_change_set(&client, name, &id).await;
        // Always removed again, also when reading it failed: a preview leaves nothing.
        let deleted = client
            .delete_change_set()
            .change_set_name(&id)
            .stack_name(name)
            .send()
            .await
            .map_err(|e| failure(format!("delete change set {change_set} of {name}"), e));
        match (view, deleted) {
            (Ok(view), Ok(_)) => Ok(view),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }

    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>> {
        let client = aws_sdk_autoscaling::Client::new(&self.config(region).await);
        let filter = aws_sdk_autoscaling::types::Filter::builder()
            .name("tag:flotilla.io/cluster")
            .values(cluster)
            .build();
        let mut groups = Vec::new();
        let mut token: Option<String> = None;
        loop {
            let out = client
                .describe_auto_scaling_groups()
                .filters(filter.clone())
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| failure(format!("describe auto scaling groups of {cluster}"), e))?;
            for g in out.auto_scaling_groups() {
                groups.push(AutoScalingGroupState {
                    name: g.auto_scaling_group_name().unwrap_or_default().to_string(),
                    min_size: g.min_size().unwrap_or(0),
                    max_size: g.max_size().unwrap_or(0),
                    desired_capacity: g.desired_capacity().unwrap_or(0),
                    tags: g.tags().iter().map(|t| pair(t.key(), t.value())).collect(),
                    instances: g
                        .instances()
                        .iter()
                        .map(|i| GroupInstance {
                            id: i.instance_id().unwrap_or_default().to_string(),
                            availability_zone: i
                                .availability_zone()
                                .unwrap_or_default()
                                .to_string(),
                            lifecycle_state: i
                                .lifecycle_state()
                                .map(|s| s.as_str().to_string())
                                .unwrap_or_default(),
                            health_status: i.health_status().unwrap_or_default().to_string(),
                            launch_template_version: i
                                .launch_template()
                                .and_then(|t| t.version())
                                .map(str::to_string),
                        })
                        .collect(),
                });
            }
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        groups.sort_by(|a, b| a.name.cmp(&b.name));
        Ok(groups)
    }

    async fn instances(&self, region: &str, ids: &[String]) -> LiveResult<Vec<InstanceState>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let client = aws_sdk_ec2::Client::new(&self.config(region).await);
        let out = client
            .describe_instances()
            .set_instance_ids(Some(ids.to_vec()))
            .send()
            .await
            .map_err(|e| failure("describe instances".into(), e))?;
        let mut instances: Vec<InstanceState> = out
            .reservations()
            .iter()
            .flat_map(|r| r.instances())
            .map(|i| InstanceState {
                id: i.instance_id().unwrap_or_default().to_string(),
                state: i
                    .state()
                    .and_then(|s| s.name())
                    .map(|n| n.as_str().to_string())
                    .unwrap_or_default(),
                availability_zone: i
                    .placement()
                    .and_then(|p| p.availability_zone())
                    .unwrap_or_default()
                    .to_string(),
            })
            .collect();
        instances.sort_by(|a, b| a.id.cmp(&b.id));
        Ok(instances)
    }

    // Apply is not wired to this backend yet.
    async fn caller_account(&self, _: &str) -> LiveResult<String> {
        Err(crate::live::unsupported("caller_account"))
    }
    async fn create_change_set(
        &self,
        _: &str,
        _: &crate::live::ChangeSetRequest,
    ) -> LiveResult<crate::live::PreparedChangeSet> {
        Err(crate::live::unsupported("create_change_set"))
    }
    async fn execute_change_set(&self, _: &str, _: &str, _: &str) -> LiveResult<()> {
        Err(crate::live::unsupported("execute_change_set"))
    }
    async fn stack_events(
        &self,
        _: &str,
        _: &str,
        _: usize,
    ) -> LiveResult<Vec<crate::live::StackEvent>> {
        Err(crate::live::unsupported("stack_events"))
    }
    async fn delete_stack(&self, _: &str, _: &str) -> LiveResult<()> {
        Err(crate::live::unsupported("delete_stack"))
    }
    async fn set_group_size(&self, _: &str, _: &str, _: &crate::live::GroupSize) -> LiveResult<()> {
        Err(crate::live::unsupported("set_group_size"))
    }
    async fn set_group_tags(&self, _: &str, _: &str, _: &[(String, String)]) -> LiveResult<()> {
        Err(crate::live::unsupported("set_group_tags"))
    }
    async fn delete_group_tags(&self, _: &str, _: &str, _: &[String]) -> LiveResult<()> {
        Err(crate::live::unsupported("delete_group_tags"))
    }
    async fn terminate_instance(&self, _: &str, _: &str, _: bool) -> LiveResult<()> {
        Err(crate::live::unsupported("terminate_instance"))
    }
}

/// Wait for a change set and read all its changes (every page).
async fn describe_change_set(
    client: &aws_sdk_cloudformation::Client,
    name: &str,
    id: &str,
) -> LiveResult<ChangeSetView> {
    let mut wait = Duration::from_millis(100);
    let mut view = ChangeSetView::default();
    let mut token: Option<String> = None;
    loop {
        let described = client
            .describe_change_set()
            .change_set_name(id)
            .stack_name(name)
            .set_next_token(token.clone())
            .send()
            .await
            .map_err(|e| failure(format!("describe change set for {name}"), e))?;
        match described.status() {
            Some(ChangeSetStatus::CreateComplete) => {
                view.changes.extend(
                    described
                        .changes()
                        .iter()
                        .filter_map(|c| c.resource_change())
                        .map(|rc| ResourceChange {
                            logical_id: rc.logical_resource_id().unwrap_or_default().to_string(),
                            resource_type: rc.resource_type().unwrap_or_default().to_string(),
                            action: rc
                                .action()
                                .map(|a| a.as_str().to_string())
                                .unwrap_or_default(),
                            replacement: rc.replacement().map(|r| r.as_str().to_string()),
                        }),
                );
                token = described.next_token().map(str::to_string);
                if token.is_none() {
                    return Ok(view);
                }
            }
            Some(ChangeSetStatus::Failed) => {
                let reason = described.status_reason().unwrap_or_default();
                // An update without changes fails to create; that is "no change".
                if reason.contains("didn't contain changes") || reason.contains("No updates") {
                    return Ok(ChangeSetView::default());
                }
                return Err(LiveError {
                    operation: format!("change set for {name}"),
                    message: reason.to_string(),
                    retryable: false,
                });
            }
            _ => {
                if wait > Duration::from_secs(20) {
                    return Err(LiveError {
                        operation: format!("change set for {name}"),
                        message: "not ready after waiting about a minute".into(),
                        retryable: true,
                    });
                }
                tokio::time::sleep(wait).await;
                wait = wait.saturating_mul(2);
            }
        }
    }
}

/// A key and value the SDK models as optional, as plain strings.
fn pair(key: Option<&str>, value: Option<&str>) -> (String, String) {
    (
        key.unwrap_or_default().to_string(),
        value.unwrap_or_default().to_string(),
    )
}
