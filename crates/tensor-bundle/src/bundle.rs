//! [`TensorBundle`]: opening a checkpoint, looking tensors up and reading their bytes.

use std::borrow::Cow;
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fs::File;
use std::path::{Path, PathBuf};

use memmap2::Mmap;
use tf_proto::tensorflow::BundleHeaderProto;

use crate::entry::{Context, DataLocation, Parsed, Storage, TensorEntry, UnsupportedEntry};
use crate::error::BundleError;
use crate::slice::copy_slice_into;
use crate::table::{checksum, read_table};

/// `kTensorBundleVersion`: the format version this reader implements.
const BUNDLE_VERSION: i32 = 1;
/// Shard file names use `%05d`, so more shards than this cannot even be named.
pub const MAX_SHARDS: i32 = 99_999;
/// Tensors at least this large (64 KiB: the many 0.8 MB pointwise weights included) are dropped from the process's resident set after
/// `verify_all` has checksummed them, so verification never holds the whole file.
const RELEASE_AFTER: usize = 64 << 10;

/// Byte order of the tensor data (metadata protos are always protobuf-encoded).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Endianness {
    Little,
    Big,
}

/// The decoded, validated `BundleHeaderProto` (the value of the `""` key).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BundleHeader {
    pub num_shards: usize,
    pub endianness: Endianness,
    /// `VersionDef.producer` (1 for every TensorFlow release so far).
    pub producer: i32,
    pub min_consumer: i32,
}

struct Shard {
    /// The path shown in messages (see [`TensorBundle::open_shown`]).
    path: PathBuf,
    file: File,
    map: Mmap,
    /// Names the shard in the message if it shrinks under the map (SIGBUS).
    _mapped: safe_fs::cleanup::Registration,
}

/// 1 GiB: an index holds one small entry per tensor (the 468M-parameter AmoebaNet's is
/// 80 KB); anything near this is not a checkpoint index, and it is read whole.
pub const MAX_INDEX_BYTES: u64 = 1 << 30;

/// An open V2 checkpoint: the decoded index and the memory-mapped data shards.
pub struct TensorBundle {
    prefix: PathBuf,
    index_path: PathBuf,
    header: BundleHeader,
    /// User tensors, sorted by name (the table's bytewise key order).
    entries: Vec<TensorEntry>,
    unsupported: Vec<UnsupportedEntry>,
    shards: Vec<Shard>,
}

impl std::fmt::Debug for TensorBundle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TensorBundle")
            .field("prefix", &self.prefix)
            .field("header", &self.header)
            .field("entries", &self.entries.len())
            .field("unsupported", &self.unsupported.len())
            .finish()
    }
}

/// `<prefix><suffix>`, appended to the last path component (not `Path::with_extension`,
/// which would replace an existing extension).
fn suffixed(prefix: &Path, suffix: &str) -> PathBuf {
    let mut s = OsString::from(prefix.as_os_str());
    s.push(suffix);
    PathBuf::from(s)
}

/// `DataFilename`: `<prefix>.data-%05d-of-%05d`.
pub fn shard_path(prefix: &Path, shard_id: usize, num_shards: usize) -> PathBuf {
    suffixed(prefix, &format!(".data-{shard_id:05}-of-{num_shards:05}"))
}

impl TensorBundle {
    /// Opens `<prefix>.index`, validates every entry, and maps every data shard.
    pub fn open(prefix: &Path) -> Result<TensorBundle, BundleError> {
        Self::open_shown(prefix, prefix)
    }

    /// Like [`TensorBundle::open`], naming the files as `<shown_prefix>.index` and so on in
    /// every message (an archive's module is read from a temporary folder that the user
    /// never sees, so messages name the archive instead).
    ///
    /// Only regular files are opened (a FIFO in place of a shard is refused, not waited on).
    pub fn open_shown(prefix: &Path, shown_prefix: &Path) -> Result<TensorBundle, BundleError> {
        let index_path = suffixed(shown_prefix, ".index");
        let file = safe_fs::read_regular(&suffixed(prefix, ".index"), MAX_INDEX_BYTES).map_err(
            |source| match source.kind() {
                std::io::ErrorKind::NotFound => BundleError::MissingIndex {
                    path: index_path.clone(),
                    source,
                },
                _ => BundleError::UnreadableIndex {
                    path: index_path.clone(),
                    source,
                },
            },
        )?;
        let table = read_table(&index_path, &file)?;
        let mut rows = table.into_iter();
        let header = parse_header(&index_path, rows.next())?;
        let shards = map_shards(prefix, shown_prefix, header.num_shards)?;
        let (entries, unsupported) = parse_entries(&index_path, &header, &shards, rows)?;
        Ok(TensorBundle {
            prefix: prefix.to_owned(),
            index_path,
            header,
            entries,
            unsupported,
            shards,
        })
    }

