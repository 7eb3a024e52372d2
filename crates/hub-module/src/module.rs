//! [`HubModule`]: a module folder (or extracted archive) with its decoded protos and variables.

use crate::archive::{self, ArchiveLimits};
use crate::signature::Signature;
use crate::ModuleError;
use prost::Message;
use serde::Serialize;
use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use tensor_bundle::TensorBundle;
use tf_proto::tensorflow::{attr_value, collection_def, AttrValue, MetaGraphDef, SavedModel};
use tf_proto::tensorflow_hub::{module_def, ImageModuleInfo, ModuleAttachment, ModuleDef};

/// `tfhub_module.pb` marks the TF1 Hub format; without it the folder is a plain SavedModel.
const MODULE_DEF_FILE: &str = "tfhub_module.pb";
const SAVED_MODEL_FILE: &str = "saved_model.pb";
const VARIABLES_PREFIX: &str = "variables/variables";
const ATTACHMENTS_COLLECTION: &str = "hub_module_attachments";
const IMAGE_INFO_KEY: &str = "image_module_info";
/// The attachment that says where a module's weights came from: a `tensorflow.AttrValue`
/// whose `s` is a note. This project's fixture generator (`xtask/python/hub_export.py`) writes
/// one starting `random:`; TensorFlow's own exports have none.
const WEIGHTS_KEY: &str = "amoeba_weights";
/// Longest weights note read (the generator's is about 130 bytes).
pub const MAX_WEIGHTS_NOTE_BYTES: usize = 4096;
/// Largest image side `image_module_info` may declare: activations grow with its square, and
/// every NASNet-family module uses 224 to 331.
pub const MAX_IMAGE_SIDE: i32 = 4096;

/// What kind of model folder this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ModuleFormat {
    /// A TF1 Hub module (`tfhub_module.pb` with format 3).
    HubV3,
    /// A SavedModel without `tfhub_module.pb`.
    SavedModel,
}

/// One MetaGraphDef of `saved_model.pb`, summarised.
#[derive(Debug, Clone)]
pub struct GraphVariant {
    /// The tag set; empty for the default (inference) variant.
    pub tags: BTreeSet<String>,
    pub signatures: Vec<Signature>,
    /// `image_module_info`'s default image size [height, width], when attached.
    pub image_size: Option<[usize; 2]>,
    /// The `amoeba_weights` attachment's note on the weights, when attached.
    pub weights_note: Option<String>,
    /// The decoded MetaGraphDef, for graph analysis.
    pub meta_graph: MetaGraphDef,
}

/// An archive's temporary extraction folder (`$TMPDIR/amoeba-module-…`), removed when
/// dropped, and registered for removal by the signal handler *before* it is created, so that
/// no moment exists in which a signal could leave it behind.
struct Extraction {
    dir: PathBuf,
    /// Set when the folder became a cache entry: then it is not removed.
    kept: bool,
    _registration: safe_fs::cleanup::Registration,
}

