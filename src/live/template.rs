//! Stack templates as CloudFormation takes them: inline up to 51,200 bytes, above that
//! uploaded to the cluster's `template_bucket` and passed by URL. Plan and apply both
//! go through [`template_source`], so a preview and the change set it predicts read the
//! same object.

use sha2::{Digest, Sha256};

use super::{Cloud, LiveError, LiveResult, TemplateSource};

/// Largest template body CloudFormation accepts in a request (`TemplateBody`).
pub const INLINE_TEMPLATE_LIMIT: usize = 51_200;

/// The body sent for a template artifact: compact JSON, as the artifact's indentation is
/// for people, not for the API. An artifact that is not JSON is sent as it is (the
/// service then says what is wrong with it).
pub fn compact(template: &str) -> String {
    serde_json::from_str::<serde_json::Value>(template)
        .and_then(|value| serde_json::to_string(&value))
        .unwrap_or_else(|_| template.to_string())
}

/// Where the template of `stack` goes in the bucket: named by its digest, so uploading
/// it again writes the same bytes, and a change set never reads a half-written object
/// (a new template is a new key).
pub fn object_key(cluster: &str, stack: &str, body: &str) -> String {
    let digest = crate::digest::hex(&Sha256::digest(body.as_bytes()));
    format!("flotilla/{cluster}/{stack}/{digest}.json")
}

/// The URL CloudFormation reads an uploaded template from: path style on the region's
/// S3 endpoint, which holds for every bucket name (dots included), as the AWS CLI's
/// `cloudformation deploy` writes it.
pub fn object_url(region: &str, bucket: &str, key: &str) -> String {
    format!("https://s3.{region}.amazonaws.com/{bucket}/{key}")
}

/// Bucket and key of a URL made by [`object_url`].
pub fn parse_object_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("https://s3.")?;
    let (_, path) = rest.split_once(".amazonaws.com/")?;
    path.split_once('/')
}

/// Why templates cannot be sent: over the inline limit with no bucket to upload them
/// to. `oversized`: `STACK (N bytes)` each.
fn needs_bucket(oversized: &[String]) -> String {
    format!(
        "templates above CloudFormation's inline limit of {INLINE_TEMPLATE_LIMIT} bytes need an S3 bucket: {}; name a bucket of the cluster's account and region in the cluster's `template_bucket` so they can be uploaded",
        oversized.join(", ")
    )
}

/// Every stack of `stacks` (name, template artifact) whose template needs a bucket when
/// `bucket` is `None`, as one message; known before any call, so plan and apply refuse
/// the cluster before anything of it is changed.
pub fn check_sizes<'a>(
    stacks: impl IntoIterator<Item = (&'a str, &'a str)>,
    bucket: Option<&str>,
) -> Result<(), String> {
    if bucket.is_some() {
        return Ok(());
    }
    let oversized: Vec<String> = stacks
        .into_iter()
        .map(|(stack, template)| (stack, compact(template).len()))
        .filter(|(_, size)| *size > INLINE_TEMPLATE_LIMIT)
        .map(|(stack, size)| format!("{stack} ({size} bytes)"))
        .collect();
    if oversized.is_empty() {
        return Ok(());
    }
    Err(needs_bucket(&oversized))
}

