//! rhospace: facade.
