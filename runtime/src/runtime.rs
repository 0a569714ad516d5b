//! The runtime: the engine every task shares, the linkers (the `"mach"` and bulk imports
//! for core modules, the `wasmach:mach` interfaces for components), spawning, and the
//! bootstrap registry through which tasks find each other.

use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};

use anyhow::{Context, Result, bail};
use wasmtime::{Config, Engine, Linker, Store};

use crate::bootstrap::Bootstrap;
use crate::creator::{SpaceCreator, with_pending_space};
use crate::lock::{Rank, RankedMutex};
use crate::mapping::GUARD_BYTES;
use crate::module::{Image, ModuleInner, Prepared, TaskModule, next_program, prepare};
use crate::names::MEMORY_EXPORT;
use crate::pool::SpacePool;
use crate::port::Mortal;
use crate::segments::TaskSegments;
use crate::space::{AddressSpace, CopyMode, CopyPolicy, PAGE, SpaceOptions};
use crate::task::Task;
use crate::task_state::{TargetCache, TaskData, TaskShared};

/// A live task as [`Runtime::tasks`] lists it.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct TaskInfo {
    /// Its id ([`Task::id`]).
    pub id: u64,
    /// Its name ([`TaskOptions::name`]), if the host gave one.
    pub name: Option<String>,
    /// Its memory's current size, in pages.
    pub memory_pages: u32,
}

/// Engine-wide settings, fixed when the runtime is created.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct RuntimeOptions {
    /// Bind the tasks' own loads, stores and bulk-memory instructions by their protection
    /// table (on by default): a core-module task's mapping follows its table, so an access
    /// to an unallocated or unreadable page, or a store to a page without `WRITE`, traps
    /// (`Trap::MemoryOutOfBounds`, with a [`GuestFault`](crate::GuestFault) naming the
    /// address for a bulk instruction). Off, guests are checked by WebAssembly's bounds
    /// only (docs/spec.md §5). Component tasks are never bound (wasmtime's canonical ABI reads and
    /// writes their memory from host code, which must not fault).
    pub guest_protection: bool,
    /// Count fuel, so that [`TaskOptions::fuel`] can stop a looping guest.
    pub consume_fuel: bool,
    /// Check epoch deadlines, so that [`TaskOptions::epoch_deadline`] can stop a looping
    /// guest when the host calls [`Runtime::increment_epoch`].
    pub epoch_interruption: bool,
    /// How many tasks are expected to live at once (default 64): the default
    /// [`map_budget`](RuntimeOptions::map_budget) shares half of the process's kernel
    /// mappings (`vm.max_map_count`) among them.
    pub expected_tasks: u32,
    /// The most kernel mappings (`/proc/self/maps` entries) one task's memory may be cut
    /// into, with guest protection on (docs/spec.md §7). Every run of pages with a protection other
    /// than its neighbours' costs one: a read-only or no-access run made by `vm_protect`,
    /// or a hole of unallocated pages. A change that would go past it makes its range's
    /// unallocated pages guard regions instead, which cost no mapping, where the kernel has
    /// them (Linux 6.13) and the range is at most 64 MiB; if that is not enough, it gets
    /// `KERN_RESOURCE_SHORTAGE` and changes nothing. A `memory.grow` past it gets -1.
    /// `None` (the default): `vm.max_map_count / 2 / expected_tasks`, at least 16 (511 with
    /// Linux's default 65 530 and 64 tasks).
    /// [`TaskOptions::map_budget`] sets it per task.
    pub map_budget: Option<u32>,
    /// How copies between task memories move bytes: by sharing pages copy-on-write
    /// (virtual copies, as Mach's `vm_read` and `vm_copy` do) or by copying them. The
    /// default, [`CopyMode::Auto`], shares the pages of a `vm_read` or `vm_copy` of at
    /// least [`virtual_copy_pages`](RuntimeOptions::virtual_copy_pages). Where the kernel
    /// lacks what virtual copies need (`memfd_create`, `PAGEMAP_SCAN` of Linux 6.7), every
    /// copy is physical ([`Runtime::virtual_copies`] tells). Observable values are the same
    /// either way (docs/spec.md §8).
    pub copy: CopyMode,
    /// How many reservations of dropped tasks are kept for new ones (default 16; 0: none).
    /// A spawn that finds one skips creating a 4 GiB reservation and its memory file (and the
    /// drop skips tearing them down); a reservation is kept only reset (its memory zero, its
    /// pages inaccessible, no snapshot of it held by another task), so a new task sees
    /// nothing of the old one. A dropped task whose initial pages were still all it had,
    /// read-write, and at most 32 (2 MiB; 4 without a memory file) leaves them mapped and
    /// zeroed in place: a task of the same size then spawns and drops without a system call
    /// for its memory. A spawn takes the reservation its module's tasks used last if one is
    /// kept, else one of its initial size. Each kept reservation costs a file descriptor,
    /// address space, and the memory of the pages its module's tasks wrote in that prefix
    /// (at most 2 MiB).
    pub spawn_pool: usize,
    /// The fewest pages a `vm_read` or `vm_copy` shares in [`CopyMode::Auto`] (default
    /// 256, 16 MiB: from there the call and a read of every byte of the copy cost what a
    /// physical copy does, while the call alone costs under 1 % of it; see BENCHMARKS.md,
    /// "Virtual copies").
    pub virtual_copy_pages: u32,
}