/// `body` as CloudFormation takes it: inline when it fits, else uploaded to `bucket`
/// under its digest. Without a bucket, an oversized template fails before any call.
pub async fn template_source(
    cloud: &dyn Cloud,
    region: &str,
    cluster: &str,
    stack: &str,
    body: String,
    bucket: Option<&str>,
) -> LiveResult<TemplateSource> {
    if body.len() <= INLINE_TEMPLATE_LIMIT {
        return Ok(TemplateSource::Body(body));
    }
    let Some(bucket) = bucket else {
        return Err(LiveError {
            operation: format!("send the template of stack {stack}"),
            message: needs_bucket(&[format!("{stack} ({} bytes)", body.len())]),
            retryable: false,
        });
    };
    let key = object_key(cluster, stack, &body);
    cloud.put_template(region, bucket, &key, &body).await?;
    Ok(TemplateSource::Url(object_url(region, bucket, &key)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::live::{ChangeSetKind, ChangeSetRequest, Clock};
    use crate::sim::{SimHandle, SimWorld};

    const REGION: &str = "eu-central-1";
    const STACK: &str = "kube-1-node-pool-workers";

    /// A template of exactly `size` bytes of compact JSON.
    fn template_of_size(size: usize) -> String {
        let shell = |pad: &str| {
            format!(
                r#"{{"Metadata":{{"Pad":"{pad}"}},"Resources":{{"Vpc":{{"Type":"AWS::EC2::VPC","Properties":{{"CidrBlock":"10.0.0.0/16"}}}}}}}}"#
            )
        };
        let body = shell(&"x".repeat(size - shell("").len()));
        assert_eq!((body.len(), compact(&body).len()), (size, size));
        body
    }

    fn source(sim: &SimHandle, size: usize, bucket: Option<&str>) -> LiveResult<TemplateSource> {
        futures::executor::block_on(template_source(
            sim,
            REGION,
            "kube-1",
            STACK,
            template_of_size(size),
            bucket,
        ))
    }

    #[test]
    fn a_template_of_the_inline_limit_is_sent_inline_and_one_byte_more_through_the_bucket() {
        let sim = SimHandle::new(SimWorld::new(1, 0));
        let objects = || sim.with(|w| w.regions.get(REGION).map(|r| r.objects.clone()));
        let at_limit = source(&sim, INLINE_TEMPLATE_LIMIT, Some("templates")).unwrap();
        assert_eq!(at_limit, TemplateSource::Body(template_of_size(51_200)));
        assert_eq!(objects(), None, "nothing uploaded");

        let over = source(&sim, INLINE_TEMPLATE_LIMIT + 1, Some("templates")).unwrap();
        let body = template_of_size(51_201);
        let key = object_key("kube-1", STACK, &body);
        assert_eq!(
            over,
            TemplateSource::Url(format!(
                "https://s3.eu-central-1.amazonaws.com/templates/{key}"
            ))
        );
        assert_eq!(
            objects().unwrap().get(&format!("templates/{key}")),
            Some(&body),
            "uploaded under its digest"
        );

        // Without a bucket: refused before any call, naming the stack and the field.
        let sim = SimHandle::new(SimWorld::new(1, 0));
        assert!(source(&sim, INLINE_TEMPLATE_LIMIT, None).is_ok());
        let error = source(&sim, INLINE_TEMPLATE_LIMIT + 1, None).unwrap_err();
        assert!(
            error.message.contains(&format!("{STACK} (51201 bytes)"))
                && error.message.contains("`template_bucket`"),
            "{error}"
        );
        assert!(!error.retryable);
        assert_eq!(sim.with(|w| w.stats.mutations), 0);
        assert_eq!(
            check_sizes([(STACK, template_of_size(51_201).as_str())], None).unwrap_err(),
            error.message
        );
        assert_eq!(
            check_sizes([(STACK, template_of_size(51_200).as_str())], None),
            Ok(())
        );
    }

    #[test]
    fn the_simulated_cloudformation_reads_an_uploaded_template_back() {
        let sim = SimHandle::new(SimWorld::new(1, 0));
        let template = source(&sim, 60_000, Some("templates")).unwrap();
        futures::executor::block_on(async {
            let request = ChangeSetRequest {
                stack: STACK.into(),
                kind: ChangeSetKind::Create,
                template,
                parameters: Vec::new(),
                tags: Vec::new(),
            };
            let prepared = sim.create_change_set(REGION, &request).await.unwrap();
            sim.execute_change_set(REGION, STACK, &prepared.id)
                .await
                .unwrap();
            sim.sleep(std::time::Duration::from_secs(600)).await;
            let stored = sim.get_template(REGION, STACK).await.unwrap();
            assert_eq!(
                serde_json::to_string(&stored).unwrap(),
                template_of_size(60_000)
            );

            // A URL whose object was never uploaded fails the change set.
            let missing = ChangeSetRequest {
                template: TemplateSource::Url(object_url(
                    REGION,
                    "templates",
                    "flotilla/none.json",
                )),
                kind: ChangeSetKind::Update,
                ..request
            };
            let error = sim.create_change_set(REGION, &missing).await.unwrap_err();
            assert!(
                error
                    .message
                    .contains("TemplateURL must reference a valid S3 object"),
                "{error}"
            );
        });
    }

    #[test]
    fn an_uploaded_templates_url_names_its_bucket_and_digest_key() {
        let key = object_key("kube-1", "kube-1-node-pool-workers", "{}");
        assert_eq!(
            key,
            "flotilla/kube-1/kube-1-node-pool-workers/44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a.json"
        );
        let url = object_url("eu-central-1", "templates.example.org", &key);
        assert_eq!(
            url,
            format!("https://s3.eu-central-1.amazonaws.com/templates.example.org/{key}")
        );
        assert_eq!(
            parse_object_url(&url),
            Some(("templates.example.org", key.as_str()))
        );
        assert_eq!(parse_object_url("https://example.org/b/k"), None);
    }
}
