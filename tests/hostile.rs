//! Hostile inputs through the binary (issue 8's catalogue): checkpoints that contradict the
//! graph, missing and extra variables, overflowing shapes, broken golden files, unwritable
//! output paths, unsafe archives. Every case must end with a message naming the file and the
//! problem and exit code 2 (never 101, a panic), and must not hang.
//!
//! Checkpoints are edited by rebuilding the index table here (one data block, every entry a
//! restart point) from entries re-encoded by hand, so the test needs no protobuf library.

mod common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use tensor_bundle::table::{checksum, read_table, write_varint, BlockHandle, TABLE_MAGIC};
use tensor_bundle::TensorBundle;

const MODULE: &str = common::FIXTURE_MODULE;
const GOLDEN: &str = "fixtures/goldens/amoebanet_a_n3_f8.golden.safetensors";
const STEM: &str = "stem/conv0/weights";

use common::repo;

use common::amoeba_stderr as amoeba;

/// Exit code 2, no panic, and a message containing every fragment (case-insensitive).
fn assert_bad_input(result: (Option<i32>, String), fragments: &[&str]) {
    let (code, stderr) = result;
    assert!(!stderr.contains("panicked"), "panic: {stderr}");
    assert_eq!(code, Some(2), "{stderr}");
    let lower = stderr.to_lowercase();
    for f in fragments {
        assert!(
            lower.contains(&f.to_lowercase()),
            "message lacks {f:?}: {stderr}"
        );
    }
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn copy_module(dst: &Path) -> PathBuf {
    common::copy_fixture_module(dst)
}

/// The fields of one bundle entry that the tests edit.
#[derive(Clone, Debug)]
struct Entry {
    dtype: u64,
    shape: Vec<i64>,
    offset: i64,
    size: i64,
    crc: u32,
}

impl Entry {
    /// `BundleEntryProto` wire format: dtype = 1, shape = 2 (dim = 2 { size = 1 }),
    /// shard_id = 3 (left 0), offset = 4, size = 5, crc32c = 6 (fixed32).
    fn encode(&self) -> Vec<u8> {
        let mut shape = Vec::new();
        for &d in &self.shape {
            let mut dim = vec![0x08];
            write_varint(&mut dim, d as u64);
            shape.push(0x12);
            write_varint(&mut shape, dim.len() as u64);
            shape.extend_from_slice(&dim);
        }
        let mut out = vec![0x08];
        write_varint(&mut out, self.dtype);
        out.push(0x12);
        write_varint(&mut out, shape.len() as u64);
        out.extend_from_slice(&shape);
        out.push(0x20);
        write_varint(&mut out, self.offset as u64);
        out.push(0x28);
        write_varint(&mut out, self.size as u64);
        out.push(0x35);
        out.extend_from_slice(&self.crc.to_le_bytes());
        out
    }
}

/// The module's entries by name (all plain float tensors in shard 0).
fn entries(module: &Path) -> BTreeMap<String, Entry> {
    let bundle = TensorBundle::open(&module.join("variables/variables")).unwrap();
    bundle
        .entries()
        .map(|e| {
            let loc = e.data_location().unwrap();
            let entry = Entry {
                dtype: 1,
                shape: e.shape.iter().map(|&d| d as i64).collect(),
                offset: loc.offset as i64,
                size: loc.size as i64,
                crc: loc.masked_crc32c,
            };
            (e.name.clone(), entry)
        })
        .collect()
}

/// A block of rows with every entry a restart point (no shared key prefixes).
fn block(rows: &[(Vec<u8>, Vec<u8>)]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut restarts = Vec::new();
    for (key, value) in rows {
        restarts.push(out.len() as u32);
        for n in [0, key.len(), value.len()] {
            write_varint(&mut out, n as u64);
        }
        out.extend_from_slice(key);
        out.extend_from_slice(value);
    }
    if restarts.is_empty() {
        restarts.push(0);
    }
    for r in &restarts {
        out.extend_from_slice(&r.to_le_bytes());
    }
    out.extend_from_slice(&(restarts.len() as u32).to_le_bytes());
    out
}

/// Appends a block with its trailer (type 0, masked crc32c of contents + type).
fn put_block(file: &mut Vec<u8>, contents: &[u8]) -> BlockHandle {
    let handle = BlockHandle {
        offset: file.len() as u64,
        size: contents.len() as u64,
    };
    file.extend_from_slice(contents);
    file.push(0);
    let mut typed = contents.to_vec();
    typed.push(0);
    file.extend_from_slice(&checksum::masked_crc32c(&typed).to_le_bytes());
    handle
}

/// Rewrites the module's index with the entries after `edit` (header row kept as is).
fn rewrite_index(module: &Path, edit: impl FnOnce(&mut BTreeMap<String, Entry>)) {
    let index_path = module.join("variables/variables.index");
    let old = std::fs::read(&index_path).unwrap();
    let header = read_table(&index_path, &old).unwrap().remove(0);
    assert!(header.0.is_empty());
    let mut map = entries(module);
    edit(&mut map);
    let mut rows = vec![header];
    rows.extend(map.iter().map(|(k, e)| (k.as_bytes().to_vec(), e.encode())));
    let mut file = Vec::new();
    let data = put_block(&mut file, &block(&rows));
    let mut handle = Vec::new();
    data.encode(&mut handle);
    let last = rows.last().unwrap().0.clone();
    let metaindex = put_block(&mut file, &block(&[]));
    let index = put_block(&mut file, &block(&[([last, vec![0xff]].concat(), handle)]));
    let mut footer = Vec::new();
    metaindex.encode(&mut footer);
    index.encode(&mut footer);
    footer.resize(40, 0);
    footer.extend_from_slice(&TABLE_MAGIC.to_le_bytes());
    file.extend_from_slice(&footer);
    std::fs::write(&index_path, file).unwrap();
}

/// Runs `convert` and `verify` on a module and expects both to fail cleanly.
fn convert_and_verify_fail(module: &Path, fragments: &[&str]) {
    let out = module.parent().unwrap().join("out.safetensors");
    assert_bad_input(amoeba(&["convert", s(module), "-o", s(&out)]), fragments);
    assert!(!out.exists(), "no output may be left behind");
    let golden = repo(GOLDEN);
    assert_bad_input(
        amoeba(&["verify", s(module), "--golden", s(&golden)]),
        fragments,
    );
}

#[test]
fn rebuilt_index_of_an_intact_module_still_converts() {
    // Guards the helper: without edits the rebuilt module must be as good as the original.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |_| {});
    let out = tmp.path().join("ok.safetensors");
    let (code, stderr) = amoeba(&["convert", s(&module), "-o", s(&out)]);
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn checkpoint_shape_contradicting_the_graph() {
    // Same bytes, so the checkpoint itself is valid: only the graph can tell.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |m| {
        let e = m.get_mut(STEM).unwrap();
        let n: i64 = e.shape.iter().product();
        e.shape = vec![n / 3, 3];
    });
    convert_and_verify_fail(&module, &["stem/conv0", "[288, 3]"]);
}

