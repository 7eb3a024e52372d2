//! [`Model`]: a hub module or a converted safetensors file, opened for running.

use crate::weights::{ModuleWeights, SafetensorsWeights};
use crate::{keys, ModelError};
use hub_module::HubModule;
use nasnet_forward::WeightSource;
use nasnet_genotype::NetworkSpec;
use std::path::{Path, PathBuf};

/// Where a model's weights live.
pub enum ModelKind {
    Module(Box<HubModule>),
    Safetensors(SafetensorsWeights),
}

/// A network description plus the weights to run it.
pub struct Model {
    pub path: PathBuf,
    pub spec: NetworkSpec,
    /// Notes where the module's variable names and graph disagreed (the graph won).
    pub disagreements: Vec<String>,
    /// Other notes from reading the module (variables the network does not use, random
    /// weights).
    pub notes: Vec<String>,
    /// The note on the weights: the module's `amoeba_weights` attachment, or a converted
    /// file's `amoeba.weights` metadata. `random: ...` marks weights that mean nothing.
    pub weights_note: Option<String>,
    pub kind: ModelKind,
}

/// Whether a weights note marks the weights as random.
pub fn weights_are_random(note: Option<&str>) -> bool {
    note.is_some_and(|n| n.starts_with("random"))
}

/// The notice for a model whose weights are marked random, else none: what the mark says
/// of them (up to its first `;`) and where the real module is.
fn random_weights_notice(note: Option<&str>) -> Option<String> {
    let note = note.filter(|n| weights_are_random(Some(n)))?;
    let what = note
        .trim_start_matches("random")
        .trim_start_matches([':', ' '])
        .split(';')
        .next()
        .unwrap_or_default()
        .trim();
    Some(format!(
        "this model's weights are random ({what}): its labels and scores mean nothing; trained \
         ones are the TF Hub modules, e.g. AmoebaNet-A at \
         https://tfhub.dev/google/imagenet/amoebanet_a_n18_f448/classification/1"
    ))
}

impl Model {
    /// Opens a `.safetensors` file written by `convert`, or else a hub module (folder or archive).
    pub fn open(path: &Path) -> Result<Model, ModelError> {
        let is_safetensors = path
            .extension()
            .is_some_and(|e| e.eq_ignore_ascii_case("safetensors"));
        if is_safetensors {
            Self::open_safetensors(path)
        } else {
            Self::open_module(path)
        }
    }

    fn open_safetensors(path: &Path) -> Result<Model, ModelError> {
        if !path.exists() {
            return Err(ModelError::Invalid {
                path: path.to_path_buf(),
                problem: "no such file".to_string(),
            });
        }
        // Regular file only (a FIFO would block the map below), no repeated names.
        crate::header::check_header(path).map_err(|problem| ModelError::Invalid {
            path: path.to_path_buf(),
            problem,
        })?;
        let weights = SafetensorsWeights::open(path)?;
        let meta = weights.metadata();
        let invalid = |problem: String| ModelError::Invalid {
            path: path.to_path_buf(),
            problem,
        };
        let json = meta.get(keys::NETWORK).ok_or_else(|| {
            invalid(format!(
                "no {} metadata: not a file written by `amoeba convert` (convert the module first)",
                keys::NETWORK
            ))
        })?;
        let spec = NetworkSpec::from_json(json)
            .map_err(|e| invalid(format!("bad {} metadata: {e}", keys::NETWORK)))?;
        let disagreements = meta
            .get(keys::DISAGREEMENTS)
            .and_then(|j| serde_json::from_str(j).ok())
            .unwrap_or_default();
        let weights_note = meta.get(keys::WEIGHTS).cloned();
        if let Some(note) = &weights_note {
            if note.len() > hub_module::MAX_WEIGHTS_NOTE_BYTES || note.chars().any(char::is_control)
            {
                return Err(invalid(format!(
                    "bad {} metadata: at most {} bytes and no control characters",
                    keys::WEIGHTS,
                    hub_module::MAX_WEIGHTS_NOTE_BYTES
                )));
            }
        }
        Ok(Model {
            path: path.to_path_buf(),
            spec,
            disagreements,
            notes: random_weights_notice(weights_note.as_deref())
                .into_iter()
                .collect(),
            weights_note,
            kind: ModelKind::Safetensors(weights),
        })
    }

    fn open_module(path: &Path) -> Result<Model, ModelError> {
        let module = HubModule::open(path)?;
        let extraction = extract_spec(&module)?;
        check_network_weights_are_float(&module, &extraction.spec)?;
        let mut notes = extraction.notes;
        notes.extend(cache_note(&module));
        let weights_note = module.weights_note().map(str::to_string);
        notes.extend(random_weights_notice(weights_note.as_deref()));
        Ok(Model {
            path: path.to_path_buf(),
            spec: extraction.spec,
            disagreements: extraction.disagreements,
            notes,
            weights_note,
            kind: ModelKind::Module(Box::new(module)),
        })
    }

