//! Writing a model's variables to safetensors.
//!
//! The writer streams: one tensor's bytes at a time go from the checkpoint (memory-mapped,
//! checksum verified) to a buffered temporary file next to the output, which is renamed into
//! place only when complete. Tensors keep their TensorFlow names and layouts.

use crate::model::{Model, ModelKind};
use crate::{keys, ModelError};
use sha2::{Digest, Sha256};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};

/// Where the converted weights came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance {
    pub source_file: String,
    pub checkpoint_sha256: String,
}

/// What a conversion wrote.
#[derive(Debug, Clone)]
pub struct ConvertReport {
    pub output: PathBuf,
    pub tensors: usize,
    /// Bytes of tensor data written.
    pub data_bytes: u64,
    pub provenance: Provenance,
}

/// One tensor to write.
struct Item {
    name: String,
    dtype: &'static str,
    elem_size: usize,
    shape: Vec<usize>,
    len: usize,
    /// (shard, byte offset) of a module tensor stored plainly in little-endian order, whose
    /// bytes can be copied file to file by the kernel.
    source: Option<(usize, u64)>,
}

/// Stands in the header for the checkpoint's sha256 until the hash, computed on another
/// thread while the tensors are written, is known; same length as the hex digest.
const SHA256_PLACEHOLDER: &str = "sha256-of-the-checkpoint-is-computed-while-the-tensors-are-copie";

/// Converts `model` into a safetensors file at `output`. `progress(done, total)` sees data
/// bytes after each tensor; returning `ControlFlow::Break` stops the conversion (for example on
/// Ctrl-C) with [`ModelError::Interrupted`], leaving no output and no temporary file.
pub fn convert(
    model: &Model,
    output: &Path,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<ConvertReport, ModelError> {
    let mut items = list_items(model)?;
    order_items(&mut items);
    let mut provenance = provenance(model);
    let to_hash = match &model.kind {
        ModelKind::Module(module) => Some(module),
        ModelKind::Safetensors(_) => None,
    };
    if to_hash.is_some() {
        provenance.checkpoint_sha256 = SHA256_PLACEHOLDER.to_string();
    }
    let header = header_bytes(&items, &metadata(model, &provenance)?);
    let inputs = model.input_paths();
    let inputs: Vec<&Path> = inputs.iter().map(PathBuf::as_path).collect();
    let mut tmp = safe_fs::AtomicOutput::create(output, &inputs)?;
    // Hashing the checkpoint (one read of the shards) overlaps with copying the tensors.
    let (written, digest) = std::thread::scope(|scope| {
        // The kernel copies bypass the reader, so every checksum is verified here, while the
        // shards are hashed on another thread; both overlap with the copy.
        let hasher = to_hash.map(|dir| scope.spawn(move || verify_and_hash(model, dir)));
        let written = write_tensors(model, &items, &header, tmp.file(), output, progress);
        let digest = hasher.map(|h| h.join().unwrap_or_else(|_| Err(panicked_hasher(output))));
        (written, digest)
    });
    let data_bytes = written?;
    if let Some(digest) = digest {
        provenance.checkpoint_sha256 = digest?;
        patch_placeholder(tmp.file(), &header, &provenance.checkpoint_sha256, output)?;
    }
    tmp.persist()?;
    Ok(ConvertReport {
        output: output.to_path_buf(),
        tensors: items.len(),
        data_bytes,
        provenance,
    })
}

fn write_error(output: &Path, source: std::io::Error) -> ModelError {
    ModelError::Write {
        path: output.to_path_buf(),
        source,
    }
}

fn panicked_hasher(output: &Path) -> ModelError {
    write_error(
        output,
        std::io::Error::other("the checkpoint hashing thread failed"),
    )
}

/// Puts the tensors in the order of their bytes in the checkpoint when that keeps every
/// tensor aligned to its element size: runs of adjacent tensors are then copied file to file
/// by the kernel (`copy_file_range`), never passing through this process. Otherwise, larger
/// elements first (as the safetensors crate's own writer does), then by name.
fn order_items(items: &mut [Item]) {
    items.sort_by(|a, b| {
        b.elem_size
            .cmp(&a.elem_size)
            .then_with(|| a.name.cmp(&b.name))
    });
    if items.iter().any(|i| i.source.is_none()) {
        return;
    }
    let mut by_file: Vec<usize> = (0..items.len()).collect();
    by_file.sort_by_key(|&i| items[i].source);
    let mut pos = 0;
    let aligned = by_file.iter().all(|&i| {
        let ok = pos % items[i].elem_size.max(1) == 0;
        pos += items[i].len;
        ok
    });
    if aligned {
        items.sort_by_key(|i| i.source);
    }
}

/// Size of one kernel copy between progress reports and interrupt checks.
const COPY_CHUNK: u64 = 64 << 20;

/// Bytes `[start, end)` of one data shard: tensors adjacent in the checkpoint.
#[derive(Clone, Copy)]
struct Run {
    shard: usize,
    start: u64,
    end: u64,
}

/// Appends tensor data to the output, reporting progress and honouring interrupts.
struct DataWriter<'a> {
    out: &'a std::fs::File,
    output: &'a Path,
    done: u64,
    total: u64,
    progress: &'a mut dyn FnMut(u64, u64) -> ControlFlow<()>,
}

