//! Caps on what a golden file may declare, checked before anything is allocated from it.
//!
//! Each is far above what a real golden needs (the full-size AmoebaNet-A golden of two images
//! is 0.34 GB, 331x331 images, 1001 classes, 4032 features, at most 2688 channels per cell),
//! and low enough that a hostile file cannot make the verifier allocate without bound.

/// Largest golden file read (it is read whole): 4 GiB, about 24 full-size images.
pub const MAX_GOLDEN_BYTES: u64 = 4 << 30;
/// Most images in one golden file (the network runs them as one batch).
pub const MAX_IMAGES: usize = 64;
/// Largest height or width of an image or of a cell output.
pub const MAX_IMAGE_SIDE: usize = 4096;
/// Most channels of one cell output.
pub const MAX_CHANNELS: usize = 1 << 16;
/// Most logits classes.
pub const MAX_CLASSES: usize = 100_000;
/// Longest feature vector.
pub const MAX_FEATURES: usize = 1 << 16;
/// Most `cell_output/<scope>` tensors.
pub const MAX_CELLS: usize = 1024;
/// Longest cell scope name in bytes.
pub const MAX_SCOPE_LEN: usize = 128;
