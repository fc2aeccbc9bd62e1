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

/// A deployment file with `units` virtual units on the same two HAC nodes (every unit has an
/// instance on both), each with its own address and the same package on its default port: every
/// node listens on that port on `units` addresses, the worst case of C102 (one grouped finding
/// per node).
pub fn units_on_one_node(units: usize) -> String {
    let mut s = String::with_capacity(400 + units * 120);
    s.push_str(
        "name = \"generated, one node\"\n\n[zones.dc]\ncidrs = [\"10.0.0.0/8\"]\nroles = [\"servers\"]\n\n",
    );
    s.push_str("[zones.agents]\ncidrs = [\"172.16.0.0/12\"]\nroles = [\"clients\"]\n\n");
    s.push_str("[nodes.N0]\naddress = \"10.0.0.1\"\nzone = \"dc\"\n\n");
    s.push_str("[nodes.N1]\naddress = \"10.0.0.2\"\nzone = \"dc\"\n\n");
    for u in 0..units {
        let n = (2 << 20) + u;
        let _ = writeln!(
            s,
            "[units.U{u}]\naddress = \"10.{}.{}.{}\"\npackages = [\"agent-server\"]\ninstances = [\"N0\", \"N1\"]\n",
            (n >> 16) & 0xff,
            (n >> 8) & 0xff,
            n & 0xff
        );
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::Catalog;
    use crate::diag::Source;

    /// Writes the systems that docs/performance.md measures with the release binary:
    /// `SCC_PORTS_GEN_DIR=/tmp/gen cargo test --lib write_generated_systems -- --ignored`.
    #[test]
    #[ignore = "writes benchmark inputs; run by hand"]
    fn write_generated_systems() {
        let dir = std::path::PathBuf::from(
            std::env::var("SCC_PORTS_GEN_DIR").expect("set SCC_PORTS_GEN_DIR"),
        );
        std::fs::create_dir_all(&dir).unwrap();
        for n in [500, 1_000, 2_000, 10_000, 100_000] {
            std::fs::write(dir.join(format!("one-node-{n}.toml")), units_on_one_node(n)).unwrap();
        }
        for n in [1_000, 10_000, 100_000] {
            std::fs::write(dir.join(format!("spread-{n}.toml")), large_system(n, n)).unwrap();
        }
    }

    #[test]
    fn one_node_system_is_valid_and_has_one_c102_per_node() {
        let catalog = Catalog::embedded();
        let source = Source::new("gen.toml", units_on_one_node(50));
        let dep = crate::deployment::parse(&source, &catalog).expect("valid");
        assert_eq!(dep.units.len(), 50);
        let plan = crate::plan::resolve(&dep, &catalog);
        let findings = crate::plan::check(&dep, &catalog, &plan);
        let c102: Vec<_> = findings.iter().filter(|f| f.code == "C102").collect();
        assert_eq!(c102.len(), 2, "{c102:#?}");
        for f in c102 {
            assert!(
                f.message.contains("50 services on 50 addresses"),
                "{}",
                f.message
            );
            assert!(f.message.ends_with("and 38 more"), "{}", f.message);
            assert_eq!(f.places.len(), 50);
        }
        assert!(!findings.iter().any(|f| f.code == "C101"));
    }

    #[test]
    fn many_services_on_one_address_are_one_c101() {
        let text: String = units_on_one_node(30)
            .lines()
            .map(|l| {
                if l.starts_with("address = \"10.32.") {
                    "address = \"10.32.0.9\"\n".to_string()
                } else {
                    format!("{l}\n")
                }
            })
            .collect();
        let catalog = Catalog::embedded();
        let dep = crate::deployment::parse(&Source::new("gen.toml", text), &catalog).unwrap();
        let plan = crate::plan::resolve(&dep, &catalog);
        let findings = crate::plan::check(&dep, &catalog, &plan);
        let c101: Vec<_> = findings.iter().filter(|f| f.code == "C101").collect();
        assert_eq!(c101.len(), 1, "{c101:#?}");
        let want =
            "30 services listen on 10.32.0.9 tcp sharing port 21018: agent-server.port (unit U0)";
        assert!(c101[0].message.starts_with(want), "{}", c101[0].message);
        assert_eq!(c101[0].places.len(), 30);
        assert_eq!(findings.iter().filter(|f| f.code == "C103").count(), 1);
        // One address: no C102 (that is C101's).
        assert!(!findings.iter().any(|f| f.code == "C102"));
    }
}
