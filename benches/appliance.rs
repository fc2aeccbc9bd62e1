//! Criterion benches of the appliance readers: read time of a 10,000-rule configuration per
//! vendor format (objects and groups included), as `audit` reads it.

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};

const RULES: usize = 10_000;

fn addr(i: usize) -> String {
    format!("10.{}.{}.0", (i / 256) % 256, i % 256)
}

fn asa() -> String {
    let mut t = String::from(
        "ASA Version 9.16\ninterface G0/0\n nameif outside\n security-level 0\ninterface G0/1\n \
         nameif inside\n security-level 100\n",
    );
    for i in 0..RULES {
        t.push_str(&format!(
            "object network N{i}\n subnet {} 255.255.255.0\n",
            addr(i)
        ));
    }
    for g in 0..RULES / 10 {
        t.push_str(&format!("object-group network G{g}\n"));
        for i in 0..10 {
            t.push_str(&format!(" network-object object N{}\n", g * 10 + i));
        }
        t.push_str(&format!(
            "object-group service S{g} tcp\n port-object range {} {}\n",
            1000 + g,
            1010 + g
        ));
    }
    for i in 0..RULES {
        let g = i % (RULES / 10);
        t.push_str(&format!(
            "access-list OUTSIDE_IN extended permit tcp object-group G{g} host 192.168.{}.{} object-group S{g}\n",
            (i / 256) % 256,
            i % 256
        ));
    }
    t.push_str("access-group OUTSIDE_IN in interface outside\n");
    t
}

fn panos_set() -> String {
    let mut t = String::new();
    for i in 0..RULES {
        t.push_str(&format!("set address n{i} ip-netmask {}/24\n", addr(i)));
    }
    for g in 0..RULES / 10 {
        let m: Vec<String> = (0..10).map(|i| format!("n{}", g * 10 + i)).collect();
        t.push_str(&format!(
            "set address-group g{g} static [ {} ]\n",
            m.join(" ")
        ));
        t.push_str(&format!(
            "set service s{g} protocol tcp port {}-{}\n",
            1000 + g,
            1010 + g
        ));
    }
    for i in 0..RULES {
        let g = i % (RULES / 10);
        for line in [
            "from untrust".to_string(),
            "to trust".to_string(),
            format!("source g{g}"),
            format!("destination n{}", (i * 7) % RULES),
            format!("service s{g}"),
            "application any".to_string(),
            "action allow".to_string(),
        ] {
            t.push_str(&format!("set rulebase security rules r{i} {line}\n"));
        }
    }
    t
}

fn panos_xml() -> String {
    let mut t = String::from(
        "<config version=\"10.2.0\"><devices><entry name=\"localhost.localdomain\"><vsys><entry name=\"vsys1\">\n<address>\n",
    );
    for i in 0..RULES {
        t.push_str(&format!(
            "<entry name=\"n{i}\"><ip-netmask>{}/24</ip-netmask></entry>\n",
            addr(i)
        ));
    }
    t.push_str("</address>\n<address-group>\n");
    for g in 0..RULES / 10 {
        let m: String = (0..10)
            .map(|i| format!("<member>n{}</member>", g * 10 + i))
            .collect();
        t.push_str(&format!(
            "<entry name=\"g{g}\"><static>{m}</static></entry>\n"
        ));
    }
    t.push_str("</address-group>\n<service>\n");
    for g in 0..RULES / 10 {
        t.push_str(&format!(
            "<entry name=\"s{g}\"><protocol><tcp><port>{}-{}</port></tcp></protocol></entry>\n",
            1000 + g,
            1010 + g
        ));
    }
    t.push_str("</service>\n<rulebase><security><rules>\n");
    for i in 0..RULES {
        let g = i % (RULES / 10);
        t.push_str(&format!(
            "<entry name=\"r{i}\"><from><member>untrust</member></from><to><member>trust</member></to>\
             <source><member>g{g}</member></source><destination><member>n{}</member></destination>\
             <service><member>s{g}</member></service><application><member>any</member></application>\
             <action>allow</action></entry>\n",
            (i * 7) % RULES
        ));
    }
    t.push_str("</rules></security></rulebase></entry></vsys></entry></devices></config>\n");
    t
}

