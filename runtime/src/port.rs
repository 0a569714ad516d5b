//! Port names and per-task port namespaces: the only way one task can name another.

use std::fmt;
use std::sync::{Arc, Weak};

/// A Mach port name: a `u32` that names a task inside one task's namespace.
///
/// A name means something only in the namespace it came from; `0` is `MACH_PORT_NULL`
/// and never names anything.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PortName(pub u32);

impl PortName {
    /// `MACH_PORT_NULL`.
    pub const NULL: PortName = PortName(0);

    /// The raw value, as a guest sees it.
    pub const fn raw(self) -> u32 {
        self.0
    }
}

impl fmt::Debug for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PortName({:#x})", self.0)
    }
}

impl fmt::Display for PortName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#x}", self.0)
    }
}

/// The low byte of every name the runtime hands out (as Mach's `0x103`, `0x203`, ...).
const NAME_TAG: u32 = 0x03;

/// The caller's name for itself in every namespace.
pub(crate) const SELF_NAME: PortName = PortName(encode(0));

const fn encode(index: usize) -> u32 {
    ((index as u32 + 1) << 8) | NAME_TAG
}

fn decode(name: PortName) -> Option<usize> {
    if name.0 & 0xff != NAME_TAG {
        return None;
    }
    Some((name.0 >> 8).checked_sub(1)? as usize)
}

/// What a name can refer to: something that may have terminated (a task).
pub(crate) trait Mortal {
    /// Whether it still lives (a name for it is valid).
    fn is_alive(&self) -> bool;
}

/// One task's port namespace: a table from name to task (`T`, the task state). Entries are
/// weak: a name does not keep a terminated task alive.
pub(crate) struct PortSpace<T> {
    entries: Vec<Weak<T>>,
}

impl<T: Mortal> PortSpace<T> {
    /// A namespace holding only the owner's own name, [`SELF_NAME`].
    pub(crate) fn new(owner: Weak<T>) -> PortSpace<T> {
        PortSpace {
            entries: vec![owner],
        }
    }

    /// The live task `name` refers to, if any.
    pub(crate) fn lookup(&self, name: PortName) -> Option<Arc<T>> {
        let task = self.entries.get(decode(name)?)?.upgrade()?;
        task.is_alive().then_some(task)
    }

    /// The name of `task` in this namespace, inserting one if it has none yet: the same
    /// task always gets the same name.
    pub(crate) fn insert(&mut self, task: &Arc<T>) -> PortName {
        let weak = Arc::downgrade(task);
        let index = match self.entries.iter().position(|e| Weak::ptr_eq(e, &weak)) {
            Some(index) => index,
            None => {
                self.entries.push(weak);
                self.entries.len() - 1
            }
        };
        PortName(encode(index))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip_and_foreign_values_do_not_decode() {
        assert_eq!(SELF_NAME.raw(), 0x103);
        for i in [0usize, 1, 7, 1000] {
            assert_eq!(decode(PortName(encode(i))), Some(i));
        }
        for raw in [0u32, 1, 0x100, 0x104, 0x3, 0xffff_ff00] {
            assert_eq!(decode(PortName(raw)), None, "{raw:#x}");
        }
    }
}
