//! Errors as the Admin API names them. The wire name is chosen here once, so every door maps the same
//! typed kind to its own representation (an exception class name, an HTTP status).

use std::fmt;

use crate::hv::{PowerAction, PowerState, StateConflict};

/// One variant per exception class a qubesd client can receive.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    ProtocolError,
    PermissionDenied,
    QubesException,
    QubesVMNotFoundError,
    QubesVMInvalidUUIDError,
    QubesVMAlreadyExistsError,
    QubesVMError,
    QubesVMInUseError,
    QubesVMNotStartedError,
    QubesVMNotRunningError,
    QubesVMNotPausedError,
    QubesVMNotSuspendedError,
    QubesVMNotHaltedError,
    QubesVMShutdownTimeoutError,
    QubesNoTemplateError,
    QubesMemoryError,
    QubesValueError,
    QubesPropertyValueError,
    QubesNoSuchPropertyError,
    QubesFeatureNotFoundError,
    QubesTagNotFoundError,
    QubesInvalidTagError,
    QubesLabelNotFoundError,
    QubesLabelInUseError,
    QubesInvalidLabelError,
    QubesInvalidLabelValueError,
    QubesPoolInUseError,
    QubesPoolNotFoundError,
    QubesVolumeNotFoundError,
    QubesVolumeRevisionNotFoundError,
    StoragePoolException,
    QubesVolumeCopyInUseError,
    QubesVolumeCopyTokenNotFoundError,
    QubesNotImplementedError,
}

impl ErrorKind {
    /// The Python exception class name a qubesadmin client maps back to an exception type.
    pub fn wire_name(self) -> &'static str {
        use ErrorKind::*;
        match self {
            ProtocolError => "ProtocolError",
            PermissionDenied => "PermissionDenied",
            QubesException => "QubesException",
            QubesVMNotFoundError => "QubesVMNotFoundError",
            QubesVMInvalidUUIDError => "QubesVMInvalidUUIDError",
            QubesVMAlreadyExistsError => "QubesVMAlreadyExistsError",
            QubesVMError => "QubesVMError",
            QubesVMInUseError => "QubesVMInUseError",
            QubesVMNotStartedError => "QubesVMNotStartedError",
            QubesVMNotRunningError => "QubesVMNotRunningError",
            QubesVMNotPausedError => "QubesVMNotPausedError",
            QubesVMNotSuspendedError => "QubesVMNotSuspendedError",
            QubesVMNotHaltedError => "QubesVMNotHaltedError",
            QubesVMShutdownTimeoutError => "QubesVMShutdownTimeoutError",
            QubesNoTemplateError => "QubesNoTemplateError",
            QubesMemoryError => "QubesMemoryError",
            QubesValueError => "QubesValueError",
            QubesPropertyValueError => "QubesPropertyValueError",
            QubesNoSuchPropertyError => "QubesNoSuchPropertyError",
            QubesFeatureNotFoundError => "QubesFeatureNotFoundError",
            QubesTagNotFoundError => "QubesTagNotFoundError",
            QubesInvalidTagError => "QubesInvalidTagError",
            QubesLabelNotFoundError => "QubesLabelNotFoundError",
            QubesLabelInUseError => "QubesLabelInUseError",
            QubesInvalidLabelError => "QubesInvalidLabelError",
            QubesInvalidLabelValueError => "QubesInvalidLabelValueError",
            QubesPoolInUseError => "QubesPoolInUseError",
            QubesPoolNotFoundError => "QubesPoolNotFoundError",
            QubesVolumeNotFoundError => "QubesVolumeNotFoundError",
            QubesVolumeRevisionNotFoundError => "QubesVolumeRevisionNotFoundError",
            StoragePoolException => "StoragePoolException",
            QubesVolumeCopyInUseError => "QubesVolumeCopyInUseError",
            QubesVolumeCopyTokenNotFoundError => "QubesVolumeCopyTokenNotFoundError",
            QubesNotImplementedError => "QubesNotImplementedError",
        }
    }
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
        Self::new(ErrorKind::ProtocolError, message)
    }
    pub fn value(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::QubesValueError, message)
    }
    pub fn denied(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::PermissionDenied, message)
    }
    pub fn generic(message: impl Into<String>) -> Self {
        Self::new(ErrorKind::QubesException, message)
    }
    pub fn vm_not_found(token: &str) -> Self {
        Self::new(ErrorKind::QubesVMNotFoundError, format!("No such domain: '{token}'"))
    }
    /// `holder` is the qube's name, or `Qubes` for global properties.
    pub fn no_such_property(holder: &str, name: &str) -> Self {
        Self::new(ErrorKind::QubesNoSuchPropertyError, format!("Invalid property '{name}' of {holder}"))
    }
    pub fn not_halted(vm: &str) -> Self {
        Self::new(ErrorKind::QubesVMNotHaltedError, format!("Domain is not powered off: '{vm}'"))
    }
    pub fn in_use(vm: &str, why: Option<&str>) -> Self {
        let message = match why {
            Some(why) => why.to_string(),
            None => format!("Domain is in use: '{vm}'"),
        };
        Self::new(ErrorKind::QubesVMInUseError, message)
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.kind.wire_name(), self.message)
    }
}

impl std::error::Error for Error {}

pub type Result<T, E = Error> = std::result::Result<T, E>;
