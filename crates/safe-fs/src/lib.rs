//! File-system rules that every reader and writer of this workspace shares.
//!
//! Owns:
//! - [`open_regular`] / [`read_regular`]: inputs are opened without blocking and only when
//!   they are regular files, so a FIFO or a device named as a model, a golden file or a photo
//!   is refused at once instead of hanging in `open()` or reading forever; reads are capped.
//! - [`AtomicOutput`]: an output is written to a temporary file beside the target and renamed
//!   into place, and refused when the target is one of the command's inputs (or lies inside
//!   an input folder) or an existing special file (a FIFO, a device such as `/dev/null`).
//! - [`cleanup`]: a small registry of unfinished files and folders that a handler removes
//!   when SIGINT, SIGTERM, SIGHUP, SIGBUS or SIGABRT ends the process, so that an interrupt,
//!   a file shrinking under a memory map or an allocation failure leaves nothing behind.
//!
//! Does not own: any file format; the messages of the crates that use it (they wrap the
//! `io::Error`s returned here with their own context).

pub mod cleanup;
mod input;
mod output;

pub use input::{open_regular, read_regular, NotRegular};
pub use output::{check_output, same_target, write_atomically, AtomicOutput, OutputError};

/// This process's effective user id (owner checks of private folders).
pub fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}
