//! Similarity matchers (cosine, dot, squared L2). Work in progress: issue 4.
