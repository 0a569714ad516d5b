//! The host API, a door onto the VM calls like the guest imports: [`Task`], a running task
//! as the host holds it, and [`Mach`], a task as the caller of the calls.

use std::sync::Arc;

use anyhow::{Context, Result, anyhow};
use wasmtime::component;
use wasmtime::{AsContextMut, Func, FuncType, Instance, Store, Val, WasmParams, WasmResults};

use crate::kern::{KernResult, KernReturn, VmProt};
use crate::kernel::{self, Caller, Dst, InAddr, NameArg, Src};
use crate::port::{Mortal, PortName, SELF_NAME};
use crate::task_state::{TaskData, TaskShared};
use crate::trace::trace_call;
use crate::vm_map::Region;

/// A running task: one wasmtime instance with its own address space and port namespace.
///
/// Dropping the handle terminates the task. `Task` is `Send` and `Sync`: different tasks run
/// at the same time on different threads; calls into one task from several threads take
/// turns.
pub struct Task {
    pub(crate) shared: Arc<TaskShared>,
}

impl Task {
    /// A number that identifies the task in this process.
    pub fn id(&self) -> u64 {
        self.shared.id
    }

    /// The name the host gave the task when it spawned it ([`TaskOptions::name`]), if any.
    ///
    /// [`TaskOptions::name`]: crate::TaskOptions::name
    pub fn name(&self) -> Option<&str> {
        self.shared.name.as_deref()
    }

    /// The task's name for itself (what its `mach_task_self` returns).
    pub fn self_port(&self) -> PortName {
        SELF_NAME
    }

    /// Grants this task a name for `other`: inserts one into this task's namespace (the same
    /// task always gets the same name) and returns it. This is how the host hands a task a
    /// capability.
    pub fn insert_port(&self, other: &Task) -> PortName {
        self.shared.ports().insert(&other.shared)
    }

    /// Whether the task's own loads, stores and bulk-memory instructions are bound by its
    /// protection table (see [`RuntimeOptions::guest_protection`](crate::RuntimeOptions)).
    pub fn guest_protection(&self) -> bool {
        self.shared.space.guest_protection()
    }

    /// The current size of the task's memory, in pages.
    pub fn memory_pages(&self) -> u32 {
        self.shared.space.pages()
    }

    /// The kernel mappings the task's memory is cut into now (one per run of pages whose
    /// protection differs from their neighbours', with guest protection on), and the most
    /// it may use ([`RuntimeOptions::map_budget`](crate::RuntimeOptions::map_budget)).
    pub fn map_usage(&self) -> (u32, u32) {
        self.shared.space.map_usage()
    }

    /// The task's regions, in address order (what `vm_region` walks through).
    pub fn regions(&self) -> Vec<Region> {
        self.shared.space.lock().map.regions().collect()
    }

    /// Runs `f` with the task's store and instance. Calls from other threads wait.
    fn with_store<R>(
        &self,
        f: impl FnOnce(&mut Store<TaskData>, Instance) -> Result<R>,
    ) -> Result<R> {
        let mut guard = self.shared.lock_store();
        let store = guard
            .as_mut()
            .filter(|_| self.shared.is_alive())
            .ok_or_else(|| anyhow!("the task has terminated"))?;
        let instance = store.data().instance.ok_or_else(|| {
            anyhow!(
                "the task is a component: call it with `call_component` or `call_component_dynamic`"
            )
        })?;
        f(store, instance)
    }

    /// Runs `f` with the task's store and component instance.
    fn with_component<R>(
        &self,
        f: impl FnOnce(&mut Store<TaskData>, component::Instance) -> Result<R>,
    ) -> Result<R> {
        let mut guard = self.shared.lock_store();
        let store = guard
            .as_mut()
            .filter(|_| self.shared.is_alive())
            .ok_or_else(|| anyhow!("the task has terminated"))?;
        let instance = store.data().component.ok_or_else(|| {
            anyhow!("the task is a core module: call it with `call` or `call_dynamic`")
        })?;
        f(store, instance)
    }

