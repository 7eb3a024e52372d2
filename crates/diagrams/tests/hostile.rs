//! Hostile specs: names that try to break out of every output format, and genotypes at and
//! over the drawing caps.

use diagrams::{
    render, render_cell, try_render, try_render_cell, Format, MAX_DRAWN_CELLS,
    MAX_DRAWN_NAME_CHARS, MAX_DRAWN_OPERATIONS,
};
use nasnet_genotype::{
    known_genotype, CellKind, CellLayout, CellSpec, Genotype, NetworkSpec, Operation, PrevAdjust,
};

/// Each name carries `EVIL` so a test can tell where it ended up.
const HOSTILE: [&str; 14] = [
    "EVIL\"quote",
    "EVIL\\backslash\\N\\G\\l",
    "EVIL<script>alert(1)</script>",
    "EVIL&amp;&",
    "EVIL]]; x [label=\"pwn\"]",
    "EVIL}}} digraph g { a -> b }",
    "EVIL;end;",
    "EVIL\nline two\r\nline three",
    "EVIL --> d0n0",
    "%%EVIL comment",
    "EVIL\"]) --> x[(\"",
    "EVIL unicode ü 字 \u{202E}gpj.exe \u{1b}[2J",
    "EVIL 'single' `tick` #quot; #35;",
    "EVIL\u{0}\u{7}\u{FFFF}",
];

fn cell(scope: &str, kind: CellKind) -> CellLayout {
    CellLayout {
        scope: scope.to_string(),
        kind,
        filters: 8,
        stride: if kind == CellKind::Normal { 1 } else { 2 },
        input: 0,
        prev: None,
        prev_adjust: PrevAdjust::UseInput,
        input_hw: [8, 8],
        input_channels: 8,
        output_hw: [8, 8],
        output_channels: 32,
    }
}

/// A spec whose genotype name and cell scopes are `names`, one stage per name (kinds
/// alternate so no two cells are merged into one stage).
fn spec_with_names(genotype_name: &str, names: &[&str]) -> NetworkSpec {
    let mut genotype = known_genotype("amoeba_net_a").expect("a known genotype");
    genotype.name = Some(genotype_name.to_string());
    let cells = names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let kind = if i % 2 == 0 {
                CellKind::Normal
            } else {
                CellKind::Reduction
            };
            cell(n, kind)
        })
        .collect();
    NetworkSpec {
        genotype,
        filters: 8,
        num_cells: names.len(),
        reduction_indices: vec![1],
        stem_filters: 8,
        stem_scope: "stem/conv0".to_string(),
        num_stem_cells: 0,
        filter_scaling_rate: 2,
        image_size: [32, 32],
        num_classes: Some(10),
        num_features: 32,
        batch_norm_epsilon: 1e-3,
        input_scale: 2.0,
        input_offset: -1.0,
        cells,
    }
}

fn hostile_spec() -> NetworkSpec {
    spec_with_names(HOSTILE[4..11].concat().as_str(), &HOSTILE)
}

/// The text outside of double-quoted strings, reading `\` as an escape inside them; `None`
/// when a string is never closed.
fn outside_quotes(source: &str, backslash_escapes: bool) -> Option<String> {
    let mut outside = String::new();
    let mut chars = source.chars();
    let mut in_string = false;
    while let Some(c) = chars.next() {
        match (in_string, c) {
            (false, '"') | (true, '"') => in_string = !in_string,
            (true, '\\') if backslash_escapes => {
                chars.next()?;
            }
            (true, _) => {}
            (false, c) => outside.push(c),
        }
    }
    (!in_string).then_some(outside)
}

#[test]
fn dot_keeps_every_name_inside_its_quoted_string() {
    let spec = hostile_spec();
    for dot in [
        render(&spec, Format::Dot),
        render_cell(&spec.genotype, CellKind::Normal, Format::Dot),
    ] {
        let outside = outside_quotes(&dot, true).expect("every DOT string is closed");
        assert!(
            !outside.contains("EVIL"),
            "a name escaped its string:\n{dot}"
        );
        // Outside strings there are only keywords, attribute names, numbers and punctuation.
        assert!(
            outside
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || " \n_=;,[]{}->".contains(c)),
            "unexpected characters outside strings: {outside:?}"
        );
        if let Err(e) = graphviz_rust::parse(&dot) {
            panic!("DOT does not parse: {e}\n{dot}");
        }
    }
}

