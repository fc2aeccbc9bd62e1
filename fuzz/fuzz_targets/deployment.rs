//! Fuzz the deployment parser and everything after it: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scc_ports::catalog::Catalog;
use scc_ports::diag::Source;

static CATALOG: std::sync::LazyLock<Catalog> = std::sync::LazyLock::new(Catalog::embedded);

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let catalog = &*CATALOG;
    let source = Source::new("fuzz.toml", text);
    match scc_ports::deployment::parse(&source, catalog) {
        Ok(dep) => {
            let plan = scc_ports::plan::resolve(&dep, catalog);
            let _ = scc_ports::plan::check(&dep, catalog, &plan);
            let _ = scc_ports::flows::flows(&dep, catalog, &plan);
        }
        Err(d) => {
            let _ = d.to_string();
        }
    }
});
