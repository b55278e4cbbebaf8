//! The VectorDB data collection. Work in progress: issue 4.
