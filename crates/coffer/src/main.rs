//! The `coffer` binary: command-line parsing, then one of `serve`, `rotate-service-key`, `bench`,
//! `user`, `audit`.
//!
//! `main` stays small: configuration is resolved in `config`, the server is assembled in
//! `serve`, key files are handled in `secrets`, the benchmark lives in `bench`.

mod admin_client;
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
        config::Command::Bench(mut args) => {
            args.secret_key = bench_secret(args.secret_key_flag.as_deref())?;
            bench::run(args)
        }
        config::Command::BenchKms(mut args) => {
            args.secret_key = bench_secret(args.secret_key_flag.as_deref())?;
            bench_kms::run(args)
        }
        config::Command::User(cmd) => serve::user(cmd),
        config::Command::Audit(cmd) => serve::audit(cmd),
    }
}

/// The secret key the load generators sign with, from AWS_SECRET_ACCESS_KEY.
fn bench_secret(flag: Option<&str>) -> anyhow::Result<String> {
    config::env_secret("AWS_SECRET_ACCESS_KEY", "--secret-key", flag)?
        .ok_or_else(|| anyhow::anyhow!("set AWS_SECRET_ACCESS_KEY to the secret of --access-key"))
}