impl DataWriter<'_> {
    /// Counts `n` more bytes written; stops when the caller asks to.
    fn advance(&mut self, n: u64) -> Result<(), ModelError> {
        self.done += n;
        match (self.progress)(self.done, self.total) {
            ControlFlow::Continue(()) => Ok(()),
            ControlFlow::Break(()) => Err(ModelError::Interrupted {
                path: self.output.to_path_buf(),
            }),
        }
    }

    /// Copies a run file to file in the kernel (std::io::copy uses copy_file_range on
    /// Linux), in chunks so progress and Ctrl-C are seen.
    fn copy_run(&mut self, mut src: &std::fs::File, run: Run) -> Result<(), ModelError> {
        use std::io::{Seek, SeekFrom};
        let output = self.output;
        let io = |e| write_error(output, e);
        src.seek(SeekFrom::Start(run.start)).map_err(io)?;
        let mut left = run.end - run.start;
        while left > 0 {
            let chunk = left.min(COPY_CHUNK);
            let n = std::io::copy(&mut Read::take(src, chunk), &mut { self.out }).map_err(io)?;
            if n != chunk {
                return Err(io(std::io::Error::other(
                    "the checkpoint shard ended early",
                )));
            }
            left -= n;
            self.advance(n)?;
        }
        Ok(())
    }

    /// Writes one tensor read (and checksummed) through the model.
    fn write_tensor(&mut self, model: &Model, item: &Item) -> Result<(), ModelError> {
        let bytes = tensor_bytes(model, &item.name)?;
        check_len(model, item, &bytes)?;
        let mut out = self.out;
        out.write_all(&bytes)
            .map_err(|e| write_error(self.output, e))?;
        drop(bytes);
        release(model, &item.name);
        self.advance(item.len as u64)
    }
}

