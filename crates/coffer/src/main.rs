//! The `coffer` binary: command-line parsing, then one of `serve`, `rotate-service-key`, `bench`,
//! `user`, `audit`.
//!
//! `main` stays small: configuration is resolved in `config`, the server is assembled in
//! `serve`, key files are handled in `secrets`, the benchmark lives in `bench`.

mod audit_log;
mod bench;
mod bench_client;
mod bench_kms;
mod config;
mod secrets;
mod serve;
mod tls;

use clap::Parser as _;

fn main() -> anyhow::Result<()> {
    let cli = config::Cli::parse();
    match cli.command {
        config::Command::Serve(args) => {
            let settings = config::Settings::resolve(*args)?;
            serve::run(settings)
        }
        config::Command::RotateServiceKey(args) => serve::rotate_service_key(&args.data_dir),
        config::Command::Bench(args) => bench::run(args),
        config::Command::BenchKms(args) => bench_kms::run(args),
        config::Command::User(cmd) => serve::user(cmd),
        config::Command::Audit(cmd) => serve::audit(cmd),
    }
}