    /// Whether the task runs a component (whose functions are called with
    /// [`Task::call_component`]) rather than a core module.
    pub fn is_component(&self) -> bool {
        self.shared.component
    }

    /// Calls the component's exported function `name` with typed parameters and results
    /// (component-model types: `(u32, String)`, `(i64,)`, ...).
    ///
    /// A trap is returned as an error; the task lives on and can be called again.
    pub fn call_component<P, R>(&self, name: &str, params: P) -> Result<R>
    where
        P: component::ComponentNamedList + component::Lower + Send + Sync,
        R: component::ComponentNamedList + component::Lift + Send + Sync,
    {
        self.with_component(|store, instance| {
            let func = instance.get_typed_func::<P, R>(&mut *store, name)?;
            Ok(func.call(store, params)?)
        })
    }

    /// The type of the component's exported function `name`, if there is one.
    pub fn component_func_type(&self, name: &str) -> Option<component::types::ComponentFunc> {
        self.with_component(|store, instance| {
            let func = instance
                .get_func(&mut *store, name)
                .context("no such function")?;
            Ok(func.ty(&*store))
        })
        .ok()
    }

    /// Calls the component's exported function `name` with dynamically typed values.
    pub fn call_component_dynamic(
        &self,
        name: &str,
        params: &[component::Val],
    ) -> Result<Vec<component::Val>> {
        self.with_component(|store, instance| {
            let func = instance
                .get_func(&mut *store, name)
                .with_context(|| format!("the component exports no function `{name}`"))?;
            let mut results = vec![component::Val::Bool(false); func.ty(&*store).results().len()];
            func.call(&mut *store, params, &mut results)?;
            Ok(results)
        })
    }

    /// Calls the exported function `name` with typed parameters and results.
    ///
    /// A trap is returned as an error (downcast it to [`wasmtime::Trap`]); the task lives
    /// on and can be called again.
    pub fn call<P: WasmParams, R: WasmResults>(&self, name: &str, params: P) -> Result<R> {
        self.with_store(|store, instance| {
            let func = instance.get_typed_func::<P, R>(&mut *store, name)?;
            Ok(func.call(store, params)?)
        })
    }

    /// Looks the exported function `name` up and checks its type once, for calls with
    /// [`Task::call_func`] that skip both (what a loop of calls wants).
    ///
    /// ```
    /// # fn main() -> anyhow::Result<()> {
    /// let runtime = wasmach::Runtime::new()?;
    /// let task = runtime.spawn_bytes(
    ///     r#"(module (memory 1) (func (export "double") (param i32) (result i32)
    ///          (i32.add (local.get 0) (local.get 0))))"#,
    /// )?;
    /// let double = task.typed_func::<i32, i32>("double")?;
    /// for i in 0..3 {
    ///     assert_eq!(task.call_func(&double, i)?, 2 * i);
    /// }
    /// # Ok(())
    /// # }
    /// ```
    pub fn typed_func<P: WasmParams, R: WasmResults>(&self, name: &str) -> Result<TaskFunc<P, R>> {
        self.with_store(|store, instance| {
            Ok(TaskFunc {
                task: self.shared.id,
                func: instance.get_typed_func::<P, R>(&mut *store, name)?,
            })
        })
    }

    /// Calls a function [`Task::typed_func`] looked up in this task. A function of another
    /// task is refused with an error.
    pub fn call_func<P: WasmParams, R: WasmResults>(
        &self,
        func: &TaskFunc<P, R>,
        params: P,
    ) -> Result<R> {
        anyhow::ensure!(
            func.task == self.shared.id,
            "the function belongs to task {}, not to task {}",
            func.task,
            self.shared.id
        );
        self.with_store(|store, _| Ok(func.func.call(store, params)?))
    }

    /// The type of the exported function `name`, if there is one.
    pub fn func_type(&self, name: &str) -> Option<FuncType> {
        self.with_store(|store, instance| {
            let func = instance
                .get_func(&mut *store, name)
                .context("no such function")?;
            Ok(func.ty(&*store))
        })
        .ok()
    }

