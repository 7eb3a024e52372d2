//! A small layered (Sugiyama-style) layout for the SVG: layers by longest path, dummy nodes on
//! long edges, barycentre ordering and positioning, edges routed only through the gaps between
//! layers and through their own dummy slots, so no edge crosses a node and no labels overlap.

use crate::model::{Diagram, NodeKind};

pub const FONT_SIZE: f64 = 13.0;
/// Advance of one monospace character at `FONT_SIZE` (0.6 em).
pub const CHAR_W: f64 = 7.8;
pub const LINE_H: f64 = 17.0;
const PAD_X: f64 = 12.0;
const PAD_Y: f64 = 8.0;
const NODE_SEP: f64 = 26.0;
const LAYER_GAP: f64 = 44.0;
const DUMMY_W: f64 = 10.0;
pub const MARGIN: f64 = 20.0;
pub const TITLE_H: f64 = 34.0;

/// A node's box: left, top, width, height.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Rect {
    pub x: f64,
    pub y: f64,
    pub w: f64,
    pub h: f64,
}

impl Rect {
    pub fn cx(&self) -> f64 {
        self.x + self.w / 2.0
    }
}

/// The laid-out diagram: one box per node, one SVG path per edge, the overall size.
#[derive(Debug, Clone, PartialEq)]
pub struct Laid {
    pub boxes: Vec<Rect>,
    pub paths: Vec<String>,
    pub width: f64,
    pub height: f64,
}

/// One slot in a layer: a real node or a dummy carrying a long edge.
struct Slot {
    layer: usize,
    w: f64,
    h: f64,
    x: f64,
}

/// Size of a node's box from its label.
pub fn node_size(label: &[String], kind: NodeKind) -> (f64, f64) {
    let chars = label.iter().map(|l| l.chars().count()).max().unwrap_or(1) as f64;
    let extra = if kind == NodeKind::Add {
        2.0 * PAD_X
    } else {
        0.0
    };
    (
        (chars * CHAR_W + 2.0 * PAD_X + extra).max(48.0),
        label.len().max(1) as f64 * LINE_H + 2.0 * PAD_Y,
    )
}

/// Layers by longest path; single-successor operations are then pulled down next to their
/// successor so each combination's two operations sit right above their sum.
///
/// O(nodes + edges): one topological pass (Kahn's algorithm, so edges in any order work) for
/// the longest path, and the pull-down in the reverse of that order, when every successor of
/// a node already has its final layer. A node on a cycle (never built here) keeps layer 0.
fn layers(d: &Diagram) -> Vec<usize> {
    let n = d.nodes.len();
    let mut succs: Vec<Vec<usize>> = vec![Vec::new(); n];
    let mut indegree = vec![0usize; n];
    for e in &d.edges {
        succs[e.from].push(e.to);
        indegree[e.to] += 1;
    }
    let mut layer = vec![0; n];
    let mut topo: Vec<usize> = (0..n).filter(|&v| indegree[v] == 0).collect();
    let mut next = 0;
    while let Some(&v) = topo.get(next) {
        next += 1;
        for &w in &succs[v] {
            layer[w] = layer[w].max(layer[v] + 1);
            indegree[w] -= 1;
            if indegree[w] == 0 {
                topo.push(w);
            }
        }
    }
    for &v in topo.iter().rev() {
        let pullable = !matches!(
            d.nodes[v].kind,
            NodeKind::Input
                | NodeKind::Add
                | NodeKind::Output
                | NodeKind::Stage
                | NodeKind::ReductionStage
        );
        let succ = succs[v].iter().map(|&w| layer[w]).min();
        if let (true, Some(s)) = (pullable, succ) {
            layer[v] = s - 1;
        }
    }
    layer
}

