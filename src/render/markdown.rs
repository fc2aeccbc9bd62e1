//! Markdown: one GitHub-flavoured table, cells escaped so that pipes and newlines cannot break it.

use super::Grid;
use crate::safe::{Sink, clean};

pub fn render(grid: &Grid) -> String {
    let mut out = String::new();
    let header: Vec<&str> = grid.columns.iter().map(|c| c.title).collect();
    out.push_str(&format!("| {} |\n", header.join(" | ")));
    out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
    for row in &grid.rows {
        let cells: Vec<String> = row.iter().map(|c| escape(c)).collect();
        out.push_str(&format!("| {} |\n", cells.join(" | ")));
    }
    out
}

/// A cell for a terminal or a wiki: controls and bidi characters gone ([`Sink::Terminal`], line
/// breaks become spaces), then the Markdown specials escaped.
fn escape(cell: &str) -> String {
    clean(Sink::Terminal, cell)
        .replace('\\', "\\\\")
        .replace('|', "\\|")
}
