//! rhospace-spaces (core arrives next).
