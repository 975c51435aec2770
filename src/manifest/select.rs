//! Which databases of a manifest a command works on: `--only NAME`,
//! `--tag TAG` and `--shard K/N`.

use super::model::Manifest;
use super::structure::closest;
use std::fmt;
use std::str::FromStr;

/// `K/N`: this runner takes shard K (1-based) of N.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    pub index: u32,
    pub count: u32,
}

/// A `--shard` that is not K/N with 1 <= K <= N.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ShardError {
    #[error("`{0}` is not K/N, e.g. 2/4")]
    NotKOfN(String),
    #[error("`{0}` is not a number")]
    NotANumber(String),
    #[error("shard {index}/{count}: K must be between 1 and N")]
    OutOfRange { index: u32, count: u32 },
}

impl FromStr for Shard {
    type Err = ShardError;

    fn from_str(s: &str) -> Result<Self, ShardError> {
        let (k, n) = s
            .split_once('/')
            .ok_or_else(|| ShardError::NotKOfN(s.to_owned()))?;
        let number = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| ShardError::NotANumber(t.to_owned()))
        };
        let (index, count) = (number(k)?, number(n)?);
        if count == 0 || index == 0 || index > count {
            return Err(ShardError::OutOfRange { index, count });
        }
        Ok(Shard { index, count })
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Shard {
    /// Deterministic across runners, machines and Rust versions: FNV-1a of
    /// the lower-cased instance and name, so every runner agrees on the split
    /// without talking to the others.
    pub fn owns(&self, instance: &str, name: &str) -> bool {
        let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
        for b in instance
            .bytes()
            .chain([0])
            .chain(name.to_lowercase().bytes())
        {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
        }
        hash % u64::from(self.count) == u64::from(self.index - 1)
    }
}

/// `--only` or `--tag` naming what the manifest does not have.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SelectionError {
    #[error("--only {name}: no database of that name{}", .closest.as_ref().map(|n| format!("; did you mean `{n}`?")).unwrap_or_default())]
    NoSuchDatabase {
        name: String,
        closest: Option<String>,
    },
    #[error("--tag {0}: no database has that tag")]
    NoSuchTag(String),
}

#[derive(Debug, Clone, Default)]
pub struct Selection {
    pub only: Vec<String>,
    pub tags: Vec<String>,
    pub shard: Option<Shard>,
}

impl Selection {
    /// Indexes of the selected databases, in manifest order. Naming a
    /// database or tag that does not exist is an error: a typo in CI must not
    /// silently select nothing.
    pub fn apply(&self, m: &Manifest) -> Result<Vec<usize>, SelectionError> {
        let names: Vec<String> = m.databases.iter().map(|d| d.name.clone()).collect();
        for only in &self.only {
            if !names.iter().any(|n| n.eq_ignore_ascii_case(only)) {
                return Err(SelectionError::NoSuchDatabase {
                    name: only.clone(),
                    closest: closest(only, &names),
                });
            }
        }
        for tag in &self.tags {
            if !m.databases.iter().any(|d| d.tags.contains(tag)) {
                return Err(SelectionError::NoSuchTag(tag.clone()));
            }
        }
        Ok(m.databases
            .iter()
            .enumerate()
            .filter(|(_, d)| {
                self.only.is_empty() || self.only.iter().any(|o| o.eq_ignore_ascii_case(&d.name))
            })
            .filter(|(_, d)| self.tags.is_empty() || self.tags.iter().any(|t| d.tags.contains(t)))
            .filter(|(_, d)| self.shard.is_none_or(|s| s.owns(&d.instance, &d.name)))
            .map(|(i, _)| i)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shards_split_without_overlap_or_gap() {
        let names: Vec<String> = (0..1000).map(|i| format!("db{i}")).collect();
        let shards: Vec<Shard> = (1..=4).map(|k| format!("{k}/4").parse().unwrap()).collect();
        for name in &names {
            assert_eq!(
                shards.iter().filter(|s| s.owns("prod", name)).count(),
                1,
                "{name}"
            );
        }
        let sizes: Vec<usize> = shards
            .iter()
            .map(|s| names.iter().filter(|n| s.owns("prod", n)).count())
            .collect();
        assert!(sizes.iter().all(|&n| n > 200), "{sizes:?}");
    }

    #[test]
    fn parses_k_of_n() {
        assert_eq!(
            "2/4".parse::<Shard>().unwrap(),
            Shard { index: 2, count: 4 }
        );
        for bad in ["0/4", "5/4", "1/0", "x", "1-2"] {
            assert!(bad.parse::<Shard>().is_err(), "{bad}");
        }
    }
}
