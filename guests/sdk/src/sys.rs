//! The raw imports, exactly as docs/spec.md §4 declares them: module `"mach"`, every parameter and
//! result an `i32` (here `u32` or a pointer, which are `i32` on wasm32). Pointers are
//! addresses in the caller's own memory; out-values are little-endian `u32`s written there.
//! Every call returns a `kern_return_t`: `0` ([`KERN_SUCCESS`]) or a code of
//! [`KernReturn`](crate::KernReturn). A failed call changes nothing, out-values included.
//!
//! Prefer the safe wrappers at the crate root. On targets other than wasm32 these functions
//! are stubs that return [`KERN_FAILURE`] (and `mach_task_self` returns [`HOST_SELF_NAME`]),
//! so that code using the SDK still builds, documents and unit-tests on the host.
//!
//! The calls that write, free or reprotect memory of the target (`vm_write`, `vm_copy`,
//! `vm_deallocate`, `vm_protect`) are `unsafe` when the target is the caller: they take a
//! bare address, which may be memory Rust uses. On another task they cannot reach the
//! caller's memory.

/// `KERN_SUCCESS`: what every call returns when it succeeds.
pub const KERN_SUCCESS: u32 = 0;
/// `KERN_FAILURE`: what the host stubs return.
pub const KERN_FAILURE: u32 = 5;
/// What the host stub of `mach_task_self` returns: `0x103`, the name the runtime gives every
/// task for itself, so that code telling its own port from others' behaves on the host as
/// it does in a task.
pub const HOST_SELF_NAME: u32 = 0x103;

/// Declares the imports on wasm32 and same-named failing stubs elsewhere, with one set of
/// docs for both.
macro_rules! mach_imports {
    ($(
        $(#[$attr:meta])*
        pub fn $name:ident($($arg:ident: $ty:ty),* $(,)?) -> u32;
    )*) => {
        #[cfg(target_arch = "wasm32")]
        #[link(wasm_import_module = "mach")]
        unsafe extern "C" {
            $(
                $(#[$attr])*
                pub fn $name($($arg: $ty),*) -> u32;
            )*
            /// `mach_task_self() -> port_name`: the caller's own name for itself. Never fails.
            pub safe fn mach_task_self() -> u32;
        }

        $(
            $(#[$attr])*
            #[cfg(not(target_arch = "wasm32"))]
            pub unsafe extern "C" fn $name($($arg: $ty),*) -> u32 {
                $(let _ = $arg;)*
                KERN_FAILURE
            }
        )*

        /// `mach_task_self() -> port_name`: the caller's own name for itself. Never fails.
        /// (Host stub: returns [`HOST_SELF_NAME`].)
        #[cfg(not(target_arch = "wasm32"))]
        pub extern "C" fn mach_task_self() -> u32 {
            HOST_SELF_NAME
        }
    };
}

mach_imports! {
    /// `vm_allocate(target, address_ptr, size, anywhere)`.
    ///
    /// `anywhere != 0`: allocates `ceil(size / page)` pages first-fit from page 0 and writes
    /// the start to `*address_ptr`. `anywhere == 0`: allocates at the address read from
    /// `*address_ptr` (rounded down to a page; the size is rounded up on its own) and writes
    /// the rounded start back. New pages are zero-filled, protection `DEFAULT`, maximum
    /// `ALL`; the target's memory grows if needed.
    ///
    /// # Safety
    /// `address_ptr` must be valid for reading and writing a `u32`.
    pub fn vm_allocate(target: u32, address_ptr: *mut u32, size: u32, anywhere: u32) -> u32;

    /// `vm_deallocate(target, address, size)`: frees every allocated page of the range
    /// (address rounded down, end rounded up); unallocated pages are skipped.
    ///
    /// # Safety
    /// If `target` is the caller, no page of the range may be memory Rust uses: its stack,
    /// statics or heap, memory a live reference points into, or pages an owner (such as a
    /// [`Region`](crate::Region)) will deallocate again.
    pub fn vm_deallocate(target: u32, address: u32, size: u32) -> u32;

    /// `vm_protect(target, address, size, set_maximum, new_protection)`: sets the current
    /// protection (`set_maximum == 0`) or lowers the maximum (`set_maximum != 0`, which also
    /// masks the current one) of every page of the range.
    ///
    /// # Safety
    /// If `target` is the caller, the call must not take `READ` or `WRITE` away from a page
    /// Rust uses (its stack, statics or heap, memory a live reference points into): Rust
    /// may access such memory at any time, and with guest protection on that access traps.
    pub fn vm_protect(target: u32, address: u32, size: u32, set_maximum: u32, new_protection: u32) -> u32;

    /// `vm_read(target, address, size, data_ptr, count_ptr)`: copies the page-aligned range
    /// into a newly allocated region of the caller, whose address goes to `*data_ptr` and
    /// size to `*count_ptr`. The caller frees it with `vm_deallocate`.
    ///
    /// # Safety
    /// `data_ptr` and `count_ptr` must be valid for writing a `u32`.
    pub fn vm_read(target: u32, address: u32, size: u32, data_ptr: *mut u32, count_ptr: *mut u32) -> u32;

    /// `vm_read_overwrite(target, address, size, data, out_size_ptr)`: copies the
    /// page-aligned range to the caller's page-aligned `[data, data + size)` and writes
    /// `size` to `*out_size_ptr`.
    ///
    /// # Safety
    /// `[data, data + size)` must be memory the caller may overwrite; `out_size_ptr` must be
    /// valid for writing a `u32`.
    pub fn vm_read_overwrite(target: u32, address: u32, size: u32, data: *mut u8, out_size_ptr: *mut u32) -> u32;

    /// `vm_write(target, address, data, count)`: copies the caller's page-aligned
    /// `[data, data + count)` to the target's page-aligned `address`.
    ///
    /// # Safety
    /// `[data, data + count)` must be readable. If `target` is the caller, no byte of the
    /// destination may be memory Rust uses: its stack, statics or heap, or memory a live
    /// reference points into.
    pub fn vm_write(target: u32, address: u32, data: *const u8, count: u32) -> u32;

    /// `vm_copy(target, source_address, count, dest_address)`: copies inside the target,
    /// as `memmove`.
    ///
    /// # Safety
    /// If `target` is the caller, no byte of the destination may be memory Rust uses: its
    /// stack, statics or heap, or memory a live reference points into.
    pub fn vm_copy(target: u32, source_address: u32, count: u32, dest_address: u32) -> u32;

    /// `vm_region(target, address_ptr, size_ptr, protection_ptr, max_protection_ptr)`: finds
    /// the region containing `*address_ptr`, or else the first one above it, and writes its
    /// start (back to `*address_ptr`), size, current and maximum protection.
    ///
    /// # Safety
    /// All four pointers must be valid for writing a `u32` (`address_ptr` also for reading).
    pub fn vm_region(target: u32, address_ptr: *mut u32, size_ptr: *mut u32, protection_ptr: *mut u32, max_protection_ptr: *mut u32) -> u32;

    /// `bootstrap_look_up(name_ptr, name_len, port_ptr)`: looks up the task registered under
    /// the UTF-8 name `[name_ptr, name_ptr + name_len)` and writes the caller's name for it
    /// to `*port_ptr`.
    ///
    /// # Safety
    /// `[name_ptr, name_ptr + name_len)` must be readable; `port_ptr` valid for writing a
    /// `u32`.
    pub fn bootstrap_look_up(name_ptr: *const u8, name_len: u32, port_ptr: *mut u32) -> u32;
}
