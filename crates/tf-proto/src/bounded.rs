//! Decoding with a memory cap: the bytes are walked against the schema first, and the decode
//! runs only when what it would allocate stays under the cap.
//!
//! A protobuf message can be far larger decoded than encoded: an empty sub-message is two
//! bytes on the wire and a few hundred as a Rust struct, so a 20 MB `saved_model.pb` of empty
//! tensors asks prost for gigabytes. The walk below visits every field once, with the schema
//! compiled into this crate, and adds up an upper estimate of the decoded size: each
//! repeated or map element's struct, each string's bytes, each packed scalar at its widest,
//! all doubled for vectors' spare capacity. Unknown fields cost nothing (prost skips them).
//! The walk itself allocates nothing per field and is bounded by the input's length and
//! prost's nesting limit.

use prost::Message;
use prost_types::field_descriptor_proto::{Label, Type};
use prost_types::FileDescriptorSet;
use std::collections::HashMap;
use std::sync::OnceLock;

/// prost's own nesting limit; deeper input fails to decode anyway.
const MAX_DEPTH: usize = 100;

/// Why a bounded decode did not return a message.
#[derive(Debug)]
pub enum BoundedDecodeError {
    /// Decoding would allocate more than the cap.
    TooLarge { estimate: u64, cap: u64 },
    /// The bytes could not be walked to their end (malformed, nested deeper than prost
    /// allows, or a group in a known field), so what a decode would allocate is unknown.
    Unbounded,
    /// The bytes are not a valid message.
    Malformed(prost::DecodeError),
}

impl std::fmt::Display for BoundedDecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            BoundedDecodeError::TooLarge { estimate, cap } => write!(
                f,
                "decoding it would need about {} MiB of memory, more than the {} MiB cap \
                 (real modules need a small fraction of that; the file is hostile or corrupt)",
                estimate >> 20,
                cap >> 20
            ),
            BoundedDecodeError::Unbounded => f.write_str(
                "the bytes are not a well-formed message (malformed, nested too deep, or a \
                 group where a field is expected), so they were not decoded",
            ),
            BoundedDecodeError::Malformed(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for BoundedDecodeError {}

/// Decodes `bytes` as the message `full_name` (for example `.tensorflow.SavedModel`) when the
/// decoded value would need at most `cap` bytes of memory.
pub fn decode_bounded<M: Message + Default>(
    bytes: &[u8],
    full_name: &str,
    cap: u64,
) -> Result<M, BoundedDecodeError> {
    let estimate = decoded_size_estimate(bytes, full_name).ok_or(BoundedDecodeError::Unbounded)?;
    if estimate > cap {
        return Err(BoundedDecodeError::TooLarge { estimate, cap });
    }
    M::decode(bytes).map_err(BoundedDecodeError::Malformed)
}

/// An upper estimate of the heap and struct bytes that decoding `bytes` as `full_name`
/// allocates; `None` when the bytes cannot be walked to their end (or the name is unknown),
/// since nothing then bounds what a decoder might do with them.
pub fn decoded_size_estimate(bytes: &[u8], full_name: &str) -> Option<u64> {
    let schema = schema();
    let root = *schema.by_name.get(full_name)?;
    let mut cost = schema.messages[root].struct_size;
    walk(schema, root, bytes, 0, &mut cost).then(|| cost.saturating_mul(2))
}

struct Schema {
    messages: Vec<MessageInfo>,
    by_name: HashMap<String, usize>,
}

struct MessageInfo {
    fields: HashMap<u32, FieldInfo>,
    /// Estimated `size_of` of the generated struct.
    struct_size: u64,
    is_map_entry: bool,
}

#[derive(Clone, Copy)]
struct FieldInfo {
    kind: FieldKind,
    repeated: bool,
}

#[derive(Clone, Copy)]
enum FieldKind {
    /// A scalar of this many bytes in memory (enums are i32).
    Scalar(u64),
    /// String or bytes: its length on the heap.
    Bytes,
    /// Index into `Schema::messages`.
    Message(usize),
}

fn schema() -> &'static Schema {
    static SCHEMA: OnceLock<Schema> = OnceLock::new();
    SCHEMA.get_or_init(|| {
        let bytes = include_bytes!(concat!(env!("OUT_DIR"), "/descriptors.bin"));
        // The set was encoded by this crate's build script from the vendored protos; an empty
        // schema (every estimate u64::MAX) would refuse everything rather than trust anything.
        let set = FileDescriptorSet::decode(&bytes[..]).unwrap_or_default();
        build_schema(&set)
    })
}

