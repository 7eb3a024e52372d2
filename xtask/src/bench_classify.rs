//! `cargo xtask bench-classify [--module M] [--counts 100,1000,10000] [--batch B]`: peak RSS
//! and throughput of `amoeba classify` as the number of photos grows, against the forward
//! pass alone.
//!
//! Photos are symbolic links to the shipped ones (fixtures/preprocess), cycled, so 10,000
//! of them cost no disk. For each count, one `amoeba --quiet classify M --list L --batch B -o
//! RESULTS` process is measured (wall time, peak RSS from `wait4`); the time per photo is the
//! slope between consecutive counts (which leaves out loading the model). The forward pass
//! alone is `amoeba run M --repeat R+1` on a batch of B images (first run dropped), before
//! and after the classify runs, the median of both over B. Nothing else should run meanwhile.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{bail, Context, Result};

use crate::child;

const SHIPPED: [&str; 5] = [
    "astronaut.png",
    "camera.png",
    "chelsea.png",
    "coffee.png",
    "rocket.jpg",
];

pub struct Options {
    pub module: PathBuf,
    pub counts: Vec<usize>,
    pub batch: usize,
    pub size: usize,
    pub repeats: u32,
}

pub fn run(root: &Path, opts: &Options) -> Result<()> {
    let amoeba = crate::build_amoeba(root)?;
    let tmp = tempfile::Builder::new()
        .prefix("xtask-bench-classify-")
        .tempdir()?;
    let most = opts.counts.iter().copied().max().unwrap_or(0);
    let photos = make_photos(root, &tmp.path().join("photos"), most)?;
    println!(
        "bench-classify: {} at batch {} (load {})",
        opts.module.display(),
        opts.batch,
        child::load_average()
    );
    let mut before = forward_runs(&amoeba, opts, tmp.path())?;
    let mut previous: Option<(usize, f64)> = None;
    let mut rows = Vec::new();
    for &count in &opts.counts {
        let list = tmp.path().join(format!("list{count}.txt"));
        let text: String = photos[..count]
            .iter()
            .map(|p| format!("{}\n", p.display()))
            .collect();
        std::fs::write(&list, text)?;
        let results = tmp.path().join("results.jsonl");
        let _ = std::fs::remove_file(&results);
        let m = child::measure(
            Command::new(&amoeba)
                .args(["--quiet", "classify"])
                .arg(&opts.module)
                .arg("--list")
                .arg(&list)
                .args(["--batch", &opts.batch.to_string(), "-o"])
                .arg(&results)
                .env("AMOEBA_CACHE_DIR", ""),
        )?;
        let wall = m.wall.as_secs_f64();
        let lines = std::fs::read_to_string(&results)?.lines().count();
        if lines != count {
            bail!(
                "classify of {count} photos wrote {lines} results: {}",
                m.stderr
            );
        }
        let slope = previous.map(|(n, w)| (wall - w) / (count - n) as f64);
        eprintln!(
            "bench-classify: {count} photos: {wall:.2} s, {:.0} MB",
            m.peak_rss as f64 / 1e6
        );
        previous = Some((count, wall));
        rows.push((count, wall, m.peak_rss, slope));
    }
    // The forward pass alone again, after: a drift of the machine's speed shows as a
    // difference between the two, and the median of both is the reference.
    let after = forward_runs(&amoeba, opts, tmp.path())?;
    let (before_median, after_median) = (median(&before), median(&after));
    before.extend(after);
    let forward = median(&before) / opts.batch as f64;
    println!(
        "forward pass alone: {forward:.4} s/image at batch {} (median of {} runs: {:.4} before, {:.4} after)",
        opts.batch,
        before.len(),
        before_median / opts.batch as f64,
        after_median / opts.batch as f64
    );
    println!("| photos | wall s | peak RSS MB | s/photo (slope) | vs forward alone |");
    println!("| ---: | ---: | ---: | ---: | ---: |");
    for (count, wall, rss, slope) in rows {
        println!(
            "| {count} | {wall:.2} | {:.0} | {} | {} |",
            rss as f64 / 1e6,
            slope.map_or("-".into(), |s| format!("{s:.4}")),
            slope.map_or("-".into(), |s| format!("{:.3}", s / forward)),
        );
    }
    Ok(())
}

fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(f64::NAN)
}

/// `count` links to the shipped photos, cycled.
fn make_photos(root: &Path, dir: &Path, count: usize) -> Result<Vec<PathBuf>> {
    std::fs::create_dir_all(dir)?;
    let sources: Vec<PathBuf> = SHIPPED
        .iter()
        .map(|n| std::path::absolute(root.join("fixtures/preprocess").join(n)))
        .collect::<std::io::Result<_>>()?;
    (0..count)
        .map(|i| {
            let source = &sources[i % sources.len()];
            let ext = source.extension().and_then(|e| e.to_str()).unwrap_or("png");
            let link = dir.join(format!("photo{i:06}.{ext}"));
            std::os::unix::fs::symlink(source, &link)
                .with_context(|| link.display().to_string())?;
            Ok(link)
        })
        .collect()
}

/// The forward pass's seconds per batch, warm-up dropped.
fn forward_runs(amoeba: &Path, opts: &Options, tmp: &Path) -> Result<Vec<f64>> {
    let input = tmp.join("images.safetensors");
    write_images(&input, opts.batch, opts.size)?;
    let m = child::measure(
        Command::new(amoeba)
            .args(["--quiet", "run"])
            .arg(&opts.module)
            .arg("--input")
            .arg(&input)
            .arg("-o")
            .arg(tmp.join("out.safetensors"))
            .args(["--repeat", &(opts.repeats + 1).to_string()])
            .env("AMOEBA_CACHE_DIR", ""),
    )?;
    let seconds = m.values("forward_seconds").split_off(1);
    if seconds.is_empty() {
        bail!("amoeba run printed no forward_seconds: {}", m.stderr);
    }
    Ok(seconds)
}

/// A safetensors file with `images` [B, S, S, 3] float32, all 0.5 (the pass's cost does not
/// depend on the values).
fn write_images(path: &Path, batch: usize, size: usize) -> Result<()> {
    let values = batch * size * size * 3;
    let header = serde_json::json!({
        "images": {"dtype": "F32", "shape": [batch, size, size, 3], "data_offsets": [0, values * 4]}
    })
    .to_string();
    let mut header = header.into_bytes();
    while !header.len().is_multiple_of(8) {
        header.push(b' ');
    }
    let mut bytes = (header.len() as u64).to_le_bytes().to_vec();
    bytes.extend(header);
    bytes.extend(std::iter::repeat_n(0.5f32.to_le_bytes(), values).flatten());
    std::fs::write(path, bytes)?;
    Ok(())
}
