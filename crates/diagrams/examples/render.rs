//! Writes the README pictures: `cargo run -p diagrams --example render -- [out-dir]`.
//! The two AmoebaNet-A cells go to `<out-dir>/amoebanet_a_{normal,reduction}.svg`; with
//! `--network vars.tsv` the whole N18/F448 rendering built from a variable list as well.

use diagrams::{render, render_cell, Format};
use nasnet_genotype::{from_variables, known_genotype, Assumptions, CellKind};
use std::error::Error;
use std::path::PathBuf;

fn main() -> Result<(), Box<dyn Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = PathBuf::from(args.first().map_or("crates/diagrams/docs", String::as_str));
    let genotype = known_genotype("amoeba_net_a").ok_or("amoeba_net_a is a known genotype")?;
    for (kind, name) in [
        (CellKind::Normal, "normal"),
        (CellKind::Reduction, "reduction"),
    ] {
        let path = out.join(format!("amoebanet_a_{name}.svg"));
        std::fs::write(&path, render_cell(&genotype, kind, Format::Svg))?;
        println!("wrote {}", path.display());
    }
    if let (Some(flag), Some(tsv)) = (args.get(1), args.get(2)) {
        if flag == "--network" {
            let vars = read_tsv(&std::fs::read_to_string(tsv)?);
            let assumptions = Assumptions {
                genotype,
                image_size: [331, 331],
                batch_norm_epsilon: 1.001e-5,
                input_scale: 2.0,
                input_offset: -1.0,
            };
            let spec = from_variables(&vars, &assumptions)?.spec;
            std::fs::write(
                out.join("amoebanet_a_network.svg"),
                render(&spec, Format::Svg),
            )?;
            print!("{}", render(&spec, Format::Text));
        }
    }
    Ok(())
}

fn read_tsv(text: &str) -> Vec<(String, Vec<usize>)> {
    text.lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next()?.to_string();
            let shape = cols
                .next()?
                .split('x')
                .map(|d| d.parse().ok())
                .collect::<Option<Vec<usize>>>()?;
            Some((name, shape))
        })
        .collect()
}