fn build_schema(set: &FileDescriptorSet) -> Schema {
    let mut descriptors = Vec::new();
    for file in &set.file {
        let package = file.package.as_deref().unwrap_or("");
        for message in &file.message_type {
            collect(&format!(".{package}"), message, &mut descriptors);
        }
    }
    let by_name: HashMap<String, usize> = descriptors
        .iter()
        .enumerate()
        .map(|(i, (name, _))| (name.clone(), i))
        .collect();
    let mut messages: Vec<MessageInfo> = descriptors
        .iter()
        .map(|(_, d)| MessageInfo {
            fields: d
                .field
                .iter()
                .filter_map(|f| Some((u32::try_from(f.number?).ok()?, field_info(f, &by_name))))
                .collect(),
            struct_size: 0,
            is_map_entry: d
                .options
                .as_ref()
                .and_then(|o| o.map_entry)
                .unwrap_or(false),
        })
        .collect();
    let sizes: Vec<u64> = (0..messages.len())
        .map(|i| struct_size(&messages, i, &mut Vec::new()))
        .collect();
    for (m, size) in messages.iter_mut().zip(sizes) {
        m.struct_size = size;
    }
    Schema { messages, by_name }
}

fn collect(
    scope: &str,
    message: &prost_types::DescriptorProto,
    out: &mut Vec<(String, prost_types::DescriptorProto)>,
) {
    let name = format!("{scope}.{}", message.name.as_deref().unwrap_or(""));
    for nested in &message.nested_type {
        collect(&name, nested, out);
    }
    out.push((name, message.clone()));
}

fn field_info(
    f: &prost_types::FieldDescriptorProto,
    by_name: &HashMap<String, usize>,
) -> FieldInfo {
    let kind = match f.r#type() {
        Type::Message | Type::Group => match f.type_name.as_deref().and_then(|n| by_name.get(n)) {
            Some(&i) => FieldKind::Message(i),
            // A message type outside the vendored files: as costly as a big string.
            None => FieldKind::Bytes,
        },
        Type::String | Type::Bytes => FieldKind::Bytes,
        Type::Bool => FieldKind::Scalar(1),
        Type::Int32
        | Type::Uint32
        | Type::Sint32
        | Type::Fixed32
        | Type::Sfixed32
        | Type::Float
        | Type::Enum => FieldKind::Scalar(4),
        _ => FieldKind::Scalar(8),
    };
    FieldInfo {
        kind,
        repeated: f.label() == Label::Repeated,
    }
}

/// `size_of` of the generated struct, estimated: 24 bytes for every vector, string, map or
/// boxed field, the nested struct for an inline optional message (8 when recursive, as prost
/// boxes those), 8 for every scalar. Oneof members are counted as if all were present.
fn struct_size(messages: &[MessageInfo], i: usize, stack: &mut Vec<usize>) -> u64 {
    if stack.contains(&i) {
        return 8;
    }
    stack.push(i);
    let mut size = 8u64;
    for field in messages[i].fields.values() {
        size += match (field.repeated, field.kind) {
            (true, _) | (false, FieldKind::Bytes) => 24,
            (false, FieldKind::Scalar(_)) => 8,
            (false, FieldKind::Message(m)) => 8 + struct_size(messages, m, stack),
        };
    }
    stack.pop();
    size
}

