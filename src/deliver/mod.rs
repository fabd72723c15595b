//! Delivery: what a step becomes in the outbox ([`enqueue`]), the data its templates see
//! ([`context`]), the templates ([`templates`]), the email channel ([`email`]) and the worker
//! that sends ([`outbox`]).

pub mod context;
pub mod digest;
pub mod email;
pub mod enqueue;
pub mod outbox;
pub mod smtp;
pub mod templates;
