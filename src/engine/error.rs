//! What can go wrong on a host, as types: a step's error ([`StepError`]) and a host's
//! ([`HostError`]). All of the engine's wording for failures lives here, in their `Display`.

use super::apply::LOCK_FILE;
use super::sections::FrameError;
use crate::transport::TransportError;

/// Why a step (a resource or a handler) failed or was skipped.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StepError {
    /// The step's probe exited non-zero.
    #[error("reading the current state failed (exit {rc}): {output}")]
    ProbeFailed {
        /// Its exit status.
        rc: i32,
        /// What it printed.
        output: String,
    },
    /// The resource could not make sense of its probe's output.
    #[error("cannot understand the current state: {0}")]
    Unparsable(String),
    /// The probe output lacks the file read of a deferred step.
    #[error("the fact-gathering output lacks a file read")]
    ReadMissing,
    /// Reading a deferred step's file failed on the host.
    #[error("reading {path} failed (exit {rc}): {output}")]
    ReadFailed {
        /// The file.
        path: String,
        /// Exit status of the read.
        rc: i32,
        /// What it printed.
        output: String,
    },
    /// A deferred step's file is a symbolic link: it is never followed (it could point at
    /// any file on the host, whose content would then be sent to this machine).
    #[error("refusing to read {path}: it is a symbolic link")]
    ReadSymlink {
        /// The file.
        path: String,
    },
    /// A deferred step's file read came back in a shape the engine does not know.
    #[error("{0}")]
    ReadGarbled(String),
    /// A deferred step could not be resolved (e.g. GitLab refused): its own words.
    #[error("{0}")]
    Resolve(String),
    /// The step's change (or a handler) exited non-zero.
    #[error("exit {rc}: {output}")]
    Failed {
        /// Its exit status.
        rc: i32,
        /// What it printed.
        output: String,
    },
    /// A file the step needs could not be uploaded.
    #[error("{0}")]
    Upload(String),
    /// The apply script's output could not be read: whether the step ran is unknown.
    #[error("outcome unknown: {0}")]
    OutcomeUnknown(String),
    /// The connection went away before the step reported.
    #[error("outcome unknown: the connection was lost before this step reported")]
    ConnectionLost,
    /// An earlier resource's probe failed, so this one's change was not attempted.
    #[error("not attempted: an earlier resource failed")]
    EarlierProbeFailed,
    /// An earlier step failed during the apply, which stopped there.
    #[error("not attempted: an earlier step failed")]
    EarlierStepFailed,
    /// The resource is as configured but its service does not work: why, and its log's tail.
    #[error("{0}")]
    Unhealthy(super::health::Verdict),
    /// The host's whole apply did not run.
    #[error("not applied: {0}")]
    NotApplied(NotApplied),
}

/// Why a host's apply did not run at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum NotApplied {
    /// The user pressed Ctrl-C before it started.
    #[error("interrupted (Ctrl-C)")]
    Interrupted,
    /// Another run holds the host's lock.
    #[error("another provision run holds the host's lock")]
    Locked,
    /// The host has no `flock`.
    #[error("the host has no `flock`")]
    NoFlock,
    /// A file the apply needs could not be uploaded.
    #[error("an upload failed")]
    UploadFailed,
    /// Another run applied after this one read the host.
    #[error("the host changed since it was read")]
    HostChanged,
}

/// Why a host failed as a whole (it may also have failed steps).
#[derive(Debug, Clone, thiserror::Error)]
pub enum HostError {
    /// Connecting, or the connection broke.
    #[error(transparent)]
    Transport(#[from] TransportError),
    /// The script produced no framed output at all (sudo refused, no sh, ...).
    #[error("the host ran nothing (exit {}): {stderr}", .status.map_or("signal".to_string(), |c| c.to_string()))]
    RanNothing {
        /// Exit status of the remote command (`None`: a signal).
        status: Option<i32>,
        /// What it printed on stderr.
        stderr: String,
    },
    /// The output broke the framing.
    #[error("{error}; stderr: {stderr}")]
    Framing {
        /// What was wrong.
        error: FrameError,
        /// What the host printed on stderr.
        stderr: String,
    },
    /// The probe script did not reach its end.
    #[error("the fact-gathering script did not finish (connection lost or output cut)")]
    ProbeUnfinished,
    /// The probe output lacks the pending-handlers part.
    #[error("the fact-gathering output lacks its last part")]
    ProbeIncomplete,
    /// The probe output has another number of parts than the host has steps.
    #[error("expected {expected} facts, got {got}")]
    FactCount {
        /// Steps.
        expected: usize,
        /// Parts found.
        got: usize,
    },
    /// Ctrl-C before the apply started.
    #[error("interrupted (Ctrl-C): nothing was changed on this host")]
    Interrupted,
    /// An upload failed, so the apply did not run.
    #[error("an upload failed; nothing was applied")]
    UploadFailed,
    /// Another run holds the host's lock.
    #[error("another provision run is applying to this host (lock {LOCK_FILE} is held); nothing was changed")]
    Locked,
    /// Another run applied to the host after this run read it: its plan is stale.
    #[error("the host changed since it was read (another provision run applied to it); nothing was changed")]
    HostChanged,
    /// The host cannot take the lock.
    #[error("the host has no `flock` (util-linux or busybox); nothing was changed")]
    NoFlock,
    /// The apply script's output could not be read (the message says why).
    #[error("{0}")]
    ApplyUnreadable(String),
    /// The apply script stopped reporting mid-way.
    #[error("the apply script did not finish: the connection was lost (owed handlers run on the next apply)")]
    ApplyLost,
    /// A bug: a task of the engine panicked.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Serializes an error as its message (the JSON report's `error` fields are strings).
pub fn serialize_display<S: serde::Serializer, E: std::fmt::Display>(e: &Option<E>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(e) => s.collect_str(e),
        None => s.serialize_none(),
    }
}
