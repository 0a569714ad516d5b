//! What `wasmach bench` measures: the case list, and the fixtures the cases run on.
//!
//! The cases and their names are `benches/transfer.rs`'s, so that the command's figures and
//! criterion's can be set side by side. A case that runs on wasmach's tasks is measured once
//! per copy mode asked (`--copy`); the baselines once per size.

use std::hint::black_box;
use std::time::{Duration, Instant};

use indicatif::ProgressBar;
use serde::Serialize;
use wasmach::{KernResult, KernReturn, PortName, Runtime, RuntimeOptions, Task, TaskFunc};
use wasmtime::WasmParams;

pub use super::baselines::Problem;
use super::baselines::{Child, PageBuf, Plain};
use super::measure::{Stats, measure};
use super::{Plan, Size, report};

/// A page, in bytes.
const PAGE: u32 = wasmach::VM_PAGE_SIZE;

/// The guest loops (a copy of the loops of `benches/guest.wat` that the cases use).
const GUEST: &str = include_str!("guest.wat");

/// How the runtime's calls move bytes between task memories (`RuntimeOptions::copy`): the
/// dimension along which every wasmach case is measured once per mode asked (`--copy`).
/// The baselines do not depend on it and are measured once per size.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, clap::ValueEnum)]
#[serde(rename_all = "lowercase")]
pub enum CopyMode {
    /// Every call copies the bytes.
    Physical,
    /// Every copy between task memories shares the pages copy-on-write, however small.
    Virtual,
    /// A `vm_read` or `vm_copy` of `RuntimeOptions::virtual_copy_pages` or more shares
    /// pages, the rest copies (the runtime's default).
    Auto,
}

impl CopyMode {
    /// The mode's name in the output (`--copy`'s value).
    pub fn name(self) -> &'static str {
        match self {
            CopyMode::Physical => "physical",
            CopyMode::Virtual => "virtual",
            CopyMode::Auto => "auto",
        }
    }

    /// The runtime options of the mode.
    fn runtime_options(self) -> RuntimeOptions {
        RuntimeOptions::default().copy(match self {
            CopyMode::Physical => wasmach::CopyMode::Physical,
            CopyMode::Virtual => wasmach::CopyMode::Virtual,
            CopyMode::Auto => wasmach::CopyMode::Auto,
        })
    }
}

/// Who makes the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Door {
    /// A copy without wasmach's calls, to compare against.
    Baseline,
    /// A guest loop calling the `"mach"` import.
    Guest,
    /// The host API.
    Host,
}

/// One thing measured at every size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Case {
    /// The host copying between two page-aligned buffers: the limit.
    Memcpy,
    /// wasmtime's `Memory::read` into a new `Vec`, then `Memory::write` into another
    /// instance: what a user writes without wasmach.
    VecDoubleCopy,
    /// Linux `process_vm_readv` from a forked child.
    ProcessVmReadv,
    /// The guest's own `memory.copy` inside its memory.
    GuestMemoryCopy,
    /// A guest `vm_read_overwrite` from the peer into itself.
    GuestReadOverwrite,
    /// A guest `vm_write` from itself into the peer.
    GuestWrite,
    /// A guest `vm_read` of the peer into a new region, then `vm_deallocate` of it.
    GuestReadDeallocate,
    /// A guest `vm_copy` inside itself.
    GuestCopyInSelf,
    /// A guest `vm_copy` inside the peer.
    GuestCopyInPeer,
    /// The host's `Task::vm_read_overwrite` into a page-aligned buffer.
    HostReadOverwrite,
    /// The host's `Task::vm_write` from a page-aligned buffer.
    HostWrite,
    /// The host's `Task::vm_read` into a new `Vec`.
    HostRead,
    /// The host's `Task::vm_copy`.
    HostCopy,
    /// `a.mach().vm_read_overwrite(b, ..)`: task A acting on task B through the host API.
    HostAReadOverwriteB,
    /// `a.mach().vm_write(b, ..)`.
    HostAWriteB,
}

