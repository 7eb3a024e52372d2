//! Checks on a safetensors header that the `safetensors` crate does not make.
//!
//! The format forbids a tensor name appearing twice in the header, but JSON decoders keep the
//! last of two equal keys silently, so a file could carry two different tensors under one
//! name and which one is used would depend on the reader. This module reads the header
//! itself (capped like the `safetensors` crate caps it) and refuses repeated names.

use std::fmt;
use std::io::Read;
use std::path::Path;

/// The `safetensors` crate's own cap on a header's length (100 MB).
pub const MAX_HEADER_BYTES: u64 = 100_000_000;

/// Opens `path` as a regular file (never blocking on a FIFO) and checks that no name appears
/// twice at the top level of its header. `Err` holds the problem, for the caller to prefix
/// with the file name.
pub fn check_header_names(path: &Path) -> Result<(), String> {
    let file = safe_fs::open_regular(path).map_err(|e| format!("cannot read: {e}"))?;
    let mut reader = file.take(8 + MAX_HEADER_BYTES);
    let mut len = [0u8; 8];
    reader.read_exact(&mut len).map_err(|_| {
        "not a valid safetensors file: shorter than its 8-byte header length".to_string()
    })?;
    let len = u64::from_le_bytes(len);
    if len > MAX_HEADER_BYTES {
        return Err(format!(
            "not a valid safetensors file: a header of {len} bytes (the format's cap is {MAX_HEADER_BYTES})"
        ));
    }
    let mut header = Vec::new();
    reader
        .take(len)
        .read_to_end(&mut header)
        .map_err(|e| format!("cannot read: {e}"))?;
    if header.len() as u64 != len {
        return Err("not a valid safetensors file: the header is truncated".to_string());
    }
    duplicate_key(&header).map_or(Ok(()), |name| {
        Err(format!(
            "not a valid safetensors file: the header lists {name:?} twice (the format forbids repeated names)"
        ))
    })
}

/// The first top-level key that appears twice in a JSON object, if any. Anything that is not
/// a JSON object yields `None` (the `safetensors` crate reports it).
fn duplicate_key(json: &[u8]) -> Option<String> {
    let mut de = serde_json::Deserializer::from_slice(json);
    serde::Deserializer::deserialize_map(&mut de, KeysVisitor)
        .ok()
        .flatten()
}

struct KeysVisitor;

impl<'de> serde::de::Visitor<'de> for KeysVisitor {
    type Value = Option<String>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut seen = std::collections::HashSet::new();
        while let Some(key) = map.next_key::<String>()? {
            map.next_value::<serde::de::IgnoredAny>()?;
            if !seen.insert(key.clone()) {
                return Ok(Some(key));
            }
        }
        Ok(None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repeated_names_are_found() {
        let json =
            br#"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":1,"a":{"x":[1,2]}}"#;
        assert_eq!(duplicate_key(json).as_deref(), Some("a"));
        assert_eq!(
            duplicate_key(br#"{"a":1,"b":{"a":2}}"#),
            None,
            "only the top level counts"
        );
        assert_eq!(duplicate_key(b"[1,2]"), None);
    }

    #[test]
    fn a_file_with_a_repeated_name_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        let header = br#"{"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"t":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#;
        let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
        bytes.extend_from_slice(header);
        bytes.extend_from_slice(&[0u8; 4]);
        std::fs::write(&path, bytes).unwrap();
        let err = check_header_names(&path).unwrap_err();
        assert!(err.contains("\"t\" twice"), "{err}");
    }

    #[test]
    fn a_huge_declared_header_is_refused_before_reading() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.safetensors");
        std::fs::write(&path, u64::MAX.to_le_bytes()).unwrap();
        assert!(check_header_names(&path).unwrap_err().contains("cap"));
    }
}
