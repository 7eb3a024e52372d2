//! The weight stores of [`nasnet_forward::WeightSource`]: a converted safetensors file
//! (memory-mapped, its header validated once) and a hub module's checkpoint.

use hub_module::HubModule;
use nasnet_forward::{ForwardError, WeightSource};
use std::path::{Path, PathBuf};

fn le_f32(bytes: &[u8]) -> Vec<f32> {
    bytes
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect()
}

/// Weights from a safetensors file, memory-mapped.
pub struct SafetensorsWeights {
    path: PathBuf,
    mmap: memmap2::Mmap,
    /// Where the data buffer starts (8 + header length).
    data_start: usize,
    header: safetensors::tensor::Metadata,
    _mapped: safe_fs::cleanup::Registration,
}

impl SafetensorsWeights {
    /// Maps the file and validates its header (offsets, sizes, no holes) once.
    pub fn open(path: &Path) -> Result<SafetensorsWeights, ForwardError> {
        let err = |problem: String| ForwardError::Weights {
            source_name: path.display().to_string(),
            problem,
        };
        // Regular files only: a FIFO would block the open (and the map) forever.
        let file = safe_fs::open_regular(path).map_err(|e| err(format!("cannot open: {e}")))?;
        let mapped = safe_fs::cleanup::register_mapped(path);
        // SAFETY: the file is opened read-only; like every mmap reader we rely on nobody
        // truncating it while it is mapped. If someone does, the binary's SIGBUS handler
        // names this file (registered above) and removes unfinished outputs.
        let mmap =
            unsafe { memmap2::Mmap::map(&file) }.map_err(|e| err(format!("cannot map: {e}")))?;
        safetensors::SafeTensors::deserialize(&mmap)
            .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        let (header_len, header) = safetensors::SafeTensors::read_metadata(&mmap)
            .map_err(|e| err(format!("not a valid safetensors file: {e}")))?;
        Ok(SafetensorsWeights {
            path: path.to_path_buf(),
            mmap,
            data_start: 8 + header_len,
            header,
            _mapped: mapped,
        })
    }

    /// The `__metadata__` map of the file.
    pub fn metadata(&self) -> std::collections::HashMap<String, String> {
        self.header.metadata().clone().unwrap_or_default()
    }

    /// Every tensor name with its shape, sorted by name.
    pub fn names_and_shapes(&self) -> Vec<(String, Vec<usize>)> {
        let mut out: Vec<_> = self
            .header
            .tensors()
            .into_iter()
            .map(|(name, info)| (name, info.shape.clone()))
            .collect();
        out.sort();
        out
    }

    /// Drops a tensor's pages from this process's resident memory (they stay in the page
    /// cache), so that reading a file tensor by tensor keeps memory near the largest tensor.
    pub fn release(&self, name: &str) {
        let Some(info) = self.header.info(name) else {
            return;
        };
        let (begin, end) = info.data_offsets;
        // madvise works on whole pages: release only the pages inside the tensor.
        const PAGE: usize = 4096;
        let start = (self.data_start + begin).div_ceil(PAGE) * PAGE;
        let stop = (self.data_start + end) / PAGE * PAGE;
        if stop > start {
            // SAFETY: a read-only shared file mapping; MADV_DONTNEED only drops this
            // process's page-table entries and the next access faults the same bytes back in.
            let _ = unsafe {
                self.mmap.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    start,
                    stop - start,
                )
            };
        }
    }

    /// The raw bytes and dtype of one tensor.
    pub fn raw(&self, name: &str) -> Option<(safetensors::Dtype, &[u8])> {
        let info = self.header.info(name)?;
        let (begin, end) = info.data_offsets;
        // Offsets were validated against the file length in `open`.
        let bytes = self
            .mmap
            .get(self.data_start + begin..self.data_start + end)?;
        Some((info.dtype, bytes))
    }
}

impl WeightSource for SafetensorsWeights {
    fn source_name(&self) -> String {
        self.path.display().to_string()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.header.info(name).map(|i| i.shape.clone())
    }

    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
        let (dtype, bytes) = self.raw(name).ok_or_else(|| ForwardError::MissingWeight {
            source_name: self.source_name(),
            name: name.to_string(),
            why: "not in the file".to_string(),
        })?;
        if dtype != safetensors::Dtype::F32 {
            return Err(ForwardError::WeightDtype {
                source_name: self.source_name(),
                name: name.to_string(),
                dtype: format!("{dtype:?}"),
            });
        }
        let values = le_f32(bytes);
        self.release(name);
        Ok(values)
    }
}

/// Weights straight from a hub module's variables checkpoint.
pub struct ModuleWeights<'a>(pub &'a HubModule);

impl WeightSource for ModuleWeights<'_> {
    fn source_name(&self) -> String {
        self.0.source().display().to_string()
    }

    fn shape(&self, name: &str) -> Option<Vec<usize>> {
        self.0.bundle().entry(name).map(|e| e.shape.clone())
    }

    fn values(&self, name: &str) -> Result<Vec<f32>, ForwardError> {
        let bundle = self.0.bundle();
        let entry = bundle
            .entry(name)
            .ok_or_else(|| ForwardError::MissingWeight {
                source_name: self.source_name(),
                name: name.to_string(),
                why: "not in the checkpoint".to_string(),
            })?;
        if entry.dtype != hub_module::tensor_bundle::DType::F32 {
            return Err(ForwardError::WeightDtype {
                source_name: self.source_name(),
                name: name.to_string(),
                dtype: entry.dtype.name().to_string(),
            });
        }
        let bytes = bundle
            .tensor_bytes(name)
            .map_err(|e| ForwardError::Weights {
                source_name: self.source_name(),
                problem: e.to_string(),
            })?;
        let values = le_f32(&bytes);
        bundle.release_tensor(name);
        Ok(values)
    }
}
