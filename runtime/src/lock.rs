//! Ranked locks: every lock the runtime takes, and the one order in which they may be taken.
//!
//! | rank | lock | what it guards | held across |
//! |---|---|---|---|
//! | 1 | [`Rank::Store`] | a task's wasmtime `Store` | a whole guest call (the guest's VM calls take ranks 2-4 inside it) |
//! | 2 | [`Rank::Map`] | a task's page table and termination (`MapState`) | one VM call; two maps are taken in task-id order |
//! | 3 | [`Rank::Bootstrap`] | the runtime's bootstrap registry, and its list of tasks (never both at once) | a lookup or an insertion only |
//! | 4 | [`Rank::Ports`] | a task's port namespace | a lookup or an insertion only |
//! | 5 | [`Rank::Shares`] | a task file's page reference counts (`crate::backing`) | counting, and punching the pages that lose their last reference |
//! | 6 | [`Rank::Pool`] | the runtime's pool of reset reservations (`crate::pool`) | taking or putting one back |
//!
//! A thread may take a lock only if every lock it already holds has a lower rank (or the
//! same rank with a lower key: the task id for maps). Nothing is called while a lock is held
//! that could take a lock of a lower rank: a port lookup copies the target out and releases
//! the namespace before the VM call runs, and the registry hands out an `Arc` and releases.
//! The one exception is [`RankedMutex::try_lock`], which never waits and so cannot close a
//! cycle: the kernel uses it for another task's store (rank 1) under the maps, to grow an
//! idle task.
//!
//! In debug builds (the tests) every thread keeps the list of ranks it holds and a lock
//! taken out of order panics at once, naming both locks, so that an ordering bug shows in
//! any test that reaches it rather than as a rare hang.

use std::ops::{Deref, DerefMut};

use parking_lot::{Mutex, MutexGuard};

/// The rank of a lock: locks are taken in increasing rank only.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Rank {
    /// A task's store, held while its guest runs.
    Store = 1,
    /// A task's page table.
    Map = 2,
    /// The bootstrap registry, or the runtime's list of tasks.
    Bootstrap = 3,
    /// A task's port namespace.
    Ports = 4,
    /// The reference counts of a task file's pages.
    Shares = 5,
    /// The pool of reservations for new tasks.
    Pool = 6,
}

/// A mutex with a [`Rank`]. It is `parking_lot`'s, which is eventually fair: a thread that
/// has waited about half a millisecond gets the lock handed over at the next release, so a
/// thread that calls into a task in a loop (taking its store or its map again right after
/// releasing it) cannot starve another that needs it. (It has no poisoning: every
/// structure the runtime guards is changed only by code that does not panic halfway.)
pub(crate) struct RankedMutex<T> {
    /// Checked in debug builds only (release builds keep it, unread, as documentation).
    #[cfg_attr(not(debug_assertions), allow(dead_code))]
    rank: Rank,
    inner: Mutex<T>,
}

/// The guard of a [`RankedMutex`]; dropping it releases the lock.
pub(crate) struct RankedGuard<'a, T> {
    guard: MutexGuard<'a, T>,
    /// Removes the lock from the thread's list when the guard drops.
    #[cfg(debug_assertions)]
    _held: order::Held,
}

impl<T> RankedMutex<T> {
    /// A lock of rank `rank` around `value`.
    pub(crate) const fn new(rank: Rank, value: T) -> RankedMutex<T> {
        RankedMutex {
            rank,
            inner: Mutex::new(value),
        }
    }

    /// Takes the lock, waiting for it. `key` orders locks of equal rank (task ids for maps;
    /// 0 where a thread never holds two of the rank).
    pub(crate) fn lock_keyed(&self, key: u64) -> RankedGuard<'_, T> {
        #[cfg(debug_assertions)]
        let held = order::acquire(self.rank, key, true);
        #[cfg(not(debug_assertions))]
        let _ = key;
        RankedGuard {
            guard: self.inner.lock(),
            #[cfg(debug_assertions)]
            _held: held,
        }
    }

    /// The value, without locking: the caller holds the only reference to the lock.
    pub(crate) fn get_mut(&mut self) -> &mut T {
        self.inner.get_mut()
    }

    /// Takes the lock, waiting for it (a rank a thread holds one of at a time).
    pub(crate) fn lock(&self) -> RankedGuard<'_, T> {
        self.lock_keyed(0)
    }

    /// Takes the lock if it is free. Never waits, so it may be called out of rank order.
    pub(crate) fn try_lock(&self) -> Option<RankedGuard<'_, T>> {
        let guard = self.inner.try_lock()?;
        Some(RankedGuard {
            guard,
            #[cfg(debug_assertions)]
            _held: order::acquire(self.rank, 0, false),
        })
    }
}

