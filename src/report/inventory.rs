//! The Ansible inventory skeleton of a deployment: every node under `scc_nodes`, one placeholder
//! prober per zone that has flows to probe under `scc_probers`, one placeholder agent PC per
//! client zone under `scc_workstations` (and the probers that send it media name it). YAML with every scalar
//! double-quoted (JSON string syntax, which YAML reads as is), so no name can change the structure.

use std::fmt::Write as _;

use crate::deployment::Deployment;
use crate::plan::Plan;

fn q(text: &str) -> String {
    serde_json::to_string(text).expect("a string serialises")
}

/// The inventory text.
pub fn inventory(dep: &Deployment, plan: &Plan) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# Ansible inventory for system {} (written by scc-ports inventory).",
        q(&dep.name)
    );
    s.push_str(
        "# Nodes: ansible_host is the node's address from the deployment file; add ansible_user,\n\
         # or ansible_connection: winrm (and its settings) for Windows servers.\n\
         # Probers: one placeholder per zone with flows to probe. Replace ansible_host with a\n\
         # machine inside that zone, or delete the zones you do not probe (their flows are then\n\
         # reported as untested). Agent PCs: one sample per client zone; replace ansible_host\n\
         # (Windows PCs: ansible_connection winrm) or delete them (their flows are then untested).\n\
         # Run: ansible-playbook -i inventory.yml ansible/verify.yml -e scc_deployment=FILE ...\n",
    );
    s.push_str("all:\n  children:\n    scc_nodes:\n      hosts:\n");
    if dep.nodes.is_empty() {
        s.push_str("        {}\n");
    }
    for n in &dep.nodes {
        let _ = writeln!(
            s,
            "        {}:\n          ansible_host: {}\n          scc_node: {}",
            q(&n.name),
            q(&n.address.to_string()),
            q(&n.name)
        );
    }
    s.push_str("    scc_probers:\n      hosts:\n");
    let probed: std::collections::HashSet<String> = super::planned(dep, plan)
        .into_iter()
        .map(|r| r.zone)
        .collect();
    let zones: Vec<_> = dep
        .zones
        .iter()
        .filter(|z| probed.contains(&z.name))
        .collect();
    if zones.is_empty() {
        s.push_str("        {}\n");
    }
    // The client zones whose agent PCs receive media, and which of them each zone sends to.
    let pcs_of = |z: &crate::deployment::Zone| -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        for b in &plan.bindings {
            if let crate::plan::Host::Workstations { zone: wz, .. } = &b.host {
                let pc = format!("pc-{wz}");
                if b.reachable_from(z) && !out.contains(&pc) {
                    out.push(pc);
                }
            }
        }
        out
    };
    for z in zones {
        let cidrs: Vec<String> = z.cidrs.iter().map(ToString::to_string).collect();
        let _ = writeln!(
            s,
            "        {}:\n          ansible_host: {}  # CHANGE: a machine in {}\n          scc_zone: {}",
            q(&format!("prober-{}", z.name)),
            q("CHANGE-ME"),
            cidrs.join(" ").replace(|c: char| c.is_control(), " "),
            q(&z.name)
        );
        let pcs = pcs_of(z);
        if !pcs.is_empty() {
            let names: Vec<String> = pcs.iter().map(|p| q(p)).collect();
            let _ = writeln!(
                s,
                "          scc_probe_workstations: [{}]  # the sample PCs this zone sends media to",
                names.join(", ")
            );
        }
    }
    // One sample agent PC per client zone with workstation ports (add more as you like).
    let mut ws: Vec<&str> = Vec::new();
    for b in &plan.bindings {
        if let crate::plan::Host::Workstations { zone, .. } = &b.host {
            if !ws.contains(&zone.as_str()) {
                ws.push(zone);
            }
        }
    }
    if !ws.is_empty() {
        s.push_str("    scc_workstations:\n      hosts:\n");
        for wz in ws {
            let _ = writeln!(
                s,
                "        {}:\n          ansible_host: {}  # CHANGE: an agent PC of zone {}\n          scc_workstation_zone: {}",
                q(&format!("pc-{wz}")),
                q("CHANGE-ME"),
                wz.replace(|c: char| c.is_control(), " "),
                q(wz)
            );
        }
    }
    s
}
