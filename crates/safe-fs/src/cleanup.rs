//! Unfinished files and folders removed when a fatal signal ends the process.
//!
//! Temporary outputs and extracted archives are removed by their destructors on every normal
//! path; this registry covers the paths where no destructor runs: SIGINT, SIGTERM or SIGHUP
//! from the user, SIGBUS when a memory-mapped input shrinks under us, SIGABRT after an
//! allocation failure. [`install`] (called once by the binary) sets a handler that removes
//! every registered path with raw system calls only (async-signal-safe: no allocation, no
//! locks), prints one line naming the signal and any mapped input that may have changed, and
//! ends the process with exit code 2.
//!
//! The registry is a fixed table of slots holding leaked C strings; a slot is claimed and
//! released with atomic swaps, and whoever swaps a pointer out owns it, so the handler never
//! reads memory that a releasing thread frees.

use std::ffi::{c_char, c_int, CString};
use std::os::unix::ffi::OsStrExt;
use std::path::Path;
use std::ptr::null_mut;
use std::sync::atomic::{AtomicPtr, Ordering};

/// More than any command uses at once (one output, one extraction, a few mapped shards);
/// a registration beyond it is simply not covered.
const SLOTS: usize = 64;

/// Each slot holds a C string whose first byte is its kind, followed by the path.
static SLOT_TABLE: [AtomicPtr<c_char>; SLOTS] = [const { AtomicPtr::new(null_mut()) }; SLOTS];

const KIND_FILE: u8 = b'f';
const KIND_TREE: u8 = b'd';
const KIND_MAPPED: u8 = b'm';

/// Deepest folder nesting the handler removes (an extracted module has two levels).
const MAX_TREE_DEPTH: usize = 16;

/// Keeps a path registered until dropped.
#[must_use = "the path is unregistered when this is dropped"]
pub struct Registration {
    slot: Option<usize>,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Some(slot) = self.slot {
            let ptr = SLOT_TABLE[slot].swap(null_mut(), Ordering::AcqRel);
            if !ptr.is_null() {
                // SAFETY: the pointer came from `CString::into_raw` in `register`, and the
                // swap made this thread its only owner.
                drop(unsafe { CString::from_raw(ptr) });
            }
        }
    }
}

/// A file to unlink on a fatal signal (a temporary output).
pub fn register_file(path: &Path) -> Registration {
    register(KIND_FILE, path)
}

/// A folder to remove with its contents on a fatal signal (an extracted archive).
pub fn register_tree(path: &Path) -> Registration {
    register(KIND_TREE, path)
}

/// A memory-mapped input, named in the SIGBUS message (never removed).
pub fn register_mapped(path: &Path) -> Registration {
    register(KIND_MAPPED, path)
}

fn register(kind: u8, path: &Path) -> Registration {
    let mut bytes = Vec::with_capacity(path.as_os_str().len() + 1);
    bytes.push(kind);
    bytes.extend_from_slice(path.as_os_str().as_bytes());
    let Ok(c) = CString::new(bytes) else {
        return Registration { slot: None };
    };
    let ptr = c.into_raw();
    for (i, slot) in SLOT_TABLE.iter().enumerate() {
        if slot
            .compare_exchange(null_mut(), ptr, Ordering::AcqRel, Ordering::Relaxed)
            .is_ok()
        {
            return Registration { slot: Some(i) };
        }
    }
    // SAFETY: no slot took the pointer; it is still ours from `into_raw` above.
    drop(unsafe { CString::from_raw(ptr) });
    Registration { slot: None }
}

const FATAL_SIGNALS: [c_int; 5] = [
    libc::SIGINT,
    libc::SIGTERM,
    libc::SIGHUP,
    libc::SIGBUS,
    libc::SIGABRT,
];

/// Installs the handler for SIGINT, SIGTERM, SIGHUP, SIGBUS and SIGABRT. Call once, early,
/// from the binary (libraries only register paths).
pub fn install() {
    for signal in FATAL_SIGNALS {
        // SAFETY: a zeroed sigaction is valid; the handler blocks every fatal signal while it
        // runs (so a second Ctrl-C cannot cut the cleanup short) and `on_fatal_signal` only
        // calls async-signal-safe functions.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fatal_signal as extern "C" fn(c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            for blocked in FATAL_SIGNALS {
                libc::sigaddset(&mut action.sa_mask, blocked);
            }
            action.sa_flags = libc::SA_RESTART;
            libc::sigaction(signal, &action, null_mut());
        }
    }
}

