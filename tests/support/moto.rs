//! A moto server (the AWS emulator) on a free loopback port, stopped on drop.
//! `scripts/test` installs it into .venv; the test fails with instructions otherwise.
#![allow(dead_code)] // each test binary uses its own part of it

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct Moto {
    child: Child,
    pub url: String,
}

fn moto_binary() -> PathBuf {
    let local = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/moto_server");
    if local.exists() {
        return local;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|p| p.join("moto_server"))
                .find(|p| p.exists())
        })
        .expect("moto_server not found: run ./scripts/test (it installs moto into .venv)")
}

impl Moto {
    pub fn start() -> Moto {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let child = Command::new(moto_binary())
            .args(["-H", "127.0.0.1", "-p", &port.to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start moto_server");
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "moto_server did not start"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Moto { child, url }
    }
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Environment for a `flotilla` child process: fake credentials, emulator endpoint.
pub fn aws_env(url: &str) -> Vec<(&'static str, String)> {
    vec![
        ("AWS_ACCESS_KEY_ID", "testing".into()),
        ("AWS_SECRET_ACCESS_KEY", "testing".into()),
        ("AWS_REGION", "eu-central-1".into()),
        ("AWS_EC2_METADATA_DISABLED", "true".into()),
        ("AWS_ENDPOINT_URL", url.into()),
    ]
}

/// SDK configuration for the test itself (seeding stacks), with static credentials.
pub async fn sdk_config(url: &str, region: &str) -> aws_config::SdkConfig {
    aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(url)
        .region(aws_config::Region::new(region.to_string()))
        .credentials_provider(aws_sdk_cloudformation::config::Credentials::new(
            "testing", "testing", None, None, "static",
        ))
        .load()
        .await
}

/// A VPC with one subnet in eu-central-1a, for stacks whose parameters need real ids.
pub async fn network(config: &aws_config::SdkConfig) -> (String, String) {
    let ec2 = aws_sdk_ec2::Client::new(config);
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    let subnet = ec2
        .create_subnet()
        .vpc_id(&vpc_id)
        .cidr_block("10.0.1.0/24")
        .availability_zone("eu-central-1a")
        .send()
        .await
        .unwrap();
    (
        vpc_id,
        subnet.subnet().unwrap().subnet_id().unwrap().to_string(),
    )
}

/// A VPC with a private subnet in each of two zones, tagged for `cluster`, as the
/// stacks' `VpcId` and `SubnetIds` are looked up.
pub async fn tagged_network(aws: &aws_config::SdkConfig, cluster: &str) {
    let ec2 = aws_sdk_ec2::Client::new(aws);
    let tag = |resource: aws_sdk_ec2::types::ResourceType| {
        aws_sdk_ec2::types::TagSpecification::builder()
            .resource_type(resource)
            .tags(
                aws_sdk_ec2::types::Tag::builder()
                    .key("flotilla.io/cluster")
                    .value(cluster)
                    .build(),
            )
            .build()
    };
    let vpc = ec2
        .create_vpc()
        .cidr_block("10.0.0.0/16")
        .tag_specifications(tag(aws_sdk_ec2::types::ResourceType::Vpc))
        .send()
        .await
        .unwrap();
    let vpc_id = vpc.vpc().unwrap().vpc_id().unwrap().to_string();
    for (index, zone) in ["eu-central-1a", "eu-central-1b"].iter().enumerate() {
        ec2.create_subnet()
            .vpc_id(&vpc_id)
            .cidr_block(format!("10.0.{}.0/24", index + 1))
            .availability_zone(*zone)
            .tag_specifications(tag(aws_sdk_ec2::types::ResourceType::Subnet))
            .send()
            .await
            .unwrap();
    }
}