    /// Number of data shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The open data shard `id` (a regular file), for callers that copy its bytes with the
    /// kernel; the same file the bundle maps.
    pub fn shard_file(&self, id: usize) -> Option<&File> {
        self.shards.get(id).map(|s| &s.file)
    }

    /// The memory map of data shard `id`, for one sequential pass over its bytes (hashing).
    pub fn shard_map(&self, id: usize) -> Option<&Mmap> {
        self.shards.get(id).map(|s| &s.map)
    }

    /// The path of data shard `id` as messages show it.
    pub fn shard_shown_path(&self, id: usize) -> Option<&Path> {
        self.shards.get(id).map(|s| s.path.as_path())
    }

    pub fn prefix(&self) -> &Path {
        &self.prefix
    }

    pub fn index_path(&self) -> &Path {
        &self.index_path
    }

    pub fn header(&self) -> &BundleHeader {
        &self.header
    }

    /// User tensors in key order: no header, no slice entries; partitioned tensors once.
    pub fn entries(&self) -> impl ExactSizeIterator<Item = &TensorEntry> + '_ {
        self.entries.iter()
    }

    pub fn entry(&self, name: &str) -> Option<&TensorEntry> {
        let i = self
            .entries
            .binary_search_by(|e| e.name.as_str().cmp(name))
            .ok()?;
        self.entries.get(i)
    }

    /// Number of readable user tensors (the length of [`TensorBundle::entries`]).
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// Entries whose dtype this reader cannot return bytes for, in key order.
    pub fn unsupported(&self) -> &[UnsupportedEntry] {
        &self.unsupported
    }

    /// The tensor's bytes: little-endian, C order, checksum verified. Borrowed from the
    /// memory map when possible; owned when assembled from slices or byte-swapped.
    pub fn tensor_bytes(&self, name: &str) -> Result<Cow<'_, [u8]>, BundleError> {
        let entry = self.lookup(name)?;
        match &entry.storage {
            Storage::Plain(loc) if !self.needs_swap(entry) => {
                Ok(Cow::Borrowed(self.verified(name, *loc)?))
            }
            _ => {
                let mut out = vec![0u8; entry.byte_len()];
                self.fill(entry, &mut out)?;
                Ok(Cow::Owned(out))
            }
        }
    }

    /// Like [`TensorBundle::tensor_bytes`], into a caller buffer of exactly `byte_len()` bytes.
    pub fn read_into(&self, name: &str, out: &mut [u8]) -> Result<(), BundleError> {
        let entry = self.lookup(name)?;
        if out.len() != entry.byte_len() {
            return Err(BundleError::BufferSize {
                path: self.index_path.clone(),
                name: name.to_owned(),
                expected: entry.byte_len(),
                actual: out.len(),
            });
        }
        self.fill(entry, out)
    }

    /// Checks one tensor's checksum(s) without copying it.
    pub fn verify(&self, name: &str) -> Result<(), BundleError> {
        let entry = self.lookup(name)?;
        self.verify_entry(entry)
    }

    /// Checks every tensor's checksum, streaming over the maps in file order so that memory
    /// stays near the largest tensor. Stops at the first mismatch.
    pub fn verify_all(&self) -> Result<(), BundleError> {
        for shard in &self.shards {
            // Only a hint; a failure changes nothing but speed.
            let _ = shard.map.advise(memmap2::Advice::Sequential);
        }
        self.entries.iter().try_for_each(|e| self.verify_entry(e))
    }

    /// Drops a tensor's pages from this process's resident memory once the caller is done
    /// with its bytes (they stay in the OS page cache). Streaming readers such as a converter
    /// call this after each tensor so that memory stays near the largest tensor, not the file.
    /// Reading the tensor again afterwards is fine: the pages fault back in.
    pub fn release_tensor(&self, name: &str) {
        if let Some(entry) = self.entry(name) {
            entry
                .locations()
                .into_iter()
                .for_each(|loc| self.release(loc));
        }
    }

    fn verify_entry(&self, entry: &TensorEntry) -> Result<(), BundleError> {
        for loc in entry.locations() {
            self.verified(&entry.name, loc)?;
            self.release(loc);
        }
        Ok(())
    }

    /// Drops the pages of a large, already verified buffer from this process.
    fn release(&self, loc: DataLocation) {
        let Some(shard) = self.shards.get(loc.shard_id) else {
            return;
        };
        if loc.size >= RELEASE_AFTER {
            // SAFETY: the map is a read-only shared file mapping. MADV_DONTNEED only drops
            // this process's page-table entries; the next access faults the same file bytes
            // back in, so no live reference can observe a change.
            let _ = unsafe {
                shard.map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    loc.offset,
                    loc.size,
                )
            };
        }
    }

    fn lookup(&self, name: &str) -> Result<&TensorEntry, BundleError> {
        if let Some(entry) = self.entry(name) {
            return Ok(entry);
        }
        match self.unsupported.iter().find(|u| u.name == name) {
            Some(u) => Err(BundleError::UnsupportedDType {
                path: self.index_path.clone(),
                name: name.to_owned(),
                dtype: u.dtype_name(),
            }),
            None => Err(BundleError::NotFound {
                path: self.index_path.clone(),
                name: name.to_owned(),
            }),
        }
    }

    fn needs_swap(&self, entry: &TensorEntry) -> bool {
        self.header.endianness == Endianness::Big && entry.dtype.size_bytes() > 1
    }

    /// Writes the whole tensor (little-endian) into `out`, which has `byte_len()` bytes.
    fn fill(&self, entry: &TensorEntry, out: &mut [u8]) -> Result<(), BundleError> {
        match &entry.storage {
            Storage::Plain(loc) => out.copy_from_slice(self.verified(&entry.name, *loc)?),
            Storage::Partitioned(parts) => {
                for (slice, loc) in parts {
                    let src = self.verified(&entry.name, *loc)?;
                    if !copy_slice_into(out, &entry.shape, slice, src, entry.dtype.size_bytes()) {
                        return Err(BundleError::BadSlices {
                            path: self.index_path.clone(),
                            name: entry.name.clone(),
                            detail: format!("slice {slice:?} does not fit the full shape"),
                        });
                    }
                }
            }
        }
        if self.needs_swap(entry) {
            out.chunks_exact_mut(entry.dtype.size_bytes())
                .for_each(<[u8]>::reverse);
        }
        Ok(())
    }

    /// The stored bytes of one buffer, after checking their CRC.
    fn verified(&self, name: &str, loc: DataLocation) -> Result<&[u8], BundleError> {
        let shard = self.shards.get(loc.shard_id);
        let bytes = shard.and_then(|s| s.map.get(loc.offset..loc.offset.checked_add(loc.size)?));
        let (Some(shard), Some(bytes)) = (shard, bytes) else {
            // Checked at open; only a file truncated since then gets here.
            return Err(BundleError::EntryOutOfBounds {
                path: shard.map(|s| s.path.clone()).unwrap_or_default(),
                name: name.to_owned(),
                offset: loc.offset as i64,
                size: loc.size as i64,
                shard_len: shard.map_or(0, |s| s.map.len() as u64),
            });
        };
        let computed = checksum::masked_crc32c(bytes);
        if computed != loc.masked_crc32c {
            return Err(BundleError::TensorChecksum {
                path: shard.path.clone(),
                name: name.to_owned(),
                stored: loc.masked_crc32c,
                computed,
            });
        }
        Ok(bytes)
    }
}

