//! Checks on a safetensors header that name the tensor at fault, and the header this crate's
//! writers (`convert`, the PyTorch export) write.
//!
//! The `safetensors` crate validates a header too, but its errors name no tensor (or the
//! wrong one), and it accepts a name listed twice: JSON decoders keep the last of two equal
//! keys silently, so a file could carry two different tensors under one name. This module
//! reads the header itself (capped as the `safetensors` crate caps it) and checks, naming the
//! tensor: no repeated name, a known dtype, a shape whose byte size does not overflow and
//! equals its data offsets, data inside the file, and the tensors tiling the data buffer
//! with no hole or overlap. Used for converted models here and for golden files by `verify`.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The JSON header of `tensors` (name, dtype, shape, data bytes), in that order and with
/// contiguous offsets, `__metadata__` first, padded with spaces to a multiple of 8 so the
/// data starts aligned.
pub(crate) fn header_json<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a str, Vec<usize>, u64)>,
    metadata: &std::collections::BTreeMap<String, String>,
) -> Vec<u8> {
    let mut map = serde_json::Map::new();
    map.insert("__metadata__".into(), serde_json::json!(metadata));
    let mut offset = 0u64;
    for (name, dtype, shape, bytes) in tensors {
        let end = offset + bytes;
        map.insert(
            name.to_string(),
            serde_json::json!({"dtype": dtype, "shape": shape, "data_offsets": [offset, end]}),
        );
        offset = end;
    }
    let mut json = serde_json::to_vec(&map).unwrap_or_default();
    while !json.len().is_multiple_of(8) {
        json.push(b' ');
    }
    json
}

/// The `safetensors` crate's own cap on a header's length (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Opens `path` as a regular file (never blocking on a FIFO) and checks its header. `Err`
/// holds the problem, for the caller to prefix with the file name.
pub fn check_header(path: &Path) -> Result<(), String> {
    let file = safe_fs::open_regular(path).map_err(|e| format!("cannot read: {e}"))?;
    let file_len = file
        .metadata()
        .map_err(|e| format!("cannot read: {e}"))?
        .len();
    let mut reader = file.take(8 + MAX_HEADER_BYTES);
    let mut len = [0u8; 8];
    reader
        .read_exact(&mut len)
        .map_err(|_| invalid("shorter than its 8-byte header length"))?;
    let header_len = header_len(u64::from_le_bytes(len), file_len)?;
    let mut header = Vec::new();
    reader
        .take(header_len)
        .read_to_end(&mut header)
        .map_err(|e| format!("cannot read: {e}"))?;
    if header.len() as u64 != header_len {
        return Err(invalid("the header is truncated"));
    }
    check_header_json(&header, file_len - 8 - header_len)
}

/// Checks the header of a whole safetensors file held in memory.
pub fn check_safetensors_bytes(bytes: &[u8]) -> Result<(), String> {
    let len = bytes
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_le_bytes)
        .ok_or_else(|| invalid("shorter than its 8-byte header length"))?;
    let header_len = header_len(len, bytes.len() as u64)?;
    let end = 8 + header_len as usize;
    check_header_json(&bytes[8..end], (bytes.len() - end) as u64)
}

fn header_len(len: u64, file_len: u64) -> Result<u64, String> {
    if len > MAX_HEADER_BYTES {
        return Err(invalid(&format!(
            "a header of {len} bytes (the format's cap is {MAX_HEADER_BYTES})"
        )));
    }
    if len > file_len.saturating_sub(8) {
        return Err(invalid(&format!(
            "a header of {len} bytes in a file of {file_len}"
        )));
    }
    Ok(len)
}

fn invalid(problem: &str) -> String {
    format!("not a valid safetensors file: {problem}")
}

/// One tensor's entry, as the header states it.
struct Entry {
    name: String,
    start: u64,
    end: u64,
}

/// A tensor's header fields, typed as they are read (no generic JSON tree: a 100 MB header
/// of numbers would take gigabytes as `serde_json::Value`s).
#[derive(serde::Deserialize)]
struct RawInfo {
    dtype: String,
    shape: Vec<u64>,
    data_offsets: [u64; 2],
}

/// A header's tensors in file order (without `__metadata__`), and the first repeated name.
type Entries = (Vec<(String, RawInfo)>, Option<String>);

