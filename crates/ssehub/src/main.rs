//! The `ssehub` binary.

fn main() -> std::process::ExitCode {
    ssehub::cli::main()
}
