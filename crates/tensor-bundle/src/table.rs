//! LevelDB's table format as TensorFlow uses it for `<prefix>.index`: footer, block handles,
//! blocks with prefix-compressed entries and restart arrays, and checksummed block trailers.
//!
//! The index of a bundle is small (tens of KB for a big model), so the whole table is decoded
//! into an ordered list of (key, value) pairs instead of implementing seeks.

use std::path::Path;

use crate::error::BundleError;

/// `kTableMagicNumber`: the leading 64 bits of `sha1("http://code.google.com/p/leveldb/")`.
pub const TABLE_MAGIC: u64 = 0xdb47_7524_8b80_fb57;
/// `Footer::kEncodedLength`: two padded block handles (2 × 20) and the 8-byte magic.
pub const FOOTER_LEN: usize = 48;
/// `kBlockTrailerSize`: a compression-type byte and a masked crc32c.
pub const TRAILER_LEN: usize = 5;

/// Masked CRC32C helpers: every checksum in a bundle is stored masked, because a CRC over
/// data that itself contains CRCs is weak (LevelDB's `crc32c::Mask`).
pub mod checksum {
    const MASK_DELTA: u32 = 0xa282_ead8;

    /// `Mask(crc)`: rotate right by 15 bits and add a constant.
    pub fn mask(crc: u32) -> u32 {
        crc.rotate_right(15).wrapping_add(MASK_DELTA)
    }

    /// Inverse of [`mask`].
    pub fn unmask(masked: u32) -> u32 {
        masked.wrapping_sub(MASK_DELTA).rotate_left(15)
    }

    /// `Mask(crc32c(data))`, the form stored in block trailers and bundle entries.
    pub fn masked_crc32c(data: &[u8]) -> u32 {
        mask(crc32c::crc32c(data))
    }
}

/// One table entry: (key, value).
pub type Row = (Vec<u8>, Vec<u8>);

/// Where a block lives in the index file; `size` excludes the 5-byte trailer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BlockHandle {
    pub offset: u64,
    pub size: u64,
}

/// Decodes an unsigned LEB128 varint of at most `max_bytes` bytes; returns (value, length).
pub fn read_varint(buf: &[u8], max_bytes: usize) -> Option<(u64, usize)> {
    let mut value: u64 = 0;
    for (i, &byte) in buf.iter().take(max_bytes).enumerate() {
        let bits = u64::from(byte & 0x7f);
        // The 10th byte of a varint64 may only carry the top bit of the value.
        let shifted = bits.checked_shl(7 * i as u32)?;
        if i == 9 && bits > 1 {
            return None;
        }
        value |= shifted;
        if byte & 0x80 == 0 {
            return Some((value, i + 1));
        }
    }
    None
}

/// A varint32: at most 5 bytes and a value that fits in 32 bits.
fn read_varint32(buf: &[u8]) -> Option<(u32, usize)> {
    let (v, n) = read_varint(buf, 5)?;
    Some((u32::try_from(v).ok()?, n))
}

/// Appends an unsigned LEB128 varint.
pub fn write_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        out.push((value as u8) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

impl BlockHandle {
    /// Decodes two varint64s from the start of `buf`; returns the handle and bytes used.
    pub fn decode(buf: &[u8]) -> Option<(BlockHandle, usize)> {
        let (offset, a) = read_varint(buf, 10)?;
        let (size, b) = read_varint(buf.get(a..)?, 10)?;
        Some((BlockHandle { offset, size }, a + b))
    }

    pub fn encode(&self, out: &mut Vec<u8>) {
        write_varint(out, self.offset);
        write_varint(out, self.size);
    }
}

fn fixed32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes: [u8; 4] = buf.get(at..at.checked_add(4)?)?.try_into().ok()?;
    Some(u32::from_le_bytes(bytes))
}

/// Decodes the whole table: every (key, value) of every data block, in key order.
/// Keys must be strictly increasing across the table, as LevelDB's builder guarantees.
pub fn read_table(path: &Path, file: &[u8]) -> Result<Vec<Row>, BundleError> {
    let (_metaindex, index) = read_footer(path, file)?;
    let index_block = read_block(path, file, index, "index block")?;
    let mut entries: Vec<Row> = Vec::new();
    for (_separator, value) in parse_block(path, index.offset, index_block)? {
        let (handle, _) =
            BlockHandle::decode(&value).ok_or_else(|| BundleError::MalformedEntry {
                path: path.to_owned(),
                offset: index.offset,
                detail: "an index entry's value is not a block handle".into(),
            })?;
        let block = read_block(path, file, handle, "data block")?;
        for (key, value) in parse_block(path, handle.offset, block)? {
            check_order(path, handle.offset, entries.last(), &key)?;
            entries.push((key, value));
        }
    }
    Ok(entries)
}

