//! `csv` and `markdown`: the network team's request sheet, one row per flow (`--network`: per
//! zone pair, destination and service, only what crosses a network firewall), as CSV (every cell
//! made safe for a spreadsheet, [`crate::safe::Sink::CsvCell`]) or as a Markdown table (tickets,
//! wikis).

use super::{Generator, Mode, Request};
use crate::flows::Crossings;
use crate::render::{Column, Format, Grid};

pub struct Csv;

pub struct Markdown;

impl Generator for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn about(&self) -> &'static str {
        "request sheet for the network team: source and destination zone, CIDRs, destination, transport, ports, component, purpose"
    }

    fn generate(&self, request: &Request) -> String {
        sheet(request).render(Format::Csv, usize::MAX)
    }
}

impl Generator for Markdown {
    fn name(&self) -> &'static str {
        "markdown"
    }

    fn about(&self) -> &'static str {
        "the network team's request sheet as a Markdown table (tickets, wikis)"
    }

    fn generate(&self, request: &Request) -> String {
        sheet(request).render(Format::Markdown, usize::MAX)
    }
}

fn join(v: &[ipnet::IpNet]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// The sheet of the request's flows: by zone pair for `--network`, one row per flow otherwise.
fn sheet(request: &Request) -> Grid {
    if request.mode == Mode::Network {
        return network(request);
    }
    let mut grid = Grid::new(
        [
            "scope",
            "source_role",
            "source_zones",
            "source_cidrs",
            "destination_node",
            "destination",
            "transport",
            "ports",
            "parity",
            "component",
            "port_ids",
            "unit",
            "purpose",
        ]
        .map(Column::new)
        .to_vec(),
    );
    for f in &request.flows {
        grid.push(vec![
            request.mode.scope().to_string(),
            f.role.as_str().to_string(),
            f.source_zones.join(" "),
            join(&f.sources),
            f.node.clone(),
            join(&f.destination),
            f.transport.as_str().to_string(),
            f.ports.span_text(),
            f.ports.parity().map_or("", |p| p.as_str()).to_string(),
            f.component.clone(),
            f.port_id_text(),
            f.unit.clone().unwrap_or_default(),
            f.purpose.clone(),
        ]);
    }
    grid
}

/// `--network`: one row per (source zone, destination zone, destination, service) that crosses a
/// network firewall ([`Crossings::through_any`]; a file without `[firewalls]` is read as one
/// firewall between every two zones), grouped by zone pair in the file's zone order. A flow
/// inside one zone never reaches the sheet. A unit's virtual IP is named as the unit, with its
/// instance nodes.
fn network(request: &Request) -> Grid {
    let dep = request.deployment;
    let crossings = Crossings::new(dep);
    let mut rows: Vec<((usize, usize), Vec<String>)> = Vec::new();
    // The row of each (pair, destination, service): another role with the same opening (servers
    // and a site service's zones) adds its name to the row.
    let mut seen: std::collections::HashMap<_, usize> = std::collections::HashMap::new();
    for f in &request.flows {
        for (from, to) in crossings.through_any(f) {
            let key = (
                from,
                to,
                f.destination.clone(),
                f.transport,
                f.ports,
                f.label(),
            );
            let role = f.role.as_str();
            if let Some(&i) = seen.get(&key) {
                let roles = &mut rows[i].1[4];
                if !roles.split(' ').any(|r| r == role) {
                    roles.push(' ');
                    roles.push_str(role);
                }
                continue;
            }
            seen.insert(key, rows.len());
            let firewalls: Vec<&str> = (dep.firewalls.iter())
                .filter(|fw| crate::flows::crosses(fw, from, to))
                .map(|fw| fw.name.as_str())
                .collect();
            rows.push((
                (from, to),
                vec![
                    request.mode.scope().to_string(),
                    firewalls.join(" "),
                    dep.zones[from].name.clone(),
                    dep.zones[to].name.clone(),
                    role.to_string(),
                    join(&crossings.sources_in(f, from)),
                    crossings.destination_words(f),
                    join(&f.destination),
                    f.transport.as_str().to_string(),
                    f.ports.span_text(),
                    f.ports.parity().map_or("", |p| p.as_str()).to_string(),
                    f.component.clone(),
                    f.port_id_text(),
                    f.purpose.clone(),
                ],
            ));
        }
    }
    rows.sort_by_key(|(pair, _)| *pair);
    let mut grid = Grid::new(
        [
            "scope",
            "firewalls",
            "source_zone",
            "destination_zone",
            "source_roles",
            "source_cidrs",
            "destination",
            "destination_address",
            "transport",
            "ports",
            "parity",
            "component",
            "port_ids",
            "purpose",
        ]
        .map(Column::new)
        .to_vec(),
    );
    for (_, row) in rows {
        grid.push(row);
    }
    grid
}
