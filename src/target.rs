//! The import target: one trait, implemented by the REST API and by the
//! stored procedure over TDS. Not built yet.