/// Writes the header and every tensor; returns the data bytes written.
fn write_tensors(
    model: &Model,
    items: &[Item],
    header: &[u8],
    file: &std::fs::File,
    output: &Path,
    progress: &mut dyn FnMut(u64, u64) -> ControlFlow<()>,
) -> Result<u64, ModelError> {
    let mut out = file;
    out.write_all(&(header.len() as u64).to_le_bytes())
        .and_then(|_| out.write_all(header))
        .map_err(|e| write_error(output, e))?;
    let total = items.iter().map(|i| i.len as u64).sum();
    let shards = open_shards(model)?;
    let mut writer = DataWriter {
        out: file,
        output,
        done: 0,
        total,
        progress,
    };
    let mut run: Option<Run> = None;
    for item in items {
        let len = item.len as u64;
        let next = item.source.filter(|(shard, _)| *shard < shards.len());
        match (run, next) {
            (Some(r), Some((shard, at))) if r.shard == shard && r.end == at => {
                run = Some(Run {
                    end: r.end + len,
                    ..r
                });
                continue;
            }
            _ => {}
        }
        if let Some(r) = run.take() {
            writer.copy_run(&shards[r.shard], r)?;
        }
        match next {
            Some((shard, at)) => {
                run = Some(Run {
                    shard,
                    start: at,
                    end: at + len,
                })
            }
            None => writer.write_tensor(model, item)?,
        }
    }
    if let Some(r) = run {
        writer.copy_run(&shards[r.shard], r)?;
    }
    Ok(total)
}

/// The data shards of a module, for kernel copies (none for other inputs): the bundle's own
/// open files (duplicated descriptors), so the bytes copied are those the bundle validated.
fn open_shards(model: &Model) -> Result<Vec<std::fs::File>, ModelError> {
    let ModelKind::Module(module) = &model.kind else {
        return Ok(Vec::new());
    };
    let bundle = module.bundle();
    (0..bundle.shard_count())
        .filter_map(|i| Some((bundle.shard_file(i)?, bundle.shard_shown_path(i)?)))
        .map(|(file, path)| {
            file.try_clone().map_err(|source| ModelError::Read {
                path: path.to_path_buf(),
                source,
            })
        })
        .collect()
}

/// Replaces the placeholder in the already written header with the real digest.
fn patch_placeholder(
    mut file: &std::fs::File,
    header: &[u8],
    digest: &str,
    output: &Path,
) -> Result<(), ModelError> {
    use std::io::{Seek, SeekFrom};
    let needle = SHA256_PLACEHOLDER.as_bytes();
    let at = header
        .windows(needle.len())
        .position(|w| w == needle)
        .filter(|_| digest.len() == needle.len())
        .ok_or_else(|| write_error(output, std::io::Error::other("lost the sha256 placeholder")))?;
    file.seek(SeekFrom::Start(8 + at as u64))
        .and_then(|_| file.write_all(digest.as_bytes()))
        .map_err(|e| write_error(output, e))
}

fn list_items(model: &Model) -> Result<Vec<Item>, ModelError> {
    match &model.kind {
        ModelKind::Module(module) => module
            .bundle()
            .entries()
            .map(|e| {
                let little = module.bundle().header().endianness
                    == hub_module::tensor_bundle::Endianness::Little;
                Ok(Item {
                    name: e.name.clone(),
                    dtype: e.dtype.safetensors_name(),
                    elem_size: e.dtype.size_bytes(),
                    shape: e.shape.clone(),
                    len: e.byte_len(),
                    source: e
                        .data_location()
                        .filter(|_| little)
                        .map(|l| (l.shard_id, l.offset as u64)),
                })
            })
            .collect(),
        ModelKind::Safetensors(w) => w
            .names_and_shapes()
            .into_iter()
            .map(|(name, shape)| {
                let (dtype, bytes) = w
                    .raw(&name)
                    .ok_or_else(|| invalid(model, format!("tensor {name} vanished")))?;
                Ok(Item {
                    dtype: safetensors_dtype_name(dtype),
                    elem_size: dtype.bitsize().div_ceil(8),
                    len: bytes.len(),
                    name,
                    shape,
                    source: None,
                })
            })
            .collect(),
    }
}

fn safetensors_dtype_name(dtype: safetensors::Dtype) -> &'static str {
    use safetensors::Dtype::*;
    match dtype {
        BOOL => "BOOL",
        U8 => "U8",
        I8 => "I8",
        I16 => "I16",
        U16 => "U16",
        F16 => "F16",
        BF16 => "BF16",
        I32 => "I32",
        U32 => "U32",
        F32 => "F32",
        F64 => "F64",
        I64 => "I64",
        U64 => "U64",
        _ => "UNKNOWN",
    }
}

