//! `wasmach`, the command (the `wasmach-cli` package): run WebAssembly tasks that share
//! memory through Mach VM calls, or describe a module. Built on the `wasmach` library's public
//! API only.

mod bench;
mod cli_args;
mod inspect;

use std::collections::HashSet;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use clap::{CommandFactory, Parser, Subcommand};
use wasmach::{CopyMode, Runtime, RuntimeOptions, Task, TaskOptions};
use wasmtime::{Trap, Val};

use cli_args::{parse_duration, parse_size};

/// Run WebAssembly tasks that move memory between each other with Mach VM calls.
#[derive(Parser)]
#[command(
    name = "wasmach",
    version,
    about,
    after_help = "Set RUST_LOG=wasmach=debug to log every VM call with its result on stderr."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Spawn every MODULE as a task, register each with the bootstrap under its NAME, then
    /// call the entry function of each task that exports it, in command-line order.
    ///
    /// Prints one line per call, `NAME: R...` (numbers in decimal, i32 signed). A trap prints
    /// `NAME: trap: MESSAGE` on stderr and the run goes on; the exit status is then 1.
    /// A file that cannot be read or a module that is refused runs nothing: exit status 2.
    Run(RunArgs),
    /// Describe a module or component without running it: its memory, imports, exports,
    /// and the Mach calls it uses. A module that would be refused is reported with its cause (status 2).
    Inspect {
        /// A core module or component: `.wat` text or a `.wasm` binary.
        #[arg(value_name = "MODULE")]
        module: PathBuf,
    },
    /// Measure copies between two tasks, through every door, against their baselines (the
    /// host's memcpy, the guest's memory.copy, wasmtime's Memory::read + Memory::write,
    /// process_vm_readv): a progress bar on a terminal, then a table of median time per call
    /// (± half the interquartile range), GiB/s and the ratio to memcpy, per size and case.
    /// Build with --release for figures worth comparing.
    Bench(bench::BenchArgs),
}

#[derive(clap::Args)]
struct RunArgs {
    /// The function to call in each task that exports it. For a component, the default
    /// means its `run` export (the `program` world of wit/mach.wit).
    #[arg(long, value_name = "FUNC", default_value = DEFAULT_ENTRY)]
    invoke: String,
    /// Fuel for each task (its start function and entry call): a guest that runs out traps
    /// ("all fuel consumed by WebAssembly").
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Wall-clock limit for each task's entry call (e.g. `500ms`, `2s`, `1m`; a bare number is
    /// seconds), enforced with epoch interruption: a guest past it traps ("interrupt").
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    timeout: Option<Duration>,
    /// Memory quota of each task (e.g. `16MiB`, `64K`, `1G`: powers of 1024; a bare number is
    /// bytes): past it vm_allocate and vm_read give KERN_NO_SPACE and memory.grow gives -1.
    #[arg(long, value_name = "SIZE", value_parser = parse_size)]
    max_memory: Option<u64>,
    /// Run the entry functions at the same time, one thread per task. Output lines are still
    /// one per task, in command-line order.
    #[arg(long)]
    parallel: bool,
    /// Leave the guests' own loads, stores and bulk-memory instructions to WebAssembly's
    /// bounds (docs/spec.md §5). By default the protection table binds them: touching a page the
    /// table forbids traps ("memory fault at wasm address ...").
    #[arg(long)]
    no_guest_protection: bool,
    /// How vm_read, vm_copy, vm_read_overwrite and vm_write move bytes between task
    /// memories: `physical` copies them; `virtual` shares the pages copy-on-write for every
    /// copy, however small (to compare a program's results both ways); `auto` shares those of
    /// a vm_read or vm_copy of 256 pages (16 MiB) or more. Results are the same; time and memory
    /// differ. Where the kernel cannot share (before Linux 6.7), every copy is physical.
    #[arg(long, value_enum, value_name = "MODE", default_value = "auto")]
    copy: CopyArg,
    /// After the run, print each task's regions (start-end, size, current/max protection), as
    /// macOS `vmmap` does.
    #[arg(long)]
    vmmap: bool,
    /// After the run, print on stderr how long the entry calls took and the process's
    /// peak resident memory (`VmHWM`), e.g. to compare `--copy physical` and `virtual`.
    #[arg(long)]
    stats: bool,
    /// `PATH` or `NAME=PATH`: a core module or a component, as `.wat` text or a `.wasm`
    /// binary (told apart by content). NAME defaults to the file stem.
    #[arg(value_name = "MODULE", required = true)]
    modules: Vec<String>,
}

