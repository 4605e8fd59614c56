//! The `coffer` binary: command-line parsing, then one of `serve`, `rotate-service-key`.
//!
//! `main` stays small: configuration is resolved in `config`, the server is assembled in
//! `serve`, key files are handled in `secrets`.

mod config;
mod secrets;
mod serve;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    match cli.command {
        config::Command::Serve(args) => {
            let settings = config::Settings::resolve(args)?;
            serve::run(settings)
        }
        config::Command::RotateServiceKey(args) => serve::rotate_service_key(&args.data_dir),
    }
}
