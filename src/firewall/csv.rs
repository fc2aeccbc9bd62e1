//! `csv`: the network team's request sheet, one row per flow (`--network`: per zone pair,
//! destination and service, only what crosses a network firewall), every cell made safe for a
//! spreadsheet ([`Sink::CsvCell`]).

use super::{Generator, Mode, Request};
use crate::flows::Crossings;
use crate::safe::{Sink, clean};

pub struct Csv;

impl Generator for Csv {
    fn name(&self) -> &'static str {
        "csv"
    }

    fn about(&self) -> &'static str {
        "request sheet for the network team: source zone, CIDRs, destination, transport, ports, component, purpose"
    }

    fn generate(&self, request: &Request) -> String {
        if request.mode == Mode::Network {
            return network(request);
        }
        let mut w = ::csv::Writer::from_writer(Vec::new());
        let header = [
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
        ];
        w.write_record(header).expect("in memory");
        for f in &request.flows {
            let join = |v: &[ipnet::IpNet]| {
                v.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(" ")
            };
            w.write_record(
                [
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
                ]
                .map(|cell| clean(Sink::CsvCell, &cell).into_owned()),
            )
            .expect("in memory");
        }
        String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8")
    }
}

fn join(v: &[ipnet::IpNet]) -> String {
    v.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(" ")
}

/// `--network`: one row per (source zone, destination zone, destination, service) that crosses a
/// network firewall ([`Crossings::through_any`]; a file without `[firewalls]` is read as one
/// firewall between every two zones), grouped by zone pair in the file's zone order. A flow
/// inside one zone never reaches the sheet. A unit's virtual IP is named as the unit, with its
/// instance nodes.
fn network(request: &Request) -> String {
    let dep = request.deployment;
    let crossings = Crossings::new(dep);
    let mut rows: Vec<((usize, usize), [String; 13])> = Vec::new();
    let mut seen = std::collections::HashSet::new();
    for f in &request.flows {
        for (from, to) in crossings.through_any(f) {
            if !seen.insert((
                from,
                to,
                f.destination.clone(),
                f.transport,
                f.ports,
                f.label(),
            )) {
                continue; // the same opening for another role of the same zone
            }
            let firewalls: Vec<&str> = (dep.firewalls.iter())
                .filter(|fw| crate::flows::crosses(fw, from, to))
                .map(|fw| fw.name.as_str())
                .collect();
            rows.push((
                (from, to),
                [
                    request.mode.scope().to_string(),
                    firewalls.join(" "),
                    dep.zones[from].name.clone(),
                    dep.zones[to].name.clone(),
                    join(&dep.zones[from].cidrs),
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
    let mut w = ::csv::Writer::from_writer(Vec::new());
    w.write_record([
        "scope",
        "firewalls",
        "source_zone",
        "destination_zone",
        "source_cidrs",
        "destination",
        "destination_address",
        "transport",
        "ports",
        "parity",
        "component",
        "port_ids",
        "purpose",
    ])
    .expect("in memory");
    for (_, row) in rows {
        w.write_record(row.map(|cell| clean(Sink::CsvCell, &cell).into_owned()))
            .expect("in memory");
    }
    String::from_utf8(w.into_inner().expect("in memory")).expect("UTF-8")
}