fn fortios() -> String {
    let mut t = String::from("config firewall address\n");
    for i in 0..RULES {
        t.push_str(&format!(
            "    edit \"n{i}\"\n        set subnet {} 255.255.255.0\n    next\n",
            addr(i)
        ));
    }
    t.push_str("end\nconfig firewall addrgrp\n");
    for g in 0..RULES / 10 {
        let m: Vec<String> = (0..10).map(|i| format!("\"n{}\"", g * 10 + i)).collect();
        t.push_str(&format!(
            "    edit \"g{g}\"\n        set member {}\n    next\n",
            m.join(" ")
        ));
    }
    t.push_str("end\nconfig firewall service custom\n");
    for g in 0..RULES / 10 {
        t.push_str(&format!(
            "    edit \"s{g}\"\n        set tcp-portrange {}-{}\n    next\n",
            1000 + g,
            1010 + g
        ));
    }
    t.push_str("end\nconfig firewall policy\n");
    for i in 0..RULES {
        let g = i % (RULES / 10);
        t.push_str(&format!(
            "    edit {}\n        set srcintf \"port1\"\n        set dstintf \"port2\"\n        set srcaddr \"g{g}\"\n        \
             set dstaddr \"n{}\"\n        set action accept\n        set service \"s{g}\"\n    next\n",
            i + 1,
            (i * 7) % RULES
        ));
    }
    t.push_str("end\n");
    t
}

fn srx_set() -> String {
    let mut t = String::new();
    for i in 0..RULES {
        t.push_str(&format!(
            "set security address-book global address n{i} {}/24\n",
            addr(i)
        ));
    }
    for g in 0..RULES / 10 {
        for i in 0..10 {
            t.push_str(&format!(
                "set security address-book global address-set g{g} address n{}\n",
                g * 10 + i
            ));
        }
        t.push_str(&format!(
            "set applications application s{g} protocol tcp\nset applications application s{g} destination-port {}-{}\n",
            1000 + g,
            1010 + g
        ));
    }
    for i in 0..RULES {
        let g = i % (RULES / 10);
        let p = format!("set security policies from-zone untrust to-zone trust policy p{i}");
        t.push_str(&format!(
            "{p} match source-address g{g}\n{p} match destination-address n{}\n{p} match application s{g}\n{p} then permit\n",
            (i * 7) % RULES
        ));
    }
    t
}

fn srx_hierarchical() -> String {
    let mut t = String::from("security {\n    address-book {\n        global {\n");
    for i in 0..RULES {
        t.push_str(&format!("            address n{i} {}/24;\n", addr(i)));
    }
    for g in 0..RULES / 10 {
        let m: Vec<String> = (0..10).map(|i| format!("n{}", g * 10 + i)).collect();
        t.push_str(&format!("            address-set g{g} {{\n"));
        for n in m {
            t.push_str(&format!("                address {n};\n"));
        }
        t.push_str("            }\n");
    }
    t.push_str("        }\n    }\n    policies {\n        from-zone untrust to-zone trust {\n");
    for i in 0..RULES {
        let g = i % (RULES / 10);
        t.push_str(&format!(
            "            policy p{i} {{\n                match {{\n                    source-address g{g};\n                    \
             destination-address n{};\n                    application s{g};\n                }}\n                then {{\n                    permit;\n                }}\n            }}\n",
            (i * 7) % RULES
        ));
    }
    t.push_str("        }\n    }\n}\napplications {\n");
    for g in 0..RULES / 10 {
        t.push_str(&format!(
            "    application s{g} {{\n        protocol tcp;\n        destination-port {}-{};\n    }}\n",
            1000 + g,
            1010 + g
        ));
    }
    t.push_str("}\n");
    t
}

fn read_10k(c: &mut Criterion) {
    let mut group = c.benchmark_group("appliance read");
    group.sample_size(10);
    for (name, text) in [
        ("cisco-asa", asa()),
        ("panos-xml", panos_xml()),
        ("panos-set", panos_set()),
        ("fortios", fortios()),
        ("junos", srx_hierarchical()),
        ("junos-set", srx_set()),
    ] {
        let rs = scc_ports::audit::read(name, &text).expect("the generated config reads");
        assert_eq!(rs.format.as_str(), name);
        let rules: usize = rs.chains.iter().map(|c| c.rules.len()).sum();
        assert!(rules >= RULES, "{name}: {rules} rules");
        group.bench_with_input(
            BenchmarkId::new(name, format!("{RULES} rules, {} KiB", text.len() >> 10)),
            &text,
            |b, t| {
                b.iter(|| {
                    std::hint::black_box(scc_ports::audit::read(name, t).map(|r| r.chains.len()))
                })
            },
        );
    }
    group.finish();
}

criterion_group!(benches, read_10k);
criterion_main!(benches);
