//! A target database's identity: its instance (the manifest's key) and its
//! name compared as SQL Server compares names, ignoring case. One type for
//! the plan, the engine, the journal, the report and the progress display,
//! so `Sales` and `sales` on one instance are one database everywhere.

use std::fmt;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DbKey {
    instance: String,
    /// Lower-cased: the default collation ignores case.
    name: String,
}

impl DbKey {
    pub fn new(instance: &str, database: &str) -> Self {
        DbKey {
            instance: instance.to_owned(),
            name: database.to_lowercase(),
        }
    }

    pub fn instance(&self) -> &str {
        &self.instance
    }

    /// The name in its folded (lower-case) form.
    pub fn folded_name(&self) -> &str {
        &self.name
    }
}

impl fmt::Display for DbKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}@{}", self.name, self.instance)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_ignore_case_instances_do_not() {
        assert_eq!(DbKey::new("prod", "Sales"), DbKey::new("prod", "sales"));
        assert_ne!(DbKey::new("prod", "sales"), DbKey::new("Prod", "sales"));
    }
}