    /// Calls the exported function `name` with dynamically typed values.
    pub fn call_dynamic(&self, name: &str, params: &[Val]) -> Result<Vec<Val>> {
        self.with_store(|store, instance| {
            let func: Func = instance
                .get_func(&mut *store, name)
                .with_context(|| format!("the task exports no function `{name}`"))?;
            let mut results = vec![Val::I32(0); func.ty(&*store).results().len()];
            func.call(store.as_context_mut(), params, &mut results)?;
            Ok(results)
        })
    }

    /// Sets the fuel left to the task (the runtime must consume fuel).
    pub fn set_fuel(&self, fuel: u64) -> Result<()> {
        self.with_store(|store, _| Ok(store.set_fuel(fuel)?))
    }

    /// Sets the epoch deadline of the task's next calls: `ticks` epochs from now (the
    /// runtime must check epochs; see [`Runtime::increment_epoch`](crate::Runtime::increment_epoch)).
    pub fn set_epoch_deadline(&self, ticks: u64) -> Result<()> {
        self.with_store(|store, _| {
            store.set_epoch_deadline(ticks.min(u64::MAX / 2));
            Ok(())
        })
    }

    /// Terminates the task (as dropping it does).
    pub fn terminate(self) {}

    /// The task acting as the caller of the Mach calls, on targets named in its own port
    /// namespace: the cross-task form (`vm_read` of B into A, and so on).
    pub fn mach(&self) -> Mach<'_> {
        Mach::new(&self.shared, false)
    }

    // --- The host as the caller, acting on this task. ---

    /// Runs a host-door call and logs it (`RUST_LOG=wasmach=debug`).
    fn trace<T>(&self, call: &'static str, op: impl FnOnce() -> KernResult<T>) -> KernResult<T> {
        let result = op();
        trace_call(call, None, None, KernReturn::to_guest(&result));
        result
    }

    /// `vm_allocate` on this task: `size` bytes at `address` (rounded down) or, with
    /// `anywhere`, first-fit. Returns the start of the new region.
    pub fn vm_allocate(&self, address: u32, size: u32, anywhere: bool) -> KernResult<u32> {
        self.trace("vm_allocate", || {
            kernel::vm_allocate(
                &mut Caller::host(),
                &self.shared,
                InAddr::Value(address),
                size,
                anywhere,
            )
        })
    }

    /// `vm_deallocate` on this task.
    pub fn vm_deallocate(&self, address: u32, size: u32) -> KernResult<()> {
        self.trace("vm_deallocate", || {
            kernel::vm_deallocate(&self.shared, address, size)
        })
    }

    /// `vm_protect` on this task.
    pub fn vm_protect(
        &self,
        address: u32,
        size: u32,
        set_maximum: bool,
        protection: VmProt,
    ) -> KernResult<()> {
        self.trace("vm_protect", || {
            kernel::vm_protect(&self.shared, address, size, set_maximum, protection.bits())
        })
    }

    /// `vm_region` on this task: the region containing `address`, or else the first above.
    pub fn vm_region(&self, address: u32) -> KernResult<Region> {
        self.trace("vm_region", || {
            kernel::vm_region(&Caller::host(), &self.shared, InAddr::Value(address), None)
        })
    }

    /// `vm_read` from this task into a new host buffer.
    pub fn vm_read(&self, address: u32, size: u32) -> KernResult<Vec<u8>> {
        self.trace("vm_read", || {
            kernel::vm_read_bytes(None, &self.shared, address, size)
        })
    }

    /// `vm_read_overwrite` from this task into `buf` (`buf.len()` bytes, a multiple of the
    /// page). Returns the size copied.
    pub fn vm_read_overwrite(&self, address: u32, buf: &mut [u8]) -> KernResult<u32> {
        self.trace("vm_read_overwrite", || {
            let size = u32::try_from(buf.len()).map_err(|_| KernReturn::InvalidArgument)?;
            kernel::vm_read_overwrite(
                &Caller::host(),
                &self.shared,
                address,
                size,
                Dst::Host(buf),
                None,
            )
        })
    }

    /// `vm_write` of `data` (a multiple of the page) into this task at `address`.
    pub fn vm_write(&self, address: u32, data: &[u8]) -> KernResult<()> {
        self.trace("vm_write", || {
            let count = u32::try_from(data.len()).map_err(|_| KernReturn::InvalidArgument)?;
            kernel::vm_write(
                &Caller::host(),
                &self.shared,
                address,
                Src::Host(data),
                count,
            )
        })
    }

    /// `vm_copy` inside this task.
    pub fn vm_copy(&self, source: u32, count: u32, dest: u32) -> KernResult<()> {
        self.trace("vm_copy", || {
            kernel::vm_copy(&Caller::host(), &self.shared, source, count, dest)
        })
    }
}

