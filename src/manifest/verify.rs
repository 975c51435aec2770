//! The manifest's `verify` section: what `apply` checks on each database
//! after its import, and `verify` on demand. Set in `defaults` and per
//! database; a database's own values win field by field.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Checks after the import. Every database is also checked, always, for
/// being ONLINE, read-write and multi-user, for its owner and for its
/// collation.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Verify {
    /// Database users whose SID matches no login: `report` (default) lists
    /// them, `fix` remaps each to the login of the same name
    /// (`ALTER USER ... WITH LOGIN`), `ignore` does not look.
    pub orphaned_users: Option<OrphanedUsers>,
    /// `DBCC CHECKDB ... WITH NO_INFOMSGS`: `none` (default), `physical_only`
    /// or `full`. Errors fail the database.
    pub checkdb: Option<Checkdb>,
    /// How long one CHECKDB may run, e.g. `4h`. Default 2h.
    #[schemars(regex(pattern = r"^\s*([0-9]+\s*[a-zA-Z]+\s*)+$"), example = &"4h")]
    pub checkdb_timeout: Option<String>,
    /// `keep` (default) reports the level after the import; `latest` raises
    /// it to the highest the instance offers; a number (such as 150) sets
    /// that level.
    pub compatibility_level: Option<CompatibilityLevel>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrphanedUsers {
    #[default]
    Report,
    Fix,
    Ignore,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Checkdb {
    #[default]
    None,
    PhysicalOnly,
    Full,
}

/// `keep`, `latest` or a level such as `150`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum CompatibilityLevel {
    #[default]
    Keep,
    Latest,
    Level(u16),
}

/// The levels any SQL Server release has had (80: SQL Server 2000, 170:
/// SQL Server 2025). Whether an instance offers one is `plan`'s question.
pub const KNOWN_LEVELS: [u16; 10] = [80, 90, 100, 110, 120, 130, 140, 150, 160, 170];

impl Serialize for CompatibilityLevel {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            CompatibilityLevel::Keep => s.serialize_str("keep"),
            CompatibilityLevel::Latest => s.serialize_str("latest"),
            CompatibilityLevel::Level(n) => s.serialize_u16(*n),
        }
    }
}

impl<'de> Deserialize<'de> for CompatibilityLevel {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = CompatibilityLevel;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("keep, latest or a compatibility level such as 150")
            }
            fn visit_u64<E: serde::de::Error>(self, n: u64) -> Result<Self::Value, E> {
                u16::try_from(n)
                    .map(CompatibilityLevel::Level)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Unsigned(n), &self))
            }
            fn visit_i64<E: serde::de::Error>(self, n: i64) -> Result<Self::Value, E> {
                u64::try_from(n)
                    .map_err(|_| E::invalid_value(serde::de::Unexpected::Signed(n), &self))
                    .and_then(|n| self.visit_u64(n))
            }
            fn visit_str<E: serde::de::Error>(self, word: &str) -> Result<Self::Value, E> {
                match word {
                    "keep" => Ok(CompatibilityLevel::Keep),
                    "latest" => Ok(CompatibilityLevel::Latest),
                    other => match other.parse::<u16>() {
                        Ok(n) => Ok(CompatibilityLevel::Level(n)),
                        Err(_) => Err(E::invalid_value(serde::de::Unexpected::Str(word), &self)),
                    },
                }
            }
        }
        d.deserialize_any(Visitor)
    }
}

impl JsonSchema for CompatibilityLevel {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "CompatibilityLevel".into()
    }

    fn inline_schema() -> bool {
        true
    }

    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "anyOf": [
                {"enum": ["keep", "latest"]},
                {"type": "integer", "enum": KNOWN_LEVELS}
            ],
            "default": "keep"
        })
    }
}

/// Default of `verify.checkdb_timeout`.
pub const DEFAULT_CHECKDB_TIMEOUT: Duration = Duration::from_secs(2 * 3600);

/// One database's checks, with the defaults applied.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    pub orphaned_users: OrphanedUsers,
    pub checkdb: Checkdb,
    pub checkdb_timeout: Duration,
    pub compatibility_level: CompatibilityLevel,
}

impl Settings {
    /// The database's own values over the defaults'; `parse` reads a
    /// timeout the checks have proved readable.
    pub fn of(
        defaults: Option<&Verify>,
        own: Option<&Verify>,
        parse: impl Fn(&str) -> Option<Duration>,
    ) -> Self {
        fn pick<T>(
            own: Option<&Verify>,
            defaults: Option<&Verify>,
            f: fn(&Verify) -> Option<T>,
        ) -> Option<T> {
            own.and_then(f).or_else(|| defaults.and_then(f))
        }
        let timeout = own
            .and_then(|v| v.checkdb_timeout.as_deref())
            .or_else(|| defaults.and_then(|v| v.checkdb_timeout.as_deref()))
            .and_then(parse)
            .unwrap_or(DEFAULT_CHECKDB_TIMEOUT);
        Settings {
            orphaned_users: pick(own, defaults, |v| v.orphaned_users).unwrap_or_default(),
            checkdb: pick(own, defaults, |v| v.checkdb).unwrap_or_default(),
            checkdb_timeout: timeout,
            compatibility_level: pick(own, defaults, |v| v.compatibility_level).unwrap_or_default(),
        }
    }

    /// What was asked for explicitly that only T-SQL can do: CHECKDB,
    /// remapping users, setting the level. (The default report of orphaned
    /// users is said at run time, as a note, where it cannot run.)
    pub fn sql_only_checks(&self) -> Vec<&'static str> {
        let mut out = Vec::new();
        if self.checkdb != Checkdb::None {
            out.push("checkdb");
        }
        if self.orphaned_users == OrphanedUsers::Fix {
            out.push("orphaned_users: fix");
        }
        if self.compatibility_level != CompatibilityLevel::Keep {
            out.push("compatibility_level");
        }
        out
    }

    pub fn asks_sql_only(&self) -> bool {
        !self.sql_only_checks().is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_database_overrides_the_defaults_field_by_field() {
        let defaults: Verify = serde_json::from_str(
            r#"{"orphaned_users": "fix", "checkdb": "physical_only", "compatibility_level": "latest"}"#,
        )
        .unwrap();
        let own: Verify = serde_json::from_str(r#"{"compatibility_level": 150}"#).unwrap();
        let parse = |t: &str| humantime::parse_duration(t).ok();
        let s = Settings::of(Some(&defaults), Some(&own), parse);
        assert_eq!(s.orphaned_users, OrphanedUsers::Fix);
        assert_eq!(s.checkdb, Checkdb::PhysicalOnly);
        assert_eq!(s.compatibility_level, CompatibilityLevel::Level(150));
        assert_eq!(s.checkdb_timeout, DEFAULT_CHECKDB_TIMEOUT);
        let none = Settings::of(None, None, parse);
        assert_eq!(none.orphaned_users, OrphanedUsers::Report);
        assert_eq!(none.compatibility_level, CompatibilityLevel::Keep);
        assert!(serde_json::from_str::<Verify>(r#"{"compatibility_level": "newest"}"#).is_err());
    }
}