#[test]
fn checkpoint_dtype_contradicting_the_graph() {
    // DT_INT32 has the same size as DT_FLOAT, so the entry stays valid; the module is refused
    // when it is opened (the network computes in float32), by `verify` and by `convert`,
    // which writes nothing.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |m| m.get_mut(STEM).unwrap().dtype = 3);
    let golden = repo(GOLDEN);
    assert_bad_input(
        amoeba(&["verify", s(&module), "--golden", s(&golden)]),
        &[STEM, "int32", "float32"],
    );
    let out = tmp.path().join("int.safetensors");
    assert_bad_input(
        amoeba(&["convert", s(&module), "-o", s(&out)]),
        &["variables.index", STEM, "int32"],
    );
    assert!(!out.exists());
}

#[test]
fn variable_the_genotype_needs_is_missing() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |m| {
        m.remove(STEM);
    });
    convert_and_verify_fail(&module, &["variables"]);
}

#[test]
fn extra_variable_is_carried_along_not_fatal() {
    // A variable no layer uses (an optimizer slot, say) must not stop conversion.
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |m| {
        let stem = m[STEM].clone();
        m.insert("zz_unused/extra".into(), stem);
    });
    let out = tmp.path().join("extra.safetensors");
    let (code, stderr) = amoeba(&["convert", s(&module), "-o", s(&out)]);
    assert!(!stderr.contains("panicked"), "{stderr}");
    assert_eq!(code, Some(0), "{stderr}");
}

