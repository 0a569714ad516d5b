//! The data segments a task's `memory.init` copies from, when the loader rewrote its
//! bulk-memory instructions ([`crate::rewrite`]) into checked calls ([`crate::bulk`]): the
//! module's segments, shared, and which of them this task has dropped.

use std::sync::Arc;

/// A module's data segments, which `memory.init` copies from.
#[derive(Debug)]
pub(crate) struct DataSegments {
    /// Each segment's bytes, and whether it is active (dropped once instantiated).
    segments: Vec<(Vec<u8>, bool)>,
}

/// A task's segments: the module's, and which of them this instance has dropped.
#[derive(Debug)]
pub(crate) struct TaskSegments {
    module: Arc<DataSegments>,
    dropped: Vec<bool>,
}

impl TaskSegments {
    /// A new instance's view: active segments are dropped, passive ones not.
    pub(crate) fn new(module: Arc<DataSegments>) -> TaskSegments {
        let dropped = module.segments.iter().map(|&(_, active)| active).collect();
        TaskSegments { module, dropped }
    }

    /// The live bytes of segment `index` (empty once dropped).
    pub(crate) fn bytes(&self, index: u32) -> &[u8] {
        match (
            self.module.segments.get(index as usize),
            self.dropped.get(index as usize),
        ) {
            (Some((bytes, _)), Some(false)) => bytes,
            _ => &[],
        }
    }
}

impl DataSegments {
    /// A module's segments: each one's bytes and whether it is active.
    pub(crate) fn new(segments: Vec<(Vec<u8>, bool)>) -> DataSegments {
        DataSegments { segments }
    }
}

impl TaskSegments {
    /// `data.drop`: segment `index` reads as empty from now on (an unknown index is left
    /// to wasmtime's validation, which refuses it at load time).
    pub(crate) fn drop_segment(&mut self, index: u32) {
        if let Some(dropped) = self.dropped.get_mut(index as usize) {
            *dropped = true;
        }
    }
}