/// Adds the decoded cost of `bytes` as message `index` to `cost`. Returns `false` when the
/// walk could not read every byte (malformed input, too deep, or a group in a known field):
/// then nothing is known about what a decode would allocate, and the caller refuses it.
/// Unknown groups are skipped as prost skips them.
fn walk(schema: &Schema, index: usize, mut bytes: &[u8], depth: usize, cost: &mut u64) -> bool {
    if depth > MAX_DEPTH {
        return false;
    }
    let message = &schema.messages[index];
    while !bytes.is_empty() {
        let Some(tag) = read_varint(&mut bytes) else {
            return false;
        };
        let number = tag >> 3;
        let field = u32::try_from(number)
            .ok()
            .and_then(|n| message.fields.get(&n));
        let wire_type = tag & 7;
        if wire_type == 3 && field.is_none() {
            match skip_group(bytes, number, depth + 1) {
                Some(rest) => bytes = rest,
                None => return false,
            }
            continue;
        }
        let Some(payload) = read_payload(&mut bytes, wire_type) else {
            return false;
        };
        if let Some(field) = field {
            let Some(c) = field_cost(schema, field, wire_type, payload, depth) else {
                return false;
            };
            *cost = cost.saturating_add(c);
        }
    }
    true
}

/// The payload of a field of `wire_type` (empty for a varint); `None` for groups and
/// malformed bytes.
fn read_payload<'a>(bytes: &mut &'a [u8], wire_type: u64) -> Option<&'a [u8]> {
    match wire_type {
        0 => read_varint(bytes).map(|_| &[][..]),
        1 => take(bytes, 8),
        5 => take(bytes, 4),
        2 => read_varint(bytes)
            .and_then(|len| usize::try_from(len).ok())
            .and_then(|len| take(bytes, len)),
        _ => None,
    }
}

/// The bytes after the end of the group `number` that starts `bytes` (nested groups
/// included), or `None` when it does not end well.
fn skip_group(mut bytes: &[u8], number: u64, depth: usize) -> Option<&[u8]> {
    if depth > MAX_DEPTH {
        return None;
    }
    loop {
        let tag = read_varint(&mut bytes)?;
        match tag & 7 {
            4 if tag >> 3 == number => return Some(bytes),
            4 => return None,
            3 => bytes = skip_group(bytes, tag >> 3, depth + 1)?,
            wire_type => {
                read_payload(&mut bytes, wire_type)?;
            }
        }
    }
}

fn field_cost(
    schema: &Schema,
    field: &FieldInfo,
    wire_type: u64,
    payload: &[u8],
    depth: usize,
) -> Option<u64> {
    let element = |size: u64| if field.repeated { size } else { 0 };
    Some(match field.kind {
        FieldKind::Scalar(size) if wire_type == 2 => {
            // Packed: at most one element per byte, each `size` wide.
            (payload.len() as u64).saturating_mul(size)
        }
        FieldKind::Scalar(size) => element(size),
        FieldKind::Bytes => payload.len() as u64 + element(24),
        FieldKind::Message(m) => {
            let sub = &schema.messages[m];
            // A map entry becomes a tree node: key, value and links.
            let node = if sub.is_map_entry {
                sub.struct_size + 48
            } else {
                element(sub.struct_size)
            };
            let mut inner = 0u64;
            if !walk(schema, m, payload, depth + 1, &mut inner) {
                return None;
            }
            node.saturating_add(inner)
        }
    })
}

fn read_varint(bytes: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for i in 0..10 {
        let (&b, rest) = bytes.split_first()?;
        *bytes = rest;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Some(value);
        }
    }
    None
}