/// `--copy`.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum CopyArg {
    Physical,
    Virtual,
    Auto,
}

impl From<CopyArg> for CopyMode {
    fn from(arg: CopyArg) -> CopyMode {
        match arg {
            CopyArg::Physical => CopyMode::Physical,
            CopyArg::Virtual => CopyMode::Virtual,
            CopyArg::Auto => CopyMode::Auto,
        }
    }
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
    // `RUST_LOG=wasmach=debug` logs every VM call with its result on stderr.
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run(args) => run(&args),
        Command::Inspect { module } => inspect::inspect(&module),
        Command::Bench(args) => match bench::plan(&args) {
            Ok(plan) => bench::run(&plan),
            Err(message) => {
                // A usage error of `wasmach bench` (its usage line, exit status 2).
                let mut cli = Cli::command();
                cli.build();
                let mut command = cli.find_subcommand_mut("bench").cloned().unwrap_or(cli);
                command
                    .error(clap::error::ErrorKind::ValueValidation, message)
                    .exit()
            }
        },
    }
}

/// The default `--invoke`.
const DEFAULT_ENTRY: &str = "_start";
/// A component's entry when `--invoke` is the default.
const COMPONENT_ENTRY: &str = "run";

/// The epoch tick of `--timeout`.
const TICK: Duration = Duration::from_millis(10);

/// Spawns everything, then calls the entry functions.
fn run(args: &RunArgs) -> ExitCode {
    let options = RuntimeOptions::default()
        .guest_protection(!args.no_guest_protection)
        .copy(args.copy.into())
        .consume_fuel(args.fuel.is_some())
        .epoch_interruption(args.timeout.is_some());
    let runtime = match Runtime::with_options(options) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("wasmach: cannot start the runtime: {e:#}");
            return ExitCode::from(2);
        }
    };
    let mut task_options = TaskOptions::default();
    task_options.max_memory = args.max_memory;
    task_options.fuel = args.fuel;
    let modules: Vec<ModuleArg> = args.modules.iter().map(|m| ModuleArg::parse(m)).collect();
    let mut seen = HashSet::new();
    for arg in &modules {
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
    for arg in &modules {
        let task = runtime
            .compile_file(&arg.path)
            .and_then(|module| runtime.spawn_with(&module, &task_options));
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
        let entry = entry_name(task, &args.invoke);
        if entry_params(task, entry).is_some_and(|n| n != 0) {
            eprintln!(
                "wasmach: {}: the entry function `{entry}` takes parameters; it must take none",
                arg.path.display()
            );
            return ExitCode::from(2);
        }
    }

    let ticks = args
        .timeout
        .map(|t| t.as_nanos().div_ceil(TICK.as_nanos()).max(1) as u64);
    let done = AtomicBool::new(false);
    let started = std::time::Instant::now();
    let outcomes: Vec<Option<anyhow::Result<Vec<String>>>> = std::thread::scope(|s| {
        if ticks.is_some() {
            s.spawn(|| {
                while !done.load(Ordering::Relaxed) {
                    std::thread::sleep(TICK);
                    runtime.increment_epoch();
                }
            });
        }
        let call = |task: &Task| -> Option<anyhow::Result<Vec<String>>> {
            let entry = entry_name(task, &args.invoke);
            entry_params(task, entry)?;
            if let Some(ticks) = ticks
                && let Err(e) = task.set_epoch_deadline(ticks)
            {
                return Some(Err(e));
            }
            Some(if task.is_component() {
                task.call_component_dynamic(entry, &[])
                    .map(|results| results.iter().map(show_component).collect())
            } else {
                task.call_dynamic(entry, &[])
                    .map(|results| results.iter().map(show).collect())
            })
        };
        let outcomes = if args.parallel {
            let handles: Vec<_> = tasks
                .iter()
                .map(|(_, task)| s.spawn(move || call(task)))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Some(Err(anyhow::anyhow!("the call panicked"))))
                })
                .collect()
        } else {
            tasks.iter().map(|(_, task)| call(task)).collect()
        };
        done.store(true, Ordering::Relaxed);
        outcomes
    });

    let elapsed = started.elapsed();
    let mut status = ExitCode::SUCCESS;
    for ((arg, _), outcome) in tasks.iter().zip(outcomes) {
        match outcome {
            None => {}
            Some(Ok(results)) => {
                let line: String = results.iter().map(|v| format!(" {v}")).collect();
                println!("{}:{line}", arg.name);
            }
            Some(Err(e)) => {
                let message = match e.downcast_ref::<Trap>() {
                    Some(_) => trap_message(&e),
                    None => format!("{:#}", e.root_cause()),
                };
                eprintln!("{}: trap: {message}", arg.name);
                status = ExitCode::from(1);
            }
        }
    }
    if args.vmmap {
        for (arg, task) in &tasks {
            print!("{}", vmmap(&arg.name, task));
        }
    }
    if args.stats {
        let peak = peak_resident_kib().map_or("unknown".to_owned(), |kib| {
            format!("{:.1} MiB", kib as f64 / 1024.0)
        });
        eprintln!(
            "wasmach: entry calls took {:.3} s; peak resident memory {peak}; {} copies",
            elapsed.as_secs_f64(),
            if runtime.virtual_copies() {
                "virtual"
            } else {
                "physical"
            }
        );
    }
    status
}