impl Extraction {
    /// A new private folder in `base` (the temp folder, or the cache).
    fn new(base: PathBuf) -> Result<Extraction, ModuleError> {
        use std::hash::{BuildHasher, Hasher};
        let mut last_error = None;
        for attempt in 0u64..16 {
            let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
            hasher.write_u64(attempt);
            let dir = base.join(format!(
                ".amoeba-module-{}-{:016x}",
                std::process::id(),
                hasher.finish()
            ));
            let registration = safe_fs::cleanup::register_tree(&dir);
            match create_private_dir(&dir) {
                Ok(()) => {
                    return Ok(Extraction {
                        dir,
                        kept: false,
                        _registration: registration,
                    })
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => last_error = Some(e),
                Err(e) => {
                    return Err(ModuleError::Io {
                        path: base,
                        source: e,
                    })
                }
            }
        }
        Err(ModuleError::Io {
            path: base,
            source: last_error.unwrap_or_else(|| std::io::Error::other("no free name")),
        })
    }
}

impl Extraction {
    /// Leaves the folder in place (it was renamed into the cache); the signal handler's
    /// registration ends, as the folder is not an unfinished output any more.
    fn keep(mut self) {
        self.kept = true;
    }
}

impl Drop for Extraction {
    fn drop(&mut self) {
        if self.kept {
            return;
        }
        // Best effort, like any temporary folder; the registration is released after this.
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A new folder only its owner can read (the extraction holds the user's model).
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new().mode(0o700).create(dir)
}

/// An opened module: decoded protos plus its variables checkpoint.
pub struct HubModule {
    /// What the user pointed at (folder or archive).
    source: PathBuf,
    /// The folder holding saved_model.pb (inside `_extracted` for an archive).
    root: PathBuf,
    format: ModuleFormat,
    variants: Vec<GraphVariant>,
    bundle: TensorBundle,
    /// Keeps an archive's extraction alive as long as the module (the bundle maps its files).
    _extracted: Option<Extraction>,
    /// Where an archive's extraction is cached, and whether it was there already.
    cached: Option<CachedExtraction>,
}

/// An archive extracted into the cache ([`cache_dir`]): `<cache>/<sha256 of the archive>/`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CachedExtraction {
    pub dir: PathBuf,
    /// True when an earlier run had extracted it; false when this run did.
    pub reused: bool,
}

/// The environment variable that moves the cache of extracted archives (empty: no cache,
/// every run extracts into the temp folder and removes it after).
pub const CACHE_ENV: &str = "AMOEBA_CACHE_DIR";

/// Written last into a cache entry: an entry without it is unfinished and not used.
const CACHE_COMPLETE: &str = ".amoeba-complete";

/// The cache [`HubModule::open`] extracts archives into; `None` (the default, for library
/// users and tests) extracts each archive into the temp folder and removes it after.
static ARCHIVE_CACHE: std::sync::RwLock<Option<PathBuf>> = std::sync::RwLock::new(None);

/// Makes [`HubModule::open`] keep archive extractions in `cache` (the `amoeba` binary passes
/// [`cache_dir`]), or not (`None`).
pub fn set_archive_cache(cache: Option<PathBuf>) {
    if let Ok(mut slot) = ARCHIVE_CACHE.write() {
        *slot = cache;
    }
}

fn archive_cache() -> Option<PathBuf> {
    ARCHIVE_CACHE.read().ok().and_then(|c| c.clone())
}

/// Where the `amoeba` binary keeps extracted archives: `$AMOEBA_CACHE_DIR`, else
/// `$XDG_CACHE_HOME/amoeba/modules`, else `$HOME/.cache/amoeba/modules`; `None` when the
/// variable is set empty or no home is known.
pub fn cache_dir() -> Option<PathBuf> {
    let non_empty = |v: std::ffi::OsString| (!v.is_empty()).then(|| PathBuf::from(v));
    if let Some(dir) = std::env::var_os(CACHE_ENV) {
        return non_empty(dir);
    }
    // The XDG spec: a relative XDG_CACHE_HOME is to be ignored.
    std::env::var_os("XDG_CACHE_HOME")
        .and_then(non_empty)
        .filter(|p| p.is_absolute())
        .or_else(|| {
            std::env::var_os("HOME")
                .and_then(non_empty)
                .map(|h| h.join(".cache"))
        })
        .map(|base| base.join("amoeba/modules"))
}

/// The cache's finished entries (folders named by an archive's sha256, with their completion
/// mark) with their sizes in bytes.
pub fn cache_entries(cache: &Path) -> std::io::Result<Vec<(PathBuf, u64)>> {
    let mut out = Vec::new();
    let entries = match std::fs::read_dir(cache) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(e),
    };
    for entry in entries {
        let path = entry?.path();
        let is_entry = path
            .file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit()));
        if is_entry && path.is_dir() && path.join(CACHE_COMPLETE).is_file() {
            let size = tree_size(&path);
            out.push((path, size));
        }
    }
    out.sort();
    Ok(out)
}

fn tree_size(dir: &Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    entries
        .flatten()
        .map(|e| match e.file_type() {
            Ok(t) if t.is_dir() => tree_size(&e.path()),
            Ok(t) if t.is_file() => e.metadata().map_or(0, |m| m.len()),
            _ => 0,
        })
        .sum()
}

