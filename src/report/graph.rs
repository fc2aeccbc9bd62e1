//! The picture of a system: zones (left), virtual units (middle) and nodes (right), the flows from
//! zones to the addresses they reach, and each unit's instance nodes; drawn as SVG, Mermaid or DOT
//! by our own layered layout.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::{Row, Status};
use crate::deployment::Deployment;
use crate::plan::Plan;

/// A box of the picture.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vertex {
    /// A stable identifier safe in every output language: `z0`, `u0`, `n0`.
    pub id: String,
    pub label: String,
    /// The address(es) under the name.
    pub detail: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EdgeKind {
    /// Ports a zone must reach on a unit or node.
    Flow,
    /// A unit's instance on a node (the unit's virtual IP moves between them).
    Instance,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    pub from: String,
    pub to: String,
    pub kind: EdgeKind,
    /// The worst status of the ports the edge carries; `None` in a plan-only picture.
    pub status: Option<Status>,
    /// Planned ports on the edge, and how many of them are verified.
    pub ports: usize,
    pub verified: usize,
}

impl Edge {
    pub fn label(&self) -> String {
        match (self.kind, self.status) {
            (EdgeKind::Instance, _) => "instance".to_string(),
            (EdgeKind::Flow, None) if self.ports == 1 => "1 port".to_string(),
            (EdgeKind::Flow, None) => format!("{} ports", self.ports),
            (EdgeKind::Flow, Some(_)) => format!("{}/{} verified", self.verified, self.ports),
        }
    }
}

#[derive(Debug, Clone, Default)]
pub struct Graph {
    pub name: String,
    pub zones: Vec<Vertex>,
    pub units: Vec<Vertex>,
    pub nodes: Vec<Vertex>,
    pub edges: Vec<Edge>,
}

/// The picture of the plan alone (`rows` = None) or of a report's matrix.
pub fn build(dep: &Deployment, plan: &Plan, rows: Option<&[Row]>) -> Graph {
    let zone_id: BTreeMap<&str, String> = dep
        .zones
        .iter()
        .enumerate()
        .map(|(i, z)| (z.name.as_str(), format!("z{i}")))
        .collect();
    let unit_id: BTreeMap<&str, String> = dep
        .units
        .iter()
        .enumerate()
        .map(|(i, u)| (u.name.as_str(), format!("u{i}")))
        .collect();
    let node_id: BTreeMap<&str, String> = dep
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.name.as_str(), format!("n{i}")))
        .collect();
    let coloured = rows.is_some();
    let owned;
    let rows = match rows {
        Some(r) => r,
        None => {
            // The plan's rows, and those toward the agents' PCs (media from the servers, the
            // trunk and other PCs): a picture without them hides half of the media path.
            owned = {
                let mut rows = super::planned(dep, plan);
                rows.extend(super::workstation_rows(dep, plan, &[]));
                rows
            };
            &owned[..]
        }
    };
    // Edge per (zone, destination box), in first-seen order.
    let mut order: Vec<(String, String)> = Vec::new();
    let mut acc: BTreeMap<(String, String), (usize, usize, Status)> = BTreeMap::new();
    for r in rows {
        let Some(from) = zone_id.get(r.zone.as_str()) else {
            continue;
        };
        let to = match (&r.unit, &r.workstations) {
            (Some(u), _) => unit_id.get(u.as_str()),
            // Toward agent PCs: the edge ends on their client zone (not on itself: no loops).
            (None, Some(wz)) => zone_id.get(wz.as_str()).filter(|&to| to != from),
            (None, None) => node_id.get(r.node.as_str()),
        };
        let Some(to) = to else { continue };
        let key = (from.clone(), to.clone());
        let e = acc.entry(key.clone()).or_insert_with(|| {
            order.push(key);
            (0, 0, Status::Verified)
        });
        e.0 += 1;
        if r.status == Status::Verified {
            e.1 += 1;
        }
        if r.status.rank() > e.2.rank() {
            e.2 = r.status;
        }
    }
    let mut edges: Vec<Edge> = order
        .into_iter()
        .map(|k| {
            let (ports, verified, worst) = acc[&k];
            Edge {
                from: k.0,
                to: k.1,
                kind: EdgeKind::Flow,
                status: coloured.then_some(worst),
                ports,
                verified,
            }
        })
        .collect();
    for (ui, u) in dep.units.iter().enumerate() {
        for &n in &u.instances {
            edges.push(Edge {
                from: format!("u{ui}"),
                to: format!("n{n}"),
                kind: EdgeKind::Instance,
                status: None,
                ports: 0,
                verified: 0,
            });
        }
    }
    Graph {
        name: dep.name.clone(),
        zones: dep
            .zones
            .iter()
            .enumerate()
            .map(|(i, z)| Vertex {
                id: format!("z{i}"),
                label: z.name.clone(),
                detail: z
                    .cidrs
                    .iter()
                    .map(crate::flows::net_text)
                    .collect::<Vec<_>>()
                    .join(" "),
            })
            .collect(),
        units: {
            // Units beside their nodes: ordered by the mean position of their instance nodes
            // (the barycentre heuristic of layered drawing), so instance lines cross less.
            let mut order: Vec<(f64, usize)> = dep
                .units
                .iter()
                .enumerate()
                .map(|(i, u)| {
                    let n = u.instances.len().max(1) as f64;
                    (u.instances.iter().map(|&x| x as f64).sum::<f64>() / n, i)
                })
                .collect();
            order.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
            order
                .into_iter()
                .map(|(_, i)| Vertex {
                    id: format!("u{i}"),
                    label: dep.units[i].name.clone(),
                    detail: dep.units[i].address.to_string(),
                })
                .collect()
        },
        nodes: dep
            .nodes
            .iter()
            .enumerate()
            .map(|(i, n)| Vertex {
                id: format!("n{i}"),
                label: n.name.clone(),
                detail: format!("{} · {}", n.address, dep.zones[n.zone].name),
            })
            .collect(),
        edges,
    }
}

