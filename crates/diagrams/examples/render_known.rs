//! Writes both cells of every known genotype as SVG (`<name>_normal.svg`, `<name>_reduction.svg`;
//! a one-cell-type genotype, PNASNet-5, as `<name>_cell.svg` once):
//! `cargo run -p diagrams --example render_known -- out-dir`.

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
        if g.has_one_cell_type() {
            std::fs::write(
                out.join(format!("{name}_cell.svg")),
                render_cell(&g, CellKind::Normal, Format::Svg),
            )?;
            continue;
        }
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
