//! Standalone SVG: each diagram laid out by `layout`, panels side by side.

use crate::dot::style;
use crate::escape::xml as escape;
use crate::layout::{layout, Laid, Rect, CHAR_W, FONT_SIZE, LINE_H, MARGIN};
use crate::model::{Diagram, NodeKind};
use std::fmt::Write;

const PANEL_GAP: f64 = 30.0;

pub fn render(diagrams: &[Diagram]) -> String {
    let laid: Vec<Laid> = diagrams.iter().map(layout).collect();
    let width =
        laid.iter().map(|l| l.width).sum::<f64>() + PANEL_GAP * laid.len().saturating_sub(1) as f64;
    let height = laid.iter().map(|l| l.height).fold(0.0, f64::max);
    let mut out = String::new();
    let _ = writeln!(
        out,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{width:.0}\" height=\"{height:.0}\" viewBox=\"0 0 {width:.0} {height:.0}\" font-family=\"DejaVu Sans Mono, Menlo, Consolas, monospace\" font-size=\"{FONT_SIZE}\">"
    );
    out.push_str("<defs><marker id=\"arrow\" viewBox=\"0 0 10 10\" refX=\"10\" refY=\"5\" markerWidth=\"7\" markerHeight=\"7\" orient=\"auto\"><path d=\"M0,0 L10,5 L0,10 z\" fill=\"#555555\"/></marker></defs>\n");
    let _ = writeln!(
        out,
        "<rect x=\"0\" y=\"0\" width=\"{width:.0}\" height=\"{height:.0}\" fill=\"#ffffff\"/>"
    );
    let mut x = 0.0;
    for (d, l) in diagrams.iter().zip(&laid) {
        panel(&mut out, d, l, x);
        x += l.width + PANEL_GAP;
    }
    out.push_str("</svg>\n");
    out
}

fn panel(out: &mut String, d: &Diagram, l: &Laid, x: f64) {
    let _ = writeln!(
        out,
        "<g id=\"{}\" transform=\"translate({x:.1},0)\">",
        escape(&d.id)
    );
    let _ = writeln!(
        out,
        "<text x=\"{MARGIN}\" y=\"{:.1}\" font-size=\"{:.0}\" font-weight=\"bold\">{}</text>",
        MARGIN + FONT_SIZE,
        FONT_SIZE + 2.0,
        escape(&d.title)
    );
    for p in &l.paths {
        let _ = writeln!(out, "<path d=\"{p}\" fill=\"none\" stroke=\"#555555\" stroke-width=\"1.3\" marker-end=\"url(#arrow)\"/>");
    }
    for (n, r) in d.nodes.iter().zip(&l.boxes) {
        node(out, n.kind, &n.label, r);
    }
    out.push_str("</g>\n");
}

fn node(out: &mut String, kind: NodeKind, label: &[String], r: &Rect) {
    let (_, fill) = style(kind);
    if kind == NodeKind::Add {
        let _ = writeln!(out, "<ellipse cx=\"{:.1}\" cy=\"{:.1}\" rx=\"{:.1}\" ry=\"{:.1}\" fill=\"{fill}\" stroke=\"#333333\"/>", r.cx(), r.y + r.h / 2.0, r.w / 2.0, r.h / 2.0);
    } else {
        let _ = writeln!(out, "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" rx=\"6\" fill=\"{fill}\" stroke=\"#333333\"/>", r.x, r.y, r.w, r.h);
    }
    let first = r.y + r.h / 2.0 - (label.len() as f64 - 1.0) * LINE_H / 2.0;
    for (i, line) in label.iter().enumerate() {
        // `textLength` pins the advance the layout assumed, whatever monospace font is used.
        let len = line.chars().count() as f64 * CHAR_W;
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\" text-anchor=\"middle\" dominant-baseline=\"central\" textLength=\"{len:.1}\" lengthAdjust=\"spacingAndGlyphs\">{}</text>",
            r.cx(),
            first + i as f64 * LINE_H,
            escape(line)
        );
    }
}