    /// Every path this model was read from: what the user named, and for a module folder
    /// each file in it that was read (so that an output can be refused when it is one of
    /// them, even through a symbolic link to a subfolder).
    pub fn input_paths(&self) -> Vec<PathBuf> {
        let mut paths = vec![self.path.clone()];
        if let ModelKind::Module(module) = &self.kind {
            let root = module.root();
            // A cached extraction is a module folder that stays: nothing may be written into it.
            if module.cached_extraction().is_some() {
                paths.push(root.to_path_buf());
            }
            paths.push(root.join("saved_model.pb"));
            paths.push(root.join("tfhub_module.pb"));
            let bundle = module.bundle();
            let prefix = bundle.prefix();
            let mut index = prefix.as_os_str().to_owned();
            index.push(".index");
            paths.push(PathBuf::from(index));
            let shards = bundle.shard_count();
            paths.extend(
                (0..shards).map(|i| hub_module::tensor_bundle::shard_path(prefix, i, shards)),
            );
        }
        paths
    }

    /// The weights, for `nasnet_forward::Network::load`.
    pub fn weights(&self) -> Box<dyn WeightSource + '_> {
        match &self.kind {
            ModelKind::Module(m) => Box::new(ModuleWeights(m)),
            ModelKind::Safetensors(w) => Box::new(w),
        }
    }

    /// Loads the runnable network.
    pub fn network(&self) -> Result<nasnet_forward::Network, ModelError> {
        self.network_with(nasnet_forward::Precision::F32)
    }

    /// [`Model::network`] at a precision (bf16 falls back to f32 without bf16 hardware).
    pub fn network_with(
        &self,
        precision: nasnet_forward::Precision,
    ) -> Result<nasnet_forward::Network, ModelError> {
        Ok(nasnet_forward::Network::load_with(
            &self.spec,
            self.weights().as_ref(),
            precision,
        )?)
    }
}

/// Extracts the network description from a module's inference graph and variables.
pub fn extract_spec(module: &HubModule) -> Result<nasnet_genotype::Extraction, ModelError> {
    let path = module.source().to_path_buf();
    let graph = module
        .inference_variant()
        .ok_or_else(|| ModelError::Invalid {
            path: path.clone(),
            problem:
                "saved_model.pb has no graph variant with the empty tag set (the inference graph)"
                    .to_string(),
        })?;
    let variables: Vec<(String, Vec<usize>)> = module
        .bundle()
        .entries()
        .map(|e| (e.name.clone(), e.shape.clone()))
        .collect();
    nasnet_genotype::extract(&graph.meta_graph, &variables, module.image_size())
        .map_err(|source| ModelError::Genotype { path, source })
}

/// Said once, when an archive was extracted into the cache by this run.
pub fn cache_note(module: &HubModule) -> Option<String> {
    let cached = module.cached_extraction().filter(|c| !c.reused)?;
    Some(format!(
        "extracted {} into {} once; later runs reuse it (`amoeba cache clear` removes it)",
        module.source().display(),
        cached.dir.display()
    ))
}

/// Every variable in the scopes the network reads (stem, cells, final layer) must be float32:
/// the forward pass computes in float32, and a converted file of other bytes would only fail
/// later, at run time. Other variables (`global_step`, say) may be of any dtype.
fn check_network_weights_are_float(
    module: &HubModule,
    spec: &NetworkSpec,
) -> Result<(), ModelError> {
    let c = nasnet_genotype::conventions();
    let scopes: Vec<String> = [
        spec.stem_scope.clone(),
        c.stem_bn(&spec.stem_scope),
        c.head.scope.clone(),
    ]
    .into_iter()
    .chain(spec.cells.iter().map(|cell| cell.scope.clone()))
    .map(|scope| format!("{scope}/"))
    .collect();
    let read_by_network = |name: &str| scopes.iter().any(|s| name.starts_with(s.as_str()));
    let wrong = module
        .bundle()
        .entries()
        .find(|e| read_by_network(&e.name) && e.dtype != hub_module::tensor_bundle::DType::F32);
    match wrong {
        None => Ok(()),
        Some(e) => Err(ModelError::Invalid {
            path: module.bundle().index_path().to_path_buf(),
            problem: format!(
                "variable {} is {}, but the network computes in float32 (a module of this \
                 family stores every weight as DT_FLOAT)",
                e.name,
                e.dtype.name()
            ),
        }),
    }
}