#[test]
fn shape_whose_byte_size_overflows() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |m| {
        m.get_mut(STEM).unwrap().shape = vec![1 << 40, 1 << 40];
    });
    assert_bad_input(
        amoeba(&["inspect", s(&module)]),
        &["variables.index", STEM, "overflow"],
    );
}

#[test]
fn shape_larger_than_the_shard() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(tmp.path());
    rewrite_index(&module, |m| {
        let e = m.get_mut(STEM).unwrap();
        e.shape = vec![1 << 20, 4];
        e.size = 16 << 20;
    });
    assert_bad_input(
        amoeba(&["inspect", s(&module)]),
        &[STEM, "data-00000-of-00001"],
    );
}

#[test]
fn negative_offset_and_size_lies() {
    let tmp = tempfile::tempdir().unwrap();
    let module = copy_module(&tmp.path().join("a"));
    rewrite_index(&module, |m| m.get_mut(STEM).unwrap().offset = -8);
    assert_bad_input(amoeba(&["inspect", s(&module)]), &[STEM]);
    let module = copy_module(&tmp.path().join("b"));
    rewrite_index(&module, |m| m.get_mut(STEM).unwrap().size = 4);
    assert_bad_input(amoeba(&["inspect", s(&module)]), &[STEM, "4 bytes"]);
}

/// A golden file with the given F32 tensors `(name, shape)`, zero-filled.
fn golden_with(dir: &Path, tensors: &[(&str, Vec<usize>)]) -> PathBuf {
    let data: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, shape)| vec![0u8; 4 * shape.iter().product::<usize>()])
        .collect();
    let views: Vec<(String, safetensors::tensor::TensorView<'_>)> = tensors
        .iter()
        .zip(&data)
        .map(|((name, shape), bytes)| {
            let view =
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), bytes)
                    .unwrap();
            (name.to_string(), view)
        })
        .collect();
    let path = dir.join("golden.safetensors");
    std::fs::write(&path, safetensors::serialize(views, None).unwrap()).unwrap();
    path
}

fn verify_with_golden(golden: &Path) -> (Option<i32>, String) {
    amoeba(&["verify", s(&repo(MODULE)), "--golden", s(golden)])
}

#[test]
fn empty_and_corrupt_golden_files() {
    let tmp = tempfile::tempdir().unwrap();
    let golden = tmp.path().join("golden.safetensors");
    std::fs::write(&golden, b"").unwrap();
    assert_bad_input(
        verify_with_golden(&golden),
        &["golden.safetensors", "safetensors"],
    );
    // A header length far past the end of the file.
    std::fs::write(&golden, u64::MAX.to_le_bytes()).unwrap();
    assert_bad_input(
        verify_with_golden(&golden),
        &["golden.safetensors", "safetensors"],
    );
    // A truncated copy of the real golden.
    let real = std::fs::read(repo(GOLDEN)).unwrap();
    std::fs::write(&golden, &real[..real.len() / 2]).unwrap();
    assert_bad_input(
        verify_with_golden(&golden),
        &["golden.safetensors", "safetensors"],
    );
}

