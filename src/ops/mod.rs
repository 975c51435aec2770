//! The library's operations, as cargo's `ops` are: typed requests in, typed
//! outcomes and errors out. Nothing here prints, prompts or exits; the
//! `commands/` layer parses arguments, renders what comes back and maps it
//! to exit codes, and `demo` runs the very same [`apply`].

mod apply;
#[cfg(feature = "emulator")]
pub mod demo;
pub mod discover;
pub mod inspect;
mod load;
mod status;
mod verify;

pub use apply::{
    Applied, ApplyError, ApplyRequest, Confirmation, Consent, InstanceLabel, Note, ReportError,
    Stopped, Ui, apply,
};
pub use load::{LoadError, Selected, Validation, load, select, validate};
pub use status::{ChecksSaid, Now, Recorded, StatusRow, status};
pub use verify::{Verified, VerifyOutcome, VerifyRequest, verify};

use crate::journal::State;
use crate::manifest::Env;
use crate::plan::{Context, Plan};
use std::sync::Arc;

/// The state folder when none is given: `.sqlflex-import/` beside the
/// manifest.
pub fn default_state_dir(selected: &Selected) -> std::path::PathBuf {
    selected.loaded.dir.join(".sqlflex-import")
}

pub use crate::plan::TargetsError;

/// `plan`: every prerequisite of the selected databases, checked read-only.
/// Returns the context too, so `apply` goes on with the same clients.
pub async fn plan(
    selected: Selected,
    env: Env<'_>,
    state: &State,
    options: crate::plan::Options,
) -> Result<(Arc<Context>, Plan), TargetsError> {
    let Selected { loaded, indexes } = selected;
    let ctx = Arc::new(Context::new(loaded, &indexes, env)?);
    let plan = crate::plan::plan(&ctx, &indexes, state, options).await;
    Ok((ctx, plan))
}
