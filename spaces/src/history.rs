//! History stores for hard checkpoints (memory and redb). Work in progress: issue 5.