pub fn layout(d: &Diagram) -> Laid {
    let layer = layers(d);
    let mut slots: Vec<Slot> = d
        .nodes
        .iter()
        .zip(&layer)
        .map(|(node, &l)| {
            let (w, h) = node_size(&node.label, node.kind);
            Slot {
                layer: l,
                w,
                h,
                x: 0.0,
            }
        })
        .collect();
    // Each edge becomes a chain of slots, with one dummy per layer it skips.
    let chains: Vec<Vec<usize>> = d
        .edges
        .iter()
        .map(|e| {
            let mut chain = vec![e.from];
            for l in layer[e.from] + 1..layer[e.to] {
                slots.push(Slot {
                    layer: l,
                    w: DUMMY_W,
                    h: 0.0,
                    x: 0.0,
                });
                chain.push(slots.len() - 1);
            }
            chain.push(e.to);
            chain
        })
        .collect();
    let (preds, succs) = adjacency(slots.len(), &chains);
    let depth = layer.iter().copied().max().unwrap_or(0) + 1;
    let mut order: Vec<Vec<usize>> = vec![Vec::new(); depth];
    for (i, s) in slots.iter().enumerate() {
        order[s.layer].push(i);
    }
    sort_layers(&mut order, &preds, &succs);
    place_x(&mut slots, &order, &preds, &succs);
    let tops = layer_tops(&slots, &order);
    let boxes: Vec<Rect> = (0..d.nodes.len())
        .map(|i| Rect {
            x: slots[i].x - slots[i].w / 2.0,
            y: tops[slots[i].layer],
            w: slots[i].w,
            h: slots[i].h,
        })
        .collect();
    let bottoms: Vec<f64> = order
        .iter()
        .enumerate()
        .map(|(l, o)| tops[l] + o.iter().map(|&v| slots[v].h).fold(0.0, f64::max))
        .collect();
    let paths = route(&slots, &chains, &tops, &bottoms, d.nodes.len());
    let width = slots.iter().map(|s| s.x + s.w / 2.0).fold(0.0, f64::max) + MARGIN;
    let title_w = d.title.chars().count() as f64 * CHAR_W * 1.1 + 2.0 * MARGIN;
    let height = bottoms.last().copied().unwrap_or(0.0) + MARGIN;
    Laid {
        boxes,
        paths,
        width: width.max(title_w),
        height,
    }
}

fn adjacency(n: usize, chains: &[Vec<usize>]) -> (Vec<Vec<usize>>, Vec<Vec<usize>>) {
    let mut preds = vec![Vec::new(); n];
    let mut succs = vec![Vec::new(); n];
    for chain in chains {
        for w in chain.windows(2) {
            succs[w[0]].push(w[1]);
            preds[w[1]].push(w[0]);
        }
    }
    (preds, succs)
}

/// Barycentre sweeps, down and up; the first layer keeps its order (h0 left of h1).
fn sort_layers(order: &mut [Vec<usize>], preds: &[Vec<usize>], succs: &[Vec<usize>]) {
    let n = preds.len();
    for _ in 0..6 {
        for down in [true, false] {
            let mut pos = vec![0.0; n];
            for o in order.iter() {
                for (i, &v) in o.iter().enumerate() {
                    pos[v] = i as f64;
                }
            }
            let layers: Vec<usize> = if down {
                (1..order.len()).collect()
            } else {
                (1..order.len()).rev().collect()
            };
            for l in layers {
                let key = |v: usize| {
                    let nb = if down { &preds[v] } else { &succs[v] };
                    if nb.is_empty() {
                        pos[v]
                    } else {
                        nb.iter().map(|&u| pos[u]).sum::<f64>() / nb.len() as f64
                    }
                };
                let mut keyed: Vec<(f64, usize)> = order[l].iter().map(|&v| (key(v), v)).collect();
                keyed.sort_by(|a, b| a.0.total_cmp(&b.0));
                order[l] = keyed.into_iter().map(|(_, v)| v).collect();
                for (i, &v) in order[l].iter().enumerate() {
                    pos[v] = i as f64;
                }
            }
        }
    }
}

/// Minimum distance between the centres of neighbours `a` (left) and `b`.
fn gap(slots: &[Slot], a: usize, b: usize) -> f64 {
    (slots[a].w + slots[b].w) / 2.0 + NODE_SEP
}