/// Decodes and checks the `""` entry, which must come first.
fn parse_header(
    path: &Path,
    first: Option<(Vec<u8>, Vec<u8>)>,
) -> Result<BundleHeader, BundleError> {
    let missing = |first_key: String| BundleError::MissingHeader {
        path: path.to_owned(),
        first_key,
    };
    let (key, value) = first.ok_or_else(|| missing("<none: the table is empty>".into()))?;
    if !key.is_empty() {
        return Err(missing(String::from_utf8_lossy(&key).into_owned()));
    }
    let proto: BundleHeaderProto =
        crate::entry::decode_value(path, "", value.as_slice(), ".tensorflow.BundleHeaderProto")?;
    check_header(path, &proto)
}

fn check_header(path: &Path, proto: &BundleHeaderProto) -> Result<BundleHeader, BundleError> {
    let bad = |detail: String| BundleError::BadHeader {
        path: path.to_owned(),
        detail,
    };
    if !(1..=MAX_SHARDS).contains(&proto.num_shards) {
        return Err(bad(format!(
            "num_shards is {} (must be 1..={MAX_SHARDS})",
            proto.num_shards
        )));
    }
    let endianness = match proto.endianness {
        0 => Endianness::Little,
        1 => Endianness::Big,
        e => return Err(bad(format!("unknown endianness {e} (0 = LITTLE, 1 = BIG)"))),
    };
    let version = proto.version.clone().unwrap_or_default();
    if version.producer < 0 {
        return Err(bad(format!(
            "version producer {} is negative",
            version.producer
        )));
    }
    if version.min_consumer > BUNDLE_VERSION || version.bad_consumers.contains(&BUNDLE_VERSION) {
        return Err(bad(format!(
            "unsupported version (producer {}, min_consumer {}, bad_consumers {:?}); this reader implements bundle version {BUNDLE_VERSION}",
            version.producer, version.min_consumer, version.bad_consumers
        )));
    }
    Ok(BundleHeader {
        num_shards: proto.num_shards as usize,
        endianness,
        producer: version.producer,
        min_consumer: version.min_consumer,
    })
}

