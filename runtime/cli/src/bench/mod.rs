//! `wasmach bench`: the copy benchmark of `benches/transfer.rs` as a command anyone can run.
//!
//! For each size it measures, in one process and one run, a copy between two tasks through
//! every door (guest-initiated calls, the host API) against the baselines (the host's
//! memcpy, the guest's own `memory.copy`, wasmtime's `Memory::read` + `Memory::write`,
//! `process_vm_readv`), with the criterion bench's case names. Each figure is the median of
//! repeated samples with its spread. A progress bar runs on a terminal's stderr; the table
//! (or `--json`) goes to stdout; `--out DIR` adds an SVG plot and a CSV file.
//!
//! - [`baselines`]: the baselines' fixtures (shared with `benches/transfer.rs`).
//! - [`cases`]: what is measured (the case list, with its copy-mode dimension) and the
//!   fixtures each case runs on.
//! - [`measure`]: sampling and the statistics of the samples.
//! - [`machine`]: the description of the machine that heads the output.
//! - [`report`]: the table, the JSON and the CSV.
//! - [`plot`]: the SVG plot.

mod baselines;
mod cases;
mod machine;
mod measure;
mod plot;
mod report;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use wasmach::{MAX_PAGES, VM_PAGE_SIZE};

use crate::cli_args::parse_duration;
use cases::{CopyMode, Outcome};

/// The sizes measured when `--pages` is not given.
const DEFAULT_PAGES: &str = "1,16,256,4096";

/// Bytes one sample moves at most (the calls per sample times the size): 4 GiB.
const MAX_SAMPLE_BYTES: u64 = 4 << 30;

/// Bytes one sample moves by default: the default `--calls` is the number of calls that
/// moves this much (at least one call).
const DEFAULT_SAMPLE_BYTES: u64 = 4 << 20;

/// The largest size in pages: the calling task holds three regions of the size in its
/// 4 GiB address space (the source, the destination of copies inside it, and `vm_read`'s
/// new region) after its scratch page.
pub const MAX_BENCH_PAGES: u32 = (MAX_PAGES - 1) / 3;

/// The arguments of `wasmach bench`.
#[derive(clap::Args)]
pub struct BenchArgs {
    /// Transfer sizes in 64 KiB pages, comma-separated (e.g. `1,16`). At most 21845 pages:
    /// the calling task holds three regions of the size (source, destination, vm_read's) in
    /// its 4 GiB address space.
    #[arg(
        long,
        value_name = "LIST",
        value_delimiter = ',',
        value_parser = parse_pages,
        default_value = DEFAULT_PAGES
    )]
    pages: Vec<u32>,
    /// Calls per sample, comma-separated: one count for every size, or one per size of
    /// `--pages`. A sample times that many calls in a row (a guest loop making them, or a
    /// host loop) and each figure is a sample's time divided by it, so the cost of entering
    /// the guest is shared out. Default: the calls that move 4 MiB per sample (64 at one
    /// page, 4 at 16 pages, 1 from 64 pages up). A sample moves at most 4 GiB.
    #[arg(long, value_name = "LIST", value_delimiter = ',', value_parser = parse_calls)]
    calls: Vec<u32>,
    /// Measuring time per case (e.g. `200ms`, `2s`), after a tenth of it of warm-up. A case
    /// takes at least 5 samples however long they last.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration, default_value = "1s")]
    time: Duration,
    /// Also write `throughput.svg` (throughput against size, one line per case) and
    /// `throughput.csv` (the same figures) into DIR, created if missing.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// How the runtime's calls move bytes between tasks, comma-separated to measure every
    /// wasmach case in each mode (e.g. `physical,virtual`): `physical` copies, `virtual`
    /// shares pages copy-on-write for every copy, `auto` (the runtime's default) shares those
    /// of a large vm_read or vm_copy (256 pages or more by default; see `wasmach run --copy`).
    /// The baselines are measured once.
    #[arg(
        long,
        value_name = "MODES",
        value_delimiter = ',',
        value_enum,
        default_value = "auto"
    )]
    copy: Vec<CopyMode>,
    /// Print the machine and the figures as JSON on stdout instead of the table.
    #[arg(long)]
    json: bool,
}

