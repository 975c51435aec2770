//! Loading a manifest and selecting its databases.

use crate::manifest::select::{Selection, SelectionError};
use crate::manifest::{self, Env, Loaded, Rejected};
use std::path::Path;

/// A valid manifest and the databases this run is about.
pub struct Selected {
    pub loaded: Loaded,
    /// Indexes into `loaded.manifest.databases`, in manifest order.
    pub indexes: Vec<usize>,
}

#[derive(Debug)]
pub enum LoadError {
    /// The manifest breaks its schema or its rules; every diagnostic is here.
    Invalid(Box<Rejected>),
    /// The manifest is valid, but `--only` or `--tag` name what it does
    /// not have.
    Selection {
        loaded: Box<Loaded>,
        error: SelectionError,
    },
}

pub fn load(path: &Path, selection: &Selection, env: Env) -> Result<Selected, LoadError> {
    let loaded = manifest::load(path, env).map_err(|r| LoadError::Invalid(Box::new(r)))?;
    select(loaded, selection)
}

pub fn select(loaded: Loaded, selection: &Selection) -> Result<Selected, LoadError> {
    match selection.apply(&loaded.manifest) {
        Ok(indexes) => Ok(Selected { loaded, indexes }),
        Err(error) => Err(LoadError::Selection {
            loaded: Box::new(loaded),
            error,
        }),
    }
}

/// What `validate` found: the diagnostics (none of them an error when the
/// manifest is valid) and, for a valid one, (selected, databases,
/// instances).
pub struct Validation {
    pub source: crate::manifest::SourceText,
    pub diagnostics: Vec<crate::diagnostic::Diagnostic>,
    pub summary: Option<(usize, usize, usize)>,
}

impl Validation {
    pub fn is_valid(&self) -> bool {
        !self
            .diagnostics
            .iter()
            .any(crate::diagnostic::Diagnostic::is_error)
    }
}

/// `validate`: every offline check. Without `strict` it needs none of the
/// manifest's environment: an unset variable or an absent secret file is a
/// warning naming it; with `strict` they are errors, as in `plan` and
/// `apply`.
pub fn validate(path: &Path, selection: &Selection, env: Env, strict: bool) -> Validation {
    use crate::diagnostic::Diagnostic;
    let checked = if strict {
        manifest::load(path, env).map(|l| (l.manifest, l.source, l.warnings))
    } else {
        manifest::check(path, env).map(|c| (c.manifest, c.source, c.warnings))
    };
    match checked {
        Err(rejected) => Validation {
            source: rejected.source,
            diagnostics: rejected.diagnostics,
            summary: None,
        },
        Ok((m, source, mut diagnostics)) => {
            let summary = match selection.apply(&m) {
                Ok(indexes) => Some((indexes.len(), m.databases.len(), m.instances.len())),
                Err(e) => {
                    diagnostics.push(Diagnostic::error(e.to_string()));
                    None
                }
            };
            Validation {
                source,
                diagnostics,
                summary,
            }
        }
    }
}