fn check_order(
    path: &Path,
    offset: u64,
    prev: Option<&Row>,
    key: &[u8],
) -> Result<(), BundleError> {
    match prev {
        Some((prev, _)) if prev.as_slice() >= key => Err(BundleError::MalformedEntry {
            path: path.to_owned(),
            offset,
            detail: format!(
                "keys out of order: {:?} after {:?}",
                String::from_utf8_lossy(key),
                String::from_utf8_lossy(prev)
            ),
        }),
        _ => Ok(()),
    }
}

/// Checks the length and magic and decodes the metaindex and index handles.
fn read_footer(path: &Path, file: &[u8]) -> Result<(BlockHandle, BlockHandle), BundleError> {
    let len = file.len();
    let footer = len
        .checked_sub(FOOTER_LEN)
        .and_then(|start| file.get(start..))
        .ok_or_else(|| BundleError::TooShort {
            path: path.to_owned(),
            len: len as u64,
        })?;
    let lo = fixed32(footer, 40).unwrap_or(0);
    let hi = fixed32(footer, 44).unwrap_or(0);
    let magic = (u64::from(hi) << 32) | u64::from(lo);
    if magic != TABLE_MAGIC {
        return Err(BundleError::BadMagic {
            path: path.to_owned(),
            found: magic,
        });
    }
    let malformed = || BundleError::MalformedEntry {
        path: path.to_owned(),
        offset: (len - FOOTER_LEN) as u64,
        detail: "the footer's block handles are not valid varints".into(),
    };
    let handles = footer.get(..40).ok_or_else(malformed)?;
    let (metaindex, used) = BlockHandle::decode(handles).ok_or_else(malformed)?;
    let rest = handles.get(used..).ok_or_else(malformed)?;
    let (index, _) = BlockHandle::decode(rest).ok_or_else(malformed)?;
    Ok((metaindex, index))
}

/// Returns a block's contents after checking bounds, the trailer's type and its checksum.
pub fn read_block<'a>(
    path: &Path,
    file: &'a [u8],
    handle: BlockHandle,
    what: &'static str,
) -> Result<&'a [u8], BundleError> {
    let truncated = || BundleError::TruncatedBlock {
        path: path.to_owned(),
        what,
        offset: handle.offset,
        size: handle.size,
        file_len: file.len() as u64,
    };
    let start = usize::try_from(handle.offset).map_err(|_| truncated())?;
    let size = usize::try_from(handle.size).map_err(|_| truncated())?;
    let end = start.checked_add(size).ok_or_else(truncated)?;
    let trailer_end = end.checked_add(TRAILER_LEN).ok_or_else(truncated)?;
    let with_type = file.get(start..end + 1).ok_or_else(truncated)?;
    let trailer = file.get(end..trailer_end).ok_or_else(truncated)?;
    let kind = trailer.first().copied().unwrap_or(0);
    let stored = fixed32(trailer, 1).unwrap_or(0);
    // The checksum covers the stored contents followed by the type byte.
    let computed = checksum::masked_crc32c(with_type);
    if stored != computed {
        return Err(BundleError::BlockChecksum {
            path: path.to_owned(),
            offset: handle.offset,
            stored,
            computed,
        });
    }
    match kind {
        0 => Ok(&with_type[..size]),
        1 => Err(BundleError::SnappyBlock {
            path: path.to_owned(),
            offset: handle.offset,
        }),
        _ => Err(BundleError::BadBlockType {
            path: path.to_owned(),
            offset: handle.offset,
            kind,
        }),
    }
}

/// Decodes a block's entries, rebuilding prefix-compressed keys and checking that the
/// restart array points at entry starts with no shared prefix.
pub fn parse_block(path: &Path, offset: u64, block: &[u8]) -> Result<Vec<Row>, BundleError> {
    let bad = |detail: String| BundleError::MalformedEntry {
        path: path.to_owned(),
        offset,
        detail,
    };
    let restarts = restart_array(block).map_err(|d| bad(d.into()))?;
    let entries_end = block.len() - 4 * (restarts.len() + 1);
    let mut entries = Vec::new();
    let mut starts = Vec::new();
    let mut pos = 0usize;
    let mut key: Vec<u8> = Vec::new();
    while pos < entries_end {
        let body = &block[pos..entries_end];
        let (entry, used) =
            parse_entry(body, &key).map_err(|d| bad(format!("{d} at byte {pos}")))?;
        starts.push((pos, entry.shared));
        key = entry.key;
        entries.push((key.clone(), entry.value));
        pos += used;
    }
    check_restarts(&restarts, &starts, entries_end).map_err(bad)?;
    Ok(entries)
}