/// Per-task settings.
#[derive(Clone, Debug, Default)]
#[non_exhaustive]
pub struct TaskOptions {
    /// The task's memory quota in bytes (rounded down to pages): `vm_allocate` and
    /// `vm_read` past it give `KERN_NO_SPACE`, `memory.grow` gives -1. `None`: no quota.
    pub max_memory: Option<u64>,
    /// Fuel for the task's guest code (needs [`RuntimeOptions::consume_fuel`]).
    pub fuel: Option<u64>,
    /// Epoch ticks the task may run for (needs [`RuntimeOptions::epoch_interruption`]).
    pub epoch_deadline: Option<u64>,
    /// The task's budget of kernel mappings; `None`: the runtime's
    /// ([`RuntimeOptions::map_budget`]).
    pub map_budget: Option<u32>,
    /// A name for the task, for the host's own use: [`Task::name`] and `Debug` show it.
    /// (It does not register the task: see [`Runtime::register`].)
    pub name: Option<String>,
}

impl TaskOptions {
    /// Sets [`TaskOptions::max_memory`].
    pub fn max_memory(mut self, bytes: u64) -> Self {
        self.max_memory = Some(bytes);
        self
    }

    /// Sets [`TaskOptions::fuel`].
    pub fn fuel(mut self, fuel: u64) -> Self {
        self.fuel = Some(fuel);
        self
    }

    /// Sets [`TaskOptions::epoch_deadline`].
    pub fn epoch_deadline(mut self, ticks: u64) -> Self {
        self.epoch_deadline = Some(ticks);
        self
    }

    /// Sets [`TaskOptions::map_budget`].
    pub fn map_budget(mut self, mappings: u32) -> Self {
        self.map_budget = Some(mappings);
        self
    }

    /// Sets [`TaskOptions::name`].
    pub fn name(mut self, name: impl Into<String>) -> Self {
        self.name = Some(name.into());
        self
    }
}

impl Default for RuntimeOptions {
    fn default() -> RuntimeOptions {
        RuntimeOptions {
            guest_protection: true,
            consume_fuel: false,
            epoch_interruption: false,
            expected_tasks: 64,
            map_budget: None,
            copy: CopyMode::Auto,
            spawn_pool: 16,
            virtual_copy_pages: 256,
        }
    }
}

impl RuntimeOptions {
    /// Sets [`RuntimeOptions::guest_protection`].
    pub fn guest_protection(mut self, on: bool) -> Self {
        self.guest_protection = on;
        self
    }

    /// Sets [`RuntimeOptions::consume_fuel`].
    pub fn consume_fuel(mut self, on: bool) -> Self {
        self.consume_fuel = on;
        self
    }