#[test]
fn golden_with_wrong_tensor_names() {
    let tmp = tempfile::tempdir().unwrap();
    let g = golden_with(tmp.path(), &[("pictures", vec![1, 331, 331, 3])]);
    assert_bad_input(verify_with_golden(&g), &["golden.safetensors", "images"]);
    let g = golden_with(tmp.path(), &[("images", vec![1, 331, 331, 3])]);
    assert_bad_input(verify_with_golden(&g), &["golden.safetensors", "logits"]);
}

#[test]
fn golden_with_wrong_shapes() {
    let tmp = tempfile::tempdir().unwrap();
    let images = ("images", vec![1, 331, 331, 3]);
    let logits = ("logits", vec![1, 1001]);
    for (tensors, problem) in [
        (
            vec![("images", vec![1, 331, 331, 4]), logits.clone()],
            "`images` has shape",
        ),
        (
            vec![("images", vec![0, 331, 331, 3]), logits.clone()],
            "`images` has shape",
        ),
        (
            vec![images.clone(), ("logits", vec![2, 1001])],
            "`logits` has batch 2",
        ),
        (
            vec![images.clone(), ("logits", vec![1001])],
            "`logits` has shape",
        ),
        (
            vec![
                images.clone(),
                logits.clone(),
                ("cell_output/cell_0", vec![1, 3]),
            ],
            "cell_output/cell_0",
        ),
    ] {
        let g = golden_with(tmp.path(), &tensors);
        assert_bad_input(verify_with_golden(&g), &["golden.safetensors", problem]);
    }
    // Images of another size than the module's: refused before running, naming the file.
    let g = golden_with(
        tmp.path(),
        &[("images", vec![1, 32, 32, 3]), logits.clone()],
    );
    assert_bad_input(
        verify_with_golden(&g),
        &["golden.safetensors", "32x32", "331x331"],
    );
}

#[test]
fn golden_of_another_model_is_bad_input() {
    // Well-formed but for another head (7 classes): refused as bad input naming the golden
    // file and both class counts, before anything runs.
    let tmp = tempfile::tempdir().unwrap();
    let g = golden_with(
        tmp.path(),
        &[("images", vec![1, 331, 331, 3]), ("logits", vec![1, 7])],
    );
    assert_bad_input(
        verify_with_golden(&g),
        &["golden.safetensors", "7 classes", "1001"],
    );
}

#[test]
fn output_path_in_a_missing_or_unwritable_folder() {
    // Tests run as root, so a read-only folder would still be writable: a path below a
    // regular file, or in /proc, cannot be created by anyone.
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("plain-file");
    std::fs::write(&file, b"x").unwrap();
    let module = repo(MODULE);
    for out in [
        file.join("out.safetensors"),
        tmp.path().join("missing/folder/out.safetensors"),
        PathBuf::from("/proc/amoeba-out.safetensors"),
    ] {
        assert_bad_input(amoeba(&["convert", s(&module), "-o", s(&out)]), &[s(&out)]);
        let svg = out.with_extension("svg");
        assert_bad_input(
            amoeba(&["genotype", s(&module), "--format", "svg", "-o", s(&svg)]),
            &[s(&svg)],
        );
    }
}

/// A 512-byte tar header written by hand: the package has no tar dependency, and tar
/// writers refuse the unsafe entries these tests need. `size` is stored in GNU base-256 form
/// so that sizes beyond the 11 octal digits of ustar can be declared.
fn tar_header(name: &[u8], kind: u8, size: u64, link: &[u8]) -> [u8; 512] {
    let mut h = [0u8; 512];
    h[..name.len()].copy_from_slice(name);
    h[100..107].copy_from_slice(b"0000644");
    h[108..115].copy_from_slice(b"0000000");
    h[116..123].copy_from_slice(b"0000000");
    h[124] = 0x80;
    h[128..136].copy_from_slice(&size.to_be_bytes());
    h[136..147].copy_from_slice(b"00000000000");
    h[156] = kind;
    h[157..157 + link.len()].copy_from_slice(link);
    h[257..265].copy_from_slice(b"ustar  \0");
    h[148..156].fill(b' ');
    let sum: u32 = h.iter().map(|&b| u32::from(b)).sum();
    h[148..155].copy_from_slice(format!("{sum:06o}\0").as_bytes());
    h
}

