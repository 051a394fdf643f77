//! [`Cloud`] on the AWS SDK. Credentials and region come from the standard chain;
//! an endpoint URL (flag or `AWS_ENDPOINT_URL`) points every client at an emulator.
//! Every call has the connect, read and overall deadlines of [`Timeouts`].

use std::collections::HashMap;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use aws_config::retry::RetryConfig;
use aws_config::sts::AssumeRoleProvider;
use aws_config::timeout::TimeoutConfig;
use aws_config::{BehaviorVersion, Region, SdkConfig};
use aws_credential_types::provider::error::CredentialsError;
use aws_sdk_cloudformation::error::{ProvideErrorMetadata, SdkError};
use aws_sdk_cloudformation::types::{
    Capability, ChangeSetStatus, ChangeSetType, Parameter, Tag, TemplateStage,
};
use aws_sdk_sts::config::{ProvideCredentials, SharedCredentialsProvider};
use serde_json::Value;
use tokio::sync::Mutex;

use super::{
    AutoScalingGroupState, ChangeSetKind, ChangeSetRequest, ChangeSetView, Cloud, GroupInstance,
    GroupSize, InstanceState, LiveError, LiveResult, ParameterValue, PreparedChangeSet,
    ResourceChange, StackEvent, StackState, TemplateSource, Timeouts, seconds,
};

pub struct AwsCloud {
    endpoint: Option<String>,
    timeouts: Timeouts,
    /// Credentials instead of the standard chain (a test's).
    credentials: Option<SharedCredentialsProvider>,
    /// A role assumed with those credentials (STS AssumeRole), whose credentials every
    /// call then uses.
    role: Option<String>,
    /// One SDK configuration per region, created on first use.
    configs: Mutex<HashMap<String, SdkConfig>>,
}

/// Why an endpoint URL is refused.
#[derive(Debug, PartialEq, thiserror::Error)]
pub enum EndpointError {
    #[error("`{0}` is not a URL; expected http://HOST[:PORT] or https://HOST[:PORT]")]
    NotAUrl(String),
    #[error("`{0}` has no host")]
    NoHost(String),
    #[error(
        "`{0}` is not an http:// or https:// URL; expected http://HOST[:PORT] or https://HOST[:PORT]"
    )]
    NotHttp(String),
}

/// Checks an endpoint URL before any call is made: an `http://` or `https://` URL with
/// a host. (The SDK would otherwise fail every call with an unhelpful message.)
pub fn endpoint_url(url: &str) -> Result<String, EndpointError> {
    let parsed: http::Uri = url
        .parse()
        .map_err(|_| EndpointError::NotAUrl(url.to_string()))?;
    match (parsed.scheme_str(), parsed.host()) {
        (Some("http" | "https"), Some(host)) if !host.is_empty() => Ok(url.to_string()),
        (Some("http" | "https"), _) => Err(EndpointError::NoHost(url.to_string())),
        _ => Err(EndpointError::NotHttp(url.to_string())),
    }
}

/// `AWS_ENDPOINT_URL`, when set, checked like the flag.
pub fn check_endpoint_variable() -> Result<(), EndpointError> {
    match std::env::var("AWS_ENDPOINT_URL") {
        Ok(url) => endpoint_url(&url).map(drop),
        Err(_) => Ok(()),
    }
}

impl AwsCloud {
    pub fn new(endpoint: Option<String>) -> AwsCloud {
        AwsCloud {
            endpoint,
            timeouts: Timeouts::default(),
            credentials: None,
            role: None,
            configs: Mutex::new(HashMap::new()),
        }
    }

    pub fn with_timeouts(self, timeouts: Timeouts) -> AwsCloud {
        AwsCloud { timeouts, ..self }
    }

    /// Use these credentials instead of the standard chain's.
    pub fn with_credentials(self, credentials: impl ProvideCredentials + 'static) -> AwsCloud {
        AwsCloud {
            credentials: Some(SharedCredentialsProvider::new(credentials)),
            ..self
        }
    }

    /// Reach AWS as `role` (an IAM role ARN), assumed with the credentials this cloud
    /// has otherwise; the session is named after flotilla, so CloudTrail says who acted.
    pub fn assuming(self, role: &str) -> AwsCloud {
        AwsCloud {
            role: Some(role.to_string()),
            ..self
        }
    }