    /// Sets [`RuntimeOptions::epoch_interruption`].
    pub fn epoch_interruption(mut self, on: bool) -> Self {
        self.epoch_interruption = on;
        self
    }

    /// Sets [`RuntimeOptions::expected_tasks`].
    pub fn expected_tasks(mut self, tasks: u32) -> Self {
        self.expected_tasks = tasks;
        self
    }

    /// Sets [`RuntimeOptions::map_budget`].
    pub fn map_budget(mut self, mappings: u32) -> Self {
        self.map_budget = Some(mappings);
        self
    }

    /// Sets [`RuntimeOptions::copy`].
    pub fn copy(mut self, mode: CopyMode) -> Self {
        self.copy = mode;
        self
    }

    /// Sets [`RuntimeOptions::spawn_pool`].
    pub fn spawn_pool(mut self, reservations: usize) -> Self {
        self.spawn_pool = reservations;
        self
    }

    /// Sets [`RuntimeOptions::virtual_copy_pages`].
    pub fn virtual_copy_pages(mut self, pages: u32) -> Self {
        self.virtual_copy_pages = pages;
        self
    }

    /// The per-task mapping budget these options give: [`RuntimeOptions::map_budget`], or
    /// the share of `vm.max_map_count` it defaults to.
    pub fn effective_map_budget(&self) -> u32 {
        self.map_budget.unwrap_or_else(|| {
            let max = std::fs::read_to_string("/proc/sys/vm/max_map_count")
                .ok()
                .and_then(|s| s.trim().parse::<u32>().ok())
                .unwrap_or(DEFAULT_MAX_MAP_COUNT);
            (max / 2 / self.expected_tasks.max(1)).max(MIN_MAP_BUDGET)
        })
    }
}

/// Linux's default `vm.max_map_count`, used where `/proc` does not tell.
const DEFAULT_MAX_MAP_COUNT: u32 = 65_530;

/// The smallest default mapping budget: room for a few protected runs in any task.
const MIN_MAP_BUDGET: u32 = 16;

pub(crate) struct RuntimeShared {
    engine: Engine,
    linker: Linker<TaskData>,
    component_linker: wasmtime::component::Linker<TaskData>,
    /// The bootstrap registry, shared with every task (for `bootstrap_look_up`).
    bootstrap: Arc<Bootstrap<TaskShared>>,
    /// Every task spawned, for [`Runtime::tasks`] (weak: the list keeps no task alive).
    tasks: RankedMutex<Vec<Weak<TaskShared>>>,
    /// [`RuntimeOptions::effective_map_budget`], computed once.
    map_budget: u32,
    /// Reset reservations of dropped tasks ([`RuntimeOptions::spawn_pool`]).
    pool: Arc<SpacePool>,
    next_id: AtomicU64,
    options: RuntimeOptions,
}

/// The wasmach runtime: compiles modules, spawns tasks and keeps the bootstrap registry.
/// Cheap to clone; clones share everything.
#[derive(Clone)]
pub struct Runtime {
    shared: Arc<RuntimeShared>,
}

impl Runtime {
    /// A runtime with default options.
    pub fn new() -> Result<Runtime> {
        Runtime::with_options(RuntimeOptions::default())
    }

    /// A runtime with `options`.
    pub fn with_options(options: RuntimeOptions) -> Result<Runtime> {
        if options.copy != CopyMode::Physical && !crate::backing::files_supported() {
            tracing::warn!(
                "virtual copies are unavailable here (they need memfd_create and Linux 6.7's \
                 PAGEMAP_SCAN): every copy between tasks is physical"
            );
        }
        let mut config = Config::new();
        config
            .with_host_memory(Arc::new(SpaceCreator))
            .memory_reservation(1 << 32)
            .memory_guard_size(GUARD_BYTES)
            .memory_reservation_for_growth(0)
            .memory_may_move(false)
            .memory_init_cow(false)
            .wasm_memory64(false)
            .consume_fuel(options.consume_fuel)
            .epoch_interruption(options.epoch_interruption);
        let engine = Engine::new(&config)?;
        let mut linker = Linker::new(&engine);
        crate::abi::add_to_linker(&mut linker)?;
        crate::bulk::add_to_linker(&mut linker)?;
        let mut component_linker = wasmtime::component::Linker::new(&engine);
        crate::component::add_to_linker(&mut component_linker)?;
        Ok(Runtime {
            shared: Arc::new(RuntimeShared {
                engine,
                linker,
                component_linker,
                bootstrap: Arc::new(Bootstrap::new()),
                tasks: RankedMutex::new(Rank::Bootstrap, Vec::new()),
                map_budget: options.effective_map_budget(),
                pool: Arc::new(SpacePool::new(options.spawn_pool)),
                next_id: AtomicU64::new(1),
                options,
            }),
        })
    }