fn check_header_json(json: &[u8], data_len: u64) -> Result<(), String> {
    let (entries, repeated) = read_entries(json)?;
    if let Some(name) = repeated {
        return Err(invalid(&format!(
            "the header lists {name:?} twice (the format forbids repeated names)"
        )));
    }
    let mut tensors = Vec::with_capacity(entries.len());
    for (name, info) in entries {
        tensors.push(check_entry(name, &info, data_len)?);
    }
    check_tiling(tensors, data_len)
}

/// Every tensor entry in file order, and the first name that appears twice.
fn read_entries(json: &[u8]) -> Result<Entries, String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    let entries = serde::Deserializer::deserialize_map(&mut de, EntriesVisitor)
        .map_err(|e| invalid(&format!("invalid JSON in header: {e}")))?;
    de.end()
        .map_err(|e| invalid(&format!("invalid JSON in header: {e}")))?;
    Ok(entries)
}

fn check_entry(name: String, info: &RawInfo, data_len: u64) -> Result<Entry, String> {
    let bad = |problem: String| invalid(&format!("tensor {name:?}: {problem}"));
    let dtype = info.dtype.as_str();
    let width = dtype_bytes(dtype).ok_or_else(|| bad(format!("unknown dtype {dtype:?}")))?;
    let shape = shape_text(&info.shape);
    let bytes = info
        .shape
        .iter()
        .try_fold(width, |acc, &dim| acc.checked_mul(dim))
        .ok_or_else(|| bad(format!("shape {shape} of {dtype} overflows a byte count")))?;
    let [start, end] = info.data_offsets;
    if start > end || end - start != bytes {
        return Err(bad(format!(
            "data_offsets [{start}, {end}] do not hold the {bytes} bytes of shape {shape} of {dtype}"
        )));
    }
    if end > data_len {
        return Err(bad(format!(
            "its data ends at byte {end}, beyond the file's {data_len} data bytes"
        )));
    }
    Ok(Entry { name, start, end })
}

/// A shape for a message: whole when short, its rank and first dimensions when long (a
/// hostile header may list millions).
fn shape_text(shape: &[u64]) -> String {
    if shape.len() <= 8 {
        return format!("{shape:?}");
    }
    format!(
        "[{}, … ({} dimensions)]",
        shape[..4]
            .iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(", "),
        shape.len()
    )
}

/// The tensors must cover the data buffer exactly, one after another.
fn check_tiling(mut tensors: Vec<Entry>, data_len: u64) -> Result<(), String> {
    tensors.sort_by_key(|t| (t.start, t.end));
    let mut at = 0u64;
    for t in &tensors {
        if t.start != at {
            return Err(invalid(&format!(
                "tensor {:?} starts at byte {}, but the data before it ends at {at} (no holes or overlaps are allowed)",
                t.name, t.start
            )));
        }
        at = t.end;
    }
    if at != data_len {
        return Err(invalid(&format!(
            "the tensors end at byte {at} of the file's {data_len} data bytes (no trailing data is allowed)"
        )));
    }
    Ok(())
}

/// Bytes per element of the dtypes the format names.
fn dtype_bytes(dtype: &str) -> Option<u64> {
    Some(match dtype {
        "BOOL" | "U8" | "I8" | "F8_E5M2" | "F8_E4M3" | "F8_E8M0" => 1,
        "I16" | "U16" | "F16" | "BF16" => 2,
        "I32" | "U32" | "F32" => 4,
        "I64" | "U64" | "F64" => 8,
        _ => return None,
    })
}

/// Reads a JSON object's entries in order, noting the first repeated key; the whole object
/// is always read, so a repeat anywhere is found.
struct EntriesVisitor;

