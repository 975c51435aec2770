//! The local STACKIT stand-in (REST API, S3, TDS). Not built yet.