    /// The wasmtime engine every task of this runtime runs on.
    pub fn engine(&self) -> &Engine {
        &self.shared.engine
    }

    /// For tests: how many reservations of dropped tasks the pool keeps
    /// ([`RuntimeOptions::spawn_pool`]).
    #[doc(hidden)]
    pub fn debug_pooled(&self) -> usize {
        self.shared.pool.len()
    }

    /// Whether copies between task memories can be virtual here: the options ask for them
    /// ([`RuntimeOptions::copy`] is not [`CopyMode::Physical`]) and the kernel has what
    /// they need (`memfd_create`, and `PAGEMAP_SCAN` of Linux 6.7). Otherwise every copy is
    /// physical.
    pub fn virtual_copies(&self) -> bool {
        self.shared.options.copy != CopyMode::Physical && crate::backing::files_supported()
    }

    /// Advances the epoch: tasks past their [`TaskOptions::epoch_deadline`] trap.
    pub fn increment_epoch(&self) {
        self.shared.engine.increment_epoch();
    }

    /// Checks and compiles a core module or a component (wasm binary or WAT text) into a
    /// task image.
    ///
    /// Refused, with a [`ModuleError`](crate::ModuleError) naming the problem: a module
    /// without exactly one 32-bit, unshared memory; a `"mach"` import of an unknown name or
    /// the wrong type; any other import than those and the memory. A component must
    /// define exactly one such memory in its core modules and import only the
    /// `wasmach:mach` interfaces of `wit/mach.wit`.
    pub fn compile(&self, bytes: impl AsRef<[u8]>) -> Result<TaskModule> {
        let invalid = |e: wasmtime::Error| crate::ModuleError::Invalid(format!("{e:#}"));
        let checked_bulk = self.shared.options.guest_protection;
        let (image, memory, segments) = match prepare(bytes.as_ref(), checked_bulk)? {
            Prepared::Core(wasm, memory, segments) => {
                let module = wasmtime::Module::new(&self.shared.engine, &wasm).map_err(invalid)?;
                let pre = self.shared.linker.instantiate_pre(&module)?;
                (Image::Core(pre), memory, segments.map(Arc::new))
            }
            Prepared::Component(wasm, memory) => {
                let component = wasmtime::component::Component::new(&self.shared.engine, &wasm)
                    .map_err(invalid)?;
                let pre = self
                    .shared
                    .component_linker
                    .instantiate_pre(&component)
                    .map_err(invalid)?;
                (Image::Component(pre), memory, None)
            }
        };
        Ok(TaskModule {
            inner: Arc::new(ModuleInner {
                program: next_program(),
                image,
                memory,
                segments,
            }),
        })
    }

    /// Reads and compiles the module at `path` (`.wasm` or `.wat`, told apart by content).
    pub fn compile_file(&self, path: impl AsRef<Path>) -> Result<TaskModule> {
        let path = path.as_ref();
        let bytes =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        self.compile(bytes)
            .with_context(|| format!("{} is refused", path.display()))
    }

    /// Spawns a task from a compiled module, with default options.
    pub fn spawn(&self, module: &TaskModule) -> Result<Task> {
        self.spawn_with(module, &TaskOptions::default())
    }

