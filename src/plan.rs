//! `plan`: every online prerequisite check, read-only. Not built yet (its
//! issue builds it on the backup reader, S3 client and targets).
