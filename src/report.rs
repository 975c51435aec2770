//! Final reports of a run (summary table, JSON, JUnit). Not built yet.