impl Drop for Task {
    fn drop(&mut self) {
        self.shared.terminate();
    }
}

impl std::fmt::Debug for Task {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut f = f.debug_struct("Task");
        f.field("id", &self.shared.id);
        if let Some(name) = self.name() {
            f.field("name", &name);
        }
        f.finish_non_exhaustive()
    }
}

/// An exported function of a task, looked up and type-checked once by
/// [`Task::typed_func`], for [`Task::call_func`].
pub struct TaskFunc<P, R> {
    /// The task it belongs to.
    task: u64,
    func: wasmtime::TypedFunc<P, R>,
}

impl<P, R> std::fmt::Debug for TaskFunc<P, R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TaskFunc")
            .field("task", &self.task)
            .finish_non_exhaustive()
    }
}

/// A task as the caller of the Mach calls, exactly as its guest would make them, with
/// out-values returned instead of written to its memory. Targets are port names in the
/// task's own namespace. Made by [`Task::mach`].
pub struct Mach<'t> {
    task: &'t TaskShared,
    /// Whether the calls come from the task's running component guest (see
    /// [`kernel::Caller::component`]).
    component: bool,
}

impl<'t> Mach<'t> {
    /// The calls of `task`; `component` when they come from its running component guest.
    pub(crate) fn new(task: &'t TaskShared, component: bool) -> Mach<'t> {
        Mach { task, component }
    }

    fn target(&self, port: PortName) -> KernResult<Arc<TaskShared>> {
        self.task.target(port).ok_or(KernReturn::SendInvalidDest)
    }

    /// Runs a call as this task and logs it (`RUST_LOG=wasmach=debug`).
    fn trace<T>(
        &self,
        call: &'static str,
        port: Option<u32>,
        op: impl FnOnce() -> KernResult<T>,
    ) -> KernResult<T> {
        let result = op();
        let caller = Some(self.task.id);
        trace_call(call, caller, port, KernReturn::to_guest(&result));
        result
    }

    fn caller(&self) -> Caller<'_> {
        Caller {
            task: Some(self.task),
            store: None,
            component: self.component,
        }
    }

    /// `mach_task_self`.
    pub fn task_self(&self) -> PortName {
        SELF_NAME
    }

    /// `bootstrap_look_up`: inserts a name for the task registered as `name`.
    pub fn bootstrap_look_up(&self, name: &str) -> KernResult<PortName> {
        self.trace("bootstrap_look_up", None, || {
            kernel::bootstrap_look_up(self.task, NameArg::Host(name), None)
        })
    }

    /// `vm_allocate` in `target`. Returns the start of the new region.
    pub fn vm_allocate(
        &self,
        target: PortName,
        address: u32,
        size: u32,
        anywhere: bool,
    ) -> KernResult<u32> {
        self.trace("vm_allocate", Some(target.raw()), || {
            let t = self.target(target)?;
            kernel::vm_allocate(
                &mut self.caller(),
                &t,
                InAddr::Value(address),
                size,
                anywhere,
            )
        })
    }

