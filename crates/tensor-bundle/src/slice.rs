//! Partitioned tensors: the keys of their slice entries (`EncodeTensorNameSlice`, built from
//! TensorFlow's `ordered_code`) and the geometry of slices inside the full shape.

/// One stored part of a partitioned tensor: a box `[start, start+length)` per dimension.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct TensorSlice {
    pub start: Vec<usize>,
    pub length: Vec<usize>,
}

impl TensorSlice {
    /// The slice's own shape (its lengths).
    pub fn shape(&self) -> &[usize] {
        &self.length
    }

    fn overlaps(&self, other: &TensorSlice) -> bool {
        let dims = self.start.iter().zip(&self.length);
        let others = other.start.iter().zip(&other.length);
        dims.zip(others)
            .all(|((&a, &la), (&b, &lb))| a < b.saturating_add(lb) && b < a.saturating_add(la))
    }
}

/// Ordered-code primitives, byte-compatible with TensorFlow's `ordered_code.cc`.
pub mod ordered_code {
    /// `WriteNumIncreasing`: a length byte, then the value big-endian without leading zeros.
    pub fn write_num_increasing(out: &mut Vec<u8>, value: u64) {
        let bytes = value.to_be_bytes();
        let skip = (value.leading_zeros() / 8) as usize;
        out.push((8 - skip) as u8);
        out.extend_from_slice(&bytes[skip..]);
    }

    /// Inverse of [`write_num_increasing`]; returns (value, bytes used).
    pub fn read_num_increasing(buf: &[u8]) -> Option<(u64, usize)> {
        let len = usize::from(*buf.first()?);
        let digits = buf.get(1..1 + len).filter(|_| len <= 8)?;
        let value = digits.iter().fold(0u64, |v, &b| (v << 8) | u64::from(b));
        Some((value, 1 + len))
    }

    /// `WriteString`: 0x00 → `00 ff`, 0xff → `ff 00`, terminated by `00 01`.
    pub fn write_string(out: &mut Vec<u8>, s: &[u8]) {
        for &b in s {
            match b {
                0x00 => out.extend_from_slice(&[0x00, 0xff]),
                0xff => out.extend_from_slice(&[0xff, 0x00]),
                _ => out.push(b),
            }
        }
        out.extend_from_slice(&[0x00, 0x01]);
    }

    /// Inverse of [`write_string`]; returns (string, bytes used).
    pub fn read_string(buf: &[u8]) -> Option<(Vec<u8>, usize)> {
        let mut out = Vec::new();
        let mut i = 0;
        loop {
            let b = *buf.get(i)?;
            let next = buf.get(i + 1).copied();
            match (b, next) {
                (0x00, Some(0x01)) => return Some((out, i + 2)),
                (0x00, Some(0xff)) => out.push(0x00),
                (0xff, Some(0x00)) => out.push(0xff),
                (0x00 | 0xff, _) => return None,
                _ => {
                    out.push(b);
                    i += 1;
                    continue;
                }
            }
            i += 2;
        }
    }

    /// Length in bytes of the signed encoding: the smallest L whose 7L bits hold the value
    /// in two's complement (L ≤ 10).
    fn signed_len(value: i64) -> usize {
        let magnitude = if value < 0 { !value } else { value } as u64;
        let bits = 64 - magnitude.leading_zeros() as usize;
        bits / 7 + 1
    }

    /// The header: L one-bits at the top of an L-byte big-endian number.
    fn header(len: usize) -> u128 {
        ((1u128 << len) - 1) << (7 * len)
    }

    /// `WriteSignedNumIncreasing`: L-byte two's complement XOR a run of L one-bits.
    pub fn write_signed_num_increasing(out: &mut Vec<u8>, value: i64) {
        let len = signed_len(value);
        let mask = (1u128 << (8 * len)) - 1;
        let encoded = ((value as i128 as u128) & mask) ^ header(len);
        out.extend_from_slice(&encoded.to_be_bytes()[16 - len..]);
    }

    /// Inverse of [`write_signed_num_increasing`]; returns (value, bytes used). Rejects
    /// non-canonical encodings, so decoding then encoding gives back the same bytes.
    pub fn read_signed_num_increasing(buf: &[u8]) -> Option<(i64, usize)> {
        let first = *buf.first()?;
        // A leading 0 bit means negative: the header bits are then inverted.
        let invert = if first & 0x80 == 0 { 0xff } else { 0x00 };
        let top = u16::from_be_bytes([first ^ invert, buf.get(1).copied().unwrap_or(0) ^ invert]);
        let len = top.leading_ones() as usize;
        if len == 0 || len > 10 {
            return None;
        }
        let bytes = buf.get(..len)?;
        let raw = bytes.iter().fold(0u128, |v, &b| (v << 8) | u128::from(b)) ^ header(len);
        // Sign-extend from 8L bits, then make sure the value fits i64 and is canonical.
        let shift = 128 - 8 * len as u32;
        let value = i64::try_from(((raw << shift) as i128) >> shift).ok()?;
        let mut again = Vec::with_capacity(len);
        write_signed_num_increasing(&mut again, value);
        (again == bytes).then_some((value, len))
    }
}