extern "C" fn on_fatal_signal(signal: c_int) {
    let mut mapped_named = false;
    write_stderr(b"error: ");
    write_stderr(match signal {
        libc::SIGINT => b"interrupted (SIGINT)".as_slice(),
        libc::SIGTERM => b"terminated (SIGTERM)",
        libc::SIGHUP => b"hung up (SIGHUP)",
        libc::SIGBUS => {
            b"bus error (SIGBUS): a memory-mapped input shrank or vanished while it was read"
        }
        _ => b"aborted (SIGABRT: out of memory, or an internal error)",
    });
    for slot in SLOT_TABLE.iter() {
        let ptr = slot.swap(null_mut(), Ordering::AcqRel);
        if ptr.is_null() {
            continue;
        }
        // SAFETY: the swap made the handler the owner of a C string from `register`; it is
        // never freed (the process ends below).
        let entry = unsafe { std::ffi::CStr::from_ptr(ptr) }.to_bytes();
        let Some((&kind, _)) = entry.split_first() else {
            continue;
        };
        // SAFETY: `ptr + 1` points at the path part of the same NUL-terminated string.
        let path = unsafe { ptr.add(1) };
        match kind {
            KIND_FILE => {
                // SAFETY: `path` is a valid NUL-terminated path.
                unsafe { libc::unlink(path) };
            }
            KIND_TREE => {
                remove_tree(libc::AT_FDCWD, path, MAX_TREE_DEPTH);
            }
            KIND_MAPPED if signal == libc::SIGBUS => {
                write_stderr(if mapped_named { b", " } else { b" (one of: " });
                write_stderr(&entry[1..]);
                mapped_named = true;
            }
            _ => {}
        }
    }
    if mapped_named {
        write_stderr(b")");
    }
    write_stderr(b"; unfinished outputs and extracted files were removed\n");
    // SAFETY: `_exit` is async-signal-safe and ends the process without running destructors.
    unsafe { libc::_exit(2) };
}

fn write_stderr(bytes: &[u8]) {
    // SAFETY: `write` on fd 2 with a valid buffer and length; errors are ignored.
    unsafe { libc::write(2, bytes.as_ptr().cast(), bytes.len()) };
}

/// Most listings of one folder: entries that cannot be removed are listed again on every
/// pass, so the walk needs a bound to end.
const MAX_LISTINGS: usize = 64;

