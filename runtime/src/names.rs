//! The names of the guest ABI: the import modules and functions the runtime defines for
//! guests, and the export it reserves. The bottom layer, with [`crate::kern`]: the loader
//! checks modules against these lists and the doors define them.

/// Every `"mach"` import and its parameter count; each returns one `i32`.
pub const MACH_IMPORTS: [(&str, usize); 10] = [
    ("vm_allocate", 4),
    ("vm_deallocate", 3),
    ("vm_protect", 5),
    ("vm_read", 5),
    ("vm_read_overwrite", 5),
    ("vm_write", 4),
    ("vm_copy", 4),
    ("vm_region", 5),
    ("mach_task_self", 0),
    ("bootstrap_look_up", 3),
];

/// The parameter count of the `"mach"` import `name`, or `None` if there is no such call.
pub(crate) fn param_count(name: &str) -> Option<usize> {
    MACH_IMPORTS
        .iter()
        .find(|(n, _)| *n == name)
        .map(|&(_, p)| p)
}

/// The reserved export name under which every task exports its memory to the runtime (the
/// loader adds it to every module; tools listing a module's own exports skip it).
pub const MEMORY_EXPORT: &str = "wasmach:memory";

/// The import module of the checked bulk instructions; reserved (a module importing from
/// it itself is refused like any other unknown import).
pub const BULK_MODULE: &str = "wasmach:bulk";

/// The imports the rewrite adds, in order, with their parameter counts (no results).
pub(crate) const BULK_IMPORTS: [(&str, usize); 4] = [
    ("memory.copy", 3),
    ("memory.fill", 3),
    ("memory.init", 4),
    ("data.drop", 1),
];
