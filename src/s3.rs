//! Signed S3 requests (HEAD, ranged GET, LIST) against the manifest's
//! endpoint. Not built yet.
