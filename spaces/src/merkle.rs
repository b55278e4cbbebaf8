//! The persistent Merkle trie behind the state root. Work in progress: issue 5.