/// Creates the cache folder private (0700) if missing, and refuses one that another user
/// could write into or that is a symbolic link (its entries are trusted as modules).
fn prepare_cache(cache: &Path) -> Result<(), ModuleError> {
    use std::os::unix::fs::DirBuilderExt;
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(cache)
        .map_err(|source| ModuleError::Io {
            path: cache.to_path_buf(),
            source,
        })?;
    check_private(cache)
}

/// A folder of the cache must be a real folder of this user that no one else can write.
fn check_private(dir: &Path) -> Result<(), ModuleError> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::symlink_metadata(dir).map_err(|source| ModuleError::Io {
        path: dir.to_path_buf(),
        source,
    })?;
    let problem = if !meta.file_type().is_dir() {
        Some("is not a folder (a symbolic link is refused)")
    } else if meta.uid() != safe_fs::effective_uid() {
        Some("belongs to another user")
    } else if meta.mode() & 0o022 != 0 {
        Some("can be written by other users (chmod go-w, or clear it)")
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(problem) => Err(ModuleError::Io {
            path: dir.to_path_buf(),
            source: std::io::Error::other(format!(
                "the archive cache {problem}; set {CACHE_ENV} to another folder, or empty to turn the cache off"
            )),
        }),
    }
}

/// Every regular file under `dir` (relative path, size), sorted.
fn file_sizes(dir: &Path) -> std::io::Result<Vec<(String, u64)>> {
    fn walk(root: &Path, dir: &Path, out: &mut Vec<(String, u64)>) -> std::io::Result<()> {
        for entry in std::fs::read_dir(dir)? {
            let entry = entry?;
            let kind = entry.file_type()?;
            let path = entry.path();
            if kind.is_dir() {
                walk(root, &path, out)?;
            } else if kind.is_file() && entry.file_name() != CACHE_COMPLETE {
                let rel = path.strip_prefix(root).unwrap_or(&path);
                out.push((rel.to_string_lossy().into_owned(), entry.metadata()?.len()));
            }
        }
        Ok(())
    }
    let mut out = Vec::new();
    walk(dir, dir, &mut out)?;
    out.sort();
    Ok(out)
}

/// The completion mark: every file's size and path, one a line, written last and flushed to
/// disk with the files, so a crash cannot leave a marked entry of short files.
fn write_marker(dir: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let files = file_sizes(dir)?;
    for (rel, _) in &files {
        std::fs::File::open(dir.join(rel))?.sync_all()?;
    }
    let mut text = String::new();
    for (rel, size) in &files {
        text.push_str(&format!("{size}\t{rel}\n"));
    }
    let mut marker = std::fs::File::create(dir.join(CACHE_COMPLETE))?;
    marker.write_all(text.as_bytes())?;
    marker.sync_all()
}

/// Whether the entry still holds exactly the files its mark lists, at their sizes.
fn marker_matches(entry: &Path) -> bool {
    let Ok(text) = std::fs::read_to_string(entry.join(CACHE_COMPLETE)) else {
        return false;
    };
    let listed: Vec<(String, u64)> = text
        .lines()
        .filter_map(|l| {
            let (size, rel) = l.split_once('\t')?;
            Some((rel.to_string(), size.parse().ok()?))
        })
        .collect();
    !listed.is_empty() && file_sizes(entry).is_ok_and(|found| found == listed)
}

/// Moves a broken or unfinished entry aside under a private name, then removes it (so a run
/// that renames a finished extraction into its place meanwhile loses nothing).
fn discard(cache: &Path, entry: &Path) -> Result<(), ModuleError> {
    use std::hash::{BuildHasher, Hasher};
    let mut hasher = std::collections::hash_map::RandomState::new().build_hasher();
    hasher.write_u64(std::process::id().into());
    let aside = cache.join(format!(
        ".amoeba-stale-{}-{:016x}",
        std::process::id(),
        hasher.finish()
    ));
    match std::fs::rename(entry, &aside) {
        Ok(()) => {
            let _ = std::fs::remove_dir_all(&aside);
            Ok(())
        }
        // Another run moved or replaced it first.
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(source) => Err(ModuleError::Io {
            path: entry.to_path_buf(),
            source,
        }),
    }
}