fn tensor_bytes<'m>(model: &'m Model, name: &str) -> Result<Cow<'m, [u8]>, ModelError> {
    match &model.kind {
        ModelKind::Module(module) => Ok(module.bundle().tensor_bytes(name)?),
        ModelKind::Safetensors(w) => w
            .raw(name)
            .map(|(_, b)| Cow::Borrowed(b))
            .ok_or_else(|| invalid(model, format!("tensor {name} vanished"))),
    }
}

/// Lets go of a written tensor's pages so memory stays near the largest tensor.
fn release(model: &Model, name: &str) {
    match &model.kind {
        ModelKind::Module(module) => module.bundle().release_tensor(name),
        ModelKind::Safetensors(w) => w.release(name),
    }
}

fn check_len(model: &Model, item: &Item, bytes: &[u8]) -> Result<(), ModelError> {
    if bytes.len() != item.len {
        return Err(invalid(
            model,
            format!(
                "tensor {} has {} bytes, expected {}",
                item.name,
                bytes.len(),
                item.len
            ),
        ));
    }
    Ok(())
}

fn invalid(model: &Model, problem: String) -> ModelError {
    ModelError::Invalid {
        path: model.path.clone(),
        problem,
    }
}

/// The source file name and the sha256 of its checkpoint data (carried over from a
/// safetensors input).
/// The source file name, and for a safetensors input the checkpoint hash it carries.
pub(crate) fn provenance(model: &Model) -> Provenance {
    match &model.kind {
        ModelKind::Safetensors(w) => {
            let meta = w.metadata();
            Provenance {
                source_file: meta.get(keys::SOURCE_FILE).cloned().unwrap_or_default(),
                checkpoint_sha256: meta.get(keys::SOURCE_SHA256).cloned().unwrap_or_default(),
            }
        }
        ModelKind::Module(module) => Provenance {
            source_file: file_name(module.source()),
            checkpoint_sha256: String::new(),
        },
    }
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| path.display().to_string())
}

/// Verifies every tensor's crc32c, then hashes the shards.
pub(crate) fn verify_and_hash(
    model: &Model,
    module: &hub_module::HubModule,
) -> Result<String, ModelError> {
    // sha256 is one sequential stream; the checksums run beside it, on a third thread.
    std::thread::scope(|scope| {
        let checksums = scope.spawn(|| match &model.kind {
            ModelKind::Module(module) => module.bundle().verify_all().map_err(ModelError::from),
            ModelKind::Safetensors(_) => Ok(()),
        });
        let digest = checkpoint_sha256(module.bundle());
        checksums
            .join()
            .unwrap_or_else(|_| Err(panicked_checksums(module.bundle().index_path())))?;
        digest
    })
}

fn panicked_checksums(index_path: &Path) -> ModelError {
    ModelError::Read {
        path: index_path.to_path_buf(),
        source: std::io::Error::other("the checksum thread failed"),
    }
}

/// Bytes of a shard hashed between two releases of its pages.
const HASH_CHUNK: usize = 16 << 20;

