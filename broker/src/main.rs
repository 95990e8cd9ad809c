//! `phxq`: a Kafka-wire-compatible message broker built like Tencent's PhxQueue.
//!
//! `phxq serve` runs a node; see `cli.rs` for every flag.

mod broker;
mod cli;
mod cluster;
mod config;
mod connection;
mod groups;
mod handlers;
mod kafka_client;
mod server;
mod shutdown;
mod topics;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info,openraft=warn")),
        )
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .init();
    match cli::run(cli) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            // One clear line, no backtrace: the operator's mistake or the machine's state.
            eprintln!("phxq: error: {e:#}");
            std::process::ExitCode::from(2)
        }
    }
}