    /// Compiles `bytes` (wasm or WAT) and spawns a task from it.
    pub fn spawn_bytes(&self, bytes: impl AsRef<[u8]>) -> Result<Task> {
        self.spawn(&self.compile(bytes)?)
    }

    /// Compiles the module at `path` and spawns a task from it.
    pub fn spawn_file(&self, path: impl AsRef<Path>) -> Result<Task> {
        self.spawn(&self.compile_file(path)?)
    }

    /// Spawns a task: a fresh store, an address space owned by the runtime with the
    /// module's initial pages allocated, and an instance (whose start function, if any,
    /// runs now).
    pub fn spawn_with(&self, module: &TaskModule, options: &TaskOptions) -> Result<Task> {
        let plan = &module.inner.memory;
        let quota = options
            .max_memory
            .map(|bytes| (bytes / PAGE).min(u64::from(plan.limit)) as u32);
        if let Some(q) = quota
            && q < plan.initial
        {
            bail!(
                "the module's initial memory ({} pages) exceeds the task's memory limit ({q} pages)",
                plan.initial
            );
        }
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        let space_options = SpaceOptions {
            quota_pages: quota,
            guest_protection: self.binds_guests(module),
            map_budget: options.map_budget.unwrap_or(self.shared.map_budget),
            copy: CopyPolicy {
                mode: self.shared.options.copy,
                threshold_pages: self.shared.options.virtual_copy_pages,
            },
        };
        let space = Arc::new(
            AddressSpace::new(
                id,
                module.inner.program,
                plan.initial,
                plan.limit,
                space_options,
                Some(self.shared.pool.clone()),
            )
            .context("cannot reserve the task's address space")?,
        );
        let component = matches!(module.inner.image, Image::Component(_));
        let shared = TaskShared::new(
            id,
            space.clone(),
            self.shared.bootstrap.clone(),
            component,
            options.name.as_deref().map(Box::from),
        );
        let mut store = Store::new(
            &self.shared.engine,
            TaskData {
                task: shared.clone(),
                memory: None,
                instance: None,
                component: None,
                segments: module.inner.segments.clone().map(TaskSegments::new),
                targets: TargetCache::default(),
            },
        );
        if let Some(fuel) = options.fuel {
            store.set_fuel(fuel)?;
        } else if self.shared.options.consume_fuel {
            store.set_fuel(u64::MAX)?;
        }
        if let Some(ticks) = options.epoch_deadline {
            store.set_epoch_deadline(ticks.min(u64::MAX / 2));
        } else if self.shared.options.epoch_interruption {
            // The deadline is relative to the current epoch: leave room so that wasmtime's
            // `current + ticks` cannot overflow however far the epoch has advanced.
            store.set_epoch_deadline(u64::MAX / 2);
        }
        let instantiated = with_pending_space(space, || match &module.inner.image {
            Image::Core(pre) => pre.instantiate(&mut store).map(Instantiated::Core),
            Image::Component(pre) => pre.instantiate(&mut store).map(Instantiated::Component),
        });
        match instantiated {
            Ok(Instantiated::Core(instance)) => {
                let memory = instance
                    .get_memory(&mut store, MEMORY_EXPORT)
                    .context("the task's memory is not exported")?;
                store.data_mut().memory = Some(memory);
                store.data_mut().instance = Some(instance);
            }
            Ok(Instantiated::Component(instance)) => store.data_mut().component = Some(instance),
            Err(e) => {
                shared.terminate();
                return Err(anyhow::Error::from(e).context("the task's instantiation failed"));
            }
        }
        *shared.lock_store() = Some(store);
        let mut tasks = self.shared.tasks.lock();
        // Entries of dead tasks go when the list is full (before it would grow): a spawn
        // costs amortized O(1) however many tasks live.
        if tasks.len() == tasks.capacity() {
            tasks.retain(|t| t.upgrade().is_some_and(|t| t.is_alive()));
        }
        tasks.push(Arc::downgrade(&shared));
        drop(tasks);
        Ok(Task { shared })
    }

    /// Whether tasks of `module` have their own accesses bound by the table.
    fn binds_guests(&self, module: &TaskModule) -> bool {
        self.shared.options.guest_protection && module.module().is_some()
    }

