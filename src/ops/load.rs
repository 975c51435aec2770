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
