//! Fuzz the catalog parser: no input may panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use scc_ports::diag::Source;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Err(d) = scc_ports::catalog::Catalog::parse(&Source::new("fuzz.toml", text)) {
        let _ = d.to_string();
    }
});
