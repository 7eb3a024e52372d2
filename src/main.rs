//! `amoeba`: convert, verify, understand and run TF1 Hub NASNet-family image modules
//! (AmoebaNet-A first of all) without TensorFlow.
//!
//! This binary is thin: it parses arguments, calls the library crates, prints, and maps
//! outcomes to exit codes (0 success, 1 verification failed, 2 bad input or usage).

mod cmd;

use clap::{Parser, Subcommand};
use std::process::ExitCode;

#[derive(Parser)]
#[command(name = "amoeba", version, about, long_about = None)]
struct Cli {
    /// No notes, progress bars or `wrote ...` lines (errors and requested output still print).
    #[arg(long, short, global = true)]
    quiet: bool,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Summarise a module: format, graph variants, signatures, image size, variables.
    Inspect(cmd::inspect::Args),
    /// Show the genotype and network, or draw the cells (text, json, dot, svg, mermaid).
    Genotype(cmd::genotype::Args),
    /// Convert a module's variables to safetensors, with the network description in the metadata.
    Convert(cmd::convert::Args),
    /// Export the model as ONNX (written from the network description, no TensorFlow).
    Export(cmd::export::Args),
    /// Run preprocessed images through a model: logits and feature vectors.
    Run(cmd::run::Args),
    /// Check a model against TensorFlow's golden outputs: logits, features and every cell.
    Verify(cmd::verify::Args),
    /// Classify photos (JPEG, PNG): top-K ImageNet labels, TensorFlow's preprocessing.
    Classify(cmd::classify::Args),
    /// Top-1/top-5 accuracy of photos against ground truth (`filename class` per line).
    Eval(cmd::eval::Args),
    /// Merge the reports of `eval --shard K/N --report FILE` runs into one.
    EvalMerge(cmd::eval::MergeArgs),
    /// Print a shell completion script: `amoeba completions bash > ~/.local/share/bash-completion/completions/amoeba`.
    Completions {
        /// bash, zsh, fish, elvish or powershell.
        shell: clap_complete::Shell,
    },
    /// List or clear the cache of extracted .tar.gz modules.
    Cache(cmd::cache::Args),
    /// Write the manual pages (roff): amoeba.1 and one per command, into DIR
    /// (`cargo xtask man` calls it).
    #[command(hide = true)]
    Man {
        /// Folder for the pages (created if missing).
        dir: std::path::PathBuf,
    },
}

/// `amoeba.1` and `amoeba-COMMAND.1` for every visible command, into `dir`.
fn man_pages(dir: &std::path::Path) -> anyhow::Result<ExitCode> {
    use anyhow::Context;
    std::fs::create_dir_all(dir).with_context(|| format!("{}: cannot create", dir.display()))?;
    let cli = <Cli as clap::CommandFactory>::command();
    let mut pages = vec![("amoeba".to_string(), cli.clone())];
    for sub in cli.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = format!("amoeba-{}", sub.get_name());
        // clap takes a command's name as `&'static str`: a dozen short names, kept to exit.
        let display: &'static str = Box::leak(name.clone().into_boxed_str());
        pages.push((name, sub.clone().name(display)));
    }
    for (name, command) in pages {
        let mut roff = Vec::new();
        clap_mangen::Man::new(command).render(&mut roff)?;
        let path = dir.join(format!("{name}.1"));
        cmd::write_atomically(&path, &[], &roff)?;
        cmd::note(&format!("wrote {}", path.display()));
    }
    Ok(ExitCode::SUCCESS)
}

/// The completion script of `shell` for every command and option, on standard output.
fn completions(shell: clap_complete::Shell) -> anyhow::Result<ExitCode> {
    let mut script = Vec::new();
    clap_complete::generate(
        shell,
        &mut <Cli as clap::CommandFactory>::command(),
        "amoeba",
        &mut script,
    );
    cmd::print_out(&String::from_utf8_lossy(&script))?;
    Ok(ExitCode::SUCCESS)
}

fn main() -> ExitCode {
    // Unfinished outputs and extracted archives are removed if a signal ends the process.
    safe_fs::cleanup::install();
    // Under --json, an error is a JSON object on standard error too (same exit codes).
    let json = std::env::args_os()
        .skip(1)
        .take_while(|a| a != "--")
        .any(|a| a == "--json");
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) if json && e.use_stderr() => {
            let message = e.render().to_string();
            print_json_error(message.trim(), e.exit_code());
            return ExitCode::from(e.exit_code() as u8);
        }
        Err(e) => {
            let _ = e.print();
            // clap uses 0 for --help/--version and 2 for usage errors, as we do.
            return ExitCode::from(e.exit_code() as u8);
        }
    };
    cmd::set_quiet(cli.quiet);
    // The binary keeps extracted archives (the libraries' default is not to).
    hub_module::set_archive_cache(hub_module::cache_dir());
    let result = match cli.command {
        Command::Inspect(args) => cmd::inspect::run(args),
        Command::Convert(args) => cmd::convert::run(args),
        Command::Export(args) => cmd::export::run(args),
        Command::Genotype(args) => cmd::genotype::run(args),
        Command::Run(args) => cmd::run::run(args),
        Command::Verify(args) => cmd::verify::run(args),
        Command::Classify(args) => cmd::classify::run(args),
        Command::Eval(args) => cmd::eval::run(args),
        Command::EvalMerge(args) => cmd::eval::merge(args),
        Command::Completions { shell } => completions(shell),
        Command::Cache(args) => cmd::cache::run(args),
        Command::Man { dir } => man_pages(&dir),
    };
    match result {
        Ok(code) => code,
        // The reader of our output has gone (`amoeba inspect M | head`): what it wanted was
        // written, so end quietly, as `cat` does.
        Err(e) if cmd::is_broken_pipe(&e) => ExitCode::SUCCESS,
        Err(e) if json => {
            print_json_error(&error_text(&e), i32::from(cmd::EXIT_BAD_INPUT));
            ExitCode::from(cmd::EXIT_BAD_INPUT)
        }
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(cmd::EXIT_BAD_INPUT)
        }
    }
}

/// `{"error": {"message": ..., "exit_code": N}}` on standard error, one line.
fn print_json_error(message: &str, exit_code: i32) {
    let value = serde_json::json!({ "error": { "message": message, "exit_code": exit_code } });
    eprintln!("{value}");
}

/// The error and its causes, leaving out a cause whose text the message already contains
/// (many library errors quote their source in their own message).
fn error_text(e: &anyhow::Error) -> String {
    let mut text = e.to_string();
    for cause in e.chain().skip(1) {
        let cause = cause.to_string();
        if !text.contains(&cause) {
            text = format!("{text}: {cause}");
        }
    }
    text
}