impl Case {
    /// Every case, in the order measured (and printed).
    pub const ALL: [Case; 15] = [
        Case::Memcpy,
        Case::VecDoubleCopy,
        Case::ProcessVmReadv,
        Case::GuestMemoryCopy,
        Case::GuestReadOverwrite,
        Case::GuestWrite,
        Case::GuestReadDeallocate,
        Case::GuestCopyInSelf,
        Case::GuestCopyInPeer,
        Case::HostReadOverwrite,
        Case::HostWrite,
        Case::HostRead,
        Case::HostCopy,
        Case::HostAReadOverwriteB,
        Case::HostAWriteB,
    ];

    /// The case's name: the criterion bench's.
    pub fn name(self) -> &'static str {
        match self {
            Case::Memcpy => "baseline/memcpy",
            Case::VecDoubleCopy => "baseline/vec_double_copy",
            Case::ProcessVmReadv => "baseline/process_vm_readv",
            Case::GuestMemoryCopy => "baseline/guest_memory_copy",
            Case::GuestReadOverwrite => "guest/vm_read_overwrite",
            Case::GuestWrite => "guest/vm_write",
            Case::GuestReadDeallocate => "guest/vm_read+vm_deallocate",
            Case::GuestCopyInSelf => "guest/vm_copy_in_self",
            Case::GuestCopyInPeer => "guest/vm_copy_in_peer",
            Case::HostReadOverwrite => "host/vm_read_overwrite",
            Case::HostWrite => "host/vm_write",
            Case::HostRead => "host/vm_read",
            Case::HostCopy => "host/vm_copy",
            Case::HostAReadOverwriteB => "host/a_read_overwrite_b",
            Case::HostAWriteB => "host/a_write_b",
        }
    }

    /// Who makes the copy.
    pub fn door(self) -> Door {
        match self {
            Case::Memcpy | Case::VecDoubleCopy | Case::ProcessVmReadv | Case::GuestMemoryCopy => {
                Door::Baseline
            }
            Case::GuestReadOverwrite
            | Case::GuestWrite
            | Case::GuestReadDeallocate
            | Case::GuestCopyInSelf
            | Case::GuestCopyInPeer => Door::Guest,
            _ => Door::Host,
        }
    }
}

/// One measurement to make: a case at a size, in a copy mode (`None` for a baseline).
#[derive(Clone, Copy, Debug)]
pub struct Job {
    /// The size and its calls per sample.
    pub size: Size,
    /// What is measured.
    pub case: Case,
    /// The copy mode of a wasmach case; `None` for a baseline.
    pub mode: Option<CopyMode>,
    /// Whether the run measures several copy modes (the label then names the mode).
    several_modes: bool,
}

impl Job {
    /// The case's name, with its copy mode when the run measures several
    /// (`guest/vm_write [virtual]`).
    pub fn label(&self) -> String {
        match self.mode {
            Some(mode) if self.several_modes => format!("{} [{}]", self.case.name(), mode.name()),
            _ => self.case.name().to_owned(),
        }
    }
}

/// Every job of a run, size by size, in the order measured: the baselines, then each
/// wasmach case in each of `modes` (at least one).
pub fn jobs(sizes: &[Size], modes: &[CopyMode]) -> Vec<Job> {
    let several_modes = modes.len() > 1;
    let mut jobs = Vec::new();
    for &size in sizes {
        for case in Case::ALL {
            let modes = if case.door() == Door::Baseline {
                vec![None]
            } else {
                modes.iter().copied().map(Some).collect()
            };
            for mode in modes {
                jobs.push(Job {
                    size,
                    case,
                    mode,
                    several_modes,
                });
            }
        }
    }
    jobs
}

/// What a job gave.
#[derive(Clone, Debug)]
pub enum Outcome {
    /// The statistics of its samples (seconds per call).
    Measured(Stats),
    /// Skipped, with the reason.
    Skipped(String),
    /// Failed, with the cause.
    Failed(String),
}

