//! Module files whose protos are valid but hostile: decoding them would take gigabytes, or
//! they declare absurd shapes and sizes. Each must be refused with the file and the cap named,
//! before anything large is allocated.

use hub_module::HubModule;
use std::path::{Path, PathBuf};

fn fixture() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../../fixtures/modules/amoebanet_a_n3_f8")
}

fn copy_fixture(dst: &Path) -> PathBuf {
    let module = dst.join("m");
    for rel in [
        "saved_model.pb",
        "tfhub_module.pb",
        "variables/variables.index",
        "variables/variables.data-00000-of-00001",
    ] {
        let to = module.join(rel);
        std::fs::create_dir_all(to.parent().unwrap()).unwrap();
        std::fs::copy(fixture().join(rel), &to).unwrap();
    }
    module
}

fn varint(mut v: u64, out: &mut Vec<u8>) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

/// Field `number` (wire type 2) holding `body`.
fn field(number: u32, body: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(body.len() + 12);
    varint(u64::from(number) << 3 | 2, &mut out);
    varint(body.len() as u64, &mut out);
    out.extend_from_slice(body);
    out
}

/// A `meta_graphs` entry (SavedModel field 2) whose graph has one node with an attr holding
/// `count` empty tensors: 2 bytes each on the wire, hundreds each decoded.
fn meta_graph_of_empty_tensors(count: usize) -> Vec<u8> {
    let list: Vec<u8> = [0x42u8, 0x00].repeat(count); // ListValue.tensor = 8, empty
    let attr_value = field(1, &list); // AttrValue.list = 1
    let mut entry = field(1, b"x"); // map key
    entry.extend(field(2, &attr_value)); // map value
    let node = field(5, &entry); // NodeDef.attr = 5
    let graph = field(1, &node); // GraphDef.node = 1
    let meta = field(2, &graph); // MetaGraphDef.graph_def = 2
    field(2, &meta) // SavedModel.meta_graphs = 2
}

fn error_text(module: &Path) -> String {
    match HubModule::open(module) {
        Ok(_) => panic!("{} opened", module.display()),
        Err(e) => e.to_string(),
    }
}

#[test]
fn a_saved_model_that_would_decode_to_gigabytes_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    let path = module.join("saved_model.pb");
    let mut bytes = std::fs::read(&path).unwrap();
    // 12 MB on disk; decoded, 6 M tensors of a few hundred bytes each.
    bytes.extend(meta_graph_of_empty_tensors(6_000_000));
    std::fs::write(&path, bytes).unwrap();
    let text = error_text(&module);
    assert!(text.contains("saved_model.pb"), "{text}");
    assert!(text.contains("MiB cap"), "{text}");
}

#[test]
fn a_moderate_attr_list_still_opens() {
    // The cap must not refuse what real modules hold: a few thousand tensors in attrs.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    let path = module.join("saved_model.pb");
    let mut bytes = std::fs::read(&path).unwrap();
    bytes.extend(meta_graph_of_empty_tensors(5_000));
    std::fs::write(&path, bytes).unwrap();
    assert!(HubModule::open(&module).is_ok());
}

#[test]
fn a_signature_shape_of_too_many_dimensions_is_refused() {
    use prost::Message;
    use tf_proto::tensorflow::{tensor_shape_proto::Dim, SavedModel, TensorShapeProto};
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    let path = module.join("saved_model.pb");
    let mut saved = SavedModel::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    let signature = saved.meta_graphs[0]
        .signature_def
        .values_mut()
        .next()
        .unwrap();
    let input = signature.inputs.values_mut().next().unwrap();
    input.tensor_shape = Some(TensorShapeProto {
        dim: vec![
            Dim {
                size: 1,
                name: String::new()
            };
            100_000
        ],
        unknown_rank: false,
    });
    std::fs::write(&path, saved.encode_to_vec()).unwrap();
    let text = error_text(&module);
    assert!(text.contains("saved_model.pb"), "{text}");
    assert!(
        text.contains("100000 dimensions") && text.contains("at most 254"),
        "{text}"
    );
}