/// Removes every finished entry of the cache (its mark first, so an interrupted clear leaves
/// unfinished entries, never marked partial ones) and the private folders of runs that ended
/// without cleaning up (`.amoeba-module-<pid>-…`, `.amoeba-stale-<pid>-…` of gone processes).
/// Returns how many entries were removed.
pub fn clear_cache(cache: &Path) -> std::io::Result<usize> {
    let mut removed = 0;
    for (entry, _) in cache_entries(cache)? {
        std::fs::remove_file(entry.join(CACHE_COMPLETE))?;
        std::fs::remove_dir_all(&entry)?;
        removed += 1;
    }
    let leftovers = match std::fs::read_dir(cache) {
        Ok(rd) => rd,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(removed),
        Err(e) => return Err(e),
    };
    for item in leftovers.flatten() {
        let name = item.file_name().to_string_lossy().into_owned();
        let pid = name
            .strip_prefix(".amoeba-module-")
            .or_else(|| name.strip_prefix(".amoeba-stale-"))
            .and_then(|rest| rest.split('-').next())
            .and_then(|pid| pid.parse::<u32>().ok());
        let gone = pid.is_some_and(|pid| !Path::new(&format!("/proc/{pid}")).exists());
        if gone && item.file_type().is_ok_and(|t| t.is_dir()) {
            std::fs::remove_dir_all(item.path())?;
        }
    }
    Ok(removed)
}

/// The sha256 (hex) of a regular file, read in 1 MiB blocks.
fn sha256_file(path: &Path) -> Result<String, ModuleError> {
    use sha2::{Digest, Sha256};
    use std::io::Read;
    let io = |source| ModuleError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut file = safe_fs::open_regular(path).map_err(io)?;
    let mut hasher = Sha256::new();
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(io)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
    }
    Ok(hasher
        .finalize()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect())
}

impl HubModule {
    /// Opens a module folder or a `.tar.gz`/`.tgz`/`.tar` archive with default limits.
    pub fn open(path: &Path) -> Result<HubModule, ModuleError> {
        Self::open_with_limits(path, ArchiveLimits::default())
    }

    /// Opens a module, applying `limits` when `path` is an archive.
    pub fn open_with_limits(path: &Path, limits: ArchiveLimits) -> Result<HubModule, ModuleError> {
        if !path.exists() {
            return Err(ModuleError::NotFound {
                path: path.to_path_buf(),
            });
        }
        if archive::is_archive(path) {
            if let Some(cache) = archive_cache() {
                return Self::open_cached(path, &cache, limits);
            }
            let extraction = Extraction::new(std::env::temp_dir())?;
            archive::extract(path, &extraction.dir, limits)?;
            let root = extraction.dir.clone();
            return Self::open_folder(path, &root, Some(extraction));
        }
        Self::open_folder(path, path, None)
    }