    async fn config(&self, region: &str) -> SdkConfig {
        let mut configs = self.configs.lock().await;
        if let Some(c) = configs.get(region) {
            return c.clone();
        }
        let timeouts = &self.timeouts;
        // The SDK retries throttling, 5xx and timed-out attempts itself (standard mode,
        // with jitter); the operation timeout bounds all of it.
        let mut loader = aws_config::defaults(BehaviorVersion::latest())
            .region(Region::new(region.to_string()))
            .retry_config(
                RetryConfig::standard()
                    .with_max_attempts(6)
                    .with_initial_backoff(Duration::from_millis(200)),
            )
            .timeout_config(
                TimeoutConfig::builder()
                    .connect_timeout(timeouts.connect)
                    .read_timeout(timeouts.read)
                    .operation_attempt_timeout(timeouts.read)
                    .operation_timeout(timeouts.call)
                    .build(),
            );
        if let Some(url) = &self.endpoint {
            loader = loader.endpoint_url(url);
        }
        if let Some(credentials) = &self.credentials {
            loader = loader.credentials_provider(credentials.clone());
        }
        let mut config = loader.load().await;
        if let Some(role) = &self.role {
            // The provider caches the role's credentials and renews them before they
            // expire.
            let assumed = AssumeRoleProvider::builder(role)
                .session_name(format!("flotilla-{}", std::process::id()))
                .configure(&config)
                .build()
                .await;
            config = config
                .into_builder()
                .credentials_provider(SharedCredentialsProvider::new(assumed))
                .build();
        }
        configs.insert(region.to_string(), config.clone());
        config
    }

    async fn cfn(&self, region: &str) -> aws_sdk_cloudformation::Client {
        aws_sdk_cloudformation::Client::new(&self.config(region).await)
    }

    /// S3 addressed by path (`ENDPOINT/BUCKET/KEY`) when an endpoint is given: an
    /// emulator on a loopback address has no per-bucket host names.
    async fn s3(&self, region: &str) -> aws_sdk_s3::Client {
        let config = aws_sdk_s3::config::Builder::from(&self.config(region).await)
            .force_path_style(self.endpoint.is_some())
            .build();
        aws_sdk_s3::Client::from_conf(config)
    }

    async fn autoscaling(&self, region: &str) -> aws_sdk_autoscaling::Client {
        aws_sdk_autoscaling::Client::new(&self.config(region).await)
    }

    /// A failed SDK call as a [`LiveError`]: the service's code and message, or for
    /// failures before an answer a short cause. Never the SDK's `Debug` form, which
    /// dumps the whole request.
    fn failure<E>(&self, operation: String, err: SdkError<E>) -> LiveError
    where
        E: ProvideErrorMetadata + std::error::Error + 'static,
    {
        if let Some(credentials) = source_of::<CredentialsError>(&err) {
            let cause = error_chain(credentials);
            return LiveError {
                operation,
                message: match &self.role {
                    Some(role) => format!("cannot assume role {role}: {cause}"),
                    None => format!("no usable AWS credentials: {cause}"),
                },
                retryable: matches!(credentials, CredentialsError::ProviderTimedOut(_)),
            };
        }
        let silent = |bound| format!("AWS did not answer within {} s", seconds(bound));
        let (message, retryable) = match &err {
            SdkError::ServiceError(e) => (
                match (e.err().code(), e.err().message()) {
                    (Some(code), Some(message)) => format!("{code}: {message}"),
                    (Some(code), None) => code.to_string(),
                    (None, _) => format!(
                        "unexpected answer from AWS (HTTP {})",
                        e.raw().status().as_u16()
                    ),
                },
                e.raw().status().is_server_error()
                    || matches!(
                        e.err().code(),
                        Some("Throttling" | "ThrottlingException" | "RequestLimitExceeded")
                    ),
            ),
            SdkError::TimeoutError(_) => (silent(self.timeouts.call), true),
            SdkError::DispatchFailure(e) if e.is_timeout() => (silent(self.timeouts.read), true),
            SdkError::DispatchFailure(e) => (
                format!("cannot reach AWS: {}", error_chain(&err)),
                e.is_io() || e.is_other(),
            ),
            SdkError::ResponseError(_) => (
                format!("unreadable answer from AWS: {}", error_chain(&err)),
                true,
            ),
            _ => (
                format!("cannot send the request: {}", error_chain(&err)),
                false,
            ),
        };
        LiveError {
            operation,
            message,
            retryable,
        }
    }

