//! Writes both cells of every known genotype as SVG: `cargo run -p diagrams --example render_known -- out-dir`.

use diagrams::{render_cell, Format};
use nasnet_genotype::{known_genotype, known_names, CellKind};
use std::error::Error;

fn main() -> Result<(), Box<dyn Error>> {
    let out = std::path::PathBuf::from(
        std::env::args()
            .nth(1)
            .ok_or("usage: render_known out-dir")?,
    );
    for name in known_names() {
        let g = known_genotype(name).ok_or("known")?;
        for (kind, k) in [
            (CellKind::Normal, "normal"),
            (CellKind::Reduction, "reduction"),
        ] {
            std::fs::write(
                out.join(format!("{name}_{k}.svg")),
                render_cell(&g, kind, Format::Svg),
            )?;
        }
    }
    Ok(())
}
