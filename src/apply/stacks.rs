//! CloudFormation stacks through change sets: create or update, executed, waited on
//! with backoff under a deadline. A failed or rolled-back operation is reported with
//! the stack events that explain it.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::Value;

use super::{Progress, StepError};
use crate::live::template::{compact, template_source};
use crate::live::{
    ChangeSetKind, ChangeSetRequest, Clock, Cloud, LiveError, ParameterValue, StackState,
};

/// Stack events shown when an operation fails.
const EVENTS_SHOWN: usize = 10;

/// Everything needed to bring one stack to its template.
pub struct StackChange<'a> {
    pub region: &'a str,
    pub cluster: &'a str,
    pub stack: &'a str,
    pub kind: ChangeSetKind,
    /// The template artifact (JSON).
    pub template: &'a str,
    /// Values for the template's parameters, by name (from the cluster's fields).
    pub parameters: &'a BTreeMap<String, String>,
    /// The cluster's `template_bucket`, where templates over the inline limit go.
    pub bucket: Option<&'a str>,
}

/// What happened to a stack.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StackOutcome {
    Changed,
    /// CloudFormation found nothing to change.
    Unchanged,
}

/// Values for each declared parameter: given ones, else the live stack's previous
/// value, else the template's default. A required parameter without any is an error
/// before anything is sent.
fn parameters(
    change: &StackChange<'_>,
    declared: &serde_json::Map<String, Value>,
    live: Option<&StackState>,
) -> Result<Vec<(String, ParameterValue)>, StepError> {
    let mut out = Vec::new();
    for (key, spec) in declared {
        if let Some(value) = change.parameters.get(key) {
            out.push((key.clone(), ParameterValue::Value(value.clone())));
        } else if live.is_some_and(|l| l.parameters.iter().any(|(k, _)| k == key)) {
            out.push((key.clone(), ParameterValue::UsePrevious));
        } else if spec.get("Default").is_none() {
            return Err(StepError::new(format!(
                "stack {}: parameter `{key}` has no value and no default; tag the resource `flotilla.io/cluster={}` in the account so it can be looked up",
                change.stack, change.cluster
            )));
        }
    }
    Ok(out)
}

/// Create or update one stack and wait until CloudFormation is done with it.
pub async fn apply_stack(
    cloud: &dyn Cloud,
    clock: &dyn Clock,
    progress: &dyn Progress,
    change: &StackChange<'_>,
    deadline: Duration,
) -> Result<StackOutcome, StepError> {
    let template: Value = serde_json::from_str(change.template).map_err(|e| {
        StepError::new(format!(
            "stack {}: the template is not JSON: {e}",
            change.stack
        ))
    })?;
    let live = match change.kind {
        ChangeSetKind::Update => cloud
            .describe_stack(change.region, change.stack)
            .await
            .map_err(StepError::live)?,
        ChangeSetKind::Create => None,
    };
    let declared = template
        .get("Parameters")
        .and_then(Value::as_object)
        .cloned()
        .unwrap_or_default();
    let parameters = parameters(change, &declared, live.as_ref())?;
    let source = template_source(
        cloud,
        change.region,
        change.cluster,
        change.stack,
        compact(change.template),
        change.bucket,
    )
    .await
    .map_err(StepError::live)?;
    let request = ChangeSetRequest {
        stack: change.stack.to_string(),
        kind: change.kind,
        template: source,
        parameters,
        tags: vec![("flotilla.io/cluster".into(), change.cluster.into())],
    };
    let prepared = cloud
        .create_change_set(change.region, &request)
        .await
        .map_err(StepError::live)?;
    if prepared.empty {
        return Ok(StackOutcome::Unchanged);
    }
    cloud
        .execute_change_set(change.region, change.stack, &prepared.id)
        .await
        .map_err(StepError::live)?;
    let what = match change.kind {
        ChangeSetKind::Create => "creation",
        ChangeSetKind::Update => "update",
    };
    wait(
        cloud,
        clock,
        progress,
        change,
        what,
        deadline,
        Settled::Present,
    )
    .await?;
    Ok(StackOutcome::Changed)
}

/// Delete a stack and wait until it is gone.
pub async fn delete_stack(
    cloud: &dyn Cloud,
    clock: &dyn Clock,
    progress: &dyn Progress,
    change: &StackChange<'_>,
    deadline: Duration,
) -> Result<(), StepError> {
    cloud
        .delete_stack(change.region, change.stack)
        .await
        .map_err(StepError::live)?;
    wait(
        cloud,
        clock,
        progress,
        change,
        "deletion",
        deadline,
        Settled::Gone,
    )
    .await
}

#[derive(Clone, Copy, PartialEq)]
enum Settled {
    Present,
    Gone,
}

