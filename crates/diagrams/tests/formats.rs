//! Every format of the AmoebaNet-A N18/F448 network (built from the real variable list) and of
//! every known genotype: DOT parses, SVG is well-formed XML, Mermaid is a flowchart, JSON parses.

use diagrams::{render, render_cell, Format};
use nasnet_genotype::{
    from_variables, known_genotype, known_names, Assumptions, CellKind, NetworkSpec,
};

fn n18_f448() -> NetworkSpec {
    let tsv =
        include_str!("../../nasnet-genotype/tests/data/variables-n18-f448-classification.tsv");
    let vars: Vec<(String, Vec<usize>)> = tsv
        .lines()
        .filter(|l| !l.starts_with('#'))
        .map(|l| {
            let mut cols = l.split('\t');
            let name = cols.next().unwrap().to_string();
            (
                name,
                cols.next()
                    .unwrap()
                    .split('x')
                    .map(|d| d.parse().unwrap())
                    .collect(),
            )
        })
        .collect();
    let genotype = known_genotype("amoeba_net_a").unwrap();
    let a = Assumptions {
        genotype,
        image_size: [331, 331],
        batch_norm_epsilon: 1.001e-5,
        input_scale: 2.0,
        input_offset: -1.0,
    };
    from_variables(&vars, &a).unwrap().spec
}

fn parse_dot(dot: &str) {
    if let Err(e) = graphviz_rust::parse(dot) {
        panic!("DOT does not parse: {e}\n{dot}");
    }
}

fn parse_svg(svg: &str) -> usize {
    let doc = roxmltree::Document::parse(svg).expect("SVG is well-formed XML");
    assert_eq!(doc.root_element().tag_name().name(), "svg");
    doc.descendants().filter(|n| n.has_tag_name("text")).count()
}

#[test]
fn dot_parses() {
    let spec = n18_f448();
    let dot = render(&spec, Format::Dot);
    parse_dot(&dot);
    assert!(
        dot.contains("cluster_normal")
            && dot.contains("cluster_reduction")
            && dot.contains("cluster_network")
    );
    for name in known_names() {
        let g = known_genotype(name).unwrap();
        parse_dot(&render_cell(&g, CellKind::Reduction, Format::Dot));
    }
}

#[test]
fn svg_is_well_formed_and_labelled() {
    let spec = n18_f448();
    let texts = parse_svg(&render(&spec, Format::Svg));
    // Three titles, 2 inputs + 10 ops + 5 sums + concat per cell (two lines on 3 nodes), overview.
    assert!(texts > 40, "{texts} text elements");
    for name in known_names() {
        let g = known_genotype(name).unwrap();
        parse_svg(&render_cell(&g, CellKind::Normal, Format::Svg));
    }
}

#[test]
fn mermaid_is_a_flowchart() {
    let m = render(&n18_f448(), Format::Mermaid);
    assert!(m.starts_with("flowchart"));
    assert!(m.contains("d0n0([\"h0<br/>previous cell\"])") && m.contains("d0n0 --> "));
    assert_eq!(m.matches("subgraph").count(), m.matches("\n  end").count());
}

#[test]
fn text_has_the_wiring_and_the_table() {
    let t = render(&n18_f448(), Format::Text);
    assert!(
        t.contains("h5 = separable_3x3_2(h0) + separable_5x5_2(h2)"),
        "{t}"
    );
    assert!(t.contains("output = concat[h1, h3, h4, h6]"));
    assert!(t.contains("h5 = separable_3x3_2(h4) + 1x7_7x1/2(h0)"));
    assert!(t.contains("output = concat[h2, h3, h4, h5, h6]"));
    assert!(t.contains("11x11x7168"));
}

#[test]
fn json_parses_and_carries_the_spec() {
    let spec = n18_f448();
    let v: serde_json::Value = serde_json::from_str(&render(&spec, Format::Json)).unwrap();
    assert_eq!(v["diagrams"].as_array().unwrap().len(), 3);
    let back: NetworkSpec = serde_json::from_value(v["spec"].clone()).unwrap();
    assert_eq!(back, spec);
}

#[test]
fn committed_pictures_are_current() {
    let g = known_genotype("amoeba_net_a").unwrap();
    for (kind, file) in [
        (CellKind::Normal, "amoebanet_a_normal.svg"),
        (CellKind::Reduction, "amoebanet_a_reduction.svg"),
    ] {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("docs")
            .join(file);
        let committed = std::fs::read_to_string(&path).unwrap_or_default();
        assert_eq!(
            committed,
            render_cell(&g, kind, Format::Svg),
            "{} is stale: run `cargo run -p diagrams --example render`",
            path.display()
        );
    }
}

/// PNASNet-5 has one cell type: drawn once, titled as run with stride 2 too, in every format.
#[test]
fn a_one_cell_type_genotype_is_drawn_once() {
    let pnas = known_genotype("pnasnet_5").unwrap();
    let mut spec = n18_f448();
    spec.genotype = pnas.clone();
    assert_eq!(diagrams::diagrams(&spec).len(), 2);
    let text = render(&spec, Format::Text);
    assert!(
        text.contains("PNASNet-5: Cell (the one cell type; also run with stride 2"),
        "{text}"
    );
    assert_eq!(text.matches("output = concat").count(), 1, "{text}");
    assert!(!text.contains("Reduction cell"), "{text}");
    let svg = render(&spec, Format::Svg);
    assert!(svg.contains("also run with stride 2"));
    for kind in [CellKind::Normal, CellKind::Reduction] {
        let cell = render_cell(&pnas, kind, Format::Text);
        assert!(cell.contains("the one cell type"), "{cell}");
        assert!(
            !cell.contains("/2("),
            "drawn as written, without strides: {cell}"
        );
    }
    // Two-cell genotypes keep both drawings.
    assert_eq!(diagrams::diagrams(&n18_f448()).len(), 3);
}