    /// `vm_deallocate` in `target`.
    pub fn vm_deallocate(&self, target: PortName, address: u32, size: u32) -> KernResult<()> {
        self.trace("vm_deallocate", Some(target.raw()), || {
            kernel::vm_deallocate(&*self.target(target)?, address, size)
        })
    }

    /// `vm_protect` in `target`. `protection` is raw `vm_prot_t` bits, checked as a guest's.
    pub fn vm_protect(
        &self,
        target: PortName,
        address: u32,
        size: u32,
        set_maximum: bool,
        protection: u32,
    ) -> KernResult<()> {
        self.trace("vm_protect", Some(target.raw()), || {
            kernel::vm_protect(
                &*self.target(target)?,
                address,
                size,
                set_maximum,
                protection,
            )
        })
    }

    /// `vm_region` in `target`.
    pub fn vm_region(&self, target: PortName, address: u32) -> KernResult<Region> {
        self.trace("vm_region", Some(target.raw()), || {
            kernel::vm_region(
                &self.caller(),
                &*self.target(target)?,
                InAddr::Value(address),
                None,
            )
        })
    }

    /// `vm_read` of `target` into a new region of the calling task. Returns the region's
    /// address (in the caller) and size; free it with `vm_deallocate`.
    pub fn vm_read(&self, target: PortName, address: u32, size: u32) -> KernResult<(u32, u32)> {
        self.trace("vm_read", Some(target.raw()), || {
            let t = self.target(target)?;
            kernel::vm_read(&mut self.caller(), &t, address, size, None)
        })
    }

    /// `vm_read` of `target` into a new host buffer (a component's `vm-read`, whose bytes
    /// the canonical ABI then copies into the guest), bounded by the room in the calling
    /// task (see [`kernel::vm_read_bytes`]).
    pub(crate) fn vm_read_bytes(
        &self,
        target: PortName,
        address: u32,
        size: u32,
    ) -> KernResult<Vec<u8>> {
        self.trace("vm_read", Some(target.raw()), || {
            kernel::vm_read_bytes(Some(self.task), &*self.target(target)?, address, size)
        })
    }

    /// `vm_read_overwrite` of `target` into the calling task at `data`. Returns the size.
    pub fn vm_read_overwrite(
        &self,
        target: PortName,
        address: u32,
        size: u32,
        data: u32,
    ) -> KernResult<u32> {
        self.trace("vm_read_overwrite", Some(target.raw()), || {
            kernel::vm_read_overwrite(
                &self.caller(),
                &*self.target(target)?,
                address,
                size,
                Dst::Task(data),
                None,
            )
        })
    }

    /// `vm_write` of the calling task's `[data, data + count)` into `target` at `address`.
    pub fn vm_write(
        &self,
        target: PortName,
        address: u32,
        data: u32,
        count: u32,
    ) -> KernResult<()> {
        self.trace("vm_write", Some(target.raw()), || {
            kernel::vm_write(
                &self.caller(),
                &*self.target(target)?,
                address,
                Src::Task(data),
                count,
            )
        })
    }

    /// `vm_copy` inside `target`.
    pub fn vm_copy(&self, target: PortName, source: u32, count: u32, dest: u32) -> KernResult<()> {
        self.trace("vm_copy", Some(target.raw()), || {
            kernel::vm_copy(&self.caller(), &*self.target(target)?, source, count, dest)
        })
    }
}

// --- Test support: a raw picture of a task's address space. ---