    /// An archive through the cache: reused when an earlier run extracted the same bytes;
    /// otherwise extracted into a private folder in the cache, opened, and only when it opens
    /// as a module renamed to its entry (a broken archive leaves nothing in the cache).
    fn open_cached(
        path: &Path,
        cache: &Path,
        limits: ArchiveLimits,
    ) -> Result<HubModule, ModuleError> {
        let digest = sha256_file(path)?;
        prepare_cache(cache)?;
        let entry = cache.join(&digest);
        if entry.join(CACHE_COMPLETE).is_file() {
            check_private(&entry)?;
            // A reused entry must still hold every file at the size it was written with, and
            // open as a module; otherwise it is set aside and the archive extracted again.
            if marker_matches(&entry) {
                if let Ok(mut module) = Self::open_folder(path, &entry, None) {
                    module.cached = Some(CachedExtraction {
                        dir: entry,
                        reused: true,
                    });
                    return Ok(module);
                }
            }
            discard(cache, &entry)?;
        }
        let extraction = Extraction::new(cache.to_path_buf())?;
        archive::extract(path, &extraction.dir, limits)?;
        // Checked as a module before it may enter the cache.
        drop(Self::open_folder(path, &extraction.dir, None)?);
        let io = |source| ModuleError::Io {
            path: entry.clone(),
            source,
        };
        write_marker(&extraction.dir).map_err(io)?;
        // An entry without its mark is an unfinished one (a run ended mid-way): this run's
        // extraction replaces it.
        if entry.exists() && !entry.join(CACHE_COMPLETE).is_file() {
            discard(cache, &entry)?;
        }
        match std::fs::rename(&extraction.dir, &entry) {
            // The entry is no longer the extraction's: keep it.
            Ok(()) => extraction.keep(),
            // Another run finished the same entry first: use theirs, drop ours.
            Err(_) if entry.join(CACHE_COMPLETE).is_file() => drop(extraction),
            Err(e) => return Err(io(e)),
        }
        let mut module = Self::open_folder(path, &entry, None)?;
        module.cached = Some(CachedExtraction {
            dir: entry,
            reused: false,
        });
        Ok(module)
    }

    /// Where this archive's extraction is cached, if it is.
    pub fn cached_extraction(&self) -> Option<&CachedExtraction> {
        self.cached.as_ref()
    }

    fn open_folder(
        source: &Path,
        root: &Path,
        extracted: Option<Extraction>,
    ) -> Result<HubModule, ModuleError> {
        let shown = |name: &str| display_path(source, root, name);
        let saved_model_path = root.join(SAVED_MODEL_FILE);
        if !saved_model_path.is_file() {
            return Err(ModuleError::NotAModule {
                path: source.to_path_buf(),
            });
        }
        let format = read_module_format(&root.join(MODULE_DEF_FILE), &shown(MODULE_DEF_FILE))?;
        let saved_model: SavedModel = decode_file(
            &saved_model_path,
            &shown(SAVED_MODEL_FILE),
            "tensorflow.SavedModel",
        )?;
        let variants = saved_model
            .meta_graphs
            .into_iter()
            .map(|g| GraphVariant::from_meta_graph(g, &shown(SAVED_MODEL_FILE)))
            .collect::<Result<Vec<_>, _>>()?;
        if variants.is_empty() {
            return Err(ModuleError::Malformed {
                path: shown(SAVED_MODEL_FILE),
                problem:
                    "holds no graph (MetaGraphDef): not an exported module, or a truncated one"
                        .to_string(),
            });
        }
        let bundle =
            TensorBundle::open_shown(&root.join(VARIABLES_PREFIX), &shown(VARIABLES_PREFIX))?;
        Ok(HubModule {
            source: source.to_path_buf(),
            root: root.to_path_buf(),
            format,
            variants,
            bundle,
            _extracted: extracted,
            cached: None,
        })
    }

    /// The path the module was opened from.
    pub fn source(&self) -> &Path {
        &self.source
    }

    /// The folder holding `saved_model.pb` and `variables/`.
    pub fn root(&self) -> &Path {
        &self.root
    }

    pub fn format(&self) -> ModuleFormat {
        self.format
    }

    /// Every graph variant in file order.
    pub fn variants(&self) -> &[GraphVariant] {
        &self.variants
    }

    /// The variant whose tag set equals `tags` exactly (hub's own matching rule).
    pub fn variant(&self, tags: &[&str]) -> Option<&GraphVariant> {
        let wanted: BTreeSet<String> = tags.iter().map(|t| t.to_string()).collect();
        self.variants.iter().find(|v| v.tags == wanted)
    }

    /// The inference variant: empty tag set.
    pub fn inference_variant(&self) -> Option<&GraphVariant> {
        self.variant(&[])
    }

    /// The expected image size: the attachment of the inference variant, else any variant's.
    pub fn image_size(&self) -> Option<[usize; 2]> {
        self.inference_variant()
            .and_then(|v| v.image_size)
            .or_else(|| self.variants.iter().find_map(|v| v.image_size))
    }

