//! A value that must never be shown: tokens, passwords, S3 keys.
//!
//! The only way to read it is [`Secret::expose`], so every place that puts a
//! secret on the wire is easy to find, and anything that formats it (logs,
//! errors, reports, `{:?}` in a panic) prints `***`.

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::borrow::Cow;
use std::fmt;

#[derive(Clone, PartialEq, Eq, Default)]
pub struct Secret(String);

impl Secret {
    /// Every secret the process holds is also known to the redaction step,
    /// so a server that echoes it back cannot put it on the screen.
    pub fn new(value: impl Into<String>) -> Self {
        let value = value.into();
        crate::redact::register(&value);
        Secret(value)
    }

    /// The clear text, for the one place that sends it to a server.
    pub fn expose(&self) -> &str {
        &self.0
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl<'de> Deserialize<'de> for Secret {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        String::deserialize(d).map(Secret::new)
    }
}

/// Serializing masks too: a secret can only leave the process through `expose`.
impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str("***")
    }
}

impl JsonSchema for Secret {
    fn schema_name() -> Cow<'static, str> {
        "Secret".into()
    }

    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": "string",
            "writeOnly": true,
            "description": "A secret. Prefer `${ENV_VAR}` or the matching `*_file` key over writing it into the manifest."
        })
    }
}

/// Largest secret file read (`*_file` keys): a token, password or key is a
/// few hundred bytes; `/dev/zero` or a mistaken 1 GiB path must not be
/// read into memory.
pub const MAX_SECRET_FILE: u64 = 16 * 1024;
/// Largest key file read (a service-account key or a PEM private key; an
/// RSA-4096 key in JSON is about 5 KiB).
pub const MAX_KEY_FILE: u64 = 64 * 1024;
/// Largest `sql.ca_file` read: a bundle of a few hundred CA certificates.
pub const MAX_CA_FILE: u64 = 1024 * 1024;

/// Reads a file of at most `limit` bytes as UTF-8 text; a larger one is an
/// error that says so, after reading no more than `limit + 1` bytes.
pub fn read_bounded(path: &std::path::Path, limit: u64) -> std::io::Result<String> {
    use std::io::Read;
    let file = std::fs::File::open(path)?;
    let mut bytes = Vec::new();
    file.take(limit + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > limit {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("larger than {} KiB", limit / 1024),
        ));
    }
    String::from_utf8(bytes)
        .map_err(|_| std::io::Error::new(std::io::ErrorKind::InvalidData, "not UTF-8 text"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn never_formats_its_value() {
        let s = Secret::new("hunter2");
        assert_eq!(format!("{s} {s:?} {:?}", Some(&s)), "*** *** Some(***)");
        assert_eq!(serde_json::to_string(&s).unwrap(), "\"***\"");
        assert_eq!(s.expose(), "hunter2");
    }
}