/// Appends the attachment `key` = `value` to every graph variant of the module's
/// `saved_model.pb` (the last attachment of a key is the one Hub keeps).
fn attach(module: &Path, key: &str, value: Vec<u8>) {
    use prost::Message;
    use tf_proto::tensorflow::{collection_def, SavedModel};
    use tf_proto::tensorflow_hub::ModuleAttachment;
    let path = module.join("saved_model.pb");
    let mut saved = SavedModel::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    let attachment = ModuleAttachment {
        key: key.into(),
        value,
    };
    for graph in &mut saved.meta_graphs {
        let collection = graph
            .collection_def
            .get_mut("hub_module_attachments")
            .expect("the fixture has attachments");
        let Some(collection_def::Kind::BytesList(list)) = &mut collection.kind else {
            panic!("attachments are a bytes list");
        };
        list.value.push(attachment.encode_to_vec());
    }
    std::fs::write(&path, saved.encode_to_vec()).unwrap();
}

#[test]
fn an_absurd_image_module_info_size_is_refused() {
    use prost::Message;
    use tf_proto::tensorflow_hub::{image_module_info::InputSize, ImageModuleInfo};
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    let info = ImageModuleInfo {
        default_image_size: Some(InputSize {
            height: 100_000,
            width: 100_000,
        }),
    };
    attach(&module, "image_module_info", info.encode_to_vec());
    let text = error_text(&module);
    assert!(
        text.contains("100000x100000") && text.contains("4096"),
        "{text}"
    );
}

fn string_attr(bytes: &[u8]) -> Vec<u8> {
    use prost::Message;
    use tf_proto::tensorflow::{attr_value, AttrValue};
    AttrValue {
        value: Some(attr_value::Value::S(bytes.to_vec())),
    }
    .encode_to_vec()
}

#[test]
fn a_weights_note_is_read_and_the_last_one_wins() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    attach(
        &module,
        "amoeba_weights",
        string_attr(b"trained: somebody's own"),
    );
    let opened = HubModule::open(&module).unwrap();
    assert_eq!(opened.weights_note(), Some("trained: somebody's own"));
}

#[test]
fn an_overlong_weights_note_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    attach(&module, "amoeba_weights", string_attr(&vec![b'x'; 5000]));
    let text = error_text(&module);
    assert!(
        text.contains("amoeba_weights") && text.contains("5000 bytes") && text.contains("4096"),
        "{text}"
    );
}

#[test]
fn a_weights_note_that_is_not_a_string_is_refused() {
    use prost::Message;
    use tf_proto::tensorflow::{attr_value, AttrValue};
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    let int = AttrValue {
        value: Some(attr_value::Value::I(7)),
    };
    attach(&module, "amoeba_weights", int.encode_to_vec());
    let text = error_text(&module);
    assert!(text.contains("not a string"), "{text}");
    let module = copy_fixture(&tmp.path().join("2"));
    attach(
        &module,
        "amoeba_weights",
        string_attr(b"random:\x1b[31m red"),
    );
    let text = error_text(&module);
    assert!(text.contains("control characters"), "{text}");
    let module = copy_fixture(&tmp.path().join("3"));
    attach(&module, "amoeba_weights", string_attr(b"random: \xff\xfe"));
    let text = error_text(&module);
    assert!(text.contains("not UTF-8"), "{text}");
}

#[test]
fn many_attachments_of_distinct_keys_are_read_in_one_pass() {
    use prost::Message;
    use tf_proto::tensorflow::{collection_def, SavedModel};
    use tf_proto::tensorflow_hub::ModuleAttachment;
    // 200,000 keys: a reader that compared each with all before it would not finish.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_fixture(tmp.path());
    let path = module.join("saved_model.pb");
    let mut saved = SavedModel::decode(std::fs::read(&path).unwrap().as_slice()).unwrap();
    for graph in &mut saved.meta_graphs {
        let collection = graph
            .collection_def
            .get_mut("hub_module_attachments")
            .unwrap();
        let Some(collection_def::Kind::BytesList(list)) = &mut collection.kind else {
            panic!("attachments are a bytes list");
        };
        // After the fixture's own attachments: read from the end, every one is decoded before
        // the fixture's are found.
        let junk = (0..200_000).map(|i| {
            ModuleAttachment {
                key: format!("k{i}"),
                value: Vec::new(),
            }
            .encode_to_vec()
        });
        let own = std::mem::take(&mut list.value);
        list.value = own.into_iter().chain(junk).collect();
    }
    std::fs::write(&path, saved.encode_to_vec()).unwrap();
    let opened = HubModule::open(&module).unwrap();
    assert_eq!(opened.image_size(), Some([331, 331]));
    assert!(opened.weights_note().unwrap().starts_with("random:"));
}
