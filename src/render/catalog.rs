//! The catalog as a grid: one row per documented port, grouped by component like the source page.

use super::{Column, Format, Grid};
use crate::catalog::{Catalog, Component, Port, PortDefault};

/// The default as one short cell: `21018`, `5004-5030 even`, `8000-8400 area`, `-` when none.
pub fn default_cell(port: &Port) -> String {
    match &port.default {
        None => "-".to_string(),
        Some(PortDefault::Area(a)) => format!("{} area", a.range()),
        Some(d) => d.describe(),
    }
}

fn roles(port: &Port) -> String {
    port.from
        .iter()
        .map(|r| r.as_str())
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn grid(components: &[&Component], format: Format) -> Grid {
    if format == Format::Table {
        let mut g = Grid::new(vec![
            Column::new("component"),
            Column::new("PORT ID"),
            Column::new("PROTO"),
            Column::new("DEFAULT"),
            Column::new("SET"),
            Column::wrapping("FROM"),
            Column::wrapping("USAGE"),
        ])
        .grouped(1);
        for c in components {
            let heading = format!("{} ({}, {})", c.name, c.id, c.placement.as_str());
            for p in &c.ports {
                let mut usage = p.usage.clone();
                if let Some(since) = &p.since {
                    usage.push_str(&format!(" [since {since}]"));
                }
                g.push(vec![
                    heading.clone(),
                    p.id.clone(),
                    p.protocol.as_str().to_string(),
                    default_cell(p),
                    if p.configurable { "var" } else { "fixed" }.to_string(),
                    roles(p),
                    usage,
                ]);
            }
        }
        return g;
    }
    let mut g = Grid::new(vec![
        Column::new("Component"),
        Column::new("Name"),
        Column::new("Placement"),
        Column::new("Port id"),
        Column::new("Transport"),
        Column::new("Protocol"),
        Column::new("Default"),
        Column::new("First port"),
        Column::new("Last port"),
        Column::new("Configurable"),
        Column::new("Since"),
        Column::new("From"),
        Column::new("Usage"),
        Column::new("Variables"),
        Column::new("Note"),
    ]);
    for c in components {
        for p in &c.ports {
            let (first, last) = match &p.default {
                Some(d) => (d.range().lo().to_string(), d.range().hi().to_string()),
                None => (String::new(), String::new()),
            };
            g.push(vec![
                c.id.clone(),
                c.name.clone(),
                c.placement.as_str().to_string(),
                p.id.clone(),
                p.transport.as_str().to_string(),
                p.protocol.as_str().to_string(),
                p.default
                    .as_ref()
                    .map(PortDefault::describe)
                    .unwrap_or_default(),
                first,
                last,
                p.configurable.to_string(),
                p.since.clone().unwrap_or_default(),
                roles(p),
                p.usage.clone(),
                p.variables.join(" "),
                p.note.clone().unwrap_or_default(),
            ]);
        }
    }
    g
}

/// The components to show: all, or the one asked for.
pub fn select<'c>(catalog: &'c Catalog, only: Option<&Component>) -> Vec<&'c Component> {
    match only {
        Some(one) => catalog
            .components
            .iter()
            .filter(|c| c.id == one.id)
            .collect(),
        None => catalog.components.iter().collect(),
    }
}
