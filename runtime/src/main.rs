//! `wasmach`: run WebAssembly tasks that share memory through Mach VM calls.

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use wasmach::{Runtime, Task};
use wasmtime::{Trap, Val};

/// Run WebAssembly tasks that move memory between each other with Mach VM calls.
#[derive(Parser)]
#[command(name = "wasmach", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Spawn every MODULE as a task, register each with the bootstrap under its NAME, then
    /// call the entry function of each task that exports it, in command-line order.
    ///
    /// Prints one line per call, `NAME: R...` (results in decimal). A trap prints
    /// `NAME: trap: MESSAGE` on stderr and the run goes on; the exit status is then 1.
    /// A file that cannot be read or a module that is refused runs nothing: exit status 2.
    Run {
        /// The function to call in each task that exports it.
        #[arg(long, value_name = "FUNC", default_value = "_start")]
        invoke: String,
        /// `PATH` or `NAME=PATH`: a `.wat` text or `.wasm` binary (told apart by content).
        /// NAME defaults to the file stem.
        #[arg(value_name = "MODULE", required = true)]
        modules: Vec<String>,
    },
}

/// A `MODULE` argument.
struct ModuleArg {
    name: String,
    path: PathBuf,
}

impl ModuleArg {
    fn parse(arg: &str) -> ModuleArg {
        match arg.split_once('=') {
            Some((name, path)) if !name.is_empty() && !name.contains('/') => ModuleArg {
                name: name.to_owned(),
                path: PathBuf::from(path),
            },
            _ => {
                let path = PathBuf::from(arg);
                let name = path
                    .file_stem()
                    .map_or_else(|| arg.to_owned(), |s| s.to_string_lossy().into_owned());
                ModuleArg { name, path }
            }
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Run { invoke, modules } => run(&invoke, &modules),
    }
}

/// Spawns everything, then calls the entry functions.
fn run(invoke: &str, modules: &[String]) -> ExitCode {
    let runtime = match Runtime::new() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wasmach: cannot start the runtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    let args: Vec<ModuleArg> = modules.iter().map(|m| ModuleArg::parse(m)).collect();
    let mut seen = HashSet::new();
    for arg in &args {
        if !seen.insert(arg.name.as_str()) {
            eprintln!(
                "wasmach: {}: two modules are named `{}`",
                arg.path.display(),
                arg.name
            );
            return ExitCode::from(2);
        }
    }
    let mut tasks: Vec<(&ModuleArg, Task)> = Vec::new();
    for arg in &args {
        let task = runtime
            .compile_file(&arg.path)
            .and_then(|module| runtime.spawn(&module));
        match task {
            Ok(task) => {
                runtime.register(&arg.name, &task);
                tasks.push((arg, task));
            }
            Err(e) => {
                eprintln!("wasmach: {e:#}");
                return ExitCode::from(2);
            }
        }
    }
    for (arg, task) in &tasks {
        if let Some(ty) = task.func_type(invoke)
            && ty.params().len() != 0
        {
            eprintln!(
                "wasmach: {}: the entry function `{invoke}` takes parameters; it must take none",
                arg.path.display()
            );
            return ExitCode::from(2);
        }
    }
    let mut status = ExitCode::SUCCESS;
    for (arg, task) in &tasks {
        if task.func_type(invoke).is_none() {
            continue;
        }
        match task.call_dynamic(invoke, &[]) {
            Ok(results) => {
                let line: String = results.iter().map(|v| format!(" {}", show(v))).collect();
                println!("{}:{line}", arg.name);
            }
            Err(e) => {
                let message = match e.downcast_ref::<Trap>() {
                    Some(trap) => trap.to_string(),
                    None => format!("{:#}", e.root_cause()),
                };
                eprintln!("{}: trap: {message}", arg.name);
                status = ExitCode::from(1);
            }
        }
    }
    status
}

/// A result value in decimal (`i32` signed).
fn show(v: &Val) -> String {
    match v {
        Val::I32(x) => x.to_string(),
        Val::I64(x) => x.to_string(),
        Val::F32(bits) => f32::from_bits(*bits).to_string(),
        Val::F64(bits) => f64::from_bits(*bits).to_string(),
        Val::V128(x) => x.as_u128().to_string(),
        _ => "ref".to_owned(),
    }
}