/// `EncodeTensorNameSlice`: the key of one slice entry. `extents` are (start, length) pairs,
/// with length −1 for a dimension taken whole.
pub fn encode_slice_key(name: &[u8], extents: &[(i64, i64)]) -> Vec<u8> {
    let mut key = Vec::with_capacity(name.len() + 4 + 4 * extents.len());
    ordered_code::write_num_increasing(&mut key, 0);
    ordered_code::write_string(&mut key, name);
    ordered_code::write_num_increasing(&mut key, extents.len() as u64);
    for &(start, length) in extents {
        ordered_code::write_signed_num_increasing(&mut key, start);
        ordered_code::write_signed_num_increasing(&mut key, length);
    }
    key
}

/// A decoded slice key: the tensor name and its (start, length) extents.
pub type SliceKey = (Vec<u8>, Vec<(i64, i64)>);

/// Inverse of [`encode_slice_key`]: the tensor name and the (start, length) pairs.
pub fn decode_slice_key(key: &[u8]) -> Option<SliceKey> {
    let (zero, mut pos) = ordered_code::read_num_increasing(key)?;
    if zero != 0 {
        return None;
    }
    let (name, used) = ordered_code::read_string(key.get(pos..)?)?;
    pos += used;
    let (rank, used) = ordered_code::read_num_increasing(key.get(pos..)?)?;
    pos += used;
    let mut extents = Vec::new();
    for _ in 0..rank {
        let (start, a) = ordered_code::read_signed_num_increasing(key.get(pos..)?)?;
        let (length, b) = ordered_code::read_signed_num_increasing(key.get(pos + a..)?)?;
        extents.push((start, length));
        pos += a + b;
    }
    (pos == key.len()).then_some((name, extents))
}

/// Resolves raw (start, length) extents against the full shape: −1 (or a missing length)
/// means the whole dimension. Errors describe what is wrong, for [`crate::BundleError::BadSlices`].
pub fn resolve_slice(extents: &[(i64, i64)], full: &[usize]) -> Result<TensorSlice, String> {
    if extents.len() != full.len() {
        return Err(format!(
            "a slice has {} extents for rank {}",
            extents.len(),
            full.len()
        ));
    }
    let mut slice = TensorSlice {
        start: Vec::with_capacity(full.len()),
        length: Vec::with_capacity(full.len()),
    };
    for (d, (&(start, length), &dim)) in extents.iter().zip(full).enumerate() {
        let (s, l) = match length {
            -1 if start == 0 => (0, dim),
            _ => (
                usize::try_from(start)
                    .map_err(|_| format!("negative start {start} in dimension {d}"))?,
                usize::try_from(length)
                    .map_err(|_| format!("bad length {length} in dimension {d}"))?,
            ),
        };
        if s.checked_add(l).is_none_or(|end| end > dim) {
            return Err(format!(
                "extent [{s}, {s}+{l}) in dimension {d} is outside the full dimension {dim}"
            ));
        }
        slice.start.push(s);
        slice.length.push(l);
    }
    Ok(slice)
}

/// Checks that the slices do not overlap and together cover exactly `total` elements.
pub fn check_cover(slices: &[TensorSlice], total: usize) -> Result<(), String> {
    for (i, a) in slices.iter().enumerate() {
        if let Some(j) = slices[i + 1..].iter().position(|b| a.overlaps(b)) {
            return Err(format!("slices {i} and {} overlap", i + 1 + j));
        }
    }
    let covered = slices.iter().try_fold(0usize, |acc, s| {
        acc.checked_add(s.length.iter().try_fold(1usize, |n, &l| n.checked_mul(l))?)
    });
    match covered {
        Some(c) if c == total => Ok(()),
        Some(c) => Err(format!("slices cover {c} of the {total} elements")),
        None => Err("slice sizes overflow".into()),
    }
}