    /// Wait (with backoff, up to the wait deadline) until a change set is created, and
    /// read all its changes (every page).
    async fn wait_for_change_set(
        &self,
        client: &aws_sdk_cloudformation::Client,
        stack: &str,
        id: &str,
    ) -> LiveResult<ChangeSetOutcome> {
        let started = Instant::now();
        let mut pause = Duration::from_millis(100);
        let mut view = ChangeSetView::default();
        let mut token: Option<String> = None;
        loop {
            let described = client
                .describe_change_set()
                .change_set_name(id)
                .stack_name(stack)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.failure(format!("describe change set for {stack}"), e))?;
            match described.status() {
                Some(ChangeSetStatus::CreateComplete) => {
                    view.changes.extend(
                        described
                            .changes()
                            .iter()
                            .filter_map(|c| c.resource_change())
                            .map(|rc| ResourceChange {
                                logical_id: rc
                                    .logical_resource_id()
                                    .unwrap_or_default()
                                    .to_string(),
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
                        return Ok(ChangeSetOutcome::Ready(view));
                    }
                }
                Some(ChangeSetStatus::Failed) => {
                    let reason = described.status_reason().unwrap_or_default();
                    // An update without changes fails to create; that is "no change".
                    if reason.contains("didn't contain changes") || reason.contains("No updates") {
                        return Ok(ChangeSetOutcome::NoChanges);
                    }
                    return Ok(ChangeSetOutcome::Failed(reason.to_string()));
                }
                _ => {
                    if started.elapsed() + pause > self.timeouts.wait {
                        return Err(LiveError {
                            operation: format!("change set for {stack}"),
                            message: format!("not ready after {} s", seconds(self.timeouts.wait)),
                            retryable: true,
                        });
                    }
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_secs(5));
                }
            }
        }
    }

    async fn delete_change_set(
        &self,
        client: &aws_sdk_cloudformation::Client,
        stack: &str,
        id: &str,
    ) -> LiveResult<()> {
        client
            .delete_change_set()
            .change_set_name(id)
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| self.failure(format!("delete change set {id} of {stack}"), e))?;
        Ok(())
    }
}

/// The first error of type `E` in `err`'s chain of sources.
fn source_of<'a, E: std::error::Error + 'static>(
    err: &'a (dyn std::error::Error + 'static),
) -> Option<&'a E> {
    let mut current = Some(err);
    while let Some(e) = current {
        if let Some(found) = e.downcast_ref::<E>() {
            return Some(found);
        }
        current = e.source();
    }
    None
}

/// An error with its sources (their `Display` forms), which hold the useful part of
/// connection failures, without the request dumps some of them quote.
fn error_chain(err: &dyn std::error::Error) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(s) = source {
        let next = s.to_string();
        if !text.contains(&next) {
            text.push_str(": ");
            text.push_str(&next);
        }
        source = s.source();
    }
    without_dumps(&text)
}