impl From<Result<Stats, Problem>> for Outcome {
    fn from(result: Result<Stats, Problem>) -> Outcome {
        match result {
            Ok(stats) => Outcome::Measured(stats),
            Err(Problem::Skipped(why)) => Outcome::Skipped(why),
            Err(Problem::Failed(why)) => Outcome::Failed(why),
        }
    }
}

/// A job and what it gave.
#[derive(Clone, Debug)]
pub struct Measurement {
    /// What was measured.
    pub job: Job,
    /// The figures, or why there are none.
    pub outcome: Outcome,
}

/// One runtime per copy mode of the plan. Only a runtime that cannot start is an error
/// of the run.
pub fn runtimes(plan: &Plan) -> anyhow::Result<Vec<(CopyMode, Runtime)>> {
    plan.copies
        .iter()
        .map(|&mode| {
            Runtime::with_options(mode.runtime_options())
                .map(|runtime| (mode, runtime))
                .map_err(|e| {
                    anyhow::anyhow!("cannot start the runtime ({} copies): {e:#}", mode.name())
                })
        })
        .collect()
}

/// Runs every job (in order) on `runtimes` and returns their measurements. A case that
/// fails is recorded as failed and the run goes on.
pub fn run(
    plan: &Plan,
    runtimes: &[(CopyMode, Runtime)],
    jobs: &[Job],
    progress: &ProgressBar,
) -> Vec<Measurement> {
    let mut measurements = Vec::with_capacity(jobs.len());
    for &size in &plan.sizes {
        let label = report::size_label(size.pages);
        progress.set_message(format!("{label}: filling the buffers"));
        let mut fixtures = Fixtures::new(size, runtimes);
        for job in jobs.iter().filter(|j| j.size.pages == size.pages) {
            progress.set_message(format!("{label}: {}", job.label()));
            let outcome = fixtures.run(job, plan.time, progress);
            measurements.push(Measurement { job: *job, outcome });
            progress.inc(1);
        }
    }
    measurements
}

/// What one size's cases run on: the host buffers, and the task pairs (made when first
/// needed, one per copy mode).
struct Fixtures<'r> {
    size: Size,
    /// The source of host-side copies, page-aligned.
    src: PageBuf,
    /// The destination of host-side copies, page-aligned.
    dst: PageBuf,
    runtimes: &'r [(CopyMode, Runtime)],
    pairs: Vec<(CopyMode, Result<Pair, String>)>,
}

