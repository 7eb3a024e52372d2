//! The tolerances of a verification, and what values they may take.

use crate::VerifyError;

/// Tolerances.
#[derive(Debug, Clone, Copy)]
pub struct Options {
    /// Absolute bar, scaled by `max(1, max |golden|)` of each tensor.
    pub atol: f32,
    /// Relative bar per element (0 by default).
    pub rtol: f32,
    /// How many top classes must agree, in order (and are reported).
    pub top_k: usize,
    /// Pass on the top-1 class alone; the top-k order is still reported (bf16's bar).
    pub top1_only: bool,
}

/// The absolute bar of `--precision bf16` (scaled as `atol` is), from measurement: see the
/// README's "bf16" section for the errors it was set from.
pub const BF16_ATOL: f32 = 3e-2;

impl Default for Options {
    fn default() -> Self {
        Options {
            atol: 1e-4,
            rtol: 0.0,
            top_k: 5,
            top1_only: false,
        }
    }
}

/// What a tolerance may be, for messages.
const ALLOWED: &str = "a tolerance must be a finite number >= 0 (e.g. 1e-4)";

impl Options {
    /// Refuses tolerances that would switch comparisons off or make them meaningless: NaN
    /// (every comparison with it is false), ±Inf (an infinite bar) and negative values.
    pub fn check(&self) -> Result<(), VerifyError> {
        check_tolerance("atol", self.atol)
            .and_then(|_| check_tolerance("rtol", self.rtol))
            .map_err(VerifyError::Usage)?;
        if self.top_k == 0 {
            return Err(VerifyError::Usage(
                "top_k is 0: at least the top class must agree".into(),
            ));
        }
        Ok(())
    }
}

/// `value` when it is a usable tolerance, else a message saying what is allowed.
pub fn check_tolerance(name: &str, value: f32) -> Result<f32, String> {
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("--{name} {value}: {ALLOWED}"))
    }
}

/// Parses a tolerance given on the command line (for clap's `value_parser`).
pub fn parse_tolerance(text: &str) -> Result<f32, String> {
    let value: f32 = text
        .trim()
        .parse()
        .map_err(|_| format!("{text:?} is not a number: {ALLOWED}"))?;
    if value.is_finite() && value >= 0.0 {
        Ok(value)
    } else {
        Err(format!("{text:?}: {ALLOWED}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_tolerances_are_allowed() {
        assert!(Options::default().check().is_ok());
        assert_eq!(parse_tolerance("0"), Ok(0.0));
        assert_eq!(parse_tolerance("1e-4"), Ok(1e-4));
    }

    #[test]
    fn nan_inf_and_negative_tolerances_are_refused() {
        for text in [
            "NaN", "nan", "inf", "-inf", "infinity", "-1e-4", "-1", "abc", "",
        ] {
            let err = parse_tolerance(text).unwrap_err();
            assert!(err.contains("finite number >= 0"), "{text}: {err}");
        }
        for bad in [f32::NAN, f32::INFINITY, f32::NEG_INFINITY, -1e-6] {
            let atol = Options {
                atol: bad,
                ..Options::default()
            };
            let rtol = Options {
                rtol: bad,
                ..Options::default()
            };
            for (options, name) in [(atol, "--atol"), (rtol, "--rtol")] {
                let Err(VerifyError::Usage(message)) = options.check() else {
                    panic!("{bad} accepted for {name}");
                };
                assert!(message.contains(name), "{message}");
                assert!(message.contains("finite number >= 0"), "{message}");
            }
        }
    }

    #[test]
    fn top_k_zero_is_refused() {
        let options = Options {
            top_k: 0,
            ..Options::default()
        };
        assert!(matches!(options.check(), Err(VerifyError::Usage(_))));
    }
}
