//! The README's host API example, kept compiling and true.

use wasmach::{KernReturn, Runtime, VM_PAGE_SIZE, VmProt};

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
