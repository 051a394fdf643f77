//! A generated fleet shared by the benchmarks.

use flotilla::source::MemoryFs;

/// A fleet of `clusters` clusters, 5 node pools each, in 10 files.
pub fn fleet(clusters: usize) -> (MemoryFs, usize) {
    let mut fs = MemoryFs::new();
    fs.insert(
        "fleet/channels.flt",
        "channel stable {\n  kubernetes_version = \"1.31.4\"\n  config_ref = \"stable\"\n}\n\
         channel beta {\n  kubernetes_version = \"1.32.1\"\n  config_ref = \"beta\"\n}\n",
    );
    let files = 10;
    let mut lines = 0;
    for f in 0..files {
        let mut text = String::from("import \"./channels.flt\"\n\n");
        for c in (f..clusters).step_by(files) {
            let (env, channel) = if c % 3 == 0 {
                ("test", "beta")
            } else {
                ("production", "stable")
            };
            let region = if c % 2 == 0 {
                "eu-central-1"
            } else {
                "eu-west-1"
            };
            text.push_str(&format!(
                "cluster \"cluster-{c:04}\" {{\n  account = \"{:012}\"\n  region = \"{region}\"\n  environment = {env}\n  channel = {channel}\n  api_server_url = \"https://${{id}}.example.org\"\n  config_items {{\n    coredns_memory_limit = {}Mi\n  }}\n",
                100_000_000_000u64 + c as u64,
                200 + c % 5 * 50,
            ));
            for p in 0..5 {
                text.push_str(&format!(
                    "  node_pool \"pool-{p}\" {{\n    instance_types = [\"m5.large\", \"m5.xlarge\"]\n    min_size = {}\n    max_size = {}\n    labels = {{ \"pool\": \"pool-{p}\" }}\n    update {{\n      max_surge = {}\n    }}\n  }}\n",
                    p % 3,
                    10 + p,
                    1 + p % 2,
                ));
            }
            text.push_str("}\n\n");
        }
        lines += text.lines().count();
        fs.insert(format!("fleet/clusters-{f}.flt"), text);
    }
    (fs, lines)
}
