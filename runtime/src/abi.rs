//! The guest ABI: the `"mach"` imports (docs/spec.md §4), every parameter and result `i32`. Each
//! import turns its raw values into a [`kernel`] call; no rule lives here.

use std::sync::Arc;

use wasmtime::{AsContextMut, Caller, Linker};

use crate::kern::KernReturn;
use crate::kernel::{self, Dst, InAddr, NameArg, Src};
use crate::names::MEMORY_EXPORT;
use crate::port::{PortName, SELF_NAME};
use crate::task_state::{TaskData, TaskShared};
use crate::trace::trace_call;

/// Resolves `target` in the caller's namespace, then runs `op` as the guest.
fn with_target(
    call: &'static str,
    caller: &mut Caller<'_, TaskData>,
    target: i32,
    op: impl FnOnce(&mut kernel::Caller<'_>, &TaskShared) -> Result<(), KernReturn>,
) -> i32 {
    // SAFETY: the store's data holds an `Arc` of the task for the store's whole life (the
    // field is set when the store is made and never replaced), and the store outlives this
    // call from its guest; the reference points into the `Arc`'s allocation, not into the
    // store, so the store's mutable use below does not alias it.
    let task: &TaskShared = unsafe { &*Arc::as_ptr(&caller.data().task) };
    if caller.data().memory.is_none() {
        // A start function runs before `spawn` has taken the memory handle.
        caller.data_mut().memory = caller
            .get_export(MEMORY_EXPORT)
            .and_then(|e| e.into_memory());
    }
    let port = target as u32;
    // A miss looks the name up in the namespace, whose guard is dropped before the call:
    // the kernel takes maps (a lower rank) and may take this namespace again (crate::lock).
    let target = caller.data_mut().targets.resolve(task, PortName(port));
    let code = match target {
        None => KernReturn::SendInvalidDest.code() as i32,
        Some(target) => {
            // SAFETY: the cache keeps an `Arc` of the target, and nothing changes the cache
            // until this guest's next call (the kernel never touches it, and no guest code
            // runs meanwhile); the reference points into that `Arc`'s allocation.
            let target: &TaskShared = unsafe { &*target };
            let mut cx = kernel::Caller {
                task: Some(task),
                store: Some(caller.as_context_mut()),
                component: false,
            };
            KernReturn::to_guest(&op(&mut cx, target))
        }
    };
    trace_call(call, Some(task.id), Some(port), code);
    code
}

/// Defines every `"mach"` import in `linker`.
pub(crate) fn add_to_linker(linker: &mut Linker<TaskData>) -> anyhow::Result<()> {
    linker.func_wrap(
        "mach",
        "vm_allocate",
        |mut c: Caller<'_, TaskData>, target: i32, address_ptr: i32, size: i32, anywhere: i32| {
            with_target("vm_allocate", &mut c, target, |cx, t| {
                kernel::vm_allocate(
                    cx,
                    t,
                    InAddr::Ptr(address_ptr as u32),
                    size as u32,
                    anywhere != 0,
                )
                .map(drop)
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_deallocate",
        |mut c: Caller<'_, TaskData>, target: i32, address: i32, size: i32| {
            with_target("vm_deallocate", &mut c, target, |_, t| {
                kernel::vm_deallocate(t, address as u32, size as u32)
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_protect",
        |mut c: Caller<'_, TaskData>,
         target: i32,
         address: i32,
         size: i32,
         set_maximum: i32,
         prot: i32| {
            with_target("vm_protect", &mut c, target, |_, t| {
                kernel::vm_protect(
                    t,
                    address as u32,
                    size as u32,
                    set_maximum != 0,
                    prot as u32,
                )
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_read",
        |mut c: Caller<'_, TaskData>,
         target: i32,
         address: i32,
         size: i32,
         data_ptr: i32,
         count_ptr: i32| {
            with_target("vm_read", &mut c, target, |cx, t| {
                kernel::vm_read(
                    cx,
                    t,
                    address as u32,
                    size as u32,
                    Some([data_ptr as u32, count_ptr as u32]),
                )
                .map(drop)
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_read_overwrite",
        |mut c: Caller<'_, TaskData>,
         target: i32,
         address: i32,
         size: i32,
         data: i32,
         out_size_ptr: i32| {
            with_target("vm_read_overwrite", &mut c, target, |cx, t| {
                kernel::vm_read_overwrite(
                    cx,
                    t,
                    address as u32,
                    size as u32,
                    Dst::Task(data as u32),
                    Some(out_size_ptr as u32),
                )
                .map(drop)
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_write",
        |mut c: Caller<'_, TaskData>, target: i32, address: i32, data: i32, count: i32| {
            with_target("vm_write", &mut c, target, |cx, t| {
                kernel::vm_write(cx, t, address as u32, Src::Task(data as u32), count as u32)
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_copy",
        |mut c: Caller<'_, TaskData>, target: i32, source: i32, count: i32, dest: i32| {
            with_target("vm_copy", &mut c, target, |cx, t| {
                kernel::vm_copy(cx, t, source as u32, count as u32, dest as u32)
            })
        },
    )?;
    linker.func_wrap(
        "mach",
        "vm_region",
        |mut c: Caller<'_, TaskData>,
         target: i32,
         address_ptr: i32,
         size_ptr: i32,
         prot_ptr: i32,
         max_ptr: i32| {
            with_target("vm_region", &mut c, target, |cx, t| {
                let outs = [size_ptr as u32, prot_ptr as u32, max_ptr as u32];
                kernel::vm_region(cx, t, InAddr::Ptr(address_ptr as u32), Some(outs)).map(drop)
            })
        },
    )?;
    linker.func_wrap("mach", "mach_task_self", || SELF_NAME.raw() as i32)?;
    linker.func_wrap(
        "mach",
        "bootstrap_look_up",
        |c: Caller<'_, TaskData>, name_ptr: i32, name_len: i32, port_ptr: i32| {
            let name = NameArg::Guest {
                ptr: name_ptr as u32,
                len: name_len as u32,
            };
            let task = &c.data().task;
            let code = KernReturn::to_guest(&kernel::bootstrap_look_up(
                task,
                name,
                Some(port_ptr as u32),
            ));
            trace_call("bootstrap_look_up", Some(task.id), None, code);
            code
        },
    )?;
    Ok(())
}