/// The colour of a status, shared by the SVG and the HTML legend.
pub fn colour(status: Option<Status>) -> &'static str {
    match status {
        None => "#6b7280",
        Some(Status::Verified) => "#15803d",
        Some(Status::Untested) => "#9ca3af",
        Some(Status::Inconclusive) => "#ca8a04",
        Some(Status::Open) => "#ea580c",
        Some(Status::Closed) => "#dc2626",
        Some(Status::Error) => "#7c3aed",
        Some(Status::Filtered) => "#991b1b",
    }
}

/// The line pattern of a status (SVG `stroke-dasharray`), so that statuses differ without their
/// hue: in greyscale and for colour-vision deficiencies (filtered and closed are both reds).
/// Instance lines are grey "5 4", thinner.
pub fn dashes(status: Option<Status>) -> Option<&'static str> {
    match status {
        None | Some(Status::Verified) | Some(Status::Untested) => None,
        Some(Status::Filtered) => Some("2 3"),
        Some(Status::Closed) => Some("10 4"),
        Some(Status::Open) => Some("10 3 2 3"),
        Some(Status::Error) => Some("2 3 2 3 8 3"),
        Some(Status::Inconclusive) => Some("1 6"),
    }
}

/// A legend's sample of a status's line (colour and pattern), inline SVG; `None`: the dashed
/// grey of a unit's instance lines.
pub fn swatch(status: Option<Status>) -> String {
    let dash = match status {
        None => Some("5 4"),
        Some(st) => dashes(Some(st)),
    };
    format!(
        "<svg width=\"36\" height=\"8\" aria-hidden=\"true\"><path d=\"M0 4 h36\" stroke=\"{}\" stroke-width=\"2\"{}/></svg>",
        colour(status),
        dash.map(|p| format!(" stroke-dasharray=\"{p}\""))
            .unwrap_or_default()
    )
}

/// Text safe in HTML and SVG content and attribute values: [`crate::safe::Sink::Markup`] (one
/// line).
pub fn esc(text: &str) -> String {
    crate::safe::clean(crate::safe::Sink::Markup, text).into_owned()
}

const BOX_W: f64 = 230.0;
const BOX_H: f64 = 52.0;
const GAP_Y: f64 = 22.0;
const COL_X: [f64; 3] = [20.0, 360.0, 700.0];
const TOP: f64 = 46.0;

