//! What the engine tells the command that runs it while it works, and how the command tells
//! the engine to stop: an injected [`Reporter`] and a [`Cancel`] flag. The engine itself never
//! prints, watches signals or exits.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use tokio::sync::Notify;

use super::report::HostReport;

/// Where one host's run is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// Opening the SSH connection.
    Connecting,
    /// The fact-gathering script is running.
    Probing,
    /// Planning locally from the facts (deferred steps may ask a service elsewhere).
    Planning,
    /// Streaming files the apply script needs.
    Uploading {
        /// Files to upload.
        files: usize,
        /// Their total size.
        bytes: u64,
    },
    /// The apply script is running.
    Applying {
        /// Steps that change.
        steps: usize,
        /// Handlers due.
        handlers: usize,
    },
    /// The apply script began its `step`-th part (1-based) of `of`: a change or a handler.
    Step {
        /// Position of the part, from 1.
        step: usize,
        /// Parts of the script (changes and handler runs).
        of: usize,
        /// What the part does: a resource id, or `handler <id>`.
        what: String,
    },
    /// Waiting for the services to work after the changes.
    Verifying {
        /// Checks polled.
        checks: usize,
    },
}

impl std::fmt::Display for Event {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Event::Connecting => f.write_str("connecting"),
            Event::Probing => f.write_str("gathering facts"),
            Event::Planning => f.write_str("planning"),
            Event::Uploading { files, bytes } => {
                write!(f, "uploading {files} file(s), {:.1} MB", *bytes as f64 / 1_000_000.0)
            }
            Event::Applying { steps, handlers } => write!(f, "applying {steps} change(s), {handlers} handler(s)"),
            Event::Step { step, of, what } => write!(f, "applying step {step}/{of}: {what}"),
            Event::Verifying { checks } => write!(f, "verifying {checks} service(s)"),
        }
    }
}

/// Receives progress from a run; the command that runs the engine decides how to show it.
pub trait Reporter: Send + Sync {
    /// A host moved on to `event`.
    fn event(&self, _host: &str, _event: &Event) {}
    /// A host is done: called as soon as it is, before other hosts finish.
    fn finished(&self, _report: &HostReport) {}
}

/// A reporter that shows nothing.
#[derive(Debug, Clone, Copy, Default)]
pub struct Silent;

impl Reporter for Silent {}

/// Set when the user asks the run to stop (the first Ctrl-C): hosts that have not started
/// applying stop there (their uploads removed); apply scripts already running finish.
#[derive(Debug, Clone, Default)]
pub struct Cancel(Arc<CancelInner>);

#[derive(Debug, Default)]
struct CancelInner {
    flag: AtomicBool,
    notify: Notify,
}

impl Cancel {
    /// A flag not yet set.
    pub fn new() -> Self {
        Cancel::default()
    }

    /// Asks the run to stop.
    pub fn cancel(&self) {
        self.0.flag.store(true, Ordering::SeqCst);
        self.0.notify.notify_waiters();
    }

    /// Whether the run was asked to stop.
    pub fn is_cancelled(&self) -> bool {
        self.0.flag.load(Ordering::SeqCst)
    }

    /// Resolves once the run is asked to stop.
    pub async fn cancelled(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            // Registered before the check: a cancel between the two still wakes us.
            notified.as_mut().enable();
            if self.is_cancelled() {
                return;
            }
            notified.await;
        }
    }
}

/// What a run is given by the command that starts it.
#[derive(Clone)]
pub struct Context {
    /// Set to stop the run.
    pub cancel: Cancel,
    /// Told about progress.
    pub reporter: Arc<dyn Reporter>,
}

impl Default for Context {
    fn default() -> Self {
        Context { cancel: Cancel::new(), reporter: Arc::new(Silent) }
    }
}
