//! Delivery: templates, channels and the outbox worker.

pub mod templates;