fn cut(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        text.to_string()
    } else {
        let mut s: String = text.chars().take(max - 1).collect();
        s.push('…');
        s
    }
}

/// The SVG picture: three columns of boxes, flows as curves coloured by status, instances dashed.
pub fn svg(g: &Graph) -> String {
    let columns = [&g.zones, &g.units, &g.nodes];
    let mut pos: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    let tallest = columns.iter().map(|c| c.len()).max().unwrap_or(0).max(1);
    let height = TOP + tallest as f64 * (BOX_H + GAP_Y) + 20.0;
    for (ci, col) in columns.iter().enumerate() {
        // Centre shorter columns against the tallest.
        let used = col.len() as f64 * (BOX_H + GAP_Y);
        let offset = (tallest as f64 * (BOX_H + GAP_Y) - used) / 2.0;
        for (i, v) in col.iter().enumerate() {
            pos.insert(
                v.id.as_str(),
                (COL_X[ci], TOP + offset + i as f64 * (BOX_H + GAP_Y)),
            );
        }
    }
    // The gaps of the units column (above, between and below its boxes): a zone-to-node curve
    // crosses the column through the nearest one, never under a box.
    let unit_gaps: Vec<f64> = {
        let ys: Vec<f64> = g.units.iter().map(|v| pos[v.id.as_str()].1).collect();
        let mut gaps: Vec<f64> = ys.iter().map(|y| y - GAP_Y / 2.0).collect();
        gaps.extend(ys.last().map(|y| y + BOX_H + GAP_Y / 2.0));
        gaps
    };
    let width = COL_X[2] + BOX_W + 20.0;
    let mut s = String::new();
    let _ = writeln!(
        s,
        "<svg xmlns=\"http://www.w3.org/2000/svg\" viewBox=\"0 0 {width} {height}\" width=\"{width}\" height=\"{height}\" role=\"img\" aria-labelledby=\"scc-title\" font-family=\"system-ui, sans-serif\" font-size=\"13\">"
    );
    let _ = writeln!(
        s,
        "<title id=\"scc-title\">System {}: zones, units, nodes and flows</title>",
        esc(&g.name)
    );
    for (x, title) in COL_X
        .iter()
        .zip(["Zones (sources)", "Virtual units", "Nodes"])
    {
        let _ = writeln!(
            s,
            "<text x=\"{x}\" y=\"24\" font-weight=\"bold\" fill=\"#374151\">{title}</text>"
        );
    }
    let _ = writeln!(s, "<g fill=\"none\" stroke-width=\"2\">");
    for e in &g.edges {
        let (Some(&(x1, y1)), Some(&(x2, y2))) = (pos.get(e.from.as_str()), pos.get(e.to.as_str()))
        else {
            continue;
        };
        let (sx, sy, tx, ty) = (x1 + BOX_W, y1 + BOX_H / 2.0, x2, y2 + BOX_H / 2.0);
        let mid = (sx + tx) / 2.0;
        let crosses_units = sx < COL_X[1] && tx > COL_X[1] + BOX_W;
        let d = match unit_gaps
            .iter()
            .min_by(|a, b| {
                let m = (sy + ty) / 2.0;
                (*a - m).abs().total_cmp(&(*b - m).abs())
            })
            .filter(|_| crosses_units)
        {
            // Into the gap, straight across the column, out to the node.
            Some(&gy) => {
                let (ax, bx) = (COL_X[1], COL_X[1] + BOX_W);
                let (m1, m2) = ((sx + ax) / 2.0, (bx + tx) / 2.0);
                format!(
                    "M{sx} {sy} C{m1} {sy} {m1} {gy} {ax} {gy} L{bx} {gy} C{m2} {gy} {m2} {ty} {tx} {ty}"
                )
            }
            // A zone's workstations reached from another zone: both boxes in one column, so
            // the curve leaves and enters on their left sides, out in the margin.
            None if x2 <= x1 => {
                let m = x1 - COL_X[0] * 0.8;
                format!("M{x1} {sy} C{m} {sy} {m} {ty} {x2} {ty}")
            }
            None => format!("M{sx} {sy} C{mid} {sy} {mid} {ty} {tx} {ty}"),
        };
        let dash = if e.kind == EdgeKind::Instance {
            " stroke-dasharray=\"5 4\" stroke-width=\"1\"".to_string()
        } else {
            dashes(e.status)
                .map(|p| format!(" stroke-dasharray=\"{p}\""))
                .unwrap_or_default()
        };
        let class = match (e.kind, e.status) {
            (EdgeKind::Instance, _) => "instance".to_string(),
            (_, Some(st)) => st.as_str().to_string(),
            (_, None) => "planned".to_string(),
        };
        let _ = writeln!(
            s,
            "<path class=\"edge {class}\" d=\"{d}\" stroke=\"{}\"{dash}><title>{} → {}: {}</title></path>",
            colour(if e.kind == EdgeKind::Instance {
                None
            } else {
                e.status
            }),
            esc(&label_of(g, &e.from)),
            esc(&label_of(g, &e.to)),
            esc(&e.label())
        );
    }
    let _ = writeln!(s, "</g>");
    for (ci, col) in columns.iter().enumerate() {
        let fill = ["#eff6ff", "#fefce8", "#f0fdf4"][ci];
        for v in col.iter() {
            let (x, y) = pos[v.id.as_str()];
            let _ = writeln!(
                s,
                "<g class=\"box\"><rect x=\"{x}\" y=\"{y}\" width=\"{BOX_W}\" height=\"{BOX_H}\" rx=\"6\" fill=\"{fill}\" stroke=\"#6b7280\"/><text x=\"{}\" y=\"{}\" font-weight=\"bold\">{}</text><text x=\"{}\" y=\"{}\" fill=\"#4b5563\" font-size=\"11\">{}</text><title>{}: {}</title></g>",
                x + 10.0,
                y + 21.0,
                esc(&cut(&v.label, 28)),
                x + 10.0,
                y + 39.0,
                esc(&cut(&v.detail, 36)),
                esc(&v.label),
                esc(&v.detail)
            );
        }
    }
    s.push_str("</svg>\n");
    s
}

