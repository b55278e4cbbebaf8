//! Decoding the canonical encoding back into values (for the disk history). Work in progress: issue 5.