    /// The note on the weights (`amoeba_weights` attachment) of the inference variant, else
    /// of any variant: `random: ...` in the fixtures this project generates.
    pub fn weights_note(&self) -> Option<&str> {
        self.inference_variant()
            .and_then(|v| v.weights_note.as_deref())
            .or_else(|| self.variants.iter().find_map(|v| v.weights_note.as_deref()))
    }

    /// The variables checkpoint.
    pub fn bundle(&self) -> &TensorBundle {
        &self.bundle
    }
}

impl GraphVariant {
    fn from_meta_graph(meta_graph: MetaGraphDef, file: &Path) -> Result<GraphVariant, ModuleError> {
        let tags = meta_graph
            .meta_info_def
            .as_ref()
            .map(|m| m.tags.iter().cloned().collect())
            .unwrap_or_default();
        let signatures = meta_graph
            .signature_def
            .iter()
            .map(|(name, def)| Signature::from_proto(name, def))
            .collect::<Result<Vec<_>, String>>()
            .map_err(|problem| ModuleError::Malformed {
                path: file.to_path_buf(),
                problem,
            })?;
        let image_size = image_module_info(attachment(&meta_graph, IMAGE_INFO_KEY, file)?, file)?;
        let weights_note = weights_note(attachment(&meta_graph, WEIGHTS_KEY, file)?, file)?;
        Ok(GraphVariant {
            tags,
            signatures,
            image_size,
            weights_note,
            meta_graph,
        })
    }

    /// The signature with this name.
    pub fn signature(&self, name: &str) -> Option<&Signature> {
        self.signatures.iter().find(|s| s.name == name)
    }

    /// Tags as text: `{}` or `{"train"}`.
    pub fn tags_text(&self) -> String {
        let tags: Vec<String> = self.tags.iter().map(|t| format!("{t:?}")).collect();
        format!("{{{}}}", tags.join(", "))
    }
}

/// Reads `tfhub_module.pb`: absent means a plain SavedModel; present must be format 3.
fn read_module_format(path: &Path, shown: &Path) -> Result<ModuleFormat, ModuleError> {
    if !path.exists() {
        return Ok(ModuleFormat::SavedModel);
    }
    let def: ModuleDef = decode_file(path, shown, "tensorflow_hub.ModuleDef")?;
    if def.format != module_def::Format::V3 as i32 || !def.required_features.is_empty() {
        return Err(ModuleError::UnsupportedFormat {
            path: shown.to_path_buf(),
            format: def.format,
            features: def.required_features.join(", "),
        });
    }
    Ok(ModuleFormat::HubV3)
}

/// The variant's attachment `key`; when a key repeats, the last one (as Hub keeps it). The
/// list is scanned from its end and only until the key is found, one attachment decoded and
/// dropped at a time: a hostile file of a million attachments costs one pass, not a copy.
fn attachment(
    graph: &MetaGraphDef,
    key: &str,
    file: &Path,
) -> Result<Option<ModuleAttachment>, ModuleError> {
    let Some(collection) = graph.collection_def.get(ATTACHMENTS_COLLECTION) else {
        return Ok(None);
    };
    let Some(collection_def::Kind::BytesList(list)) = &collection.kind else {
        return Ok(None);
    };
    for bytes in list.value.iter().rev() {
        let attachment =
            decode_bytes::<ModuleAttachment>(bytes, file, "tensorflow_hub.ModuleAttachment")?;
        if attachment.key == key {
            return Ok(Some(attachment));
        }
    }
    Ok(None)
}

