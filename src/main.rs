//! The `ccvm` command.

fn main() -> std::process::ExitCode {
    ccvm::cli::main()
}
