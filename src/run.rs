//! `apply`'s engine: scheduling, submission, waiting, retries and the
//! journal. Not built yet.
