//! Element types with a fixed-size, memcpy-able byte layout in a bundle.

use tf_proto::tensorflow::DataType;

/// A tensor element type this reader can return bytes for.
///
/// Only the dtypes TensorFlow stores as a raw C-order buffer of fixed-size elements
/// (`DataTypeCanUseMemcpy`) and that have a plain safetensors counterpart are listed.
/// Strings, variants, complex, quantized and float8/int4 types are not: see
/// [`DType::from_tf`] and [`crate::TensorBundle::unsupported`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DType {
    F16,
    BF16,
    F32,
    F64,
    I8,
    I16,
    I32,
    I64,
    U8,
    U16,
    U32,
    U64,
    Bool,
}

impl DType {
    /// Every supported dtype, for tests and listings.
    pub const ALL: [DType; 13] = [
        DType::F16,
        DType::BF16,
        DType::F32,
        DType::F64,
        DType::I8,
        DType::I16,
        DType::I32,
        DType::I64,
        DType::U8,
        DType::U16,
        DType::U32,
        DType::U64,
        DType::Bool,
    ];

    /// Bytes per element (bool is one byte, as TensorFlow stores it).
    pub fn size_bytes(self) -> usize {
        match self {
            DType::I8 | DType::U8 | DType::Bool => 1,
            DType::F16 | DType::BF16 | DType::I16 | DType::U16 => 2,
            DType::F32 | DType::I32 | DType::U32 => 4,
            DType::F64 | DType::I64 | DType::U64 => 8,
        }
    }

    /// The numpy-style name, e.g. `"float32"` (what `list_checkpoint.py` writes).
    pub fn name(self) -> &'static str {
        match self {
            DType::F16 => "float16",
            DType::BF16 => "bfloat16",
            DType::F32 => "float32",
            DType::F64 => "float64",
            DType::I8 => "int8",
            DType::I16 => "int16",
            DType::I32 => "int32",
            DType::I64 => "int64",
            DType::U8 => "uint8",
            DType::U16 => "uint16",
            DType::U32 => "uint32",
            DType::U64 => "uint64",
            DType::Bool => "bool",
        }
    }

    /// The safetensors dtype string, e.g. `"F32"`.
    pub fn safetensors_name(self) -> &'static str {
        match self {
            DType::F16 => "F16",
            DType::BF16 => "BF16",
            DType::F32 => "F32",
            DType::F64 => "F64",
            DType::I8 => "I8",
            DType::I16 => "I16",
            DType::I32 => "I32",
            DType::I64 => "I64",
            DType::U8 => "U8",
            DType::U16 => "U16",
            DType::U32 => "U32",
            DType::U64 => "U64",
            DType::Bool => "BOOL",
        }
    }

    /// The TensorFlow enum value this dtype is stored as.
    pub fn to_tf(self) -> DataType {
        match self {
            DType::F16 => DataType::DtHalf,
            DType::BF16 => DataType::DtBfloat16,
            DType::F32 => DataType::DtFloat,
            DType::F64 => DataType::DtDouble,
            DType::I8 => DataType::DtInt8,
            DType::I16 => DataType::DtInt16,
            DType::I32 => DataType::DtInt32,
            DType::I64 => DataType::DtInt64,
            DType::U8 => DataType::DtUint8,
            DType::U16 => DataType::DtUint16,
            DType::U32 => DataType::DtUint32,
            DType::U64 => DataType::DtUint64,
            DType::Bool => DataType::DtBool,
        }
    }

    /// Maps a raw `tensorflow.DataType` value; `None` for every dtype this reader does
    /// not support (string, variant, resource, complex, quantized, float8, int4, `*_REF`).
    pub fn from_tf(value: i32) -> Option<DType> {
        DType::ALL.into_iter().find(|d| d.to_tf() as i32 == value)
    }
}

/// A readable name for a raw `tensorflow.DataType` value, for error messages.
pub fn tf_dtype_name(value: i32) -> String {
    match DataType::try_from(value) {
        Ok(dt) => format!("{} ({value})", dt.as_str_name()),
        Err(_) => format!("unknown DataType {value}"),
    }
}

impl std::fmt::Display for DType {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips_through_tf_values() {
        for d in DType::ALL {
            assert_eq!(DType::from_tf(d.to_tf() as i32), Some(d));
        }
        assert_eq!(DType::from_tf(DataType::DtFloat as i32), Some(DType::F32));
        assert_eq!(DType::from_tf(DataType::DtHalf as i32), Some(DType::F16));
        assert_eq!(DType::from_tf(7), None, "string");
        assert_eq!(DType::from_tf(101), None, "float_ref");
        assert_eq!(DType::F32.name(), "float32");
        assert_eq!(DType::Bool.safetensors_name(), "BOOL");
        assert_eq!(DType::BF16.size_bytes(), 2);
        assert!(tf_dtype_name(7).contains("DT_STRING"));
    }
}
