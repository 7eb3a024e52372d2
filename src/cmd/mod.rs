//! One module per subcommand: argument structs and the calls into the libraries.

pub mod inspect;

/// Verification ran and failed.
#[allow(dead_code)]
pub const EXIT_VERIFY_FAILED: u8 = 1;
/// Bad input or usage.
pub const EXIT_BAD_INPUT: u8 = 2;