fn label_of(g: &Graph, id: &str) -> String {
    g.zones
        .iter()
        .chain(&g.units)
        .chain(&g.nodes)
        .find(|v| v.id == id)
        .map(|v| v.label.clone())
        .unwrap_or_default()
}

/// Text inside a Mermaid quoted label: quotes and markup characters as entity codes.
fn mermaid_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("#quot;"),
            '#' => out.push_str("#35;"),
            '<' => out.push_str("#lt;"),
            '>' => out.push_str("#gt;"),
            '&' => out.push_str("#amp;"),
            '`' => out.push_str("#96;"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Mermaid flowchart (GitHub and GitLab render it in Markdown).
pub fn mermaid(g: &Graph) -> String {
    let mut s = String::from("flowchart LR\n");
    let sections = [
        ("zones", "Zones", &g.zones),
        ("units", "Virtual units", &g.units),
        ("nodes", "Nodes", &g.nodes),
    ];
    for (id, title, col) in sections {
        if col.is_empty() {
            continue;
        }
        let _ = writeln!(s, "  subgraph {id} [\"{title}\"]");
        for v in col.iter() {
            let _ = writeln!(
                s,
                "    {}[\"{}<br/>{}\"]",
                v.id,
                mermaid_text(&v.label),
                mermaid_text(&v.detail)
            );
        }
        s.push_str("  end\n");
    }
    for (i, e) in g.edges.iter().enumerate() {
        let arrow = if e.kind == EdgeKind::Instance {
            "-.->"
        } else {
            "-->"
        };
        let _ = writeln!(
            s,
            "  {} {arrow}|\"{}\"| {}",
            e.from,
            mermaid_text(&e.label()),
            e.to
        );
        if e.kind == EdgeKind::Flow && e.status.is_some() {
            let _ = writeln!(s, "  linkStyle {i} stroke:{}", colour(e.status));
        }
    }
    s
}

/// Text inside a DOT double-quoted string.
fn dot_text(text: &str) -> String {
    let mut out = String::new();
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push(' '),
            c => out.push(c),
        }
    }
    out
}