/// One size to measure.
#[derive(Clone, Copy, Debug)]
pub struct Size {
    /// The transfer size in 64 KiB pages.
    pub pages: u32,
    /// Calls per sample.
    pub calls: u32,
}

impl Size {
    /// The transfer size in bytes.
    pub fn bytes(self) -> u64 {
        u64::from(self.pages) * u64::from(VM_PAGE_SIZE)
    }
}

/// A checked `wasmach bench` command line.
pub struct Plan {
    /// The sizes, smallest first, each once.
    pub sizes: Vec<Size>,
    /// Measuring time per case.
    pub time: Duration,
    /// The copy modes, each once, in the order given.
    pub copies: Vec<CopyMode>,
    out: Option<PathBuf>,
    json: bool,
}

/// Checks what clap cannot check value by value: the calls against the sizes. The error is
/// a message for the command line's usage error (exit status 2).
pub fn plan(args: &BenchArgs) -> Result<Plan, String> {
    let calls: Vec<Option<u32>> = match args.calls.len() {
        0 => vec![None; args.pages.len()],
        1 => vec![Some(args.calls[0]); args.pages.len()],
        n if n == args.pages.len() => args.calls.iter().copied().map(Some).collect(),
        n => {
            return Err(format!(
                "--calls has {n} counts for {} sizes of --pages: give one count, or one per size",
                args.pages.len()
            ));
        }
    };
    let mut sizes: Vec<Size> = Vec::new();
    for (&pages, calls) in args.pages.iter().zip(calls) {
        let bytes = u64::from(pages) * u64::from(VM_PAGE_SIZE);
        let calls = match calls {
            Some(calls) => {
                if u64::from(calls) * bytes > MAX_SAMPLE_BYTES {
                    return Err(format!(
                        "{calls} calls of {pages} pages move {} per sample: above 4 GiB \
                         (at most {} calls at this size)",
                        report::human_bytes(u64::from(calls) * bytes),
                        MAX_SAMPLE_BYTES / bytes
                    ));
                }
                calls
            }
            None => default_calls(pages),
        };
        if !sizes.iter().any(|s| s.pages == pages) {
            sizes.push(Size { pages, calls });
        }
    }
    sizes.sort_by_key(|s| s.pages);
    let mut copies: Vec<CopyMode> = Vec::new();
    for &mode in &args.copy {
        if !copies.contains(&mode) {
            copies.push(mode);
        }
    }
    if copies.is_empty() {
        copies.push(CopyMode::Auto);
    }
    Ok(Plan {
        sizes,
        time: args.time,
        copies,
        out: args.out.clone(),
        json: args.json,
    })
}

/// The default calls per sample at `pages`: those that move 4 MiB, at least one.
pub fn default_calls(pages: u32) -> u32 {
    let bytes = u64::from(pages) * u64::from(VM_PAGE_SIZE);
    u32::try_from((DEFAULT_SAMPLE_BYTES / bytes).max(1)).unwrap_or(1)
}

/// `--pages`: a positive number of pages that fits the benchmark's layout.
fn parse_pages(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let pages: u64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of pages (try 1,16,256)"))?;
    let bytes = pages.saturating_mul(u64::from(VM_PAGE_SIZE));
    if pages == 0 {
        Err("a size of 0 pages: every size must be at least one page".to_owned())
    } else if pages > u64::from(MAX_PAGES) {
        Err(format!(
            "{pages} pages are {}: above 4 GiB, a task's whole address space",
            report::human_bytes(bytes)
        ))
    } else if pages > u64::from(MAX_BENCH_PAGES) {
        Err(format!(
            "{pages} pages ({}) do not fit: the calling task holds three regions of the size \
             (source, destination, vm_read's) in its 4 GiB address space, so at most \
             {MAX_BENCH_PAGES} pages",
            report::human_bytes(bytes)
        ))
    } else {
        Ok(pages as u32)
    }
}