/// Poll the stack with backoff (2 s doubling to 30 s) until it settles. Retryable read
/// errors are waited through; the deadline bounds the whole wait.
async fn wait(
    cloud: &dyn Cloud,
    clock: &dyn Clock,
    progress: &dyn Progress,
    change: &StackChange<'_>,
    what: &str,
    deadline: Duration,
    settled: Settled,
) -> Result<(), StepError> {
    let started = clock.now_ms();
    let mut pause = Duration::from_secs(2);
    let awaited = format!("stack {} {what}", change.stack);
    loop {
        match cloud.describe_stack(change.region, change.stack).await {
            Ok(None) if settled == Settled::Gone => return Ok(()),
            Ok(None) => {
                return Err(StepError::new(format!(
                    "stack {} disappeared during its {what}",
                    change.stack
                )));
            }
            Ok(Some(state)) => match classify(&state.status) {
                Phase::Done if settled == Settled::Present => return Ok(()),
                Phase::Failed => {
                    let mut error = StepError::new(format!(
                        "stack {} {what} failed: the stack is {}",
                        change.stack, state.status
                    ));
                    error.details = explain(cloud, change).await;
                    return Err(error);
                }
                _ => {}
            },
            Err(e) if e.retryable => {}
            Err(e) => return Err(StepError::live(e)),
        }
        let now = clock.now_ms();
        if now - started >= deadline.as_millis() as i64 {
            let mut error = StepError::new(format!(
                "stack {} {what} did not finish within {} s",
                change.stack,
                deadline.as_secs()
            ));
            error.details = explain(cloud, change).await;
            return Err(error);
        }
        progress.waiting(change.cluster, &awaited, started, now);
        clock.sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(30));
    }
}

#[derive(PartialEq)]
enum Phase {
    Running,
    Done,
    Failed,
}

fn classify(status: &str) -> Phase {
    match status {
        "CREATE_COMPLETE" | "UPDATE_COMPLETE" | "IMPORT_COMPLETE" => Phase::Done,
        s if s.ends_with("_IN_PROGRESS") => Phase::Running,
        // ROLLBACK_COMPLETE, UPDATE_ROLLBACK_COMPLETE, *_FAILED: undone or stuck.
        _ => Phase::Failed,
    }
}

/// The failure events of the stack, newest first, as lines for the report.
async fn explain(cloud: &dyn Cloud, change: &StackChange<'_>) -> Vec<String> {
    match cloud
        .stack_events(change.region, change.stack, EVENTS_SHOWN * 5)
        .await
    {
        Ok(events) => {
            let failing: Vec<_> = events
                .iter()
                .filter(|e| e.status.contains("FAILED") || e.status.contains("ROLLBACK"))
                .take(EVENTS_SHOWN)
                .map(|e| {
                    format!(
                        "{} {} ({}) {}: {}",
                        e.timestamp,
                        e.logical_id,
                        e.resource_type,
                        e.status,
                        e.reason.as_deref().unwrap_or("no reason given")
                    )
                })
                .collect();
            if failing.is_empty() {
                vec!["no failure events reported for this stack".into()]
            } else {
                failing
            }
        }
        Err(LiveError { message, .. }) => {
            vec![format!("the stack events could not be read: {message}")]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rolled_back_and_failed_stacks_are_failures() {
        for status in ["CREATE_COMPLETE", "UPDATE_COMPLETE"] {
            assert!(classify(status) == Phase::Done, "{status}");
        }
        for status in [
            "CREATE_IN_PROGRESS",
            "UPDATE_COMPLETE_CLEANUP_IN_PROGRESS",
            "UPDATE_ROLLBACK_IN_PROGRESS",
            "REVIEW_IN_PROGRESS",
        ] {
            assert!(classify(status) == Phase::Running, "{status}");
        }
        for status in [
            "ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_COMPLETE",
            "UPDATE_ROLLBACK_FAILED",
            "CREATE_FAILED",
            "DELETE_FAILED",
        ] {
            assert!(classify(status) == Phase::Failed, "{status}");
        }
    }

    #[test]
    fn a_required_parameter_without_value_is_refused_before_any_call() {
        let template: Value = serde_json::from_str(
            r#"{"Parameters":{"VpcId":{"Type":"String"},"ImageId":{"Type":"String","Default":"x"},"SubnetIds":{"Type":"String"}}}"#,
        )
        .unwrap();
        let declared = template["Parameters"].as_object().unwrap();
        let given = BTreeMap::from([("SubnetIds".to_string(), "s-1,s-2".to_string())]);
        let change = StackChange {
            region: "eu-central-1",
            cluster: "c",
            stack: "c-etcd",
            kind: ChangeSetKind::Create,
            template: "",
            parameters: &given,
            bucket: None,
        };
        let error = parameters(&change, declared, None).unwrap_err();
        assert!(error.message.contains("`VpcId`"), "{}", error.message);

        let live = StackState {
            name: "c-etcd".into(),
            id: "arn".into(),
            status: "UPDATE_COMPLETE".into(),
            last_updated: String::new(),
            parameters: vec![("VpcId".into(), "vpc-1".into())],
            tags: Vec::new(),
        };
        assert_eq!(
            parameters(&change, declared, Some(&live)).unwrap(),
            vec![
                ("VpcId".to_string(), ParameterValue::UsePrevious),
                (
                    "SubnetIds".to_string(),
                    ParameterValue::Value("s-1,s-2".into())
                ),
            ]
        );
    }
}