fn take<'a>(bytes: &mut &'a [u8], len: usize) -> Option<&'a [u8]> {
    if bytes.len() < len {
        return None;
    }
    let (head, rest) = bytes.split_at(len);
    *bytes = rest;
    Some(head)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::tensorflow::{attr_value, AttrValue, NodeDef, TensorProto, TensorShapeProto};

    #[test]
    fn the_schema_knows_the_vendored_messages() {
        for name in [
            ".tensorflow.SavedModel",
            ".tensorflow.TensorProto",
            ".tensorflow_hub.ModuleDef",
        ] {
            assert!(schema().by_name.contains_key(name), "{name}");
        }
        assert_eq!(decoded_size_estimate(&[], ".no.Such"), None);
    }

    /// The attack's shape: a node with one attr whose list holds `count` empty tensors.
    fn node_of_empty_tensors(count: usize) -> NodeDef {
        let list = attr_value::ListValue {
            tensor: vec![TensorProto::default(); count],
            ..Default::default()
        };
        let attr = AttrValue {
            value: Some(attr_value::Value::List(list)),
        };
        NodeDef {
            name: "n".into(),
            attr: [("x".to_string(), attr)].into_iter().collect(),
            ..Default::default()
        }
    }

    #[test]
    fn the_estimate_bounds_the_real_size_of_many_empty_tensors() {
        // The attack: one attr whose list holds a great many empty tensors (2 bytes each).
        let node = node_of_empty_tensors(100_000);
        let bytes = node.encode_to_vec();
        let estimate = decoded_size_estimate(&bytes, ".tensorflow.NodeDef").unwrap();
        let real = 100_000 * std::mem::size_of::<TensorProto>() as u64;
        assert!(
            estimate >= real,
            "estimate {estimate} below the vector alone {real}"
        );
        assert!(
            estimate > 100 * bytes.len() as u64,
            "a 2-byte tensor costs hundreds of bytes decoded"
        );
        let err = decode_bounded::<NodeDef>(&bytes, ".tensorflow.NodeDef", 16 << 20).unwrap_err();
        assert!(matches!(err, BoundedDecodeError::TooLarge { .. }), "{err}");
        assert!(decode_bounded::<NodeDef>(&bytes, ".tensorflow.NodeDef", 1 << 30).is_ok());
    }

    #[test]
    fn struct_estimates_are_at_least_the_real_sizes() {
        for (name, real) in [
            (
                ".tensorflow.TensorProto",
                std::mem::size_of::<TensorProto>(),
            ),
            (".tensorflow.NodeDef", std::mem::size_of::<NodeDef>()),
            (
                ".tensorflow.TensorShapeProto",
                std::mem::size_of::<TensorShapeProto>(),
            ),
            (".tensorflow.AttrValue", std::mem::size_of::<AttrValue>()),
        ] {
            let i = schema().by_name[name];
            assert!(schema().messages[i].struct_size >= real as u64, "{name}");
        }
    }

    #[test]
    fn many_shape_dims_are_counted() {
        let shape = TensorShapeProto {
            dim: vec![Default::default(); 50_000],
            unknown_rank: false,
        };
        let bytes = shape.encode_to_vec();
        let estimate = decoded_size_estimate(&bytes, ".tensorflow.TensorShapeProto").unwrap();
        assert!(estimate >= 50_000 * 32);
    }

    #[test]
    fn bytes_that_cannot_be_walked_are_not_decoded() {
        for bytes in [&[0x0a, 0xff][..], &[0x0c][..]] {
            // A length beyond the end; an end-group with no start.
            let err = decode_bounded::<NodeDef>(bytes, ".tensorflow.NodeDef", 1 << 20).unwrap_err();
            assert!(matches!(err, BoundedDecodeError::Unbounded), "{err}");
        }
    }

    #[test]
    fn an_unknown_group_does_not_hide_what_follows_it() {
        // Field 99 as an (empty) group, which prost skips, then the attack: the walk must
        // count what comes after the group.
        let node = node_of_empty_tensors(100_000);
        let mut bytes = vec![0x9b, 0x06, 0x9c, 0x06];
        bytes.extend(node.encode_to_vec());
        let err = decode_bounded::<NodeDef>(&bytes, ".tensorflow.NodeDef", 16 << 20).unwrap_err();
        assert!(matches!(err, BoundedDecodeError::TooLarge { .. }), "{err}");
        // A group nested in a group is skipped whole, and what follows still decodes.
        let nested = [
            0x9b, 0x06, 0xa3, 0x06, 0xa4, 0x06, 0x9c, 0x06, 0x0a, 0x01, b'n',
        ];
        let node = decode_bounded::<NodeDef>(&nested, ".tensorflow.NodeDef", 1 << 20).unwrap();
        assert_eq!(node.name, "n");
    }
}
