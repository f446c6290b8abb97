//! Who asks, and what they ask for, in the one vocabulary authorization speaks whatever the door: the
//! Admin API's method names (the qrexec service names) with their argument and the qube they act on.

use std::borrow::Cow;
use std::fmt;

/// Who a request comes from.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Principal {
    /// dom0's own tools on the Admin API socket: the administrator of the host.
    AdminVm,
    /// A qube whose call reached the Admin API through qrexec (the request's source).
    Qube(String),
    /// A user of the HTTP door, with the credential that authenticated this request.
    User { name: String, credential: Credential },
    /// Nobody proved who they are: only what is public (the API description) is served to them, and every
    /// authorizer refuses them everything else.
    Anonymous,
}

/// How an HTTP user proved who they are; a policy may trust a long-lived key less than a password.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Credential {
    Password,
    Session,
    ServiceKey,
}

impl Principal {
    /// The principal an Admin API request's source names: `dom0` is the administrator, anything else a qube.
    pub fn from_source(source: &str) -> Principal {
        if source == crate::domain::DOM0 {
            Principal::AdminVm
        } else {
            Principal::Qube(source.to_string())
        }
    }

    pub fn is_admin_vm(&self) -> bool {
        matches!(self, Principal::AdminVm)
    }

    /// The qube a request is made from, as Qubes records it (the `created-by-` tag of what it creates): HTTP
    /// users act through the daemon, which runs in dom0.
    pub fn source_qube(&self) -> &str {
        match self {
            Principal::Qube(name) => name,
            Principal::AdminVm | Principal::User { .. } | Principal::Anonymous => crate::domain::DOM0,
        }
    }

    /// Whether the principal may set or remove `created-by-` tags, Qubes' record of which qube made which:
    /// a qube must not forge it; dom0's tools and the daemon's own users (acting from dom0) may.
    pub fn may_mark_creators(&self) -> bool {
        matches!(self, Principal::AdminVm | Principal::User { .. })
    }

    /// The HTTP user's name, for records that name who did something.
    pub fn user_name(&self) -> Option<&str> {
        match self {
            Principal::User { name, .. } => Some(name),
            _ => None,
        }
    }
}

impl fmt::Display for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Principal::AdminVm => f.write_str(crate::domain::DOM0),
            Principal::Qube(name) => write!(f, "qube {name}"),
            Principal::User { name, .. } => write!(f, "user {name}"),
            Principal::Anonymous => f.write_str("anonymous"),
        }
    }
}

/// What a request does to what: the Admin API method (or, for what only other doors can do, a `corral.`
/// method in the same style), its argument, and the qube it acts on as the caller named it (a name or
/// `uuid:…`; `dom0` for global calls). The target is never resolved before the check, so a refusal cannot
/// tell whether the qube exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation<'a> {
    pub method: Cow<'a, str>,
    pub arg: Cow<'a, str>,
    pub target: Cow<'a, str>,
}

impl<'a> Operation<'a> {
    pub fn new(method: impl Into<Cow<'a, str>>, arg: impl Into<Cow<'a, str>>, target: impl Into<Cow<'a, str>>) -> Self {
        Operation { method: method.into(), arg: arg.into(), target: target.into() }
    }

    /// A call on the host as a whole (the Admin API's destination `dom0`).
    pub fn global(method: impl Into<Cow<'a, str>>, arg: impl Into<Cow<'a, str>>) -> Self {
        Operation::new(method, arg, crate::domain::DOM0)
    }
}

impl fmt::Display for Operation<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.method)?;
        if !self.arg.is_empty() {
            write!(f, "+{}", self.arg)?;
        }
        write!(f, " on {}", self.target)
    }
}
