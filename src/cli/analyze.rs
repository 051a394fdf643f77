//! `check` and `eval`: the front end and the model, without templates.

use std::io::Write;
use std::path::PathBuf;

use clap::ValueEnum;
use serde::Serialize;

use super::{CliError, CliResult, colour, write_stdout, write_stdout_with};
use crate::analysis::{Analysis, Keep, analyze_each_cluster, analyze_keeping};
use crate::diagnostic::{render_all, to_json};
use crate::source::DiskFs;

/// Parse and type-check the fleet and run every `check`. Exit 0 when clean, 1 on errors.
#[derive(clap::Args)]
pub(super) struct CheckArgs {
    /// A .flt file or a directory of them (searched recursively).
    #[arg(default_value = ".")]
    path: PathBuf,
    /// `text` (rustc-style, for people) or `json` (one object per line, for editors and CI).
    #[arg(long, value_enum, default_value_t = DiagnosticFormat::Text)]
    format: DiagnosticFormat,
}

/// Print the evaluated fleet: every cluster with all defaults filled in.
#[derive(clap::Args)]
pub(super) struct EvalArgs {
    /// A .flt file or a directory of them.
    #[arg(default_value = ".")]
    pub(super) path: PathBuf,
    /// Print only this cluster (repeatable).
    #[arg(long = "cluster", value_name = "ID")]
    clusters: Vec<String>,
    #[arg(long, value_enum, default_value_t = DataFormat::Yaml)]
    format: DataFormat,
}

#[derive(Clone, Copy, ValueEnum)]
enum DiagnosticFormat {
    Text,
    Json,
}

#[derive(Clone, Copy, ValueEnum)]
enum DataFormat {
    Yaml,
    Json,
}

pub(super) fn check(args: CheckArgs) -> CliResult<i32> {
    let analysis = analyze_keeping(&DiskFs, &args.path, Keep::Diagnostics);
    report(&analysis, args.format)?;
    Ok(i32::from(analysis.has_errors()))
}

pub(super) fn eval(args: EvalArgs) -> CliResult<i32> {
    if args.clusters.is_empty() && matches!(args.format, DataFormat::Json) {
        return eval_json(&args);
    }
    // What is printed is the model; each cluster's evaluated data goes once it is read.
    let analysis = analyze_keeping(&DiskFs, &args.path, Keep::Model);
    report(&analysis, DiagnosticFormat::Text)?;
    let Some(fleet) = analysis.model.as_ref().filter(|_| !analysis.has_errors()) else {
        return Ok(1);
    };
    if args.clusters.is_empty() {
        print_data(fleet, args.format)?;
        return Ok(0);
    }
    let mut selected = Vec::new();
    for id in &args.clusters {
        let cluster = fleet.cluster(id).ok_or_else(|| CliError::UnknownCluster {
            id: id.clone(),
            path: args.path.clone(),
            known: fleet.cluster_ids().map(str::to_string).collect(),
        })?;
        selected.push(cluster);
    }
    match selected.as_slice() {
        [one] => print_data(one, args.format)?,
        all => print_data(&all, args.format)?,
    }
    Ok(0)
}

/// The whole fleet as JSON, each cluster's text made on the thread that read it and its
/// model dropped there: the fleet's model is never held whole, and the text is made on
/// every core. The text is that of `serde_json::to_writer_pretty` on the model.
fn eval_json(args: &EvalArgs) -> CliResult<i32> {
    let (analysis, fleet) = analyze_each_cluster(&DiskFs, &args.path, |cluster| {
        pretty_json(&cluster, CLUSTER_DEPTH)
    });
    report(&analysis, DiagnosticFormat::Text)?;
    let Some(fleet) = fleet else {
        return Ok(1);
    };
    let channels = pretty_json(&fleet.channels, 1)?;
    let clusters = fleet.clusters.into_iter().collect::<CliResult<Vec<_>>>()?;
    write_stdout_with(|out| {
        let mut write = |bytes: &[u8]| out.write_all(bytes).map_err(CliError::Stdout);
        write(b"{\n  \"channels\": ")?;
        write(&channels)?;
        write(b",\n  \"clusters\": [")?;
        for (i, cluster) in clusters.iter().enumerate() {
            write(if i == 0 { b"\n    " } else { b",\n    " })?;
            write(cluster)?;
        }
        write(if clusters.is_empty() {
            b"]\n}\n"
        } else {
            b"\n  ]\n}\n"
        })
    })?;
    Ok(0)
}

/// Where a cluster sits in the fleet's JSON: in the `clusters` list of the top object.
const CLUSTER_DEPTH: usize = 2;

/// `value` as `serde_json::to_writer_pretty` writes it `depth` levels deep in a
/// document: every line after the first indented by two spaces per level.
fn pretty_json(value: &impl Serialize, depth: usize) -> CliResult<Vec<u8>> {
    let mut out = Vec::new();
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Indented::at(depth));
    value
        .serialize(&mut serializer)
        .map_err(|source| CliError::Json {
            what: "evaluated fleet",
            source,
        })?;
    Ok(out)
}