    /// Registers `task` with the bootstrap under `name` (replacing any earlier holder of the
    /// name), so that guests can find it with `bootstrap_look_up`.
    pub fn register(&self, name: &str, task: &Task) {
        self.shared.bootstrap.register(name, &task.shared);
    }

    /// The id ([`Task::id`]) of the live task registered as `name`: what a guest's
    /// `bootstrap_look_up(name)` would find.
    pub fn look_up(&self, name: &str) -> Option<u64> {
        self.shared.bootstrap.look_up(name).map(|t| t.id)
    }

    /// Every live registration: each name and the id of its task, by name.
    ///
    /// ```
    /// # fn main() -> anyhow::Result<()> {
    /// let runtime = wasmach::Runtime::new()?;
    /// let task = runtime.spawn_bytes("(module (memory 1))")?;
    /// runtime.register("mailbox", &task);
    /// assert_eq!(runtime.look_up("mailbox"), Some(task.id()));
    /// assert_eq!(runtime.registrations(), vec![("mailbox".to_owned(), task.id())]);
    /// drop(task); // a terminated task's names go
    /// assert_eq!(runtime.look_up("mailbox"), None);
    /// # Ok(())
    /// # }
    /// ```
    pub fn registrations(&self) -> Vec<(String, u64)> {
        self.shared
            .bootstrap
            .entries()
            .into_iter()
            .map(|(name, t)| (name, t.id))
            .collect()
    }

    /// Every live task of the runtime, in the order they were spawned.
    ///
    /// ```
    /// # fn main() -> anyhow::Result<()> {
    /// use wasmach::{Runtime, TaskOptions};
    /// let runtime = Runtime::new()?;
    /// let module = runtime.compile("(module (memory 2))")?;
    /// let a = runtime.spawn_with(&module, &TaskOptions::default().name("a"))?;
    /// let b = runtime.spawn(&module)?;
    /// let tasks = runtime.tasks();
    /// assert_eq!(tasks.len(), 2);
    /// assert_eq!((tasks[0].id, tasks[0].name.as_deref(), tasks[0].memory_pages), (a.id(), Some("a"), 2));
    /// assert_eq!((tasks[1].id, tasks[1].name.as_deref()), (b.id(), None));
    /// drop(a);
    /// assert_eq!(runtime.tasks().len(), 1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn tasks(&self) -> Vec<TaskInfo> {
        let tasks: Vec<Arc<TaskShared>> = self
            .shared
            .tasks
            .lock()
            .iter()
            .filter_map(Weak::upgrade)
            .collect();
        tasks
            .iter()
            .filter(|t| t.is_alive())
            .map(|t| TaskInfo {
                id: t.id,
                name: t.name.as_deref().map(str::to_owned),
                memory_pages: t.space.pages(),
            })
            .collect()
    }

    /// Removes the registration `name`. Names already handed out stay valid.
    pub fn unregister(&self, name: &str) {
        self.shared.bootstrap.unregister(name);
    }
}

/// A new instance of either kind.
enum Instantiated {
    Core(wasmtime::Instance),
    Component(wasmtime::component::Instance),
}

impl std::fmt::Debug for Runtime {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Runtime")
            .field("options", &self.shared.options)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The list behind `Runtime::tasks` keeps at most about twice the tasks alive at once,
    /// however many were spawned and dropped.
    #[test]
    fn the_task_list_stays_bounded_by_the_live_tasks() {
        let runtime = Runtime::new().unwrap();
        let module = runtime.compile("(module (memory 1))").unwrap();
        let alive: Vec<_> = (0..10).map(|_| runtime.spawn(&module).unwrap()).collect();
        for _ in 0..1000 {
            drop(runtime.spawn(&module).unwrap());
        }
        let listed = runtime.shared.tasks.lock().len();
        assert!(listed <= 2 * (alive.len() + 1) + 4, "{listed} entries");
        assert_eq!(runtime.tasks().len(), alive.len());
    }
}