/// Removes `name` (relative to `parent_fd`) and, if it is a folder, everything in it, with
/// `openat`, `getdents64` and `unlinkat` only. Best effort: what cannot be removed stays, and
/// the walk always ends. Returns whether `name` itself was removed.
fn remove_tree(parent_fd: c_int, name: *const c_char, depth: usize) -> bool {
    // SAFETY: `name` is NUL-terminated; unlinkat fails harmlessly on a folder.
    if unsafe { libc::unlinkat(parent_fd, name, 0) } == 0 {
        return true;
    }
    if depth == 0 {
        return false;
    }
    // SAFETY: as above; O_NOFOLLOW keeps the walk inside the tree.
    let fd = unsafe {
        libc::openat(
            parent_fd,
            name,
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return false;
    }
    for _ in 0..MAX_LISTINGS {
        // Removing entries while listing can make the listing skip some: list again from
        // the start while a pass removed anything.
        if !remove_listed_entries(fd, depth) {
            break;
        }
        // SAFETY: lseek on our own folder descriptor.
        unsafe { libc::lseek(fd, 0, libc::SEEK_SET) };
    }
    // SAFETY: closing our own descriptor, then removing the folder if it is now empty.
    unsafe {
        libc::close(fd);
        libc::unlinkat(parent_fd, name, libc::AT_REMOVEDIR) == 0
    }
}

/// One pass over the open folder `fd`: removes every entry it can (folders through
/// [`remove_tree`]); returns whether it removed any.
fn remove_listed_entries(fd: c_int, depth: usize) -> bool {
    let mut buf = [0u8; 4096];
    let mut removed_any = false;
    loop {
        // SAFETY: getdents64 fills at most `buf.len()` bytes of `buf`.
        let n = unsafe { libc::syscall(libc::SYS_getdents64, fd, buf.as_mut_ptr(), buf.len()) };
        let Ok(n) = usize::try_from(n) else {
            return removed_any;
        };
        if n == 0 {
            return removed_any;
        }
        let mut offset = 0usize;
        while offset + 19 < n {
            // linux_dirent64: d_ino u64, d_off i64, d_reclen u16, d_type u8, d_name[].
            let reclen = u16::from_ne_bytes([buf[offset + 16], buf[offset + 17]]) as usize;
            if reclen < 20 || offset + reclen > n {
                return removed_any;
            }
            let entry_name = &buf[offset + 19..offset + reclen];
            let is_dot = entry_name.starts_with(b".\0") || entry_name.starts_with(b"..\0");
            if !is_dot && remove_tree(fd, entry_name.as_ptr().cast(), depth - 1) {
                removed_any = true;
            }
            offset += reclen;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn registrations_are_released_on_drop() {
        let before = SLOT_TABLE
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count();
        let a = register_file(Path::new("/tmp/a"));
        let b = register_tree(Path::new("/tmp/b"));
        let used = SLOT_TABLE
            .iter()
            .filter(|s| !s.load(Ordering::Relaxed).is_null())
            .count();
        assert!(used >= before + 2);
        drop((a, b));
        // Other tests may register concurrently, so only check ours are gone.
        assert!(SLOT_TABLE.iter().all(|s| {
            let p = s.load(Ordering::Relaxed);
            p.is_null() || unsafe { std::ffi::CStr::from_ptr(p) }.to_bytes() != b"f/tmp/a"
        }));
    }

    #[test]
    fn remove_tree_removes_nested_folders() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("extracted");
        std::fs::create_dir_all(root.join("variables/deeper")).unwrap();
        std::fs::write(root.join("saved_model.pb"), b"x").unwrap();
        std::fs::write(root.join("variables/variables.index"), b"x").unwrap();
        for i in 0..300 {
            std::fs::write(
                root.join(format!("variables/deeper/file-with-a-long-name-{i}")),
                b"x",
            )
            .unwrap();
        }
        let c = CString::new(root.as_os_str().as_bytes()).unwrap();
        assert!(remove_tree(libc::AT_FDCWD, c.as_ptr(), MAX_TREE_DEPTH));
        assert!(!root.exists());
    }

    #[test]
    fn remove_tree_ends_on_what_it_cannot_remove() {
        // Deeper than the depth it may go: it removes what it can and returns, no endless
        // relisting.
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("t");
        let deep = (0..6).fold(root.clone(), |p, i| p.join(format!("d{i}")));
        std::fs::create_dir_all(&deep).unwrap();
        std::fs::write(root.join("top"), b"x").unwrap();
        std::fs::write(deep.join("bottom"), b"x").unwrap();
        let c = CString::new(root.as_os_str().as_bytes()).unwrap();
        assert!(!remove_tree(libc::AT_FDCWD, c.as_ptr(), 3));
        assert!(!root.join("top").exists(), "what it could reach is gone");
        assert!(deep.join("bottom").exists());
        assert!(remove_tree(libc::AT_FDCWD, c.as_ptr(), MAX_TREE_DEPTH));
    }

    /// Forks a child that maps a file, truncates it and reads past the new end: the SIGBUS
    /// handler must remove the registered temporary output and exit with code 2. Everything
    /// the child needs is prepared before the fork (no allocation after it).
    #[test]
    fn sigbus_on_a_shrunk_map_removes_unfinished_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let shard = dir.path().join("shard");
        let output = dir.path().join(".out.tmp");
        std::fs::write(&shard, vec![1u8; 1 << 16]).unwrap();
        std::fs::write(&output, b"partial").unwrap();
        let registration = register_file(&output);
        let mapped = register_mapped(&shard);
        let shard_c = CString::new(shard.as_os_str().as_bytes()).unwrap();
        // SAFETY: plain open/mmap of our own file.
        let (fd, map) = unsafe {
            let fd = libc::open(shard_c.as_ptr(), libc::O_RDONLY);
            assert!(fd >= 0);
            let map = libc::mmap(
                null_mut(),
                1 << 16,
                libc::PROT_READ,
                libc::MAP_SHARED,
                fd,
                0,
            );
            assert_ne!(map, libc::MAP_FAILED);
            (fd, map)
        };
        // SAFETY: the child only calls async-signal-safe functions and `install` (sigaction).
        let pid = unsafe { libc::fork() };
        if pid == 0 {
            install();
            // SAFETY: truncate our own file, then read a mapped page past its new end.
            unsafe {
                libc::truncate(shard_c.as_ptr(), 0);
                let byte = std::ptr::read_volatile((map as *const u8).add(8192));
                libc::_exit(i32::from(byte) + 10);
            }
        }
        let mut status = 0;
        // SAFETY: waiting for our own child; then unmapping and closing what we mapped.
        unsafe {
            libc::waitpid(pid, &mut status, 0);
            libc::munmap(map, 1 << 16);
            libc::close(fd);
        }
        drop((registration, mapped));
        assert!(libc::WIFEXITED(status), "child status {status}");
        assert_eq!(libc::WEXITSTATUS(status), 2);
        assert!(!output.exists(), "the unfinished output was removed");
        assert!(shard.exists(), "a mapped input is never removed");
    }
}
