//! The baselines' fixtures, shared by `wasmach bench` and the criterion bench
//! (`benches/transfer.rs` includes this file with `#[path]`): page-aligned host buffers, a
//! child process for `process_vm_readv`, and two plain wasmtime instances. Self-contained:
//! it uses only `std`, `libc`, `anyhow`, `wasmtime` and `wasmach`.

/// A page, in bytes.
const PAGE: u32 = wasmach::VM_PAGE_SIZE;

/// Why a case has no figure.
#[derive(Clone, Debug)]
pub enum Problem {
    /// The system refuses a baseline (`process_vm_readv` forbidden, say): noted, not an
    /// error of wasmach.
    Skipped(String),
    /// The case went wrong: a call failed, a guest trapped, a setup step failed.
    Failed(String),
}

/// A page-aligned host buffer. Task memories are page-aligned; the host-side buffers get the
/// same alignment so that every case copies alike (glibc's memcpy between buffers whose
/// addresses differ by a few bytes modulo 4 KiB runs many times slower on some CPUs: see
/// BENCHMARKS.md). Made of a `Vec` one page larger, used from its first aligned byte.
pub struct PageBuf {
    storage: Vec<u8>,
    offset: usize,
    len: usize,
}

impl PageBuf {
    pub fn new(len: usize, byte: impl Fn(usize) -> u8) -> PageBuf {
        let align = PAGE as usize;
        let mut storage = vec![0u8; len + align];
        // At run time `align_offset` of a byte pointer is exact (below `align`).
        let offset = storage.as_ptr().align_offset(align).min(align);
        for (i, b) in storage[offset..offset + len].iter_mut().enumerate() {
            *b = byte(i);
        }
        PageBuf {
            storage,
            offset,
            len,
        }
    }

    pub fn as_slice(&self) -> &[u8] {
        &self.storage[self.offset..self.offset + self.len]
    }

    pub fn as_mut_slice(&mut self) -> &mut [u8] {
        &mut self.storage[self.offset..self.offset + self.len]
    }
}

/// A child process holding a copy of a buffer at the parent's address, for
/// `process_vm_readv`. Killed and reaped on drop (and killed if the parent dies first).
pub struct Child {
    pid: libc::pid_t,
    /// The address of the buffer, the same in the child as in the parent.
    address: usize,
    len: usize,
}

impl Child {
    /// Forks a child that keeps `buf` (its copy-on-write copy) and waits to be killed.
    pub fn new(buf: &PageBuf) -> Result<Child, Problem> {
        let parent = std::process::id() as libc::pid_t;
        // SAFETY: the child (pid 0) runs only the system calls below, which are
        // async-signal-safe (no allocation, no lock that another thread of the parent may
        // have held at the fork), and never returns into Rust code.
        let pid = unsafe { libc::fork() };
        if pid < 0 {
            return Err(Problem::Skipped(format!(
                "fork: {}",
                std::io::Error::last_os_error()
            )));
        }
        if pid == 0 {
            // SAFETY: plain system calls with valid arguments: die with the parent, let go
            // of its stdout and stderr (a reader waiting for their end must not wait for
            // us), then sleep until killed; `_exit` if the parent is already gone.
            unsafe {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                libc::close(1);
                libc::close(2);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                loop {
                    libc::pause();
                }
            }
        }
        Ok(Child {
            pid,
            address: buf.as_slice().as_ptr() as usize,
            len: buf.len,
        })
    }

    /// Reads the child's buffer into `local` (at most its length).
    pub fn read(&self, local: &mut [u8]) -> Result<(), Problem> {
        let len = local.len().min(self.len);
        let local_iov = libc::iovec {
            iov_base: local.as_mut_ptr().cast(),
            iov_len: len,
        };
        let remote_iov = libc::iovec {
            iov_base: self.address as *mut libc::c_void,
            iov_len: len,
        };
        // SAFETY: `local_iov` describes `len` bytes of `local`, borrowed mutably for the
        // call; `remote_iov` is read in the child's address space by the kernel, which
        // checks it (the child's copy of the buffer is at the same address after fork).
        let n = unsafe { libc::process_vm_readv(self.pid, &local_iov, 1, &remote_iov, 1, 0) };
        if n == len as isize {
            return Ok(());
        }
        if n >= 0 {
            return Err(Problem::Failed(format!(
                "process_vm_readv read {n} bytes of {len}"
            )));
        }
        let error = std::io::Error::last_os_error();
        match error.raw_os_error() {
            Some(libc::EPERM | libc::ENOSYS | libc::EACCES) => Err(Problem::Skipped(format!(
                "process_vm_readv is not allowed here: {error}"
            ))),
            _ => Err(Problem::Failed(format!("process_vm_readv: {error}"))),
        }
    }
}

impl Drop for Child {
    fn drop(&mut self) {
        // SAFETY: `pid` is our child, not yet reaped (so not reused): kill it and reap it.
        unsafe {
            libc::kill(self.pid, libc::SIGKILL);
            libc::waitpid(self.pid, std::ptr::null_mut(), 0);
        }
    }
}

/// Two plain wasmtime instances (default engine) with exported memories: the baseline of
/// copying between sandboxes without wasmach.
pub struct Plain {
    a: (wasmtime::Store<()>, wasmtime::Memory),
    b: (wasmtime::Store<()>, wasmtime::Memory),
}

impl Plain {
    pub fn new(pages: u32) -> anyhow::Result<Plain> {
        let engine = wasmtime::Engine::default();
        let wat = format!("(module (memory (export \"memory\") {}))", pages + 1);
        let module = wasmtime::Module::new(&engine, wat)?;
        let make = || -> anyhow::Result<(wasmtime::Store<()>, wasmtime::Memory)> {
            let mut store = wasmtime::Store::new(&engine, ());
            let instance = wasmtime::Instance::new(&mut store, &module, &[])?;
            let memory = instance
                .get_memory(&mut store, "memory")
                .ok_or_else(|| anyhow::anyhow!("no memory export"))?;
            memory.data_mut(&mut store).fill(1);
            Ok((store, memory))
        };
        Ok(Plain {
            a: make()?,
            b: make()?,
        })
    }

    /// Reads `len` bytes of A into a new `Vec`, and writes them into B.
    pub fn copy(&mut self, len: usize) -> Result<(), Problem> {
        let mut buf = vec![0u8; len];
        let (a, b) = (&mut self.a, &mut self.b);
        a.1.read(&a.0, PAGE as usize, &mut buf)
            .and_then(|()| b.1.write(&mut b.0, PAGE as usize, &buf))
            .map_err(|e| Problem::Failed(format!("wasmtime memory access: {e}")))
    }
}
