//! Integration tests: they run the real `nhacviec` binary.
