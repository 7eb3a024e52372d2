//! [`PreprocessError`]: why a file could not be turned into model input.

use std::path::PathBuf;

/// Every error names the file, so a batch of many photos says which one failed.
#[derive(Debug, thiserror::Error)]
pub enum PreprocessError {
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{}: empty file (0 bytes), not an image", path.display())]
    Empty { path: PathBuf },
    #[error("{}: not a JPEG or PNG image (unrecognised format)", path.display())]
    UnknownFormat { path: PathBuf },
    #[error(
        "{}: image is {width}x{height} = {} pixels, over the limit of {limit} pixels \
         (refused before decoding)",
        path.display(),
        u64::from(*width) * u64::from(*height)
    )]
    TooLarge {
        path: PathBuf,
        width: u32,
        height: u32,
        limit: u64,
    },
    #[error("{}: cannot decode the image: {message}", path.display())]
    Undecodable { path: PathBuf, message: String },
}
