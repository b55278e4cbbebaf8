//! Embedding storage and similarity search for rhospace. The store and kernels arrive with their issue.
