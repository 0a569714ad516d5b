//! The README's host API example, kept compiling and true.

use wasmach::{KernReturn, Runtime, TaskOptions, VM_PAGE_SIZE, VmProt};

#[test]
fn readme_host_api_example_runs() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap();
    let runtime = Runtime::new()?;
    let a = runtime.spawn_bytes("(module (memory 1))")?; // WAT or wasm bytes
    let b = runtime.spawn_file(root.join("guests/wat/mailbox.wat"))?;
    runtime.register("b", &b); // guests can bootstrap_look_up("b")

    // call a guest export, typed: the mailbox allocates its page 1
    let (kr, mailbox): (i32, i32) = b.call("_start", ())?;
    assert_eq!((kr, mailbox as u32), (0, VM_PAGE_SIZE));

    // the host as the caller
    b.vm_write(0, &vec![7u8; VM_PAGE_SIZE as usize])?;
    assert_eq!(b.vm_read(0, VM_PAGE_SIZE)?[0], 7);
    b.vm_protect(0, VM_PAGE_SIZE, false, VmProt::READ)?;
    assert_eq!(
        b.vm_write(0, &[0; 65536]),
        Err(KernReturn::ProtectionFailure)
    );

    // task A acting on task B through a name in A's namespace
    let port = a.insert_port(&b);
    let (address, size) = a.mach().vm_read(port, 0, VM_PAGE_SIZE)?; // new region of A
    assert_eq!((address, size), (VM_PAGE_SIZE, VM_PAGE_SIZE));
    a.mach().vm_read_overwrite(port, 0, VM_PAGE_SIZE, address)?; // B -> A, in place
    let page = a.mach().vm_allocate(port, 0, VM_PAGE_SIZE, true)?; // in B, first-fit
    a.mach().vm_copy(port, 0, VM_PAGE_SIZE, page)?; // inside B
    assert_eq!(
        b.vm_read(page, VM_PAGE_SIZE)?,
        vec![7u8; VM_PAGE_SIZE as usize]
    );
    Ok(())
}

#[test]
fn readme_host_views_example_runs() -> anyhow::Result<()> {
    let runtime = Runtime::new()?;
    let module = runtime.compile(
        r#"(module (memory 4)
    (func (export "peek") (param i32) (result i32) (i32.load (local.get 0))))"#,
    )?;
    let task = runtime.spawn_with(&module, &TaskOptions::default().name("worker"))?;
    runtime.register("worker", &task);
    assert_eq!(runtime.look_up("worker"), Some(task.id())); // what bootstrap_look_up finds
    assert_eq!(
        format!("{task:?}"),
        format!("Task {{ id: {}, name: \"worker\", .. }}", task.id())
    );

    // the map: vm_region walks the regions, Task::regions lists them all
    task.vm_protect(VM_PAGE_SIZE, VM_PAGE_SIZE, false, VmProt::READ)?;
    let region = task.vm_region(VM_PAGE_SIZE)?;
    assert_eq!(
        (region.address, region.end()),
        (VM_PAGE_SIZE, 2 * u64::from(VM_PAGE_SIZE))
    );
    assert_eq!(task.regions().len(), 3);

    // read into a buffer of the host's own, without allocating (a multiple of the page)
    let mut page = vec![0u8; VM_PAGE_SIZE as usize];
    assert_eq!(task.vm_read_overwrite(0, &mut page)?, VM_PAGE_SIZE);

    // a guest function looked up and type-checked once, then called in a loop
    let peek = task.typed_func::<u32, i32>("peek")?;
    for address in [0, 8, 16] {
        assert_eq!(task.call_func(&peek, address)?, 0);
    }

    // a guest's i32 result as a Mach code
    assert_eq!(
        KernReturn::from_guest(1),
        Ok(Err(KernReturn::InvalidAddress))
    );
    assert_eq!(
        KernReturn::try_from(0x1000_0003),
        Ok(KernReturn::SendInvalidDest)
    );

    // (beyond the README) a function of another task is refused, not misused
    let other = runtime.spawn(&module)?;
    let err = other.call_func(&peek, 0).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "the function belongs to task {}, not to task {}",
            task.id(),
            other.id()
        )
    );
    assert_eq!(
        runtime.registrations(),
        vec![("worker".to_owned(), task.id())]
    );
    assert!(region.contains(2 * VM_PAGE_SIZE - 1));
    assert!(!region.contains(2 * VM_PAGE_SIZE));
    Ok(())
}
