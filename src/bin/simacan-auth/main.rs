//! `simacan-auth`: Simacan API access tokens for people and scripts
//! (feature `cli`).
//!
//! ```text
//! simacan-auth token [--staging | --production | --auth-url URL] [--min-validity 5m] [--force-refresh] [--format text|json]
//! simacan-auth login | logout | status
//! simacan-auth mock [--listen 127.0.0.1:PORT] [--format text|json]
//! ```
//!
//! A thin layer over the library: `token` and `login` ask a
//! [`SimacanAuthLayer`](simacan_auth::SimacanAuthLayer) on a
//! [`FileStore`](simacan_auth::store::FileStore) for an access token, so
//! that repeated runs reuse the stored token, renew it with the refresh
//! token (under the store's lock, so concurrent runs wait for each other),
//! and send the password only when neither works; `status` and `logout`
//! read and delete the store's record. `--help` lists the flags and the exit
//! codes.
//!
//! - [`args`]: the command line and its help.
//! - [`password`]: where the password comes from; never the command line.
//! - [`commands`]: the subcommands.
//! - [`mock`]: the mock Auth API as a server until Ctrl-C or SIGTERM.
//! - [`interrupt`]: Ctrl-C and SIGTERM at the password prompt.
//! - [`exit`]: exit codes and messages.
//! - [`time`]: durations and RFC 3339 times.
//! - [`warnings`]: the library's warnings on standard error.

#![forbid(unsafe_code)]
#![warn(
    missing_docs,
    missing_debug_implementations,
    rust_2018_idioms,
    unreachable_pub
)]

mod args;
mod commands;
mod exit;
mod interrupt;
mod mock;
mod password;
mod time;
mod warnings;

use std::process::ExitCode;

use clap::Parser;

use crate::exit::{Code, Failure};

fn main() -> ExitCode {
    if let Some(refusal) = args::refuse_password_flag(std::env::args_os()) {
        return refusal.report();
    }
    let cli = match args::Cli::try_parse() {
        Ok(cli) => cli,
        // Help and version too: clap prints them and exits with 0.
        Err(error) => match args::without_secrets(error) {
            Ok(error) => error.exit(),
            Err(refusal) => return refusal.report(),
        },
    };
    warnings::show();
    let runtime = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(e) => return Failure::new(Code::Other, format!("cannot start: {e}")).report(),
    };
    let result = runtime.block_on(commands::run(cli));
    // A run ended by a signal at the password prompt leaves the prompt's
    // thread blocked reading the terminal: not waited for.
    runtime.shutdown_background();
    match result {
        Ok(code) => code.into(),
        Err(failure) => failure.report(),
    }
}