/// sha256 over the data shards in shard order (the bytes of `variables.data-*`, so the same
/// digest as `cat variables/variables.data-* | sha256sum`), read from the bundle's own maps.
fn checkpoint_sha256(
    bundle: &hub_module::tensor_bundle::TensorBundle,
) -> Result<String, ModelError> {
    let mut hasher = Sha256::new();
    for map in (0..bundle.shard_count()).filter_map(|i| bundle.shard_map(i)) {
        let _ = map.advise(memmap2::Advice::Sequential);
        for start in (0..map.len()).step_by(HASH_CHUNK) {
            let len = HASH_CHUNK.min(map.len() - start);
            hasher.update(&map[start..start + len]);
            // Hashed pages leave this process (they stay in the page cache), so the peak
            // RSS of a conversion stays far below the checkpoint's size.
            // SAFETY: a read-only file mapping; the range is not borrowed any more, and a
            // later read (the checksum thread's included) faults the pages back in from the
            // file.
            let _ = unsafe {
                map.unchecked_advise_range(memmap2::UncheckedAdvice::DontNeed, start, len)
            };
        }
    }
    Ok(hex(&hasher.finalize()))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn metadata(
    model: &Model,
    provenance: &Provenance,
) -> Result<BTreeMap<String, String>, ModelError> {
    let json_err =
        |e: serde_json::Error| invalid(model, format!("cannot describe the network as JSON: {e}"));
    let mut meta = BTreeMap::new();
    meta.insert(keys::NETWORK.to_string(), model.spec.to_json());
    let signatures = match &model.kind {
        ModelKind::Module(m) => m
            .inference_variant()
            .map(|v| v.signatures.clone())
            .unwrap_or_default(),
        ModelKind::Safetensors(_) => Vec::new(),
    };
    if let ModelKind::Safetensors(w) = &model.kind {
        if let Some(s) = w.metadata().get(keys::SIGNATURES) {
            meta.insert(keys::SIGNATURES.to_string(), s.clone());
        }
    } else {
        meta.insert(
            keys::SIGNATURES.to_string(),
            serde_json::to_string(&signatures).map_err(json_err)?,
        );
    }
    meta.insert(
        keys::DISAGREEMENTS.to_string(),
        serde_json::to_string(&model.disagreements).map_err(json_err)?,
    );
    insert_provenance(&mut meta, model, provenance);
    Ok(meta)
}

/// The metadata every file this crate writes carries: source, checkpoint hash, tool, and the
/// weights note when the model has one.
pub(crate) fn insert_provenance(
    meta: &mut BTreeMap<String, String>,
    model: &Model,
    provenance: &Provenance,
) {
    meta.insert(keys::SOURCE_FILE.into(), provenance.source_file.clone());
    meta.insert(
        keys::SOURCE_SHA256.into(),
        provenance.checkpoint_sha256.clone(),
    );
    meta.insert(
        keys::TOOL.into(),
        format!("amoeba {}", env!("CARGO_PKG_VERSION")),
    );
    if let Some(note) = &model.weights_note {
        meta.insert(keys::WEIGHTS.into(), note.clone());
    }
}

/// The JSON header of `items` (see [`crate::header::header_json`]).
fn header_bytes(items: &[Item], metadata: &BTreeMap<String, String>) -> Vec<u8> {
    let tensors = items
        .iter()
        .map(|i| (i.name.as_str(), i.dtype, i.shape.clone(), i.len as u64));
    crate::header::header_json(tensors, metadata)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoint_sha256_covers_every_shard_in_order() {
        use hub_module::tensor_bundle::{testing::BundleBuilder, DType, TensorBundle};
        let dir = tempfile::tempdir().unwrap();
        // A shard longer than HASH_CHUNK (hashed in several mapped pieces), a small one, and
        // an empty one (tensors go round-robin over the three shards).
        let big: Vec<u8> = (0..HASH_CHUNK + 12345)
            .map(|i| (i * 7 % 251) as u8)
            .collect();
        let small = b"the last shard".to_vec();
        let prefix = BundleBuilder::new()
            .tensor("big", DType::U8, &[big.len()], &big)
            .tensor("small", DType::U8, &[small.len()], &small)
            .num_shards(3)
            .write(dir.path(), "variables")
            .unwrap();
        let bundle = TensorBundle::open(&prefix).unwrap();
        let mut want = Sha256::new();
        want.update(&big);
        want.update(&small);
        assert_eq!(checkpoint_sha256(&bundle).unwrap(), hex(&want.finalize()));
    }
}
