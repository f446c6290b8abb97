//! Authorization is one step of every request, before the model is consulted for anything that could
//! reveal what exists. The qrexec policy engine will plug in here; until then the daemon trusts what
//! reaches it, as qubesd does: dom0 is fully trusted and other qubes were already admitted by qrexec.

use corral_core::Result;

use crate::Caller;

/// One call as the policy sees it: the Admin API method (the qrexec service name), its argument, and the
/// qube it acts on (`dom0` for global calls).
#[derive(Debug, Clone, Copy)]
pub struct Call<'a> {
    pub caller: &'a Caller,
    pub method: &'a str,
    pub arg: &'a str,
    pub target: &'a str,
}

pub trait Authorizer: Send + Sync {
    /// `Err` with `PermissionDenied` refuses the call.
    fn authorize(&self, call: &Call<'_>) -> Result<()>;
}

/// Every caller that reached the socket is allowed: dom0 directly, other qubes after qrexec's policy.
pub struct QrexecAdmitted;

impl Authorizer for QrexecAdmitted {
    fn authorize(&self, _call: &Call<'_>) -> Result<()> {
        Ok(())
    }
}
