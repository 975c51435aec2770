//! STACKIT authentication: static token or the service-account key flow.
//! Not built yet.