/// The `amoeba_weights` attachment's note, if the variant has one: UTF-8, one line, at most
/// [`MAX_WEIGHTS_NOTE_BYTES`].
fn weights_note(
    attachment: Option<ModuleAttachment>,
    file: &Path,
) -> Result<Option<String>, ModuleError> {
    let Some(attachment) = attachment else {
        return Ok(None);
    };
    let malformed = |problem: String| ModuleError::Malformed {
        path: file.to_path_buf(),
        problem: format!("the {WEIGHTS_KEY} attachment {problem}"),
    };
    let value = decode_bytes::<AttrValue>(&attachment.value, file, "tensorflow.AttrValue")?;
    let Some(attr_value::Value::S(bytes)) = value.value else {
        return Err(malformed("is not a string (AttrValue.s)".to_string()));
    };
    if bytes.len() > MAX_WEIGHTS_NOTE_BYTES {
        return Err(malformed(format!(
            "has {} bytes; at most {MAX_WEIGHTS_NOTE_BYTES} are read",
            bytes.len()
        )));
    }
    let text = String::from_utf8(bytes).map_err(|_| malformed("is not UTF-8".to_string()))?;
    if text.chars().any(char::is_control) {
        return Err(malformed("has control characters".to_string()));
    }
    Ok(Some(text))
}

/// The `image_module_info` attachment's default size, if the variant has one.
fn image_module_info(
    attachment: Option<ModuleAttachment>,
    file: &Path,
) -> Result<Option<[usize; 2]>, ModuleError> {
    let found = match attachment {
        None => None,
        Some(attachment) => {
            let info = decode_bytes::<ImageModuleInfo>(
                &attachment.value,
                file,
                "tensorflow_hub.ImageModuleInfo",
            )?;
            info.default_image_size.map(|s| (s.height, s.width))
        }
    };
    match found {
        None => Ok(None),
        Some((h, w)) if (1..=MAX_IMAGE_SIDE).contains(&h) && (1..=MAX_IMAGE_SIDE).contains(&w) => {
            Ok(Some([h as usize, w as usize]))
        }
        Some((h, w)) => Err(ModuleError::Malformed {
            path: file.to_path_buf(),
            problem: format!(
                "image_module_info has image size {h}x{w}; each side must be 1 to \
                 {MAX_IMAGE_SIDE} pixels (NASNet-family modules use 224 to 331)"
            ),
        }),
    }
}

/// 2 GiB: the most a module file may be read into memory whole (the real AmoebaNet module's
/// `saved_model.pb`, two graph variants, is 10 MB).
pub const MAX_PROTO_FILE_BYTES: u64 = 2 << 30;

/// 4 GiB: the most decoding one proto may allocate, estimated before decoding (the real
/// module's `saved_model.pb` decodes to about 185 MB; a 20 MB file of empty tensors would ask
/// for 6 GB).
pub const MAX_DECODED_PROTO_BYTES: u64 = 4 << 30;

fn decode_file<M: Message + Default>(
    path: &Path,
    shown: &Path,
    what: &'static str,
) -> Result<M, ModuleError> {
    let bytes =
        safe_fs::read_regular(path, MAX_PROTO_FILE_BYTES).map_err(|source| ModuleError::Io {
            path: shown.to_path_buf(),
            source,
        })?;
    decode_bytes(&bytes, shown, what)
}

/// Decodes `bytes` as the message `what` (its protobuf full name without the leading dot),
/// refusing it when decoding would allocate more than [`MAX_DECODED_PROTO_BYTES`].
fn decode_bytes<M: Message + Default>(
    bytes: &[u8],
    shown: &Path,
    what: &'static str,
) -> Result<M, ModuleError> {
    let full_name = format!(".{what}");
    tf_proto::decode_bounded(bytes, &full_name, MAX_DECODED_PROTO_BYTES).map_err(|e| match e {
        tf_proto::BoundedDecodeError::Malformed(source) => ModuleError::MalformedProto {
            path: shown.to_path_buf(),
            what,
            source,
        },
        tf_proto::BoundedDecodeError::Unbounded => ModuleError::Malformed {
            path: shown.to_path_buf(),
            problem: format!("malformed protobuf ({what}): {e}"),
        },
        too_large => ModuleError::TooLargeProto {
            path: shown.to_path_buf(),
            what,
            source: too_large,
        },
    })
}

/// The path to show in messages: inside an archive, `archive.tar.gz!/name`.
fn display_path(source: &Path, root: &Path, name: &str) -> PathBuf {
    if source == root {
        root.join(name)
    } else {
        PathBuf::from(format!("{}!/{}", source.display(), name))
    }
}
