//! One module per subcommand: argument structs and the calls into the libraries.

pub mod classify;
pub mod convert;
pub mod genotype;
pub mod inspect;
pub mod run;
pub mod verify;

use anyhow::Context;
use std::path::Path;

/// Verification ran and failed.
pub const EXIT_VERIFY_FAILED: u8 = 1;
/// Bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 2;

/// Set by Ctrl-C (SIGINT) or SIGTERM, so long-running writers can stop cleanly and remove
/// their temporary files instead of dying mid-write.
pub fn interrupt_flag() -> &'static std::sync::atomic::AtomicBool {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::OnceLock;
    static FLAG: AtomicBool = AtomicBool::new(false);
    static INSTALLED: OnceLock<()> = OnceLock::new();
    INSTALLED.get_or_init(|| {
        // Without a handler the default action kills the process; that is the fallback.
        let _ = ctrlc::set_handler(|| FLAG.store(true, Ordering::Relaxed));
    });
    &FLAG
}

/// A progress bar on a terminal, hidden otherwise.
pub fn progress_bar(message: &'static str, visible: bool) -> indicatif::ProgressBar {
    if !visible {
        return indicatif::ProgressBar::hidden();
    }
    let bar = indicatif::ProgressBar::new(0);
    let style = indicatif::ProgressStyle::with_template(
        "{msg} {wide_bar} {bytes}/{total_bytes} {bytes_per_sec} {eta}",
    )
    .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar());
    bar.set_style(style);
    bar.set_message(message);
    bar
}

/// Writes float32 tensors to a safetensors file through a temporary file and a rename.
pub fn write_f32_safetensors(
    path: &Path,
    tensors: &[(&str, Vec<f32>, Vec<usize>)],
) -> anyhow::Result<()> {
    let bytes: Vec<(String, Vec<u8>, Vec<usize>)> = tensors
        .iter()
        .map(|(name, values, shape)| {
            (
                name.to_string(),
                values.iter().flat_map(|v| v.to_le_bytes()).collect(),
                shape.clone(),
            )
        })
        .collect();
    let views = bytes
        .iter()
        .map(|(name, data, shape)| {
            Ok((
                name.clone(),
                safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), data)?,
            ))
        })
        .collect::<Result<Vec<_>, safetensors::SafeTensorError>>()?;
    let serialized = safetensors::serialize(views, None)?;
    write_atomically(path, &serialized)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it into place, so a
/// failure never leaves a partial file.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir).with_context(|| {
        format!(
            "{}: cannot create the output (does the folder exist and is it writable?)",
            path.display()
        )
    })?;
    std::io::Write::write_all(&mut tmp, bytes)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    tmp.persist(path)
        .with_context(|| format!("{}: cannot write", path.display()))?;
    Ok(())
}