/// `--calls`: a positive number of calls.
fn parse_calls(text: &str) -> Result<u32, String> {
    let text = text.trim();
    let calls: u64 = text
        .parse()
        .map_err(|_| format!("`{text}` is not a number of calls (try 64)"))?;
    match calls {
        0 => Err("0 calls per sample: a sample makes at least one call".to_owned()),
        // Above this, a sample moves more than 4 GiB even at one page.
        n if n > MAX_SAMPLE_BYTES / u64::from(VM_PAGE_SIZE) => Err(format!(
            "{n} calls per sample move more than 4 GiB per sample even at one page \
             (at most {})",
            MAX_SAMPLE_BYTES / u64::from(VM_PAGE_SIZE)
        )),
        n => Ok(n as u32),
    }
}

/// Runs the benchmark and prints its report. Exit status 0, or 1 when a case failed (a
/// baseline the system refuses, such as `process_vm_readv` under a seccomp filter, is
/// skipped and noted, not a failure).
pub fn run(plan: &Plan) -> ExitCode {
    match run_inner(plan) {
        Ok(status) => status,
        Err(e) => {
            eprintln!("wasmach bench: {e:#}");
            ExitCode::from(1)
        }
    }
}

fn run_inner(plan: &Plan) -> anyhow::Result<ExitCode> {
    if let Some(dir) = &plan.out {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("cannot create the output directory {}", dir.display()))?;
    }
    let machine = machine::Machine::describe();
    let runtimes = cases::runtimes(plan)?;
    let virtual_copies = runtimes.iter().any(|(_, r)| r.virtual_copies());
    let jobs = cases::jobs(&plan.sizes, &plan.copies);
    let progress = progress_bar(jobs.len() as u64);
    let measurements = cases::run(plan, &runtimes, &jobs, &progress);
    progress.finish_and_clear();
    drop(runtimes);

    let report = report::Report::new(machine, plan, virtual_copies, measurements);
    if plan.json {
        println!("{}", report.json()?);
    } else {
        print!("{}", report.table());
    }
    if let Some(dir) = &plan.out {
        let csv = dir.join("throughput.csv");
        std::fs::write(&csv, report.csv())
            .with_context(|| format!("cannot write {}", csv.display()))?;
        let svg = dir.join("throughput.svg");
        plot::write_svg(&svg, &report)
            .with_context(|| format!("cannot write the plot {}", svg.display()))?;
        eprintln!("wrote {} and {}", svg.display(), csv.display());
    }
    let failed = report
        .measurements
        .iter()
        .filter(|m| matches!(m.outcome, Outcome::Failed(_)))
        .count();
    if failed > 0 {
        eprintln!("wasmach bench: {failed} case(s) failed (see the notes)");
        return Ok(ExitCode::from(1));
    }
    Ok(ExitCode::SUCCESS)
}

/// The progress bar on stderr: hidden when stderr is not a terminal.
fn progress_bar(cases: u64) -> ProgressBar {
    if !std::io::stderr().is_terminal() {
        return ProgressBar::hidden();
    }
    let bar = ProgressBar::with_draw_target(Some(cases), ProgressDrawTarget::stderr());
    let style = ProgressStyle::with_template(
        "{spinner} [{elapsed}] {bar:30} {pos}/{len} cases, ~{eta} left: {msg}",
    )
    .unwrap_or_else(|_| ProgressStyle::default_bar());
    bar.set_style(style);
    bar.enable_steady_tick(Duration::from_millis(100));
    bar
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_and_calls_are_checked() {
        assert_eq!(parse_pages("16"), Ok(16));
        assert!(parse_pages("x").unwrap_err().contains("not a number"));
        assert!(parse_pages("0").unwrap_err().contains("at least one page"));
        assert!(parse_pages("65537").unwrap_err().contains("above 4 GiB"));
        assert!(parse_pages("30000").unwrap_err().contains("at most 21845"));
        assert_eq!(parse_pages("21845"), Ok(21845));
        assert!(parse_calls("0").is_err());
        assert!(parse_calls("-3").is_err());
        assert_eq!(parse_calls("64"), Ok(64));
        assert_eq!(default_calls(1), 64);
        assert_eq!(default_calls(16), 4);
        assert_eq!(default_calls(64), 1);
        assert_eq!(default_calls(4096), 1);
    }
}
