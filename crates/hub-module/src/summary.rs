//! A serialisable summary of a module, for `amoeba inspect`.

use crate::{HubModule, ModuleFormat, Signature};
use serde::Serialize;
use std::collections::BTreeMap;

/// What `inspect` reports.
#[derive(Debug, Clone, Serialize)]
pub struct ModuleSummary {
    pub source: String,
    pub format: ModuleFormat,
    pub variants: Vec<VariantSummary>,
    /// [height, width] from `image_module_info`, when attached.
    pub image_size: Option<[usize; 2]>,
    /// The `amoeba_weights` attachment's note (`random: ...` on this project's fixtures).
    pub weights: Option<String>,
    pub num_variables: usize,
    /// Elements of every variable together.
    pub num_parameters: u64,
    /// Bytes of every variable together, as stored.
    pub num_bytes: u64,
    /// Variables per dtype name.
    pub dtypes: BTreeMap<String, usize>,
    /// Every variable, when asked for.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub variables: Option<Vec<VariableSummary>>,
}

/// One graph variant.
#[derive(Debug, Clone, Serialize)]
pub struct VariantSummary {
    pub tags: Vec<String>,
    pub signatures: Vec<Signature>,
    pub num_nodes: usize,
}

/// One variable.
#[derive(Debug, Clone, Serialize)]
pub struct VariableSummary {
    pub name: String,
    pub dtype: String,
    pub shape: Vec<usize>,
    pub bytes: u64,
}

impl HubModule {
    /// Summarises the module; `with_variables` adds the full variable list.
    pub fn summary(&self, with_variables: bool) -> ModuleSummary {
        let variables: Vec<VariableSummary> = self
            .bundle()
            .entries()
            .map(|e| VariableSummary {
                name: e.name.clone(),
                dtype: e.dtype.name().to_string(),
                shape: e.shape.clone(),
                bytes: e.byte_len() as u64,
            })
            .collect();
        let mut dtypes = BTreeMap::new();
        for v in &variables {
            *dtypes.entry(v.dtype.clone()).or_insert(0) += 1;
        }
        let num_parameters = variables
            .iter()
            .map(|v| v.shape.iter().product::<usize>() as u64)
            .sum();
        ModuleSummary {
            source: self.source().display().to_string(),
            format: self.format(),
            variants: self.variants().iter().map(variant_summary).collect(),
            image_size: self.image_size(),
            weights: self.weights_note().map(str::to_string),
            num_variables: variables.len(),
            num_parameters,
            num_bytes: variables.iter().map(|v| v.bytes).sum(),
            dtypes,
            variables: with_variables.then_some(variables),
        }
    }
}

fn variant_summary(v: &crate::GraphVariant) -> VariantSummary {
    VariantSummary {
        tags: v.tags.iter().cloned().collect(),
        signatures: v.signatures.clone(),
        num_nodes: v.meta_graph.graph_def.as_ref().map_or(0, |g| g.node.len()),
    }
}

impl ModuleSummary {
    /// The human-readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let format = match self.format {
            ModuleFormat::HubV3 => "TF1 Hub module (format 3)",
            ModuleFormat::SavedModel => "SavedModel (no tfhub_module.pb: not a hub module)",
        };
        out += &format!("module:     {}\nformat:     {format}\n", self.source);
        if let Some([h, w]) = self.image_size {
            out += &format!("image size: {h}x{w} (image_module_info)\n");
        }
        if let Some(note) = &self.weights {
            out += &format!("weights:    {note}\n");
        }
        out += &format!(
            "variables:  {} ({} parameters, {} bytes; {})\n",
            self.num_variables,
            self.num_parameters,
            self.num_bytes,
            self.dtypes
                .iter()
                .map(|(d, n)| format!("{n} {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        );
        for v in &self.variants {
            out += &variant_text(v);
        }
        if let Some(vars) = &self.variables {
            out += "\nvariables:\n";
            for v in vars {
                let shape: Vec<String> = v.shape.iter().map(|d| d.to_string()).collect();
                out += &format!(
                    "  {}  {}  [{}]  {} bytes\n",
                    printable(&v.name),
                    v.dtype,
                    shape.join(", "),
                    v.bytes
                );
            }
        }
        out
    }
}

fn variant_text(v: &VariantSummary) -> String {
    let tags: Vec<String> = v.tags.iter().map(|t| format!("{t:?}")).collect();
    let mut out = format!(
        "\ngraph variant tags {{{}}} ({} nodes)\n",
        tags.join(", "),
        v.num_nodes
    );
    for s in &v.signatures {
        out += &format!("  signature {}\n", printable(&s.name));
        for (dir, specs) in [("input ", &s.inputs), ("output", &s.outputs)] {
            for t in specs.iter() {
                out += &format!(
                    "    {dir} {:<12} {:<7} {:<18} {}\n",
                    printable(&t.key),
                    t.dtype,
                    t.shape_text(),
                    printable(&t.tensor)
                );
            }
        }
    }
    out
}

/// A name from the file as one line of terminal text: control characters (newlines, escape
/// sequences) and bidirectional overrides are shown as `\u{..}` escapes.
fn printable(name: &str) -> String {
    let unsafe_char = |c: char| {
        c.is_control()
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !name.chars().any(unsafe_char) {
        return name.to_string();
    }
    name.chars()
        .map(|c| {
            if unsafe_char(c) {
                format!("\\u{{{:x}}}", c as u32)
            } else {
                c.to_string()
            }
        })
        .collect()
}

#[cfg(test)]
mod printable_tests {
    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(super::printable("cell_0/1x1/weights"), "cell_0/1x1/weights");
        assert_eq!(super::printable("a\nb\u{1b}[2J"), "a\\u{a}b\\u{1b}[2J");
        assert_eq!(super::printable("x\u{202e}y"), "x\\u{202e}y");
    }
}
