//! The `fleet-drain` command (feature `cli`): `fleet-drain plan|run|status|pause|resume|abort
//! --config drain.toml`. See the crate README, "The fleet-drain command".

#[path = "../cli/mod.rs"]
mod cli;

fn main() -> std::process::ExitCode {
    cli::main()
}