/// serde_json's pretty layout (a value per line, two spaces per level), starting
/// `base` levels deep. Indenting the finished text instead took a second pass over
/// every byte, 4% of `eval`'s instructions.
struct Indented {
    base: usize,
    level: usize,
    /// Whether the innermost open array or object has a value (then its closing
    /// bracket goes on a line of its own).
    has_value: bool,
}

impl Indented {
    fn at(base: usize) -> Self {
        Indented {
            base,
            level: 0,
            has_value: false,
        }
    }

    fn new_line<W: ?Sized + std::io::Write>(&self, out: &mut W) -> std::io::Result<()> {
        out.write_all(b"\n")?;
        for _ in 0..self.base + self.level {
            out.write_all(b"  ")?;
        }
        Ok(())
    }

    fn open<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.level += 1;
        self.has_value = false;
        out.write_all(bracket)
    }

    fn close<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        bracket: &[u8],
    ) -> std::io::Result<()> {
        self.level = self.level.saturating_sub(1);
        if self.has_value {
            self.new_line(out)?;
        }
        out.write_all(bracket)
    }

    fn item<W: ?Sized + std::io::Write>(&self, out: &mut W, first: bool) -> std::io::Result<()> {
        if !first {
            out.write_all(b",")?;
        }
        self.new_line(out)
    }
}

impl serde_json::ser::Formatter for Indented {
    fn begin_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"[")
    }

    fn end_array<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"]")
    }

    fn begin_array_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn end_array_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }

    fn begin_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.open(out, b"{")
    }

    fn end_object<W: ?Sized + std::io::Write>(&mut self, out: &mut W) -> std::io::Result<()> {
        self.close(out, b"}")
    }

    fn begin_object_key<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
        first: bool,
    ) -> std::io::Result<()> {
        self.item(out, first)
    }

    fn begin_object_value<W: ?Sized + std::io::Write>(
        &mut self,
        out: &mut W,
    ) -> std::io::Result<()> {
        out.write_all(b": ")
    }

    fn end_object_value<W: ?Sized + std::io::Write>(&mut self, _: &mut W) -> std::io::Result<()> {
        self.has_value = true;
        Ok(())
    }
}

fn print_data(value: &impl Serialize, format: DataFormat) -> CliResult<()> {
    let json = |source| CliError::Json {
        what: "evaluated fleet",
        source,
    };
    match format {
        // Written as it is serialised: for a large fleet the text is the size of the
        // model again.
        DataFormat::Json => write_stdout_with(|out| {
            serde_json::to_writer_pretty(&mut *out, value).map_err(|e| {
                match e.io_error_kind() {
                    Some(_) => CliError::Stdout(e.into()),
                    None => json(e),
                }
            })?;
            out.write_all(b"\n").map_err(CliError::Stdout)
        }),
        DataFormat::Yaml => {
            let value = serde_json::to_value(value).map_err(json)?;
            let text = serde_yaml_ng::to_string(&value).map_err(|source| CliError::Yaml {
                what: "evaluated fleet",
                source,
            })?;
            write_stdout(&text)
        }
    }
}

fn report(analysis: &Analysis, format: DiagnosticFormat) -> CliResult<()> {
    let sources = &analysis.program.sources;
    match format {
        DiagnosticFormat::Text => {
            if !analysis.diagnostics.is_empty() {
                let text = render_all(sources, &analysis.diagnostics, colour(&std::io::stderr()));
                let _ = std::io::stderr().write_all(text.as_bytes());
            }
        }
        DiagnosticFormat::Json => {
            let mut text = String::new();
            for d in &analysis.diagnostics {
                let json = serde_json::to_string(&to_json(sources, d)).map_err(|source| {
                    CliError::Json {
                        what: "diagnostic",
                        source,
                    }
                })?;
                text.push_str(&json);
                text.push('\n');
            }
            write_stdout(&text)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `pretty_json` must give: serde_json's pretty text, every line after the
    /// first indented by `depth` levels.
    fn indented_pretty(value: &serde_json::Value, depth: usize) -> Vec<u8> {
        let text = serde_json::to_string_pretty(value).unwrap();
        text.replace('\n', &format!("\n{}", "  ".repeat(depth)))
            .into_bytes()
    }

    #[test]
    fn pretty_json_is_serde_json_pretty_indented_by_depth_at_any_nesting() {
        let mut deep = serde_json::json!({"leaf": [1, "two\nlines", {}, [], null]});
        for level in 0..40 {
            deep = serde_json::json!({ format!("k{level}"): [deep, level], "empty": {} });
        }
        for value in [
            serde_json::json!([]),
            serde_json::json!({}),
            serde_json::json!(7),
            deep,
        ] {
            for depth in [0, 1, 2, 31, 33] {
                let got = pretty_json(&value, depth).unwrap();
                assert_eq!(
                    String::from_utf8(got).unwrap(),
                    String::from_utf8(indented_pretty(&value, depth)).unwrap(),
                    "depth {depth}"
                );
            }
        }
    }
}