/// A Graphviz digraph, ranked left to right like the SVG.
pub fn dot(g: &Graph) -> String {
    let mut s = format!(
        "digraph \"{}\" {{\n  rankdir=LR;\n  node [shape=box, style=\"rounded,filled\", fontname=\"sans-serif\"];\n",
        dot_text(&g.name)
    );
    let sections = [
        ("zones", "Zones", "#eff6ff", &g.zones),
        ("units", "Virtual units", "#fefce8", &g.units),
        ("nodes", "Nodes", "#f0fdf4", &g.nodes),
    ];
    for (id, title, fill, col) in sections {
        let _ = writeln!(
            s,
            "  subgraph cluster_{id} {{\n    label=\"{title}\"; rank=same;"
        );
        for v in col.iter() {
            let _ = writeln!(
                s,
                "    {} [label=\"{}\\n{}\", fillcolor=\"{fill}\"];",
                v.id,
                dot_text(&v.label),
                dot_text(&v.detail)
            );
        }
        s.push_str("  }\n");
    }
    for e in &g.edges {
        let style = if e.kind == EdgeKind::Instance {
            ", style=dashed"
        } else {
            ""
        };
        let _ = writeln!(
            s,
            "  {} -> {} [label=\"{}\", color=\"{}\"{style}];",
            e.from,
            e.to,
            dot_text(&e.label()),
            colour(if e.kind == EdgeKind::Instance {
                None
            } else {
                e.status
            })
        );
    }
    s.push_str("}\n");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_edge_takes_the_worst_status_of_its_ports() {
        let catalog = crate::catalog::Catalog::embedded();
        let dep = crate::deployment::Template::Redundant
            .load(&catalog)
            .unwrap();
        let plan = crate::plan::resolve(&dep, &catalog);
        let mut rows = super::super::planned(&dep, &plan);
        for r in &mut rows {
            r.status = Status::Verified;
        }
        let core = rows
            .iter()
            .position(|r| r.zone == "agents" && r.unit.as_deref() == Some("CORE"))
            .unwrap();
        rows[core].status = Status::Closed;
        let g = build(&dep, &plan, Some(&rows));
        let edge = |from: &str, to: &str| {
            let id = |name: &str| {
                g.zones
                    .iter()
                    .chain(&g.units)
                    .chain(&g.nodes)
                    .find(|v| v.label == name)
                    .unwrap()
                    .id
                    .clone()
            };
            g.edges
                .iter()
                .find(|e| e.from == id(from) && e.to == id(to))
                .unwrap()
                .clone()
        };
        let e = edge("agents", "CORE");
        assert_eq!(e.status, Some(Status::Closed));
        assert_eq!(e.verified + 1, e.ports);
        assert_eq!(edge("datacenter", "APP1").status, Some(Status::Verified));
        // Instances: every unit to each of its nodes, uncoloured.
        let instances = g
            .edges
            .iter()
            .filter(|e| e.kind == EdgeKind::Instance)
            .count();
        assert_eq!(
            instances,
            dep.units.iter().map(|u| u.instances.len()).sum::<usize>()
        );
        // The plan alone: uncoloured flow edges.
        let plain = build(&dep, &plan, None);
        assert!(plain.edges.iter().all(|e| e.status.is_none()));
    }

    #[test]
    fn escapes_every_markup_character() {
        assert_eq!(
            esc("<a href=\"x\">'&'\u{1b}</a>"),
            "&lt;a href=&quot;x&quot;&gt;&#39;&amp;&#39; &lt;/a&gt;"
        );
        assert_eq!(mermaid_text("a\"]-->x#"), "a#quot;]--#gt;x#35;");
        assert_eq!(dot_text("a\"\\b\n"), "a\\\"\\\\b ");
        assert_eq!(cut("abcdef", 4), "abc…");
    }

    /// Points along an SVG path of M, C and L commands (what `svg` writes).
    fn points(d: &str) -> Vec<(f64, f64)> {
        let spaced: String = d
            .chars()
            .flat_map(|c| {
                if c.is_ascii_alphabetic() {
                    vec![' ', c, ' ']
                } else {
                    vec![c]
                }
            })
            .collect();
        let mut out = Vec::new();
        let mut at = (0.0, 0.0);
        let tokens: Vec<&str> = spaced.split_whitespace().collect();
        let mut i = 0;
        while i < tokens.len() {
            let n = |k: usize| -> f64 { tokens[i + k].parse().unwrap() };
            match tokens[i] {
                "M" => {
                    at = (n(1), n(2));
                    i += 3;
                }
                "L" => {
                    let to = (n(1), n(2));
                    for k in 0..=20 {
                        let t = f64::from(k) / 20.0;
                        out.push((at.0 + (to.0 - at.0) * t, at.1 + (to.1 - at.1) * t));
                    }
                    at = to;
                    i += 3;
                }
                "C" => {
                    let p = [at, (n(1), n(2)), (n(3), n(4)), (n(5), n(6))];
                    for k in 0..=40 {
                        let t = f64::from(k) / 40.0;
                        let u = 1.0 - t;
                        let w = [u * u * u, 3.0 * u * u * t, 3.0 * u * t * t, t * t * t];
                        out.push((
                            (0..4).map(|j| w[j] * p[j].0).sum(),
                            (0..4).map(|j| w[j] * p[j].1).sum(),
                        ));
                    }
                    at = p[3];
                    i += 7;
                }
                other => panic!("unexpected {other} in {d}"),
            }
        }
        out
    }

    #[test]
    fn no_curve_passes_under_a_box() {
        let catalog = crate::catalog::Catalog::embedded();
        for t in [
            crate::deployment::Template::Redundant,
            crate::deployment::Template::Large,
        ] {
            let dep = t.load(&catalog).unwrap();
            let plan = crate::plan::resolve(&dep, &catalog);
            // The report's picture too: its workstation flows join two zones.
            let mut rows = super::super::planned(&dep, &plan);
            // A workstation row (from the first zone to the PCs of the last), as results add.
            let mut pc = rows[0].clone();
            pc.unit = None;
            pc.workstations = Some(dep.zones.last().unwrap().name.clone());
            rows.push(pc);
            for svg in [
                svg(&build(&dep, &plan, None)),
                svg(&build(&dep, &plan, Some(&rows))),
            ] {
                let boxes: Vec<(f64, f64)> = svg
                    .split("<rect x=\"")
                    .skip(1)
                    .map(|r| {
                        let x: f64 = r.split('"').next().unwrap().parse().unwrap();
                        let y: f64 = r
                            .split("y=\"")
                            .nth(1)
                            .unwrap()
                            .split('"')
                            .next()
                            .unwrap()
                            .parse()
                            .unwrap();
                        (x, y)
                    })
                    .collect();
                let mut crossing = 0;
                for path in svg.split("<path class=\"edge").skip(1) {
                    let d = path
                        .split("d=\"")
                        .nth(1)
                        .unwrap()
                        .split('"')
                        .next()
                        .unwrap();
                    let pts = points(d);
                    crossing +=
                        usize::from(pts.iter().any(|p| p.0 > COL_X[1] && p.0 < COL_X[1] + BOX_W));
                    for &(x, y) in &pts {
                        for &(bx, by) in &boxes {
                            assert!(
                                !(x > bx + 1.0
                                    && x < bx + BOX_W - 1.0
                                    && y > by + 1.0
                                    && y < by + BOX_H - 1.0),
                                "{t:?}: the curve {d} passes under the box at ({bx}, {by})"
                            );
                        }
                    }
                }
                assert!(
                    crossing > 0,
                    "{t:?}: some zone-to-node curve crosses the units column"
                );
            }
        }
    }

    #[test]
    fn statuses_differ_without_their_hue() {
        let failing = [
            Status::Filtered,
            Status::Closed,
            Status::Open,
            Status::Error,
            Status::Inconclusive,
        ];
        for (i, a) in failing.iter().enumerate() {
            assert!(dashes(Some(*a)).is_some(), "{a:?} has a pattern");
            for b in &failing[i + 1..] {
                assert_ne!(dashes(Some(*a)), dashes(Some(*b)), "{a:?} and {b:?}");
            }
            assert_ne!(dashes(Some(*a)), Some("5 4"), "instance lines are 5 4");
        }
    }
}