impl<T> Deref for RankedGuard<'_, T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.guard
    }
}

impl<T> DerefMut for RankedGuard<'_, T> {
    fn deref_mut(&mut self) -> &mut T {
        &mut self.guard
    }
}

/// The debug-build order check: a per-thread list of the locks held.
#[cfg(debug_assertions)]
mod order {
    use std::cell::RefCell;

    use super::Rank;

    thread_local! {
        /// `(rank, key, serial)` of every lock this thread holds, in acquisition order.
        static HELD: RefCell<Vec<(Rank, u64, u64)>> = const { RefCell::new(Vec::new()) };
        static SERIAL: std::cell::Cell<u64> = const { std::cell::Cell::new(0) };
    }

    /// Removes its entry from the thread's list when the guard drops.
    pub(super) struct Held(u64);

    /// Records a lock about to be taken; with `check`, panics if the thread holds a lock
    /// that must come after it.
    pub(super) fn acquire(rank: Rank, key: u64, check: bool) -> Held {
        let serial = SERIAL.with(|s| {
            s.set(s.get() + 1);
            s.get()
        });
        HELD.with(|held| {
            let mut held = held.borrow_mut();
            if check && let Some(&(r, k, _)) = held.iter().find(|&&(r, k, _)| (r, k) >= (rank, key))
            {
                panic!(
                    "lock order violated: taking {rank:?} (key {key}) while holding {r:?} (key {k})"
                );
            }
            held.push((rank, key, serial));
        });
        Held(serial)
    }

    impl Drop for Held {
        fn drop(&mut self) {
            // `try_with`: a guard dropped during thread teardown finds the list gone.
            let _ = HELD.try_with(|held| held.borrow_mut().retain(|&(_, _, s)| s != self.0));
        }
    }
}

#[cfg(all(test, debug_assertions))]
mod tests {
    use super::*;

    #[test]
    fn locks_in_rank_order_are_allowed_and_released_locks_are_forgotten() {
        let store = RankedMutex::new(Rank::Store, ());
        let a = RankedMutex::new(Rank::Map, ());
        let b = RankedMutex::new(Rank::Map, ());
        let ports = RankedMutex::new(Rank::Ports, ());
        {
            let _s = store.lock();
            let _a = a.lock_keyed(1);
            let _b = b.lock_keyed(2);
            let _p = ports.lock();
        }
        // Everything was released: a lower rank may be taken again.
        let _b = b.lock_keyed(2);
        drop(_b);
        let _s = store.lock();
    }

    #[test]
    #[should_panic(expected = "lock order violated: taking Map (key 7) while holding Ports")]
    fn a_lower_rank_under_a_higher_one_panics_in_debug_builds() {
        let ports = RankedMutex::new(Rank::Ports, ());
        let map = RankedMutex::new(Rank::Map, ());
        let _p = ports.lock();
        let _m = map.lock_keyed(7);
    }

    #[test]
    #[should_panic(expected = "taking Map (key 1) while holding Map (key 2)")]
    fn two_maps_out_of_id_order_panic_in_debug_builds() {
        let a = RankedMutex::new(Rank::Map, ());
        let b = RankedMutex::new(Rank::Map, ());
        let _b = b.lock_keyed(2);
        let _a = a.lock_keyed(1);
    }

    #[test]
    fn try_lock_never_waits_and_is_exempt_from_the_order() {
        let store = RankedMutex::new(Rank::Store, ());
        let map = RankedMutex::new(Rank::Map, ());
        let _m = map.lock_keyed(1);
        let s = store.try_lock();
        assert!(s.is_some());
        let other = std::thread::scope(|scope| scope.spawn(|| store.try_lock().is_none()).join());
        assert!(other.unwrap(), "held elsewhere: try_lock returns None");
    }
}