/// The smithy runtime quotes whole requests in backticks (`` `Request { body: SdkBody
/// .. }` ``): a quoted part that is a `Debug` dump becomes `…`.
fn without_dumps(text: &str) -> String {
    text.split('`')
        .enumerate()
        .map(|(i, part)| match i % 2 == 1 && part.contains(" { ") {
            true => "…",
            false => part,
        })
        .collect::<Vec<_>>()
        .join("`")
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
                return Err(self.failure(format!("describe stack {name}"), err));
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
            .map_err(|e| self.failure(format!("get template of {name}"), e))?;
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
        template: &TemplateSource,
        parameters: &[(String, ParameterValue)],
    ) -> LiveResult<ChangeSetView> {
        let client = self.cfn(region).await;
        // Unique per run, so concurrent plans of one stack do not delete each other's.
        let change_set = format!(
            "flotilla-plan-{}-{:08x}",
            &crate::digest::short_digest(template.text()),
            rand::random::<u32>()
        );
        let create = client
            .create_change_set()
            .stack_name(name)
            .change_set_name(&change_set)
            .change_set_type(ChangeSetType::Update)
            .set_parameters(Some(self::parameters(parameters)))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam);
        let created = match template {
            TemplateSource::Body(body) => create.template_body(body),
            TemplateSource::Url(url) => create.template_url(url),
        }
        .send()
        .await
        .map_err(|e| self.failure(format!("create change set for {name}"), e))?;
        let id = created.id().unwrap_or(&change_set).to_string();
        let outcome = self.wait_for_change_set(&client, name, &id).await;
        // Always removed again, also when reading it failed: a preview leaves nothing.
        let deleted = self.delete_change_set(&client, name, &id).await;
        match (outcome, deleted) {
            (Ok(ChangeSetOutcome::Ready(view)), Ok(())) => Ok(view),
            (Ok(ChangeSetOutcome::NoChanges), Ok(())) => Ok(ChangeSetView::default()),
            (Ok(ChangeSetOutcome::Failed(reason)), _) => Err(LiveError {
                operation: format!("change set for {name}"),
                message: reason,
                retryable: false,
            }),
            (Err(e), _) | (Ok(_), Err(e)) => Err(e),
        }
    }

    async fn auto_scaling_groups(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<AutoScalingGroupState>> {
        let client = self.autoscaling(region).await;
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
                .map_err(|e| {
                    self.failure(format!("describe auto scaling groups of {cluster}"), e)
                })?;
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
            .map_err(|e| self.failure("describe instances".into(), e))?;
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

    async fn caller_account(&self, region: &str) -> LiveResult<String> {
        let client = aws_sdk_sts::Client::new(&self.config(region).await);
        let operation = "ask STS who the credentials belong to (GetCallerIdentity)";
        let out = client
            .get_caller_identity()
            .send()
            .await
            .map_err(|e| self.failure(operation.into(), e))?;
        out.account().map(str::to_string).ok_or_else(|| LiveError {
            operation: operation.into(),
            message: "STS answered without an account".into(),
            retryable: false,
        })
    }

    async fn put_template(
        &self,
        region: &str,
        bucket: &str,
        key: &str,
        body: &str,
    ) -> LiveResult<()> {
        self.s3(region)
            .await
            .put_object()
            .bucket(bucket)
            .key(key)
            .content_type("application/json")
            .body(body.as_bytes().to_vec().into())
            .send()
            .await
            .map_err(|e| self.failure(format!("upload template to s3://{bucket}/{key}"), e))?;
        Ok(())
    }

    async fn create_change_set(
        &self,
        region: &str,
        request: &ChangeSetRequest,
    ) -> LiveResult<PreparedChangeSet> {
        let client = self.cfn(region).await;
        let stack = &request.stack;
        let name = format!(
            "flotilla-apply-{}-{:08x}",
            crate::digest::short_digest(request.template.text()),
            rand::random::<u32>()
        );
        let kind = match request.kind {
            ChangeSetKind::Create => ChangeSetType::Create,
            ChangeSetKind::Update => ChangeSetType::Update,
        };
        let tags = request
            .tags
            .iter()
            .map(|(k, v)| Tag::builder().key(k).value(v).build())
            .collect();
        let mut create = client
            .create_change_set()
            .stack_name(stack)
            .change_set_name(&name)
            .change_set_type(kind)
            .set_parameters(Some(parameters(&request.parameters)))
            .set_tags(Some(tags))
            .capabilities(Capability::CapabilityIam)
            .capabilities(Capability::CapabilityNamedIam);
        create = match &request.template {
            TemplateSource::Body(body) => create.template_body(body),
            TemplateSource::Url(url) => create.template_url(url),
        };
        let created = create
            .send()
            .await
            .map_err(|e| self.failure(format!("create change set for {stack}"), e))?;
        let id = created.id().unwrap_or(&name).to_string();
        match self.wait_for_change_set(&client, stack, &id).await? {
            ChangeSetOutcome::Ready(view) => Ok(PreparedChangeSet {
                id,
                empty: false,
                view,
            }),
            ChangeSetOutcome::NoChanges => {
                self.delete_change_set(&client, stack, &id).await?;
                Ok(PreparedChangeSet {
                    id,
                    empty: true,
                    view: ChangeSetView::default(),
                })
            }
            ChangeSetOutcome::Failed(reason) => Err(LiveError {
                operation: format!("change set {name} for {stack}"),
                message: format!("CloudFormation could not create it: {reason}"),
                retryable: false,
            }),
        }
    }

    async fn execute_change_set(
        &self,
        region: &str,
        stack: &str,
        change_set: &str,
    ) -> LiveResult<()> {
        self.cfn(region)
            .await
            .execute_change_set()
            .stack_name(stack)
            .change_set_name(change_set)
            .send()
            .await
            .map_err(|e| self.failure(format!("execute change set of {stack}"), e))?;
        Ok(())
    }

    async fn stack_events(
        &self,
        region: &str,
        stack: &str,
        limit: usize,
    ) -> LiveResult<Vec<StackEvent>> {
        let client = self.cfn(region).await;
        let mut events = Vec::new();
        let mut token: Option<String> = None;
        // CloudFormation answers newest first, a page at a time.
        while events.len() < limit {
            let out = client
                .describe_stack_events()
                .stack_name(stack)
                .set_next_token(token.clone())
                .send()
                .await
                .map_err(|e| self.failure(format!("describe events of stack {stack}"), e))?;
            events.extend(out.stack_events().iter().map(|e| {
                StackEvent {
                    timestamp: e.timestamp().map(|t| t.to_string()).unwrap_or_default(),
                    logical_id: e.logical_resource_id().unwrap_or_default().to_string(),
                    resource_type: e.resource_type().unwrap_or_default().to_string(),
                    status: e
                        .resource_status()
                        .map(|s| s.as_str().to_string())
                        .unwrap_or_default(),
                    reason: e.resource_status_reason().map(str::to_string),
                }
            }));
            token = out.next_token().map(str::to_string);
            if token.is_none() {
                break;
            }
        }
        events.truncate(limit);
        Ok(events)
    }

    async fn delete_stack(&self, region: &str, stack: &str) -> LiveResult<()> {
        self.cfn(region)
            .await
            .delete_stack()
            .stack_name(stack)
            .send()
            .await
            .map_err(|e| self.failure(format!("delete stack {stack}"), e))?;
        Ok(())
    }

    async fn set_group_size(&self, region: &str, group: &str, size: &GroupSize) -> LiveResult<()> {
        self.autoscaling(region)
            .await
            .update_auto_scaling_group()
            .auto_scaling_group_name(group)
            .min_size(size.min)
            .max_size(size.max)
            .desired_capacity(size.desired)
            .send()
            .await
            .map_err(|e| {
                let GroupSize { min, max, desired } = size;
                let operation =
                    format!("resize group {group} to min {min}, desired {desired}, max {max}");
                self.failure(operation, e)
            })?;
        Ok(())
    }

    async fn set_group_tags(
        &self,
        region: &str,
        group: &str,
        tags: &[(String, String)],
    ) -> LiveResult<()> {
        if tags.is_empty() {
            return Ok(());
        }
        let tags = tags
            .iter()
            .map(|(key, value)| group_tag(group, key).value(value).build())
            .collect();
        self.autoscaling(region)
            .await
            .create_or_update_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| self.failure(format!("tag group {group}"), e))?;
        Ok(())
    }

    async fn delete_group_tags(
        &self,
        region: &str,
        group: &str,
        keys: &[String],
    ) -> LiveResult<()> {
        if keys.is_empty() {
            return Ok(());
        }
        let tags = keys
            .iter()
            .map(|key| group_tag(group, key).build())
            .collect();
        self.autoscaling(region)
            .await
            .delete_tags()
            .set_tags(Some(tags))
            .send()
            .await
            .map_err(|e| {
                self.failure(
                    format!("remove tags {} from group {group}", keys.join(", ")),
                    e,
                )
            })?;
        Ok(())
    }

    /// The VPC and subnets tagged `flotilla.io/cluster=<cluster>`: one VPC (`VpcId`);
    /// its subnets also tagged `kubernetes.io/role/elb` are `PublicSubnetIds`, the others
    /// `SubnetIds` (both comma-separated, sorted). Only what was found is returned; two
    /// VPCs tagged for one cluster are an error, as either could be meant.
    async fn tagged_parameters(
        &self,
        region: &str,
        cluster: &str,
    ) -> LiveResult<Vec<(String, String)>> {
        let client = aws_sdk_ec2::Client::new(&self.config(region).await);
        let tagged = aws_sdk_ec2::types::Filter::builder()
            .name(format!("tag:{CLUSTER_TAG}"))
            .values(cluster)
            .build();
        let operation = format!("look up the network tagged {CLUSTER_TAG}={cluster}");
        let vpcs = client
            .describe_vpcs()
            .filters(tagged.clone())
            .send()
            .await
            .map_err(|e| self.failure(operation.clone(), e))?;
        let mut vpc_ids: Vec<&str> = vpcs.vpcs().iter().filter_map(|v| v.vpc_id()).collect();
        vpc_ids.sort_unstable();
        let mut found = Vec::new();
        match vpc_ids.as_slice() {
            [] => {}
            [vpc] => found.push(("VpcId".to_string(), vpc.to_string())),
            several => {
                return Err(LiveError {
                    operation,
                    message: format!(
                        "{} VPCs are tagged for the cluster ({}); tag exactly one",
                        several.len(),
                        several.join(", ")
                    ),
                    retryable: false,
                });
            }
        }
        let mut request = client.describe_subnets().filters(tagged);
        if let [vpc] = vpc_ids.as_slice() {
            request = request.filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("vpc-id")
                    .values(*vpc)
                    .build(),
            );
        }
        let subnets = request
            .send()
            .await
            .map_err(|e| self.failure(operation.clone(), e))?;
        let (mut public, mut private) = (Vec::new(), Vec::new());
        for subnet in subnets.subnets() {
            let Some(id) = subnet.subnet_id() else {
                continue;
            };
            let is_public = subnet
                .tags()
                .iter()
                .any(|t| t.key() == Some(PUBLIC_SUBNET_TAG));
            if is_public {
                public.push(id.to_string());
            } else {
                private.push(id.to_string());
            }
        }
        for (key, mut ids) in [("SubnetIds", private), ("PublicSubnetIds", public)] {
            if !ids.is_empty() {
                ids.sort();
                found.push((key.to_string(), ids.join(",")));
            }
        }
        Ok(found)
    }

    async fn terminate_instance(
        &self,
        region: &str,
        instance: &str,
        decrement: bool,
    ) -> LiveResult<()> {
        self.autoscaling(region)
            .await
            .terminate_instance_in_auto_scaling_group()
            .instance_id(instance)
            .should_decrement_desired_capacity(decrement)
            .send()
            .await
            .map_err(|e| self.failure(format!("terminate instance {instance}"), e))?;
        Ok(())
    }
}

