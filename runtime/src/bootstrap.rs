//! The bootstrap registry: the names under which the host registers tasks, so that tasks
//! can find each other with `bootstrap_look_up`. Entries are weak, as port names are.

use std::collections::HashMap;
use std::sync::{Arc, Weak};

use crate::lock::{Rank, RankedGuard, RankedMutex};
use crate::port::Mortal;

/// A runtime's registry of task names (`T`, the task state), behind a lock of rank
/// [`Rank::Bootstrap`].
pub(crate) struct Bootstrap<T> {
    names: RankedMutex<HashMap<String, Weak<T>>>,
}

impl<T: Mortal> Bootstrap<T> {
    /// An empty registry.
    pub(crate) fn new() -> Bootstrap<T> {
        Bootstrap {
            names: RankedMutex::new(Rank::Bootstrap, HashMap::new()),
        }
    }

    fn names(&self) -> RankedGuard<'_, HashMap<String, Weak<T>>> {
        self.names.lock()
    }

    /// Registers `task` as `name`, replacing what was registered under it.
    pub(crate) fn register(&self, name: &str, task: &Arc<T>) {
        self.names().insert(name.to_owned(), Arc::downgrade(task));
    }

    /// Removes the registration `name`.
    pub(crate) fn unregister(&self, name: &str) {
        self.names().remove(name);
    }

    /// The live task registered as `name`.
    pub(crate) fn look_up(&self, name: &str) -> Option<Arc<T>> {
        let task = self.names().get(name)?.upgrade()?;
        task.is_alive().then_some(task)
    }

    /// Every live registration, by name.
    pub(crate) fn entries(&self) -> Vec<(String, Arc<T>)> {
        let mut entries: Vec<(String, Arc<T>)> = self
            .names()
            .iter()
            .filter_map(|(name, t)| Some((name.clone(), t.upgrade()?)))
            .filter(|(_, t)| t.is_alive())
            .collect();
        entries.sort_by(|a, b| a.0.cmp(&b.0));
        entries
    }

    /// Removes every registration of `task` (which is terminating) and of dead tasks.
    pub(crate) fn forget(&self, task: &T) {
        self.names()
            .retain(|_, t| t.upgrade().is_some_and(|t| !std::ptr::eq(&*t, task)));
    }
}
