//! `csv`: the network team's request sheet, one row per flow, every cell made safe for a
//! spreadsheet ([`Sink::CsvCell`]).

use super::{Generator, Request};
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
