//! Generated systems of any size, valid by construction: for benchmarks and property tests.

use std::fmt::Write;

/// A deployment file with `nodes` HAC nodes and `units` virtual units (two instances each, one
/// package each, cycling through the catalog's packages with distinct port variables so that the
/// result is free of clashes).
pub fn large_system(nodes: usize, units: usize) -> String {
    let packages = [
        ("agent-server", "port"),
        ("alarm-server", "port"),
        ("call-dispatcher", "port"),
        ("chat-server", "port"),
        ("data-collector", "port"),
        ("directory-server", "port"),
        ("file-replication-server", "port"),
        ("quality-monitoring-server", "port"),
    ];
    let mut s = String::with_capacity(nodes * 80 + units * 200);
    s.push_str(
        "name = \"generated\"\n\n[zones.dc]\ncidrs = [\"10.0.0.0/8\"]\nroles = [\"servers\"]\n\n",
    );
    s.push_str("[zones.agents]\ncidrs = [\"172.16.0.0/12\"]\nroles = [\"clients\"]\n\n");
    s.push_str("[zones.admins]\ncidrs = [\"192.168.0.0/24\"]\nroles = [\"admins\"]\n\n");
    let addr = |i: usize, base: usize| {
        let n = base + i;
        format!("10.{}.{}.{}", (n >> 16) & 0xff, (n >> 8) & 0xff, n & 0xff)
    };
    for i in 0..nodes {
        let _ = writeln!(
            s,
            "[nodes.N{i}]\naddress = \"{}\"\nzone = \"dc\"\n",
            addr(i, 1 << 20)
        );
    }
    let nodes = nodes.max(1);
    for u in 0..units {
        let (pkg, port) = packages[u % packages.len()];
        let a = u % nodes;
        let b = (u + 1) % nodes;
        let instances = if a == b {
            format!("\"N{a}\"")
        } else {
            format!("\"N{a}\", \"N{b}\"")
        };
        // A distinct port per unit on a node keeps the generated system free of node clashes.
        let value = 1024 + (u % 40000);
        let _ = writeln!(
            s,
            "[units.U{u}]\naddress = \"{}\"\npackages = [\"{pkg}\"]\ninstances = [{instances}]\n\n[units.U{u}.variables]\n\"{pkg}.{port}\" = {value}\n",
            addr(u, 2 << 20)
        );
    }
    s
}