impl<'r> Fixtures<'r> {
    fn new(size: Size, runtimes: &'r [(CopyMode, Runtime)]) -> Fixtures<'r> {
        let len = size.bytes() as usize;
        Fixtures {
            size,
            src: PageBuf::new(len, |i| i as u8),
            dst: PageBuf::new(len, |_| 1),
            runtimes,
            pairs: Vec::new(),
        }
    }

    /// Spawns and fills the pair of tasks of `mode` unless it is there (or failed).
    fn ensure_pair(&mut self, mode: CopyMode) {
        if self.pairs.iter().any(|(m, _)| *m == mode) {
            return;
        }
        let pair = self
            .runtimes
            .iter()
            .find(|(m, _)| *m == mode)
            .ok_or_else(|| format!("no runtime for {} copies", mode.name()))
            .and_then(|(_, runtime)| {
                Pair::new(runtime, self.size.pages)
                    .map_err(|e| format!("cannot set the tasks up: {e:#}"))
            });
        self.pairs.push((mode, pair));
    }

    /// Measures one job.
    fn run(&mut self, job: &Job, time: Duration, progress: &ProgressBar) -> Outcome {
        let calls = self.size.calls;
        let n = calls as i32;
        let size = self.size.bytes() as u32;
        // Guest arguments: addresses and sizes as the i32s the guest reads as u32s.
        let (p1, s, second) = (PAGE as i32, size as i32, PAGE.wrapping_add(size) as i32);
        // A baseline that runs on tasks (the guest's memory.copy) takes the first mode's.
        let mode = job
            .mode
            .or_else(|| self.runtimes.first().map(|(mode, _)| *mode))
            .unwrap_or(CopyMode::Auto);
        let on_tasks = job.case.door() != Door::Baseline || job.case == Case::GuestMemoryCopy;
        if on_tasks {
            let label = report::size_label(self.size.pages);
            progress.set_message(format!("{label}: spawning and filling the tasks"));
            self.ensure_pair(mode);
            progress.set_message(format!("{label}: {}", job.label()));
        }
        let pair: Result<&Pair, Problem> = match self.pairs.iter().find(|(m, _)| *m == mode) {
            Some((_, Ok(pair))) => Ok(pair),
            Some((_, Err(e))) => Err(Problem::Failed(e.clone())),
            None => Err(Problem::Failed("the tasks are not set up".to_owned())),
        };
        let (src, dst) = (&self.src, &mut self.dst);
        let result = match job.case {
            Case::Memcpy => measure(time, calls, || {
                let start = Instant::now();
                for _ in 0..calls {
                    dst.as_mut_slice()
                        .copy_from_slice(black_box(src.as_slice()));
                }
                black_box(dst.as_slice());
                Ok(start.elapsed())
            }),
            Case::VecDoubleCopy => match Plain::new(self.size.pages) {
                Ok(mut plain) => measure(time, calls, || {
                    let start = Instant::now();
                    for _ in 0..calls {
                        plain.copy(size as usize)?;
                    }
                    Ok(start.elapsed())
                }),
                Err(e) => Err(Problem::Failed(format!(
                    "cannot set the wasmtime instances up: {e:#}"
                ))),
            },
            Case::ProcessVmReadv => Child::new(src).and_then(|child| {
                measure(time, calls, || {
                    let start = Instant::now();
                    for _ in 0..calls {
                        child.read(dst.as_mut_slice())?;
                    }
                    Ok(start.elapsed())
                })
            }),
            Case::GuestMemoryCopy => pair.and_then(|pair| {
                measure(time, calls, || {
                    pair.guest(&pair.memory_copy, (second, p1, s, n))
                })
            }),
            Case::GuestReadOverwrite => pair.and_then(|pair| {
                let port = pair.port.0 as i32;
                measure(time, calls, || {
                    pair.guest(&pair.read_overwrite, (port, p1, s, second, n))
                })
            }),
            Case::GuestWrite => pair.and_then(|pair| {
                let port = pair.port.0 as i32;
                measure(time, calls, || {
                    pair.guest(&pair.write, (port, second, p1, s, n))
                })
            }),
            Case::GuestReadDeallocate => pair.and_then(|pair| {
                let port = pair.port.0 as i32;
                measure(time, calls, || pair.guest(&pair.read, (port, p1, s, n)))
            }),
            Case::GuestCopyInSelf => pair.and_then(|pair| {
                let own = pair.own.0 as i32;
                measure(time, calls, || {
                    pair.guest(&pair.copy, (own, p1, s, second, n))
                })
            }),
            Case::GuestCopyInPeer => pair.and_then(|pair| {
                let port = pair.port.0 as i32;
                measure(time, calls, || {
                    pair.guest(&pair.copy, (port, p1, s, second, n))
                })
            }),
            Case::HostReadOverwrite => pair.and_then(|pair| {
                measure(time, calls, || {
                    host_loop(calls, "vm_read_overwrite", || {
                        pair.peer.vm_read_overwrite(PAGE, dst.as_mut_slice())
                    })
                })
            }),
            Case::HostWrite => pair.and_then(|pair| {
                measure(time, calls, || {
                    host_loop(calls, "vm_write", || {
                        pair.peer.vm_write(PAGE, src.as_slice())
                    })
                })
            }),
            Case::HostRead => pair.and_then(|pair| {
                measure(time, calls, || {
                    host_loop(calls, "vm_read", || pair.peer.vm_read(PAGE, size))
                })
            }),
            Case::HostCopy => pair.and_then(|pair| {
                measure(time, calls, || {
                    host_loop(calls, "vm_copy", || {
                        pair.peer.vm_copy(PAGE, size, PAGE + size)
                    })
                })
            }),
            Case::HostAReadOverwriteB => pair.and_then(|pair| {
                let mach = pair.caller.mach();
                measure(time, calls, || {
                    host_loop(calls, "vm_read_overwrite", || {
                        mach.vm_read_overwrite(pair.port, PAGE, size, PAGE + size)
                    })
                })
            }),
            Case::HostAWriteB => pair.and_then(|pair| {
                let mach = pair.caller.mach();
                measure(time, calls, || {
                    host_loop(calls, "vm_write", || {
                        mach.vm_write(pair.port, PAGE + size, PAGE, size)
                    })
                })
            }),
        };
        result.into()
    }
}

/// Times `calls` host calls of `call` in a row; the first failing one fails the sample.
fn host_loop<T>(
    calls: u32,
    name: &str,
    mut call: impl FnMut() -> KernResult<T>,
) -> Result<Duration, Problem> {
    let start = Instant::now();
    for _ in 0..calls {
        black_box(call().map_err(|kr| Problem::Failed(format!("{name} returned {kr}")))?);
    }
    Ok(start.elapsed())
}

/// A caller task running the guest loops and a peer task, each with the size's pages of
/// data at page 1 and as many pages after them (the destinations of copies inside a task).
struct Pair {
    caller: Task,
    peer: Task,
    /// The caller's name for the peer.
    port: PortName,
    /// The caller's name for itself.
    own: PortName,
    read_overwrite: TaskFunc<(i32, i32, i32, i32, i32), i32>,
    write: TaskFunc<(i32, i32, i32, i32, i32), i32>,
    read: TaskFunc<(i32, i32, i32, i32), i32>,
    copy: TaskFunc<(i32, i32, i32, i32, i32), i32>,
    memory_copy: TaskFunc<(i32, i32, i32, i32), i32>,
}

impl Pair {
    fn new(runtime: &Runtime, pages: u32) -> anyhow::Result<Pair> {
        let caller = runtime.spawn_bytes(GUEST)?;
        let peer = runtime.spawn_bytes("(module (memory 1))")?;
        let size = pages * PAGE;
        let data: Vec<u8> = (0..size).map(|i| (i.wrapping_mul(7) + 3) as u8).collect();
        for task in [&caller, &peer] {
            task.vm_allocate(PAGE, 2 * size, false)
                .map_err(|kr| anyhow::anyhow!("vm_allocate of {pages} pages: {kr}"))?;
            // The data, and the destination pages faulted in.
            for address in [PAGE, PAGE + size] {
                task.vm_write(address, &data)
                    .map_err(|kr| anyhow::anyhow!("vm_write of {pages} pages: {kr}"))?;
            }
        }
        Ok(Pair {
            port: caller.insert_port(&peer),
            own: caller.self_port(),
            read_overwrite: caller.typed_func("read_overwrite")?,
            write: caller.typed_func("write")?,
            read: caller.typed_func("read")?,
            copy: caller.typed_func("copy")?,
            memory_copy: caller.typed_func("memory_copy")?,
            caller,
            peer,
        })
    }

    /// Runs one guest loop and returns its time; a trap or a failing call fails it.
    fn guest<P: WasmParams>(
        &self,
        func: &TaskFunc<P, i32>,
        params: P,
    ) -> Result<Duration, Problem> {
        let start = Instant::now();
        let kr = self
            .caller
            .call_func(func, params)
            .map_err(|e| Problem::Failed(format!("the guest trapped: {e:#}")))?;
        let elapsed = start.elapsed();
        match KernReturn::from_guest(kr) {
            Ok(Ok(())) => Ok(elapsed),
            Ok(Err(kr)) => Err(Problem::Failed(format!("a call returned {kr}"))),
            Err(code) => Err(Problem::Failed(format!("a call returned {code}"))),
        }
    }
}