/// The process's peak resident memory in KiB (`VmHWM` of `/proc/self/status`).
fn peak_resident_kib() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// A trap's causes on one line, without the wasm backtrace: `memory fault at wasm address
/// 0x10004 in linear memory of size 0x20000: wasm trap: out of bounds memory access`.
fn trap_message(e: &anyhow::Error) -> String {
    e.chain()
        .map(|cause| cause.to_string())
        // wasmtime's backtrace context (the frames, on several lines)
        .filter(|cause| !cause.starts_with("error while executing at wasm backtrace"))
        .collect::<Vec<_>>()
        .join(": ")
}

/// A task's regions, as macOS `vmmap` lists them.
fn vmmap(name: &str, task: &Task) -> String {
    let regions = task.regions();
    let mut out = format!(
        "==== {name}: {} region{}, memory {} pages\n",
        regions.len(),
        if regions.len() == 1 { "" } else { "s" },
        task.memory_pages()
    );
    out.push_str(&format!("{:<17} {:>9}  PRT/MAX\n", "START-END", "SIZE"));
    for r in regions {
        let end = u64::from(r.address) + r.size;
        out.push_str(&format!(
            "{:08x}-{:08x} {:>9}  {}/{}\n",
            r.address,
            end,
            cli_args::human_size(r.size),
            r.protection,
            r.max_protection
        ));
    }
    out
}

/// The entry function of `task`: `--invoke`'s name, except that a component's default
/// entry is its `run` export (WIT names cannot start with `_`).
fn entry_name<'a>(task: &Task, invoke: &'a str) -> &'a str {
    if task.is_component() && invoke == DEFAULT_ENTRY {
        COMPONENT_ENTRY
    } else {
        invoke
    }
}

/// The number of parameters of the task's function `name`, or `None` if it exports none.
fn entry_params(task: &Task, name: &str) -> Option<usize> {
    if task.is_component() {
        task.component_func_type(name).map(|f| f.params().len())
    } else {
        task.func_type(name).map(|f| f.params().len())
    }
}

/// A component's result: numbers in decimal, anything else as wasmtime shows it.
fn show_component(v: &wasmtime::component::Val) -> String {
    use wasmtime::component::Val as C;
    match v {
        C::S8(x) => x.to_string(),
        C::S16(x) => x.to_string(),
        C::S32(x) => x.to_string(),
        C::S64(x) => x.to_string(),
        C::U8(x) => x.to_string(),
        C::U16(x) => x.to_string(),
        C::U32(x) => x.to_string(),
        C::U64(x) => x.to_string(),
        C::Float32(x) => x.to_string(),
        C::Float64(x) => x.to_string(),
        C::Bool(x) => x.to_string(),
        C::String(x) => x.clone(),
        other => format!("{other:?}"),
    }
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