/// The tag that ties AWS resources to a cluster.
const CLUSTER_TAG: &str = "flotilla.io/cluster";
/// Kubernetes' tag for subnets that public load balancers use.
const PUBLIC_SUBNET_TAG: &str = "kubernetes.io/role/elb";

/// A tag of an Auto Scaling group, never copied to the instances it launches.
fn group_tag(group: &str, key: &str) -> aws_sdk_autoscaling::types::builders::TagBuilder {
    aws_sdk_autoscaling::types::Tag::builder()
        .resource_id(group)
        .resource_type("auto-scaling-group")
        .key(key)
        .propagate_at_launch(false)
}

fn parameters(values: &[(String, ParameterValue)]) -> Vec<Parameter> {
    values
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
        .collect()
}

/// How a change set ended up.
enum ChangeSetOutcome {
    Ready(ChangeSetView),
    /// CloudFormation found nothing to change (the change set FAILED saying so).
    NoChanges,
    Failed(String),
}

/// A key and value the SDK models as optional, as plain strings.
fn pair(key: Option<&str>, value: Option<&str>) -> (String, String) {
    (
        key.unwrap_or_default().to_string(),
        value.unwrap_or_default().to_string(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_dumps_are_cut_from_messages() {
        let raw = "failed to apply endpoint `localhost:4566` to request `Request { body: SdkBody { inner: Once(Some(b\"Action=DescribeStacks\")) }, headers: {} }`: endpoint must contain scheme";
        assert_eq!(
            without_dumps(raw),
            "failed to apply endpoint `localhost:4566` to request `…`: endpoint must contain scheme"
        );
    }

    #[test]
    fn endpoint_urls_must_be_http_or_https_with_a_host() {
        for good in [
            "http://127.0.0.1:4566",
            "https://cloudformation.example.org",
        ] {
            assert_eq!(endpoint_url(good), Ok(good.to_string()));
        }
        for (bad, why) in [
            ("localhost:4566", "not an http:// or https:// URL"),
            ("ftp://example.org", "not an http:// or https:// URL"),
            ("not a url", "is not a URL"),
            ("http://", "is not a URL"),
        ] {
            let error = endpoint_url(bad).unwrap_err().to_string();
            assert!(error.contains(why), "{bad}: {error}");
        }
    }
}