/// X positions: packed first, then pulled towards neighbours' barycentres while keeping order
/// and separation (the mean of a left-packed and a right-packed placement keeps both).
fn place_x(slots: &mut [Slot], order: &[Vec<usize>], preds: &[Vec<usize>], succs: &[Vec<usize>]) {
    for o in order {
        let mut x = MARGIN;
        for (i, &v) in o.iter().enumerate() {
            x += if i == 0 {
                slots[v].w / 2.0
            } else {
                gap(slots, o[i - 1], v)
            };
            slots[v].x = x;
        }
    }
    for round in 0..24 {
        let down = round % 2 == 0;
        let layers: Vec<usize> = if down {
            (0..order.len()).collect()
        } else {
            (0..order.len()).rev().collect()
        };
        for l in layers {
            let o = &order[l];
            let desired: Vec<f64> = o
                .iter()
                .map(|&v| {
                    let nb = if down { &preds[v] } else { &succs[v] };
                    let nb = if nb.is_empty() {
                        if down {
                            &succs[v]
                        } else {
                            &preds[v]
                        }
                    } else {
                        nb
                    };
                    if nb.is_empty() {
                        slots[v].x
                    } else {
                        nb.iter().map(|&u| slots[u].x).sum::<f64>() / nb.len() as f64
                    }
                })
                .collect();
            let mut left = desired.clone();
            for i in 1..o.len() {
                left[i] = left[i].max(left[i - 1] + gap(slots, o[i - 1], o[i]));
            }
            let mut right = desired;
            for i in (0..o.len().saturating_sub(1)).rev() {
                right[i] = right[i].min(right[i + 1] - gap(slots, o[i], o[i + 1]));
            }
            for (i, &v) in o.iter().enumerate() {
                slots[v].x = (left[i] + right[i]) / 2.0;
            }
        }
    }
    let min_left = slots
        .iter()
        .map(|s| s.x - s.w / 2.0)
        .fold(f64::INFINITY, f64::min);
    for s in slots.iter_mut() {
        s.x += MARGIN - min_left;
    }
}

/// Top of each layer's band; nodes are aligned to it.
fn layer_tops(slots: &[Slot], order: &[Vec<usize>]) -> Vec<f64> {
    let mut tops = Vec::with_capacity(order.len());
    let mut y = MARGIN + TITLE_H;
    for o in order {
        tops.push(y);
        y += o.iter().map(|&v| slots[v].h).fold(0.0, f64::max) + LAYER_GAP;
    }
    tops
}

/// Ports spread over the middle 60% of a node's side, ordered by the other end's x.
///
/// Each chain is filed under its two end nodes once, so this is O(edges log edges).
fn ports(slots: &[Slot], chains: &[Vec<usize>], real: usize) -> (Vec<f64>, Vec<f64>) {
    let mut out_x = vec![0.0; chains.len()];
    let mut in_x = vec![0.0; chains.len()];
    // Per real node: (x of the next slot along the chain, chain index), in chain order.
    let mut outgoing: Vec<Vec<(f64, usize)>> = vec![Vec::new(); real];
    let mut incoming: Vec<Vec<(f64, usize)>> = vec![Vec::new(); real];
    for (i, c) in chains.iter().enumerate() {
        let (first, last) = (c[0], c[c.len() - 1]);
        if first < real {
            outgoing[first].push((slots[c[1]].x, i));
        }
        if last < real {
            incoming[last].push((slots[c[c.len() - 2]].x, i));
        }
    }
    for (v, ends) in outgoing.iter_mut().enumerate() {
        spread(&slots[v], ends, &mut out_x);
    }
    for (v, ends) in incoming.iter_mut().enumerate() {
        spread(&slots[v], ends, &mut in_x);
    }
    (out_x, in_x)
}

/// Puts the ports of `ends` (sorted by the other end's x, stably) evenly along `slot`'s side.
fn spread(slot: &Slot, ends: &mut [(f64, usize)], port_x: &mut [f64]) {
    ends.sort_by(|a, b| a.0.total_cmp(&b.0));
    let k = ends.len() as f64;
    for (j, &(_, e)) in ends.iter().enumerate() {
        port_x[e] = slot.x + ((j as f64 + 1.0) / (k + 1.0) - 0.5) * 0.6 * slot.w;
    }
}