/// Reads the trailing `num_restarts` and the restart offsets before it.
fn restart_array(block: &[u8]) -> Result<Vec<usize>, &'static str> {
    let n = block
        .len()
        .checked_sub(4)
        .and_then(|at| fixed32(block, at))
        .ok_or("block shorter than its restart count")?;
    let max = (block.len() - 4) / 4;
    if n == 0 || n as usize > max {
        return Err("restart count is zero or larger than the block");
    }
    let base = block.len() - 4 * (n as usize + 1);
    (0..n as usize)
        .map(|i| {
            fixed32(block, base + 4 * i)
                .map(|r| r as usize)
                .ok_or("restart array out of range")
        })
        .collect()
}

fn check_restarts(restarts: &[usize], starts: &[(usize, u32)], end: usize) -> Result<(), String> {
    // An empty block (the metaindex is one) has the single restart 0 == end.
    if starts.is_empty() {
        return match restarts {
            [0] if end == 0 => Ok(()),
            _ => Err(format!("empty block with restarts {restarts:?}")),
        };
    }
    if restarts.first() != Some(&0) {
        return Err("the first restart is not at offset 0".into());
    }
    let mut prev = None;
    for &r in restarts {
        if prev.is_some_and(|p| p >= r) {
            return Err(format!("restart offsets not increasing at {r}"));
        }
        match starts.binary_search_by_key(&r, |&(pos, _)| pos) {
            Ok(i) if starts[i].1 == 0 => {}
            _ => {
                return Err(format!(
                    "restart {r} is not the start of an entry with no shared prefix"
                ))
            }
        }
        prev = Some(r);
    }
    Ok(())
}

struct Entry {
    shared: u32,
    key: Vec<u8>,
    value: Vec<u8>,
}

/// One entry: varint32 shared, non_shared, value_len, then key delta and value.
fn parse_entry(buf: &[u8], prev_key: &[u8]) -> Result<(Entry, usize), String> {
    let (shared, a) = read_varint32(buf).ok_or("bad shared-length varint")?;
    let rest = buf.get(a..).unwrap_or_default();
    let (non_shared, b) = read_varint32(rest).ok_or("bad key-length varint")?;
    let rest = rest.get(b..).unwrap_or_default();
    let (value_len, c) = read_varint32(rest).ok_or("bad value-length varint")?;
    let rest = rest.get(c..).unwrap_or_default();
    let prefix = prev_key.get(..shared as usize).ok_or_else(|| {
        format!(
            "shared prefix {shared} longer than the previous key ({})",
            prev_key.len()
        )
    })?;
    let key_end = non_shared as usize;
    let value_end = key_end
        .checked_add(value_len as usize)
        .filter(|&e| e <= rest.len())
        .ok_or_else(|| {
            format!("key ({non_shared}) and value ({value_len}) lengths run past the entries")
        })?;
    let mut key = Vec::with_capacity(prefix.len() + key_end);
    key.extend_from_slice(prefix);
    key.extend_from_slice(&rest[..key_end]);
    let value = rest[key_end..value_end].to_vec();
    Ok((Entry { shared, key, value }, a + b + c + value_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varints() {
        let mut buf = Vec::new();
        for v in [0u64, 1, 127, 128, 300, u32::MAX as u64, u64::MAX] {
            buf.clear();
            write_varint(&mut buf, v);
            assert_eq!(read_varint(&buf, 10), Some((v, buf.len())));
        }
        assert_eq!(read_varint(&[0x80; 11], 10), None);
        assert_eq!(
            read_varint(
                &[0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02],
                10
            ),
            None
        );
        assert_eq!(read_varint32(&[0xff, 0xff, 0xff, 0xff, 0x1f]), None);
        assert_eq!(
            read_varint32(&[0xff, 0xff, 0xff, 0xff, 0x0f]),
            Some((u32::MAX, 5))
        );
    }

    #[test]
    fn mask_matches_spec_fixture() {
        // §3.6: Mask(crc32c(00 00 00 3f)) = 0x1f273806.
        assert_eq!(checksum::masked_crc32c(&[0, 0, 0, 0x3f]), 0x1f27_3806);
        let c = 0x1234_5678;
        assert_eq!(checksum::unmask(checksum::mask(c)), c);
    }

    #[test]
    fn empty_metaindex_block_parses() {
        let block = [0u8, 0, 0, 0, 1, 0, 0, 0];
        assert!(parse_block(Path::new("x"), 0, &block).unwrap().is_empty());
    }
}
