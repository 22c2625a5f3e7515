//! Alerts sent: channels defined and checked ([`ChannelSpec`], [`Channel`]),
//! the event document ([`Event`]) and its rendering for people
//! ([`message`]), sending a batch through a channel by e-mail, webhook,
//! Slack or a command ([`send`]), and the [`Deliverer`] that any process
//! runs to empty the store's outbox: claimed under a lease, one message (or
//! digest) per channel, results fenced, retries backed off.
//!
//! It does not decide what to alert on, nor enqueue anything: the scheduler
//! and workers do that, with [`Event::delivery`].

mod channel;
mod command;
mod deliver;
mod email;
mod event;
pub mod message;
mod send;

pub use channel::{
    Channel, ChannelSpec, DESCRIPTION_MAX, LIST_MAX, MaskedChannel, NAME_MAX, TEXT_MAX,
    TIMEOUT_MAX, mask_config, split_smtp_password,
};
pub use deliver::{
    ChannelCounts, Counters, Deliverer, LOG_READ_MAX, LOG_TAIL, Options, Pass, backoff, link,
    test_channel,
};
pub use email::message_id;
pub use event::{Batch, DIGEST_DOCS, EVENT_VERSION, Event, EventKind};
pub use send::{ANSWER_MAX, Answer, Refusal, Settings, send, signature};

/// What went wrong defining a channel or reading an event.
#[derive(Clone, Debug, thiserror::Error)]
pub enum Error {
    /// A bad setting or document; the message names the field.
    #[error("{0}")]
    Invalid(String),
}

pub type Result<T, E = Error> = std::result::Result<T, E>;