/// Each edge: down its source's column to the band bottom, curves only in the gaps between
/// layers, straight down through its dummy slots, into the target's top.
fn route(
    slots: &[Slot],
    chains: &[Vec<usize>],
    tops: &[f64],
    bottoms: &[f64],
    real: usize,
) -> Vec<String> {
    let (out_x, in_x) = ports(slots, chains, real);
    chains
        .iter()
        .enumerate()
        .map(|(e, chain)| {
            let src = chain[0];
            let (mut px, mut py) = (out_x[e], bottoms[slots[src].layer]);
            let mut d = format!(
                "M{:.1},{:.1} L{px:.1},{py:.1}",
                out_x[e],
                tops[slots[src].layer] + slots[src].h
            );
            for (k, &v) in chain.iter().enumerate().skip(1) {
                let last = k == chain.len() - 1;
                let qx = if last { in_x[e] } else { slots[v].x };
                let qy = tops[slots[v].layer];
                let my = (py + qy) / 2.0;
                d += &format!(" C{px:.1},{my:.1} {qx:.1},{my:.1} {qx:.1},{qy:.1}");
                px = qx;
                py = qy;
                if !last {
                    py = bottoms[slots[v].layer];
                    d += &format!(" L{px:.1},{py:.1}");
                }
            }
            d
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::cell_diagram;
    use nasnet_genotype::{known_genotype, known_names, CellKind};

    /// Points along an SVG path made of M, L and C commands (the only ones `route` writes).
    fn samples(d: &str) -> Vec<(f64, f64)> {
        let mut out = Vec::new();
        let mut cur = (0.0, 0.0);
        let nums = |s: &str| -> Vec<f64> {
            s.split([',', ' '])
                .filter(|t| !t.is_empty())
                .map(|t| t.parse().unwrap())
                .collect()
        };
        let mut rest = d;
        while let Some(c) = rest.chars().next() {
            let end = rest[1..]
                .find(['M', 'L', 'C'])
                .map_or(rest.len(), |i| i + 1);
            let v = nums(rest[1..end].trim());
            match c {
                'M' => cur = (v[0], v[1]),
                'L' => {
                    for t in 0..=20 {
                        let t = t as f64 / 20.0;
                        out.push((cur.0 + (v[0] - cur.0) * t, cur.1 + (v[1] - cur.1) * t));
                    }
                    cur = (v[0], v[1]);
                }
                'C' => {
                    for t in 0..=40 {
                        let t = t as f64 / 40.0;
                        let u = 1.0 - t;
                        let x = u * u * u * cur.0
                            + 3.0 * u * u * t * v[0]
                            + 3.0 * u * t * t * v[2]
                            + t * t * t * v[4];
                        let y = u * u * u * cur.1
                            + 3.0 * u * u * t * v[1]
                            + 3.0 * u * t * t * v[3]
                            + t * t * t * v[5];
                        out.push((x, y));
                    }
                    cur = (v[4], v[5]);
                }
                _ => panic!("unexpected path command {c}"),
            }
            rest = &rest[end..];
        }
        out
    }

    fn check(d: &Diagram) {
        let laid = layout(d);
        let b = &laid.boxes;
        for i in 0..b.len() {
            for j in i + 1..b.len() {
                let apart = b[i].x + b[i].w <= b[j].x
                    || b[j].x + b[j].w <= b[i].x
                    || b[i].y + b[i].h <= b[j].y
                    || b[j].y + b[j].h <= b[i].y;
                assert!(
                    apart,
                    "{}: nodes {} and {} overlap",
                    d.id, d.nodes[i].id, d.nodes[j].id
                );
            }
            assert!(
                b[i].x >= 0.0 && b[i].x + b[i].w <= laid.width && b[i].y + b[i].h <= laid.height
            );
        }
        for (path, e) in laid.paths.iter().zip(&d.edges) {
            for (x, y) in samples(path) {
                for (k, r) in b.iter().enumerate() {
                    let inside = x > r.x + 1.0
                        && x < r.x + r.w - 1.0
                        && y > r.y + 1.0
                        && y < r.y + r.h - 1.0;
                    assert!(
                        !inside,
                        "{}: edge {} -> {} runs through {}",
                        d.id, d.nodes[e.from].id, d.nodes[e.to].id, d.nodes[k].id
                    );
                }
            }
        }
    }

    #[test]
    fn layers_follow_longest_paths_whatever_the_edge_order() {
        let node = |id: &str| crate::model::Node {
            id: id.to_string(),
            label: vec![id.to_string()],
            kind: NodeKind::Stage,
        };
        let edge = |from, to| crate::model::Edge { from, to };
        // 0 -> 2 -> 1 and a shortcut 0 -> 1, listed against index order.
        let d = Diagram {
            id: "t".into(),
            title: "t".into(),
            nodes: vec![node("a"), node("b"), node("c")],
            edges: vec![edge(2, 1), edge(0, 1), edge(0, 2)],
        };
        assert_eq!(layers(&d), vec![0, 2, 1]);
        check(&d);
    }

    #[test]
    fn no_overlaps_and_no_edges_through_nodes_for_every_known_cell() {
        for name in known_names() {
            let g = known_genotype(name).unwrap();
            check(&cell_diagram(&g.normal, CellKind::Normal, Some(name)));
            check(&cell_diagram(&g.reduction, CellKind::Reduction, Some(name)));
        }
    }
}
