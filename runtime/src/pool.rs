//! Reservations of terminated tasks kept for new ones: a spawn that finds one skips the
//! system calls of a fresh address space (the 4 GiB reservation and its memory file) and
//! their teardown. A reservation is put back only reset: its memory reads zero, every page
//! `PROT_NONE` but a short read-write prefix (its `warm` pages, zeroed in place so that a
//! task of the same initial size spawns without a system call), no guard, no private
//! mapping, and no other task holds a snapshot of its file; a new task can see nothing of
//! the old one.

use std::sync::Arc;

use crate::backing::TaskFile;
use crate::lock::{Rank, RankedMutex};
use crate::mapping::Mapping;

/// A reset reservation, and its memory file if it has one.
pub(crate) struct Reserved {
    /// The reservation.
    pub(crate) mapping: Mapping,
    /// Its memory file (shareable memory), or `None` (anonymous memory).
    pub(crate) file: Option<Arc<TaskFile>>,
    /// Its leading pages mapped read-write (and zero); every later page is `PROT_NONE`.
    pub(crate) warm: u32,
    /// The program its last task ran (see `ModuleInner::program`).
    pub(crate) program: u64,
}

/// The runtime's pool of reservations, at most `capacity` of them.
pub(crate) struct SpacePool {
    kept: RankedMutex<Vec<Reserved>>,
    capacity: usize,
}

impl SpacePool {
    /// A pool keeping at most `capacity` reservations (0: none).
    pub(crate) fn new(capacity: usize) -> SpacePool {
        SpacePool {
            kept: RankedMutex::new(Rank::Pool, Vec::new()),
            capacity,
        }
    }

    /// A reservation with a memory file (`file`) or without, if one is kept, for a task of
    /// `program` with `initial` pages: preferably one whose last task ran the same program
    /// (its warm pages are those the program touches), then one with `initial` warm pages
    /// (nothing to change for a task of that size).
    pub(crate) fn take(&self, file: bool, initial: u32, program: u64) -> Option<Reserved> {
        let mut kept = self.kept.lock();
        let score = |r: &Reserved| 2 * u8::from(r.program == program) + u8::from(r.warm == initial);
        let (index, _) = kept
            .iter()
            .enumerate()
            .filter(|(_, r)| r.file.is_some() == file)
            .max_by_key(|&(i, r)| (score(r), i))?;
        Some(kept.swap_remove(index))
    }

    /// Whether a reservation put back now would be kept.
    pub(crate) fn has_room(&self) -> bool {
        self.capacity > 0 && self.kept.lock().len() < self.capacity
    }

    /// Keeps `reserved` (already reset) if there is room; otherwise it is dropped (unmapped)
    /// here, outside the lock.
    pub(crate) fn put(&self, reserved: Reserved) {
        let mut kept = self.kept.lock();
        if kept.len() < self.capacity {
            kept.push(reserved);
            return;
        }
        drop(kept);
        drop(reserved);
    }

    /// How many reservations are kept (see `Runtime::debug_pooled`).
    pub(crate) fn len(&self) -> usize {
        self.kept.lock().len()
    }
}
