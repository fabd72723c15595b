//! Integration tests: they run the real `nhacviec` binary, always with its clock set.
//!
//! [`support`] is the one harness: one-shot commands ([`support::Test`]), a running daemon
//! ([`support::daemon`]), the configs ([`support::config`]), the SMTP test server, HTTP, the
//! database. The test files are by concern: the commands (`check`, `plan`, `calendar`), mail
//! (`send-test`, `preview`, what a reminder looks like, SMTP failures), the daemon (time,
//! restarts, reload, signals, health), acknowledgements (`ack/`), the HTTP server's
//! defences (`web`), disk and database faults (`disk`: a full or read-only file system,
//! an unreadable key; as root), a crash test and a browser test.

mod ack;
mod backup;
mod browser;
mod calendar;
mod channels;
mod check;
mod crash;
mod daemon;
mod disk;
mod fuzz_corpus;
mod lang;
mod mail;
mod plan;
mod smtp;
mod soak;
mod stand_in;
mod support;
mod unit_page;
mod web;
mod zalo;
mod zalo_stand_in;
