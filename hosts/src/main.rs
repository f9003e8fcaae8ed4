//! `antiphon`: the standalone Antiphon host. See `antiphon --help`.
//!
//! Errors from user mistakes (missing file, unsupported WAV, bad model
//! directory, bad preset, no device) end the process with one line on stderr
//! and exit code 1; command-line usage errors exit with 2 (clap's convention).

mod bench;
mod cli;
mod live;
mod live_audio;
mod model_bench;
mod model_cmd;
mod outputs;
mod plot;
mod presets_cmd;
mod progress;
mod realtime;
mod run;
mod say;
mod script;
mod setup;
mod stall;
mod wav;

use std::process::ExitCode;

use clap::Parser;

use cli::{Cli, Command};

fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(c) => c,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(2)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    let result = match cli.command {
        Command::Run(a) => run::run(a),
        Command::Live(a) => live::run(a),
        Command::Say(a) => say::run(a),
        Command::Bench(a) => bench::run(a),
        Command::Model(m) => model_cmd::run(m),
        Command::Presets(a) => presets_cmd::run(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            // `{:#}` joins the context chain on one line: "`x.wav`: not a valid WAV file (...)".
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}
