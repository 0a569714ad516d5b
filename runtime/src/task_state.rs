//! Task state: what a task's wasmtime store holds ([`TaskData`]) and what other tasks, the
//! kernel and the doors reach of a task ([`TaskShared`]): its address space, its port
//! namespace, its store, and the bootstrap registry it looks names up in.

use std::sync::Arc;

use wasmtime::{Instance, Memory, Store};

use crate::bootstrap::Bootstrap;
use crate::lock::{Rank, RankedGuard, RankedMutex};
use crate::port::{Mortal, PortName, PortSpace};
use crate::segments::TaskSegments;
use crate::space::AddressSpace;

/// The data of a task's wasmtime store.
pub(crate) struct TaskData {
    /// The task itself. (The store lives inside the task, so this is a cycle, broken when
    /// the task terminates and its store is dropped.)
    pub(crate) task: Arc<TaskShared>,
    /// The task's memory, as wasmtime knows it (needed to grow it).
    pub(crate) memory: Option<Memory>,
    /// The instance of a core module, once instantiated.
    pub(crate) instance: Option<Instance>,
    /// The instance of a component, once instantiated.
    pub(crate) component: Option<wasmtime::component::Instance>,
    /// The data segments `memory.init` copies from, when the module's bulk-memory
    /// instructions were rewritten into checked calls (see [`crate::bulk`]).
    pub(crate) segments: Option<TaskSegments>,
    /// The guest's recently used port names, resolved (see [`TargetCache`]).
    pub(crate) targets: TargetCache,
}

/// The last few names a guest called through, with the tasks they name: a name never
/// changes meaning (a namespace only grows), so a hit skips the namespace's lock and the
/// reference count of a lookup. Only the guest's own thread, inside its store, touches it.
/// An entry keeps its task's state (not its memory: a terminated task's is released) until
/// it is replaced, which happens first to entries whose task has terminated.
#[derive(Default)]
pub(crate) struct TargetCache {
    entries: [Option<(PortName, Arc<TaskShared>)>; TargetCache::SIZE],
    /// The entry the next miss replaces, unless one names a terminated task.
    next: usize,
}

impl TargetCache {
    const SIZE: usize = 4;

    /// The live task `name` names in `owner`'s namespace, looked up there on a miss. The
    /// task is kept by the cache, which the caller must not change while it uses it.
    pub(crate) fn resolve(
        &mut self,
        owner: &TaskShared,
        name: PortName,
    ) -> Option<*const TaskShared> {
        if let Some(slot) = self
            .entries
            .iter()
            .position(|e| e.as_ref().is_some_and(|(n, _)| *n == name))
        {
            let (_, task) = self.entries[slot].as_ref()?;
            if task.is_alive() {
                return Some(Arc::as_ptr(task));
            }
            self.entries[slot] = None;
            return None;
        }
        let task = owner.target(name)?;
        let slot = self
            .entries
            .iter()
            .position(|e| e.as_ref().is_none_or(|(_, t)| !t.is_alive()))
            .unwrap_or_else(|| {
                self.next = (self.next + 1) % Self::SIZE;
                self.next
            });
        let ptr = Arc::as_ptr(&task);
        self.entries[slot] = Some((name, task));
        Some(ptr)
    }
}

/// What other tasks and the kernel reach of a task.
pub(crate) struct TaskShared {
    /// Unique in the process; orders lock acquisition.
    pub(crate) id: u64,
    pub(crate) space: Arc<AddressSpace>,
    /// The port namespace (rank [`Rank::Ports`]).
    ports: RankedMutex<PortSpace<TaskShared>>,
    /// The store, while the task lives (rank [`Rank::Store`]). Locked by whoever runs the
    /// task, for the whole call; the kernel only ever `try_lock`s it (to grow an idle
    /// task).
    pub(crate) store: RankedMutex<Option<Store<TaskData>>>,
    /// The runtime's bootstrap registry (for `bootstrap_look_up`).
    pub(crate) bootstrap: Arc<Bootstrap<TaskShared>>,
    /// Whether the task runs a component rather than a core module.
    pub(crate) component: bool,
    /// The host's name for the task, if it gave one ([`crate::TaskOptions::name`]).
    pub(crate) name: Option<Box<str>>,
}

impl TaskShared {
    pub(crate) fn new(
        id: u64,
        space: Arc<AddressSpace>,
        bootstrap: Arc<Bootstrap<TaskShared>>,
        component: bool,
        name: Option<Box<str>>,
    ) -> Arc<TaskShared> {
        Arc::new_cyclic(|me| TaskShared {
            id,
            space,
            ports: RankedMutex::new(Rank::Ports, PortSpace::new(me.clone())),
            store: RankedMutex::new(Rank::Store, None),
            bootstrap,
            component,
            name,
        })
    }

    /// The task's port namespace. Hold the guard only for a lookup or an insertion (rank
    /// [`Rank::Ports`] is the highest: nothing may be locked under it).
    pub(crate) fn ports(&self) -> RankedGuard<'_, PortSpace<TaskShared>> {
        self.ports.lock()
    }

    /// The port `name` names in this task's namespace, if it names a live task. The
    /// namespace is released before this returns: the VM call runs without it.
    pub(crate) fn target(&self, name: PortName) -> Option<Arc<TaskShared>> {
        self.ports().lookup(name)
    }

    /// Locks the task's store (rank [`Rank::Store`]).
    pub(crate) fn lock_store(&self) -> RankedGuard<'_, Option<Store<TaskData>>> {
        self.store.lock()
    }

    /// Terminates the task: every name for it dies, its memory is released, its store is
    /// dropped.
    pub(crate) fn terminate(&self) {
        self.space.terminate();
        self.bootstrap.forget(self);
        let store = self.lock_store().take();
        drop(store);
    }
}

impl Mortal for TaskShared {
    /// Whether the task has not terminated.
    fn is_alive(&self) -> bool {
        !self.space.is_dead()
    }
}
