//! Errors as the Admin API names them. The wire name is chosen here once, so every door maps the same
//! typed kind to its own representation (an exception class name, an HTTP status).

use std::fmt;

use crate::hv::{PowerAction, PowerState, StateConflict};

/// What went wrong, by meaning. Each door chooses its own wire form from this alone — the Admin API an
/// exception class, HTTP a status, virthttp an error code — with an exhaustive match, so a new kind cannot go
/// unmapped. The detail enums keep every distinction a Qubes client can see.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// The request itself is malformed: an argument or payload the operation does not take.
    Malformed,
    /// The caller may not do this.
    Denied,
    /// Something the request names does not exist.
    NotFound(Missing),
    /// A value the request gives is not acceptable.
    Invalid(Invalid),
    /// The request contradicts the current state.
    Conflict(Conflict),
    /// The host cannot do it now: not enough memory, a guest that did not stop in time.
    Unavailable(Unavailable),
    /// The operation failed on the way (the hypervisor, storage, or generally), not because of the request.
    Failed(Failure),
    /// This operation does not exist here.
    NotImplemented,
}

/// What a request named that does not exist.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Missing {
    Qube,
    Property,
    Feature,
    Tag,
    Label,
    Pool,
    Volume,
    Revision,
    /// A volume clone token that was never given out, or was used up.
    CloneToken,
}

/// Which kind of value was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Invalid {
    /// A value in general (a name, a size, a rule).
    Value,
    /// A property's value.
    PropertyValue,
    Uuid,
    Tag,
    /// A label's name.
    Label,
    /// A label's colour.
    LabelColor,
}

/// How a request contradicts the current state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Conflict {
    /// A qube of that name or uuid exists already.
    QubeExists,
    /// Other qubes depend on the qube (as template, netvm, default…).
    QubeInUse,
    LabelInUse,
    PoolInUse,
    /// A volume being copied cannot be copied into again yet.
    VolumeCopyInUse,
    /// The qube needs a template it does not have.
    NoTemplate,
    /// The volume keeps no revisions (not saved on stop, or `revisions_to_keep` 0), so none can be taken.
    KeepsNoRevisions,
    /// The qube must have been started at some point (it has a hypervisor domain).
    NotStarted,
    NotRunning,
    NotPaused,
    NotSuspended,
    NotHalted,
}

/// What the host lacks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Unavailable {
    Memory,
    /// A guest did not shut down within its timeout.
    ShutdownTimeout,
}

/// Where an operation failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Failure {
    /// In general (a store write, an internal limit).
    General,
    /// Acting on a qube (mostly the hypervisor).
    Qube,
    /// In a storage pool.
    Storage,
}

/// A failed request: what kind of failure, and the fully formatted message the client shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    pub kind: ErrorKind,
    pub message: String,
    /// Set when a power action was refused because of the qube's state, for doors that say so in
    /// their own words (the message is the Admin API's).
    pub conflict: Option<StateConflict>,
}

impl Error {
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Self { kind, message: message.into(), conflict: None }
    }
    /// This error refuses `action` because the qube is in `state`.
    pub fn refusing(mut self, action: PowerAction, state: PowerState) -> Self {
        self.conflict = Some(StateConflict { action, state });
        self
    }
    pub fn protocol(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Malformed, message)
    }
    pub fn value(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Invalid(crate::error::Invalid::Value), message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Denied, message)
    }
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::Failed(crate::error::Failure::General), message)
    }
    pub fn vm_not_found(token: &str) -> Self {
        Self::new(ErrorKind::NotFound(crate::error::Missing::Qube), format!("No such domain: '{token}'"))
    }
    /// `holder` is the qube's name, or `Qubes` for global properties.
    pub fn no_such_property(holder: &str, name: &str) -> Self {
        Self::new(
            ErrorKind::NotFound(crate::error::Missing::Property),
            format!("Invalid property '{name}' of {holder}"),
        )
    }
    pub fn not_halted(vm: &str) -> Self {
        Self::new(ErrorKind::Conflict(crate::error::Conflict::NotHalted), format!("Domain is not powered off: '{vm}'"))
    }
    pub fn in_use(vm: &str, why: Option<&str>) -> Self {
        let message = match why {
            Some(why) => why.to_string(),
            None => format!("Domain is in use: '{vm}'"),
        };
        Self::new(ErrorKind::Conflict(crate::error::Conflict::QubeInUse), message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:?}: {}", self.kind, self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