/// A plain `.tar` (accepted like `.tar.gz`) of one entry with the given raw header fields.
fn raw_archive(dir: &Path, name: &[u8], kind: u8, body: &[u8], link: &[u8]) -> PathBuf {
    let path = dir.join("bad.tar");
    let mut bytes = tar_header(name, kind, body.len() as u64, link).to_vec();
    bytes.extend_from_slice(body);
    bytes.resize(bytes.len().div_ceil(512) * 512 + 1024, 0);
    std::fs::write(&path, bytes).unwrap();
    path
}

#[test]
fn unsafe_archives_are_refused_naming_the_entry() {
    let tmp = tempfile::tempdir().unwrap();
    // Type flags: '0' file, '2' symlink, '1' hard link, '6' fifo, '3' char device.
    let cases: [(&[u8], u8, &[u8], &str); 7] = [
        (b"../escape.pb", b'0', b"", "escape"),
        (b"variables/../../escape.pb", b'0', b"", "escape"),
        (b"/tmp/amoeba-absolute.pb", b'0', b"", "absolute"),
        (b"saved_model.pb", b'2', b"/etc/passwd", "links"),
        (b"saved_model.pb", b'1', b"/etc/passwd", "links"),
        (b"saved_model.pb", b'6', b"", "special files"),
        (b"saved_model.pb", b'3', b"", "special files"),
    ];
    for (name, kind, link, problem) in cases {
        let archive = raw_archive(tmp.path(), name, kind, b"", link);
        let shown = String::from_utf8_lossy(name).into_owned();
        assert_bad_input(
            amoeba(&["inspect", s(&archive)]),
            &["bad.tar", &shown, problem],
        );
    }
    assert!(!tmp.path().parent().unwrap().join("escape.pb").exists());
    assert!(!Path::new("/tmp/amoeba-absolute.pb").exists());
}

#[test]
fn archive_whose_entry_claims_more_bytes_than_it_has() {
    let tmp = tempfile::tempdir().unwrap();
    // A terabyte declared, 10 bytes present: over the default cap (16 GiB) by the header
    // alone, so refused before anything is written.
    let mut bytes = tar_header(b"saved_model.pb", b'0', 1 << 40, b"").to_vec();
    bytes.extend_from_slice(b"0123456789");
    let path = tmp.path().join("liar.tar");
    std::fs::write(&path, &bytes).unwrap();
    assert_bad_input(amoeba(&["inspect", s(&path)]), &["liar.tar", "bytes"]);
    // 1000 bytes declared, 10 present: the archive ends inside the entry.
    let mut bytes = tar_header(b"saved_model.pb", b'0', 1000, b"").to_vec();
    bytes.extend_from_slice(b"0123456789");
    std::fs::write(&path, &bytes).unwrap();
    assert_bad_input(amoeba(&["inspect", s(&path)]), &["liar.tar"]);
}

#[test]
fn truncated_and_garbage_archives() {
    let tmp = tempfile::tempdir().unwrap();
    let real = std::fs::read(repo("fixtures/modules/amoebanet_a_n3_f8.tar.gz")).unwrap();
    let cut = tmp.path().join("cut.tar.gz");
    std::fs::write(&cut, &real[..real.len() / 3]).unwrap();
    assert_bad_input(amoeba(&["inspect", s(&cut)]), &["cut.tar.gz"]);
    let junk = tmp.path().join("junk.tgz");
    std::fs::write(&junk, [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 3, 0xde, 0xad]).unwrap();
    assert_bad_input(amoeba(&["inspect", s(&junk)]), &["junk.tgz"]);
    let empty = tmp.path().join("empty.tar.gz");
    std::fs::write(&empty, b"").unwrap();
    assert_bad_input(amoeba(&["inspect", s(&empty)]), &["empty.tar.gz"]);
}
