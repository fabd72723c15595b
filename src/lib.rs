//! nhacviec keeps the reporting deadlines of a Vietnamese local government on time.
//!
//! The pipeline, in the order data flows: [`config`] turns the admin's TOML file into a
//! validated [`config::Config`] (every problem reported at once, with file:line:col);
//! [`calendar`] knows which days are working days on the Vietnamese calendar (statutory and
//! lunar holidays, the yearly official schedules, local overrides); [`plan`] turns rules into
//! occurrences, obligations and reminder steps, purely, from the config and a time window,
//! and decides what falls due ([`plan::due`]); [`store`] keeps the outbox, the obligations
//! and the acknowledgements in SQLite; [`deliver`] renders and sends; [`engine`] is the
//! one-timer loop; [`web`] serves the pages; [`daemon`] puts them together and [`cli`] wires
//! the commands. The domain's words are [`state`]'s enums, the words people read are
//! [`present`]'s, and the wall clock is read in one place, [`clock`].

pub mod calendar;
pub mod checked;
pub mod cli;
pub mod clock;
pub mod config;
pub mod daemon;
pub mod deliver;
pub mod engine;
pub mod i18n;
pub mod ics;
pub mod plan;
pub mod present;
pub mod report;
pub mod state;
pub mod store;
#[cfg(test)]
mod testutil;
pub mod token;
pub mod web;