/// Copies one slice (dense, C order) into its box of the full tensor (dense, C order).
/// The caller has checked the geometry at open; should it still not fit, this copies
/// nothing more and returns `false` instead of panicking.
#[must_use]
pub fn copy_slice_into(
    out: &mut [u8],
    full: &[usize],
    slice: &TensorSlice,
    src: &[u8],
    elem: usize,
) -> bool {
    let rank = full.len();
    if slice.start.len() != rank || slice.length.len() != rank {
        return false;
    }
    let Some(last) = rank.checked_sub(1) else {
        // A scalar: the slice is the whole tensor.
        if src.len() != out.len() {
            return false;
        }
        out.copy_from_slice(src);
        return true;
    };
    // Byte strides of the full tensor; a slice is a series of runs along the last dimension.
    let mut strides = vec![elem; rank];
    for d in (0..last).rev() {
        strides[d] = strides[d + 1].saturating_mul(full[d + 1]);
    }
    let run = slice.length[last].saturating_mul(elem);
    if run == 0 || slice.length.contains(&0) {
        return src.is_empty();
    }
    let mut index = vec![0usize; last];
    for chunk in src.chunks_exact(run) {
        let at = (0..rank).try_fold(0usize, |acc, d| {
            let i = slice.start[d].checked_add(index.get(d).copied().unwrap_or(0))?;
            acc.checked_add(i.checked_mul(strides[d])?)
        });
        let dst = at.and_then(|at| out.get_mut(at..at.checked_add(run)?));
        let Some(dst) = dst else { return false };
        dst.copy_from_slice(chunk);
        // Odometer over the outer dimensions.
        for d in (0..last).rev() {
            index[d] += 1;
            if index[d] < slice.length[d] {
                break;
            }
            index[d] = 0;
        }
    }
    src.len().is_multiple_of(run)
}

#[cfg(test)]
mod tests {
    use super::ordered_code::*;
    use super::*;

    fn signed(v: i64) -> Vec<u8> {
        let mut out = Vec::new();
        write_signed_num_increasing(&mut out, v);
        out
    }

    #[test]
    fn signed_examples_checked_against_tensorflow() {
        assert_eq!(signed(0), [0x80]);
        assert_eq!(signed(5), [0x85]);
        assert_eq!(signed(-1), [0x7f]);
        assert_eq!(signed(100), [0xc0, 0x64]);
        assert_eq!(signed(5000), [0xd3, 0x88]);
        assert_eq!(signed(65000), [0xe0, 0xfd, 0xe8]);
        for v in [
            0,
            5,
            -1,
            100,
            5000,
            65000,
            -64,
            63,
            64,
            -65,
            i64::MAX,
            i64::MIN,
        ] {
            assert_eq!(
                read_signed_num_increasing(&signed(v)),
                Some((v, signed(v).len())),
                "{v}"
            );
        }
    }

    #[test]
    fn signed_order_is_numeric_order() {
        let values = [
            i64::MIN,
            -1 << 40,
            -5000,
            -65,
            -64,
            -1,
            0,
            1,
            63,
            64,
            5000,
            1 << 40,
            i64::MAX,
        ];
        for pair in values.windows(2) {
            assert!(signed(pair[0]) < signed(pair[1]), "{pair:?}");
        }
    }

    #[test]
    fn slice_key_round_trip() {
        let key = encode_slice_key(b"a\x00b\xffc", &[(0, -1), (100, 5000)]);
        assert_eq!(&key[..2], [0x00, b'a']);
        assert_eq!(
            decode_slice_key(&key),
            Some((b"a\x00b\xffc".to_vec(), vec![(0, -1), (100, 5000)]))
        );
        assert_eq!(decode_slice_key(&key[..key.len() - 1]), None);
    }

    #[test]
    fn slice_key_bytes() {
        // name "w", rank 1, start 0, length 2.
        let key = encode_slice_key(b"w", &[(0, 2)]);
        assert_eq!(key, [0x00, 0x77, 0x00, 0x01, 0x01, 0x01, 0x80, 0x82]);
    }

    #[test]
    fn copy_slices_assembles_full_tensor() {
        let full = [3usize, 4];
        let want: Vec<u8> = (0..12).collect();
        let top = TensorSlice {
            start: vec![0, 0],
            length: vec![2, 4],
        };
        let bottom_left = TensorSlice {
            start: vec![2, 0],
            length: vec![1, 1],
        };
        let bottom_right = TensorSlice {
            start: vec![2, 1],
            length: vec![1, 3],
        };
        let mut out = vec![0u8; 12];
        assert!(copy_slice_into(&mut out, &full, &top, &want[0..8], 1));
        assert!(copy_slice_into(
            &mut out,
            &full,
            &bottom_left,
            &want[8..9],
            1
        ));
        assert!(copy_slice_into(
            &mut out,
            &full,
            &bottom_right,
            &want[9..12],
            1
        ));
        assert!(
            !copy_slice_into(&mut out, &full, &top, &want[0..9], 1),
            "ragged source"
        );
        let outside = TensorSlice {
            start: vec![3, 0],
            length: vec![1, 4],
        };
        assert!(!copy_slice_into(&mut out, &full, &outside, &want[0..4], 1));
        assert_eq!(out, want);
        assert!(check_cover(&[top.clone(), bottom_left, bottom_right], 12).is_ok());
        assert!(check_cover(&[top.clone(), top], 12)
            .unwrap_err()
            .contains("overlap"));
    }
}
