//! Logging of the VM calls (`RUST_LOG=wasmach=debug`): one line per call, with its
//! caller, port and result; never a guest's bytes.

use crate::kern::KernReturn;

/// Logs a finished call at debug level (`RUST_LOG=wasmach=debug`); free when disabled.
pub(crate) fn trace_call(call: &'static str, caller: Option<u64>, port: Option<u32>, code: i32) {
    tracing::debug!(
        call,
        caller = caller.map_or_else(|| "host".to_owned(), |id| format!("task {id}")),
        port = port.map(|p| format!("{p:#x}")),
        result = %KernReturn::from_code(code as u32).map_or("KERN_SUCCESS", KernReturn::name),
        "vm call"
    );
}
