//! Which memory backs each page of a task's address space, when the space is backed by a
//! [`TaskFile`]: its own file page, mapped shared (the default, and every page's state
//! until a virtual copy); a frozen file page (its own or another task's), mapped
//! privately, copy-on-write; or private anonymous memory (a page given back while others
//! still hold a snapshot of its own file page). Pure bookkeeping: the address space maps.

use std::collections::HashMap;
use std::sync::Arc;

use crate::backing::TaskFile;
use crate::vm_map::PageRange;

/// What backs a page.
#[derive(Clone, Copy)]
pub(crate) enum Backing<'a> {
    /// The task's own file page at the same offset, mapped shared.
    Own,
    /// A frozen page of `file` (the file page `page`), mapped privately.
    Frozen {
        /// The file holding the snapshot.
        file: &'a Arc<TaskFile>,
        /// The file page.
        page: u32,
    },
    /// Private anonymous memory.
    Anonymous,
}

/// One private mapping (one `mmap`): the file it maps, and at which file page its task
/// page 0 would be (file page = task page + `delta`); no file for anonymous memory.
struct Segment {
    file: Option<Arc<TaskFile>>,
    delta: i64,
    /// How many pages it backs; it is forgotten at 0.
    pages: u32,
}

/// A task's backing table: per page, the segment backing it (0: its own file page).
#[derive(Default)]
pub(crate) struct Views {
    ids: Vec<u32>,
    segments: HashMap<u32, Segment>,
    next: u32,
}

impl Views {
    /// The identity of the private mapping backing `page` (0: the shared one of the task's
    /// own file). Pages with equal identities and protections are one kernel mapping.
    pub(crate) fn id(&self, page: u32) -> u32 {
        self.ids.get(page as usize).copied().unwrap_or(0)
    }

    /// Whether every page is the task's own.
    pub(crate) fn all_own(&self) -> bool {
        self.segments.is_empty()
    }

    /// What backs `page`.
    pub(crate) fn backing(&self, page: u32) -> Backing<'_> {
        match self.segments.get(&self.id(page)) {
            None => Backing::Own,
            Some(Segment { file: None, .. }) => Backing::Anonymous,
            Some(Segment {
                file: Some(file),
                delta,
                ..
            }) => Backing::Frozen {
                file,
                page: (i64::from(page) + delta) as u32,
            },
        }
    }

    /// The maximal runs of `range` with one backing each: `(run, id)`.
    pub(crate) fn runs(&self, range: PageRange) -> Vec<(PageRange, u32)> {
        let mut runs: Vec<(PageRange, u32)> = Vec::new();
        // Past the recorded pages every page is the task's own: one run, found at once.
        let recorded = range.end().min(self.ids.len() as u32);
        let mut page = range.first();
        while page < recorded {
            let (start, id) = (page, self.id(page));
            while page < recorded && self.id(page) == id {
                page += 1;
            }
            runs.extend(PageRange::new(start, page).map(|run| (run, id)));
        }
        if let Some(rest) = PageRange::new(page, range.end()) {
            match runs.last_mut() {
                Some((last, 0)) => *last = last.union(rest),
                _ => runs.push((rest, 0)),
            }
        }
        runs
    }

    /// The private mappings of file pages among `range`: `(file, first file page, end)`,
    /// the references those pages hold.
    pub(crate) fn file_refs(&self, range: PageRange) -> Vec<(Arc<TaskFile>, u32, u32)> {
        self.runs(range)
            .into_iter()
            .filter_map(|(run, id)| {
                let segment = self.segments.get(&id)?;
                let file = segment.file.clone()?;
                let first = (i64::from(run.first()) + segment.delta) as u32;
                Some((file, first, first + run.len()))
            })
            .collect()
    }

    /// The identity a new private mapping of `range` would get (see [`Views::id`]).
    pub(crate) fn next_id(&self) -> u32 {
        self.next + 1
    }

    /// Records `range` as mapped privately from `file`, from its page `file_first` (or
    /// to anonymous memory with no file), as one new mapping. Returns its identity.
    pub(crate) fn set_private(
        &mut self,
        range: PageRange,
        file: Option<Arc<TaskFile>>,
        file_first: u32,
    ) -> u32 {
        self.next += 1;
        let id = self.next;
        let delta = i64::from(file_first) - i64::from(range.first());
        self.forget(range);
        self.segments.insert(
            id,
            Segment {
                file,
                delta,
                pages: range.len(),
            },
        );
        self.fill(range, id);
        id
    }

    /// Records `range` as the task's own file pages again.
    pub(crate) fn set_own(&mut self, range: PageRange) {
        self.forget(range);
        if (range.first() as usize) < self.ids.len() {
            self.fill(range, 0);
        }
    }

    /// Forgets every segment (the task terminates), returning the file references their
    /// pages held.
    pub(crate) fn clear(&mut self) -> Vec<(Arc<TaskFile>, u32, u32)> {
        if self.all_own() {
            return Vec::new();
        }
        let refs = self.file_refs(PageRange::ALL);
        *self = Views::default();
        refs
    }

    fn fill(&mut self, range: PageRange, id: u32) {
        let end = range.end() as usize;
        if self.ids.len() < end {
            self.ids.resize(end, 0);
        }
        self.ids[range.first() as usize..end].fill(id);
    }

    /// Takes `range`'s pages out of the segments backing them.
    fn forget(&mut self, range: PageRange) {
        for (run, id) in self.runs(range) {
            if let Some(segment) = self.segments.get_mut(&id) {
                segment.pages -= run.len();
                if segment.pages == 0 {
                    self.segments.remove(&id);
                }
            }
        }
    }
}
