//! Delivery: what a step becomes in the outbox ([`enqueue`]), the data its templates see
//! ([`context`]), the templates ([`templates`]), the channels behind one interface
//! ([`channel`]: [`email`] over [`smtp`] or files), the worker that sends ([`outbox`]), the
//! daily [`digest`] and the other [`notices`].
//!
//! What a reload replaces, it replaces whole: [`Applied`] holds the config, its templates and
//! the senders built from it, and [`Current`] swaps one `Arc` of it, so a send never sees the
//! new config with the old templates.

pub mod channel;
pub mod context;
pub mod digest;
pub mod email;
pub mod enqueue;
pub mod http;
pub mod limit;
pub mod notices;
pub mod outbox;
pub mod smtp;
pub mod telegram;
pub mod templates;
pub mod webhook;
pub mod zalo;

use std::collections::HashMap;
use std::sync::{Arc, RwLock};

use crate::config::Config;
use crate::state::Channel;
use crate::store::Store;
use channel::Sender;
use templates::Templates;

/// The config in force, with its templates and the senders built from it.
pub struct Applied {
    /// The config.
    pub config: Arc<Config>,
    /// Its templates.
    pub templates: Templates,
    /// One sender per channel that can send.
    senders: HashMap<Channel, Arc<dyn Sender>>,
    /// The `/status` password, from `server.admin_password_file`; `None` turns the page off.
    /// Read with the rest of the version, so a reload (SIGHUP, or the file watch) puts a new
    /// password in force for the next request, together with the config that names it.
    pub admin_password: Option<String>,
}

impl std::fmt::Debug for Applied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Applied").finish_non_exhaustive()
    }
}

impl Applied {
    /// The config and templates `check` accepted, with their senders. Reads the SMTP password,
    /// the CA file and the status page's password now, so a problem with them is reported at
    /// start or reload (which then keeps the version in force), not at the first use.
    pub fn new(
        config: Config,
        templates: Templates,
        store: Option<&Arc<Store>>,
    ) -> anyhow::Result<Applied> {
        let mut senders: HashMap<Channel, Arc<dyn Sender>> = HashMap::new();
        for &channel in Channel::ALL {
            if let Some(s) = sender_for(&config, channel, store)? {
                senders.insert(channel, s);
            }
        }
        let admin_password =
            match &config.server.admin_password_file {
                Some(f) => Some(crate::config::Secret::File(f.clone()).read().map_err(|e| {
                    anyhow::anyhow!("cannot read `server.admin_password_file`: {e}")
                })?),
                None => None,
            };
        Ok(Applied {
            config: Arc::new(config),
            templates,
            senders,
            admin_password,
        })
    }

    /// Sends `channel` through `sender` instead (tests).
    pub fn with_sender(mut self, channel: Channel, sender: Arc<dyn Sender>) -> Applied {
        self.senders.insert(channel, sender);
        self
    }

    /// The sender of a channel, if this version can send on it.
    pub fn sender(&self, channel: Channel) -> Option<&dyn Sender> {
        self.senders.get(&channel).map(|s| &**s)
    }

    /// "SMTP mail.example.invalid:587 (STARTTLS)", and the other channels, for the log.
    pub fn describe(&self) -> String {
        Channel::ALL
            .iter()
            .filter_map(|&c| self.sender(c).map(|s| s.describe().to_string()))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A message of `kind` for `channel`, rendered from `ctx`, the same way for the outbox,
/// `send-test` and `preview`: the email parts (a webhook carries them too); for Telegram its
/// message, fitted to Telegram's length, with the ack link as a button when Telegram takes
/// `public_url` (`ack_button` in the data); for Zalo the ZNS template and its parameters.
/// Returns the data as rendered, with the parts.
pub fn render(
    cfg: &Config,
    templates: &Templates,
    channel: Channel,
    kind: crate::state::TemplateKind,
    mut ctx: serde_json::Value,
) -> Result<(serde_json::Value, templates::Rendered), templates::RenderError> {
    if channel == Channel::Telegram {
        ctx["ack_button"] = serde_json::json!(
            ctx.get("ack_url").is_some() && telegram::button_url_ok(&cfg.organization.public_url)
        );
    }
    let mut r = templates.render(kind, &ctx)?;
    match channel {
        Channel::Telegram => r.telegram = Some(telegram::fit(templates, kind, &ctx)?),
        Channel::Zalo => r.zalo = Some(zalo::payload(cfg, templates, kind, &ctx)?),
        Channel::Email | Channel::Webhook => {}
    }
    Ok((ctx, r))
}

/// The sender of `channel` under `cfg`, or `None` when the config does not set the channel
/// up (or, for Zalo, whose tokens live in the database, when there is no `store`). Reads
/// its secrets now: a missing or malformed one is an error naming where it is, never its
/// value.
pub fn sender_for(
    cfg: &Config,
    channel: Channel,
    store: Option<&Arc<Store>>,
) -> anyhow::Result<Option<Arc<dyn Sender>>> {
    Ok(match channel {
        Channel::Email => Some(Arc::new(email::Mailer::new(cfg)?)),
        Channel::Telegram => match &cfg.channels.telegram {
            Some(tg) => Some(Arc::new(telegram::TelegramSender::new(tg)?)),
            None => None,
        },
        Channel::Webhook => match &cfg.channels.webhook {
            Some(wh) => Some(Arc::new(webhook::WebhookSender::new(wh)?)),
            None => None,
        },
        Channel::Zalo => match store {
            Some(store) => {
                zalo::ZaloSender::new(cfg, store.clone())?.map(|s| Arc::new(s) as Arc<dyn Sender>)
            }
            None => None,
        },
    })
}

/// The [`Applied`] in force, shared by the engine, the outbox and the pages.
#[derive(Debug)]
pub struct Current(RwLock<Arc<Applied>>);

impl Current {
    /// Starts with `applied`.
    pub fn new(applied: Applied) -> Current {
        Current(RwLock::new(Arc::new(applied)))
    }

    /// What is in force now (a snapshot: a reload does not change it under the caller).
    pub fn get(&self) -> Arc<Applied> {
        self.0.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The config in force now.
    pub fn config(&self) -> Arc<Config> {
        self.get().config.clone()
    }

    /// Puts `applied` in force, whole.
    pub fn replace(&self, applied: Applied) {
        *self.0.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(applied);
    }
}
