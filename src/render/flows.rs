//! Flows as a grid: one row per flow, grouped by destination node in the text table.

use super::{Column, Format, Grid};
use crate::flows::Flow;

fn nets(v: &[ipnet::IpNet]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// For people: a single host without its /32 (or /128).
fn hosts(v: &[ipnet::IpNet]) -> String {
    v.iter()
        .map(crate::flows::net_text)
        .collect::<Vec<_>>()
        .join(" ")
}

pub fn grid(flows: &[Flow], format: Format) -> Grid {
    let table = format == Format::Table;
    let mut g = Grid::new(vec![
        Column::new(if table { "to" } else { "Node" }),
        Column::new(if table { "FROM" } else { "Role" }),
        Column::wrapping(if table { "SOURCES" } else { "Sources" }),
        Column::new(if table { "DESTINATION" } else { "Destination" }),
        Column::new(if table { "PROTO" } else { "Transport" }),
        Column::new(if table { "PORTS" } else { "Ports" }),
        Column::wrapping(if table { "COMPONENT.PORT" } else { "Component" }),
    ]);
    if !table {
        g.columns.insert(2, Column::new("Source zones"));
        g.columns.push(Column::new("Port ids"));
        g.columns.push(Column::new("Purpose"));
    }
    for f in flows {
        if table {
            let to = if f.workstations {
                format!("zone {} (workstations)", f.node)
            } else {
                format!("node {}", f.node)
            };
            g.push(vec![
                to,
                f.role.as_str().to_string(),
                hosts(&f.sources),
                hosts(&f.destination),
                f.transport.as_str().to_string(),
                f.ports.to_string(),
                f.label(),
            ]);
        } else {
            g.push(vec![
                f.node.clone(),
                f.role.as_str().to_string(),
                f.source_zones.join(" "),
                nets(&f.sources),
                nets(&f.destination),
                f.transport.as_str().to_string(),
                f.ports.to_string(),
                f.component.clone(),
                f.port_id_text(),
                f.purpose.clone(),
            ]);
        }
    }
    if table { g.grouped(1) } else { g }
}
