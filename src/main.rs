//! The `scc-ports` binary: everything lives in the library's `cli` module.

fn main() -> std::process::ExitCode {
    scc_ports::cli::main()
}