/// Every page of a task's address space, taken raw by [`Task::debug_snapshot`]: its table
/// entry and, for committed pages, its bytes. Two snapshots compare equal exactly when no
/// page's state, protections or bytes differ, so a test can check that a failed call
/// changed nothing, including pages that no host door may read.
#[doc(hidden)]
#[derive(Clone, PartialEq, Eq)]
pub struct DebugSnapshot {
    /// The committed size, in pages (the wasm memory size).
    pub pages: u32,
    /// The address space's size, in pages.
    pub limit: u32,
    /// Whether the task has terminated.
    pub dead: bool,
    /// The table entry of every page `0 .. limit` (`None`: unallocated).
    pub entries: Vec<Option<crate::vm_map::PageState>>,
    /// The bytes of every committed page `0 .. pages`, or `None` for a page the kernel
    /// refuses to read even through `/proc/self/mem` (a guard region, where the runtime
    /// installs them).
    pub bytes: Vec<Option<Vec<u8>>>,
}

impl std::fmt::Debug for DebugSnapshot {
    /// A summary small enough for an assertion message: the runs of equal entries and an
    /// FNV-1a hash of each committed page.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut runs: Vec<(u32, u32, Option<crate::vm_map::PageState>)> = Vec::new();
        for (page, entry) in (0u32..).zip(&self.entries) {
            match runs.last_mut() {
                Some((_, end, last)) if last == entry => *end = page + 1,
                _ => runs.push((page, page + 1, *entry)),
            }
        }
        let hashes: Vec<Option<u64>> = self
            .bytes
            .iter()
            .map(|page| {
                page.as_ref().map(|bytes| {
                    bytes.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
                        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
                    })
                })
            })
            .collect();
        f.debug_struct("DebugSnapshot")
            .field("pages", &self.pages)
            .field("limit", &self.limit)
            .field("dead", &self.dead)
            .field("entry_runs", &runs)
            .field("page_hashes", &hashes)
            .finish()
    }
}

#[doc(hidden)]
impl Task {
    /// For tests: a [`DebugSnapshot`] of the whole address space, every table entry and the
    /// bytes of every committed page, read raw whatever the table and the mapping allow,
    /// under the map lock (so no call changes the task meanwhile; the task's own running
    /// code still could).
    ///
    /// The bytes are read with `pread` of `/proc/self/mem`, which the kernel serves
    /// whatever the pages' protections (an unallocated or no-access page, `PROT_NONE` in
    /// the mapping, included) and which never faults: a page it cannot read is `None`.
    /// Fails only if `/proc/self/mem` cannot be opened.
    pub fn debug_snapshot(&self) -> std::io::Result<DebugSnapshot> {
        use std::os::unix::fs::FileExt;

        let mem = std::fs::File::open("/proc/self/mem")?;
        let space = &self.shared.space;
        let state = space.lock();
        let limit = state.map.limit();
        let pages = space.pages();
        let entries = (0..limit).map(|page| state.map.entry(page)).collect();
        // Addresses only: `base` is the start of the task's reservation, and every
        // committed page lies inside it; nothing is dereferenced here.
        let base = space.base() as u64;
        let bytes = (0..u64::from(pages))
            .map(|page| {
                let mut buf = vec![0u8; crate::VM_PAGE_SIZE as usize];
                let at = base + (page << crate::kern::PAGE_SHIFT);
                mem.read_exact_at(&mut buf, at).ok().map(|()| buf)
            })
            .collect();
        Ok(DebugSnapshot {
            pages,
            limit,
            dead: !self.shared.is_alive(),
            entries,
            bytes,
        })
    }

    /// For tests: what backs the page holding `address`: `"own"` (the task's own memory),
    /// `"shared"` (a snapshot shared copy-on-write by a virtual copy, unwritten since;
    /// `"written"` once the task wrote some of it) or `"anonymous"`.
    pub fn debug_backing(&self, address: u32) -> &'static str {
        self.shared
            .space
            .backing_name(address >> crate::kern::PAGE_SHIFT)
    }

    /// For tests: the host address of the task's byte 0 (tells a reused reservation).
    pub fn debug_base(&self) -> usize {
        self.shared.space.base() as usize
    }

    /// For tests: the bytes of memory the task's memory file holds (its own pages, and
    /// the snapshots of them others still share), or `None` for anonymous task memory.
    pub fn debug_file_bytes(&self) -> Option<u64> {
        self.shared.space.file_bytes()
    }
}
