//! Authorization is one step of every request, before the model is consulted for anything that could
//! reveal what exists. The policy engine will plug in here; until then the daemon trusts what reaches it, as
//! qubesd does: dom0 is fully trusted, other qubes were already admitted by qrexec, and HTTP users are the
//! host's administrators. Nobody unauthenticated is let through.

use corral_core::{Error, Operation, Principal, Result};

pub trait Authorizer: Send + Sync {
    /// `Err` with `PermissionDenied` refuses `op` to `principal`.
    fn authorize(&self, principal: &Principal, op: &Operation<'_>) -> Result<()>;
}

/// Every authenticated caller is allowed: dom0 directly, other qubes after qrexec's policy, HTTP users after
/// their password or key was checked.
pub struct QrexecAdmitted;

impl Authorizer for QrexecAdmitted {
    fn authorize(&self, principal: &Principal, _op: &Operation<'_>) -> Result<()> {
        match principal {
            Principal::Anonymous => Err(Error::denied("Not authenticated")),
            _ => Ok(()),
        }
    }
}
