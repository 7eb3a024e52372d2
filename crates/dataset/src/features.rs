//! Feature vectors of many photos into one safetensors file, without holding them.
//!
//! Rows are spilled to an unnamed temporary file beside the target as each batch ends; at
//! the end the safetensors header (`features` [N, D] float32, the photos' paths as the JSON
//! array `images` in the metadata) is written to the output's temporary file, the rows are
//! copied after it, and it is renamed into place. Memory holds the paths, never the rows.

use std::collections::HashMap;
use std::io::{Seek, Write};
use std::path::{Path, PathBuf};

/// The largest header a safetensors reader takes (the `safetensors` crate's limit).
const MAX_HEADER_BYTES: usize = 100_000_000;

pub struct FeatureFile {
    output: safe_fs::AtomicOutput,
    spill: std::io::BufWriter<std::fs::File>,
    dim: Option<usize>,
    images: Vec<String>,
    /// The header's size so far, names included (exact but for a few bytes of numbers).
    header_bound: usize,
}

#[derive(Debug, thiserror::Error)]
pub enum FeatureError {
    #[error(transparent)]
    Output(#[from] safe_fs::OutputError),
    #[error("{}: cannot write: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: the photos' names would make a safetensors header over {MAX_HEADER_BYTES} bytes, more than readers accept; split the run (--shard K/N)", path.display())]
    TooManyNames { path: PathBuf },
    #[error("{}: a feature vector of {got} values after vectors of {want}", path.display())]
    Width {
        path: PathBuf,
        got: usize,
        want: usize,
    },
}

impl FeatureFile {
    /// Prepares `target` (checked against the command's `inputs`, see [`safe_fs::AtomicOutput`]).
    pub fn create(target: &Path, inputs: &[&Path]) -> Result<FeatureFile, FeatureError> {
        let output = safe_fs::AtomicOutput::create(target, inputs)?;
        let dir = output
            .temp_path()
            .parent()
            .map_or_else(|| PathBuf::from("."), Path::to_path_buf);
        let spill = tempfile::tempfile_in(&dir).map_err(|source| FeatureError::Io {
            path: dir.clone(),
            source,
        })?;
        Ok(FeatureFile {
            output,
            spill: std::io::BufWriter::new(spill),
            dim: None,
            images: Vec::new(),
            header_bound: 1024,
        })
    }

    fn io(&self, source: std::io::Error) -> FeatureError {
        FeatureError::Io {
            path: self.output.target().to_path_buf(),
            source,
        }
    }

    /// One photo's feature vector.
    pub fn push(&mut self, image: &str, features: &[f32]) -> Result<(), FeatureError> {
        let want = *self.dim.get_or_insert(features.len());
        if features.len() != want {
            return Err(FeatureError::Width {
                path: self.output.target().to_path_buf(),
                got: features.len(),
                want,
            });
        }
        // A name is a JSON string (in the `images` array) inside a JSON string (the
        // metadata value): its share of the header is its text escaped twice, and a comma.
        let once = serde_json::Value::String(image.to_string()).to_string();
        let twice = serde_json::Value::String(once).to_string();
        self.header_bound += twice.len() - 2 + 1;
        if self.header_bound > MAX_HEADER_BYTES {
            return Err(FeatureError::TooManyNames {
                path: self.output.target().to_path_buf(),
            });
        }
        let bytes: Vec<u8> = features.iter().flat_map(|v| v.to_le_bytes()).collect();
        self.spill.write_all(&bytes).map_err(|e| self.io(e))?;
        self.images.push(image.to_string());
        Ok(())
    }

    /// Writes the file; `dim` is the width used when no photo succeeded.
    pub fn finish(mut self, dim: usize) -> Result<usize, FeatureError> {
        let dim = self.dim.unwrap_or(dim);
        let rows = self.images.len();
        let header = header(rows, dim, &self.images);
        let mut spill = self.spill.into_inner().map_err(|e| FeatureError::Io {
            path: self.output.target().to_path_buf(),
            source: e.into_error(),
        })?;
        let target = self.output.target().to_path_buf();
        let io = |source| FeatureError::Io {
            path: target.clone(),
            source,
        };
        spill.rewind().map_err(io)?;
        let out = self.output.file();
        out.write_all(&(header.len() as u64).to_le_bytes())
            .map_err(io)?;
        out.write_all(&header).map_err(io)?;
        std::io::copy(&mut spill, out).map_err(io)?;
        self.output.persist()?;
        Ok(rows)
    }
}

/// The safetensors JSON header, padded with spaces to a multiple of 8 bytes.
fn header(rows: usize, dim: usize, images: &[String]) -> Vec<u8> {
    let names = serde_json::to_string(images).unwrap_or_else(|_| "[]".to_string());
    let metadata = HashMap::from([("images".to_string(), names)]);
    let value = serde_json::json!({
        "__metadata__": metadata,
        "features": {
            "dtype": "F32",
            "shape": [rows, dim],
            "data_offsets": [0, rows * dim * 4],
        },
    });
    let mut text = value.to_string().into_bytes();
    while !text.len().is_multiple_of(8) {
        text.push(b' ');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_and_names_read_back_with_the_safetensors_crate() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.safetensors");
        let mut file = FeatureFile::create(&path, &[]).expect("creates");
        file.push("a.jpg", &[1.0, 2.0, 3.0]).expect("row");
        file.push("b \"q\".png", &[4.0, 5.0, 6.0]).expect("row");
        let err = file.push("c.png", &[1.0]).expect_err("width");
        assert!(
            err.to_string().contains("1 values after vectors of 3"),
            "{err}"
        );
        let bound = file.header_bound;
        assert_eq!(file.finish(3).expect("writes"), 2);
        let bytes = std::fs::read(&path).expect("reads");
        let header_len = u64::from_le_bytes(bytes[..8].try_into().expect("8 bytes")) as usize;
        assert!(
            bound >= header_len - 64 && bound <= header_len + 1024,
            "{bound} vs {header_len}"
        );
        let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).expect("header");
        let names: Vec<String> = serde_json::from_str(
            meta.metadata()
                .as_ref()
                .and_then(|m| m.get("images"))
                .expect("images"),
        )
        .expect("json");
        assert_eq!(names, ["a.jpg", "b \"q\".png"]);
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
        let t = st.tensor("features").expect("features");
        assert_eq!(t.shape(), [2, 3]);
        let values: Vec<f32> = t
            .data()
            .chunks_exact(4)
            .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        assert_eq!(values, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
        assert_eq!(
            std::fs::read_dir(dir.path()).expect("dir").count(),
            1,
            "nothing left"
        );
    }

    #[test]
    fn no_rows_is_an_empty_tensor_of_the_given_width() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("f.safetensors");
        let file = FeatureFile::create(&path, &[]).expect("creates");
        assert_eq!(file.finish(7).expect("writes"), 0);
        let bytes = std::fs::read(&path).expect("reads");
        let st = safetensors::SafeTensors::deserialize(&bytes).expect("valid");
        assert_eq!(st.tensor("features").expect("features").shape(), [0, 7]);
    }
}