#[test]
fn dot_labels_show_the_names_escaped() {
    let dot = render(&hostile_spec(), Format::Dot);
    assert!(dot.contains(r#"EVIL\"quote"#), "{dot}");
    assert!(dot.contains(r"EVIL\\backslash\\N\\G\\l"), "{dot}");
    assert!(dot.contains(r"EVIL\nline two"), "{dot}");
}

#[test]
fn mermaid_names_stay_inside_quotes_and_ids_are_generated() {
    let spec = hostile_spec();
    for m in [
        render(&spec, Format::Mermaid),
        render_cell(&spec.genotype, CellKind::Reduction, Format::Mermaid),
    ] {
        assert!(m.starts_with("flowchart TB\n"));
        for line in m.lines() {
            let outside = outside_quotes(line, false).expect("quotes balance on every line");
            assert!(
                !outside.contains("EVIL") && !outside.contains("%%"),
                "{line}"
            );
            // Statements are `subgraph dK[...]`, `dKnI[...]`, `dKnI --> dKnJ`, `direction TB`, `end`.
            let words: Vec<&str> = outside
                .split(|c: char| " []()".contains(c))
                .filter(|w| !w.is_empty())
                .collect();
            for w in words {
                let id = w.strip_prefix('d').is_some_and(|rest| {
                    rest.split('n')
                        .all(|n| n.chars().all(|c| c.is_ascii_digit()))
                });
                assert!(
                    id || ["flowchart", "subgraph", "direction", "TB", "end", "-->"].contains(&w),
                    "unexpected word {w:?} outside labels in {line:?}"
                );
            }
            // Inside labels only our own `<br/>` is markup, and no `#` starts an entity of
            // the name's own making (ours are numeric).
            for label in line.split('"').skip(1).step_by(2) {
                let bare = label.replace("<br/>", "");
                assert!(
                    !bare.contains(['<', '>', '&', ';']) || entities_only(&bare),
                    "{label}"
                );
            }
        }
        assert!(!m.contains("EVIL\""), "{m}");
    }
    let m = render(&spec, Format::Mermaid);
    assert!(m.contains("EVIL#34;quote"), "{m}");
}

/// Every `;` and `#` in a Mermaid label belongs to a numeric entity `#<digits>;`.
fn entities_only(label: &str) -> bool {
    if label.contains(['<', '>', '&']) {
        return false;
    }
    let mut rest = label;
    while let Some(i) = rest.find(['#', ';']) {
        let after = &rest[i..];
        let Some(body) = after.strip_prefix('#') else {
            return false;
        };
        let digits = body.chars().take_while(char::is_ascii_digit).count();
        if digits == 0 || !body[digits..].starts_with(';') {
            return false;
        }
        rest = &body[digits + 1..];
    }
    true
}

/// Start and end tags balance, attributes are quoted, and no `<` or `&` appears in text
/// except as markup or an entity: a small hand-written check, besides a real XML parser.
fn tags_balance(svg: &str) {
    let mut open: Vec<&str> = Vec::new();
    let mut rest = svg;
    while let Some(start) = rest.find('<') {
        let text = &rest[..start];
        for (i, _) in text.match_indices('&') {
            let entity = &text[i..];
            assert!(
                ["&amp;", "&lt;", "&gt;", "&quot;", "&apos;"]
                    .iter()
                    .any(|e| entity.starts_with(e)),
                "bare & in text: {entity:.20}"
            );
        }
        let end = rest[start..].find('>').expect("every tag is closed") + start;
        let tag = &rest[start + 1..end];
        assert!(!tag.contains('<'), "a tag holds '<': {tag}");
        assert_eq!(
            tag.matches('"').count() % 2,
            0,
            "unbalanced quotes in <{tag}>"
        );
        let name = tag
            .trim_start_matches('/')
            .split([' ', '/'])
            .next()
            .unwrap_or("");
        if let Some(closing) = tag.strip_prefix('/') {
            assert_eq!(open.pop(), Some(closing.trim()), "mismatched </{closing}>");
        } else if !tag.ends_with('/') {
            open.push(name);
        }
        rest = &rest[end + 1..];
    }
    assert!(open.is_empty(), "unclosed tags: {open:?}");
}

#[test]
fn svg_is_well_formed_and_shows_the_names() {
    let spec = hostile_spec();
    let svg = render(&spec, Format::Svg);
    tags_balance(&svg);
    let doc = roxmltree::Document::parse(&svg).expect("SVG is well-formed XML");
    let texts: Vec<String> = doc
        .descendants()
        .filter(|n| n.has_tag_name("text"))
        .filter_map(|n| n.text().map(str::to_string))
        .collect();
    // Each cell's stage label, read back by the XML parser, is the name with its control
    // characters (newlines included) shown as U+FFFD.
    for name in HOSTILE {
        let shown: String = name
            .chars()
            .map(|c| {
                if c.is_control() || c == '\u{FFFF}' {
                    '\u{FFFD}'
                } else {
                    c
                }
            })
            .collect();
        assert!(
            texts.iter().any(|t| t.starts_with(&shown)),
            "{shown:?} not among the texts"
        );
    }
    tags_balance(&render_cell(&spec.genotype, CellKind::Normal, Format::Svg));
}

#[test]
fn text_keeps_each_name_on_its_line() {
    let benign: Vec<String> = (0..HOSTILE.len()).map(|i| format!("cell_{i}")).collect();
    let benign: Vec<&str> = benign.iter().map(String::as_str).collect();
    let plain = render(&spec_with_names("amoeba_net_a", &benign), Format::Text);
    let text = render(&hostile_spec(), Format::Text);
    assert_eq!(
        text.lines().count(),
        plain.lines().count(),
        "{text}\n----\n{plain}"
    );
    assert!(
        !text.contains(|c: char| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(!text.contains('\u{202E}'));
    // One table row per cell, each starting with its (escaped) scope.
    let rows: Vec<&str> = text.lines().filter(|l| l.ends_with("UseInput")).collect();
    assert_eq!(rows.len(), HOSTILE.len(), "{text}");
    assert!(rows
        .iter()
        .all(|r| r.starts_with("EVIL") || r.starts_with("%%EVIL")));
}

#[test]
fn json_round_trips_the_names_exactly() {
    let spec = hostile_spec();
    let v: serde_json::Value =
        serde_json::from_str(&render(&spec, Format::Json)).expect("valid JSON");
    let back: NetworkSpec = serde_json::from_value(v["spec"].clone()).expect("the spec");
    assert_eq!(back, spec);
}

/// A cell of `n` operations built for the longest edges: every left operation reads h0,
/// every right one the state just before, and every state is concatenated into the output.
fn long_cell(n: usize) -> CellSpec {
    let hiddenstate_indices = (0..n)
        .map(|i| if i % 2 == 0 { 0 } else { i / 2 + 1 })
        .collect();
    CellSpec {
        operations: vec![
            Operation::Separable {
                kernel: 3,
                repeats: 2
            };
            n
        ],
        hiddenstate_indices,
        used_hiddenstates: vec![0; n / 2 + 2],
    }
}

fn genotype_of(n: usize) -> Genotype {
    Genotype {
        name: None,
        normal: long_cell(n),
        reduction: long_cell(10),
    }
}

#[test]
fn a_genotype_at_the_operation_cap_is_drawn_in_every_format() {
    let genotype = genotype_of(MAX_DRAWN_OPERATIONS);
    let reads_earlier = |(i, &h): (usize, &usize)| h < 2 + i / 2;
    assert!(genotype
        .normal
        .hiddenstate_indices
        .iter()
        .enumerate()
        .all(reads_earlier));
    for format in [
        Format::Text,
        Format::Json,
        Format::Dot,
        Format::Svg,
        Format::Mermaid,
    ] {
        let out = try_render_cell(&genotype, CellKind::Normal, format).expect("under the cap");
        assert!(out.len() > 1000, "{format:?}: {} bytes", out.len());
    }
    let svg = try_render_cell(&genotype, CellKind::Normal, Format::Svg).expect("drawn");
    assert!(roxmltree::Document::parse(&svg).is_ok());
    // One box per node: 2 inputs, the operations, a sum per combination and the concat.
    let nodes = 2 + MAX_DRAWN_OPERATIONS + MAX_DRAWN_OPERATIONS / 2 + 1;
    assert_eq!(
        svg.matches("<rect x=").count() + svg.matches("<ellipse").count(),
        nodes + 1
    );
}

#[test]
fn a_genotype_over_the_operation_cap_is_refused_naming_the_cap() {
    for n in [MAX_DRAWN_OPERATIONS + 2, 20_000] {
        let genotype = genotype_of(n);
        let err =
            try_render_cell(&genotype, CellKind::Reduction, Format::Svg).expect_err("over the cap");
        let message = err.to_string();
        assert!(
            message.contains(&format!("normal cell has {n} operations")),
            "{message}"
        );
        assert!(message.contains("MAX_DRAWN_OPERATIONS"), "{message}");
        // The infallible form says so in the format's own syntax instead of drawing.
        let svg = render_cell(&genotype, CellKind::Normal, Format::Svg);
        assert!(svg.contains("not drawn") && roxmltree::Document::parse(&svg).is_ok());
        let dot = render_cell(&genotype, CellKind::Normal, Format::Dot);
        assert!(graphviz_rust::parse(&dot).is_ok() && dot.contains("not drawn"));
    }
}

#[test]
fn too_many_cells_and_too_long_names_are_refused() {
    let many: Vec<String> = (0..=MAX_DRAWN_CELLS).map(|i| format!("cell_{i}")).collect();
    let many: Vec<&str> = many.iter().map(String::as_str).collect();
    let err = try_render(&spec_with_names("x", &many), Format::Text).expect_err("too many");
    assert!(err.to_string().contains("MAX_DRAWN_CELLS"), "{err}");
    let at_cap = &many[..MAX_DRAWN_CELLS];
    assert!(try_render(&spec_with_names("x", at_cap), Format::Svg).is_ok());

    let long = "c".repeat(MAX_DRAWN_NAME_CHARS + 1);
    let err = try_render(&spec_with_names("x", &[&long]), Format::Dot).expect_err("too long");
    assert!(err.to_string().contains("MAX_DRAWN_NAME_CHARS"), "{err}");
    let err = try_render(&spec_with_names(&long, &["cell_0"]), Format::Dot).expect_err("name");
    assert!(err.to_string().contains("genotype name"), "{err}");
    let longest = "c".repeat(MAX_DRAWN_NAME_CHARS);
    assert!(try_render(&spec_with_names(&longest, &[&longest]), Format::Svg).is_ok());
}
