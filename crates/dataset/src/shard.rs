//! `--shard K/N`: shard K (1-based) of N takes a contiguous run of the photo list.
//!
//! Contiguous rather than every N-th photo, so that the outputs of shards 1..N concatenated
//! in order are exactly the output of the unsharded run. The split depends only on the
//! list's length, so every machine of an array job computes the same ranges.

use std::fmt;
use std::ops::Range;
use std::str::FromStr;

/// Most shards a list may be split into.
pub const MAX_SHARDS: u32 = 1_000_000;

#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Shard {
    /// 1-based.
    pub index: u32,
    pub count: u32,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("shard `{text}`: {problem} (write K/N with 1 <= K <= N <= {MAX_SHARDS}, e.g. 3/8)")]
pub struct ShardError {
    text: String,
    problem: &'static str,
}

impl Shard {
    /// The whole list as one shard.
    pub const WHOLE: Shard = Shard { index: 1, count: 1 };

    /// The positions of this shard in a list of `len`.
    pub fn range(&self, len: usize) -> Range<usize> {
        let at = |k: u32| (len as u128 * u128::from(k) / u128::from(self.count)) as usize;
        at(self.index - 1)..at(self.index)
    }
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(text: &str) -> Result<Shard, ShardError> {
        let error = |problem| ShardError {
            text: text.to_string(),
            problem,
        };
        let (k, n) = text.split_once('/').ok_or_else(|| error("no `/`"))?;
        let parse = |s: &str| {
            s.trim()
                .parse::<u32>()
                .map_err(|_| error("not a whole number"))
        };
        let (index, count) = (parse(k)?, parse(n)?);
        if count == 0 || count > MAX_SHARDS {
            return Err(error("N out of range"));
        }
        if index == 0 || index > count {
            return Err(error("K out of range"));
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn parses_and_refuses() {
        assert_eq!("3/8".parse(), Ok(Shard { index: 3, count: 8 }));
        assert_eq!(Shard { index: 3, count: 8 }.to_string(), "3/8");
        for bad in ["", "3", "0/4", "5/4", "1/0", "a/b", "-1/4", "1/2000000"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
        let err = "5/4".parse::<Shard>().expect_err("K > N");
        assert_eq!(
            err.to_string(),
            "shard `5/4`: K out of range (write K/N with 1 <= K <= N <= 1000000, e.g. 3/8)"
        );
    }

    proptest! {
        /// Shards 1..N cover every position exactly once, in order, and differ in size by
        /// at most one.
        #[test]
        fn shards_cover_the_list_exactly_once(len in 0usize..5000, count in 1u32..300) {
            let mut next = 0;
            let mut sizes = Vec::new();
            for index in 1..=count {
                let r = Shard { index, count }.range(len);
                prop_assert_eq!(r.start, next);
                next = r.end;
                sizes.push(r.len());
            }
            prop_assert_eq!(next, len);
            let (min, max) = (sizes.iter().min().copied(), sizes.iter().max().copied());
            prop_assert!(max.unwrap_or(0) - min.unwrap_or(0) <= 1);
        }
    }
}