fn map_shards(
    prefix: &Path,
    shown_prefix: &Path,
    num_shards: usize,
) -> Result<Vec<Shard>, BundleError> {
    (0..num_shards)
        .map(|id| {
            let real = shard_path(prefix, id, num_shards);
            let path = shard_path(shown_prefix, id, num_shards);
            let missing = |source: std::io::Error| match source.kind() {
                std::io::ErrorKind::NotFound => BundleError::MissingShard {
                    path: path.clone(),
                    source,
                },
                _ => BundleError::UnreadableShard {
                    path: path.clone(),
                    source,
                },
            };
            let file: File = safe_fs::open_regular(&real).map_err(missing)?;
            let mapped = safe_fs::cleanup::register_mapped(&path);
            // SAFETY: read-only mapping of a regular file; the crate documents that the files
            // must not be modified while the bundle is open (the usual mmap contract). If
            // another process truncates one anyway, the binary's SIGBUS handler names it
            // (registered above) and removes unfinished outputs instead of leaving them.
            let map = unsafe { Mmap::map(&file) }.map_err(missing)?;
            Ok(Shard {
                path,
                file,
                map,
                _mapped: mapped,
            })
        })
        .collect()
}

/// Splits the rows into slice entries (keys starting with 0x00) and user entries, then
/// validates the user entries against the header and the shards.
fn parse_entries(
    index_path: &Path,
    header: &BundleHeader,
    shards: &[Shard],
    rows: impl Iterator<Item = (Vec<u8>, Vec<u8>)>,
) -> Result<(Vec<TensorEntry>, Vec<UnsupportedEntry>), BundleError> {
    let (slice_rows, user_rows): (Vec<_>, Vec<_>) = rows.partition(|(k, _)| k.first() == Some(&0));
    let slice_values: BTreeMap<Vec<u8>, Vec<u8>> = slice_rows.into_iter().collect();
    let shard_lens: Vec<u64> = shards.iter().map(|s| s.map.len() as u64).collect();
    let shard_paths: Vec<PathBuf> = shards.iter().map(|s| s.path.clone()).collect();
    let cx = Context {
        index_path,
        num_shards: header.num_shards,
        shard_lens: &shard_lens,
        shard_paths: &shard_paths,
        slice_values: &slice_values,
    };
    let mut entries = Vec::with_capacity(user_rows.len());
    let mut unsupported = Vec::new();
    for (key, value) in user_rows {
        let name = String::from_utf8(key).map_err(|e| BundleError::BadKey {
            path: index_path.to_owned(),
            key: String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })?;
        let proto = cx.decode(&name, &value)?;
        match cx.parse(&name, &proto)? {
            Parsed::Tensor(t) => entries.push(t),
            Parsed::Unsupported(u) => unsupported.push(u),
        }
    }
    Ok((entries, unsupported))
}