impl<'de> serde::de::Visitor<'de> for EntriesVisitor {
    type Value = Entries;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        let mut entries = Vec::new();
        let mut repeated = None;
        while let Some(key) = map.next_key::<String>()? {
            if !seen.insert(key.clone()) && repeated.is_none() {
                repeated = Some(key.clone());
            }
            if key == "__metadata__" {
                map.next_value::<serde::de::IgnoredAny>()?;
                continue;
            }
            let info = map.next_value::<RawInfo>().map_err(|e| {
                serde::de::Error::custom(format!(
                    "tensor {key:?}: {e} (a tensor is {{\"dtype\", \"shape\", \"data_offsets\": [start, end]}})"
                ))
            })?;
            entries.push((key, info));
        }
        Ok((entries, repeated))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(header: &str, data: usize) -> Vec<u8> {
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header.as_bytes());
        bytes.extend(std::iter::repeat_n(0u8, data));
        bytes
    }

    const T: &str = r#"{"dtype":"F32","shape":[1],"data_offsets":[0,4]}"#;
    const U: &str = r#"{"dtype":"F32","shape":[2],"data_offsets":[4,12]}"#;

    #[test]
    fn a_valid_header_passes() {
        let header = format!(r#"{{"__metadata__":{{"k":"v"}},"t":{T},"u":{U}}}"#);
        assert_eq!(check_safetensors_bytes(&file(&header, 12)), Ok(()));
    }

    #[test]
    fn a_name_repeated_anywhere_is_found() {
        for header in [
            format!(r#"{{"t":{T},"t":{T},"u":{U}}}"#),
            format!(r#"{{"t":{T},"u":{U},"t":{T}}}"#),
        ] {
            let err = check_safetensors_bytes(&file(&header, 12)).unwrap_err();
            assert!(err.contains("\"t\" twice"), "{err}");
        }
        // Only the top level counts.
        let header = format!(r#"{{"__metadata__":{{"a":"1"}},"a":{T}}}"#);
        assert_eq!(check_safetensors_bytes(&file(&header, 4)), Ok(()));
    }

    #[test]
    fn each_bad_entry_is_named() {
        for (entry, fragment) in [
            (
                r#"{"dtype":"F99","shape":[1],"data_offsets":[0,4]}"#,
                "unknown dtype",
            ),
            (
                r#"{"dtype":"F32","shape":[1],"data_offsets":[0,8]}"#,
                "do not hold the 4 bytes",
            ),
            (
                r#"{"dtype":"F32","shape":[1099511627776,1099511627776],"data_offsets":[0,4]}"#,
                "overflows",
            ),
            (
                r#"{"dtype":"F32","shape":[1],"data_offsets":[8,12]}"#,
                "no holes or overlaps",
            ),
            (
                r#"{"dtype":"F32","shape":[4],"data_offsets":[0,16]}"#,
                "beyond the file's 12",
            ),
            (
                r#"{"dtype":"F32","shape":[1],"data_offsets":[18446744073709551615,3]}"#,
                "do not hold",
            ),
            (
                r#"{"dtype":"F32","shape":"x","data_offsets":[0,4]}"#,
                "a tensor is",
            ),
            (r#"{"dtype":"F32","shape":[1]}"#, "data_offsets"),
            (
                r#"{"dtype":"F32","shape":[1,1,1,1,1,1,1,1,1,1,1,1],"data_offsets":[0,8]}"#,
                "12 dimensions",
            ),
        ] {
            let header = format!(r#"{{"bad":{entry},"u":{U}}}"#);
            let err = check_safetensors_bytes(&file(&header, 12)).unwrap_err();
            assert!(
                err.contains("\"bad\"") || err.contains("\"u\""),
                "{entry}: {err}"
            );
            assert!(err.contains(fragment), "{entry}: {err}");
        }
    }

    #[test]
    fn holes_overlaps_and_trailing_bytes_are_refused() {
        let header = format!(r#"{{"t":{T},"u":{U}}}"#);
        let err = check_safetensors_bytes(&file(&header, 16)).unwrap_err();
        assert!(err.contains("trailing"), "{err}");
        let overlap = r#"{"dtype":"F32","shape":[2],"data_offsets":[0,8]}"#;
        let header = format!(r#"{{"t":{T},"v":{overlap}}}"#);
        assert!(check_safetensors_bytes(&file(&header, 8)).is_err());
    }

    #[test]
    fn a_huge_declared_header_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
        assert!(check_header(&path).unwrap_err().contains("cap"));
        std::fs::write(&path, file(&format!(r#"{{"t":{T},"t":{T}}}"#), 4)).unwrap();
        assert!(check_header(&path).unwrap_err().contains("twice"));
    }
}
