//! nhacviec keeps the reporting deadlines of a Vietnamese local government on time.
//!
//! The pipeline, in the order data flows: [`config`] turns the admin's TOML file into a
//! validated [`config::Config`] (every problem reported at once, with file:line:col);
//! [`calendar`] knows which days are working days on the Vietnamese calendar (statutory and
//! lunar holidays, the yearly official schedules, local overrides); [`plan`] turns rules into
//! occurrences, obligations and reminder steps, purely, from the config and a time window.
//! Later stages (store, deliver, web, engine) consume the plan; [`cli`] wires the commands.
//! The wall clock is read in one place, [`clock`].

pub mod calendar;
pub mod checked;
pub mod cli;
pub mod clock;
pub mod config;
pub mod deliver;
pub mod engine;
pub mod plan;
pub mod report;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod token;
pub mod vi;
pub mod web;
