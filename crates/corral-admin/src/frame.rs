//! The qubesd wire format: request header parsing and reply encoding. Anything malformed at this level
//! is an `Abort`: the connection is dropped without a reply, as qubesd does.

use corral_core::error::{Conflict, Failure, Invalid, Missing, Unavailable};
use corral_core::{Error, ErrorKind, Event};

/// Requests larger than this are dropped unread.
pub const MAX_REQUEST: usize = 65536;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request<'a> {
    pub method: &'a str,
    pub arg: &'a str,
    pub src: &'a str,
    /// A qube name, or `uuid:…`; `keyword adminvm` is already turned into `dom0`.
    pub dest: &'a str,
    pub payload: &'a [u8],
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Abort;

/// Splits a complete request (everything up to the client's EOF).
pub fn parse(buf: &[u8]) -> Result<Request<'_>, Abort> {
    let nul = buf.iter().position(|b| *b == 0).ok_or(Abort)?;
    let (header, payload) = (&buf[..nul], &buf[nul + 1..]);
    let header = std::str::from_utf8(header).map_err(|_| Abort)?;
    if !header.is_ascii() {
        return Err(Abort);
    }
    let mut fields = header.splitn(4, ' ');
    let (Some(call), Some(src), Some(dest_type), Some(dest)) =
        (fields.next(), fields.next(), fields.next(), fields.next())
    else {
        return Err(Abort);
    };
    let dest = match (dest_type, dest) {
        ("keyword", "adminvm") => "dom0",
        ("name", dest) => dest,
        _ => return Err(Abort),
    };
    let (method, arg) = call.split_once('+').unwrap_or((call, ""));
    Ok(Request { method, arg, src, dest, payload })
}

pub fn ok(content: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(content.len() + 2);
    out.extend_from_slice(b"0\0");
    out.extend_from_slice(content);
    out
}

/// The Python exception class a qubesadmin client turns an error of `kind` back into.
pub fn exception_name(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::Malformed => "ProtocolError",
        ErrorKind::Denied => "PermissionDenied",
        ErrorKind::NotImplemented => "QubesNotImplementedError",
        ErrorKind::NotFound(missing) => match missing {
            Missing::Qube => "QubesVMNotFoundError",
            Missing::Property => "QubesNoSuchPropertyError",
            Missing::Feature => "QubesFeatureNotFoundError",
            Missing::Tag => "QubesTagNotFoundError",
            Missing::Label => "QubesLabelNotFoundError",
            Missing::Pool => "QubesPoolNotFoundError",
            Missing::Volume => "QubesVolumeNotFoundError",
            Missing::Revision => "QubesVolumeRevisionNotFoundError",
            Missing::CloneToken => "QubesVolumeCopyTokenNotFoundError",
        },
        ErrorKind::Invalid(invalid) => match invalid {
            Invalid::Value => "QubesValueError",
            Invalid::PropertyValue => "QubesPropertyValueError",
            Invalid::Uuid => "QubesVMInvalidUUIDError",
            Invalid::Tag => "QubesInvalidTagError",
            Invalid::Label => "QubesInvalidLabelError",
            Invalid::LabelColor => "QubesInvalidLabelValueError",
        },
        ErrorKind::Conflict(conflict) => match conflict {
            Conflict::QubeExists => "QubesVMAlreadyExistsError",
            Conflict::QubeInUse => "QubesVMInUseError",
            Conflict::LabelInUse => "QubesLabelInUseError",
            Conflict::PoolInUse => "QubesPoolInUseError",
            Conflict::VolumeCopyInUse => "QubesVolumeCopyInUseError",
            Conflict::NoTemplate => "QubesNoTemplateError",
            // No Admin API method takes a revision on request; qubesd would refuse such a value.
            Conflict::KeepsNoRevisions => "QubesValueError",
            Conflict::NotStarted => "QubesVMNotStartedError",
            Conflict::NotRunning => "QubesVMNotRunningError",
            Conflict::NotPaused => "QubesVMNotPausedError",
            Conflict::NotSuspended => "QubesVMNotSuspendedError",
            Conflict::NotHalted => "QubesVMNotHaltedError",
        },
        ErrorKind::Unavailable(Unavailable::Memory) => "QubesMemoryError",
        ErrorKind::Unavailable(Unavailable::ShutdownTimeout) => "QubesVMShutdownTimeoutError",
        ErrorKind::Failed(Failure::General) => "QubesException",
        ErrorKind::Failed(Failure::Qube) => "QubesVMError",
        ErrorKind::Failed(Failure::Storage) => "StoragePoolException",
    }
}

pub fn exception(e: &Error) -> Vec<u8> {
    let mut out = Vec::with_capacity(e.message.len() + 40);
    out.extend_from_slice(b"2\0");
    out.extend_from_slice(exception_name(e.kind).as_bytes());
    out.extend_from_slice(b"\0\0");
    out.extend_from_slice(e.message.as_bytes());
    out.push(0);
    out
}

pub fn event(e: &Event) -> Vec<u8> {
    let mut out = Vec::with_capacity(64);
    out.extend_from_slice(b"1\0");
    if let Some(s) = &e.subject {
        out.extend_from_slice(s.as_bytes());
    }
    out.push(0);
    out.extend_from_slice(e.name.as_bytes());
    out.push(0);
    for (k, v) in &e.kwargs {
        out.extend_from_slice(k.as_bytes());
        out.push(0);
        out.extend_from_slice(v.as_bytes());
        out.push(0);
    }
    out.push(0);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_method_arg_and_destination() {
        let r = parse(b"admin.vm.property.Get+netvm dom0 name work\0").unwrap();
        assert_eq!((r.method, r.arg, r.src, r.dest), ("admin.vm.property.Get", "netvm", "dom0", "work"));
        assert!(r.payload.is_empty());
    }

    #[test]
    fn arg_keeps_later_plus_signs_and_payload_keeps_nuls() {
        let r = parse(b"admin.vm.Shutdown+force+wait dom0 name a\0x\0y").unwrap();
        assert_eq!(r.arg, "force+wait");
        assert_eq!(r.payload, b"x\0y");
    }

    #[test]
    fn keyword_adminvm_means_dom0() {
        assert_eq!(parse(b"admin.vm.List dom0 keyword adminvm\0").unwrap().dest, "dom0");
    }

    #[test]
    fn malformed_headers_abort() {
        assert_eq!(parse(b"admin.vm.List dom0 name dom0"), Err(Abort));
        assert_eq!(parse(b"admin.vm.List dom0 name\0"), Err(Abort));
        assert_eq!(parse(b"admin.vm.List dom0 keyword other\0"), Err(Abort));
        assert_eq!(parse(b"admin.vm.List dom0 uuid x\0"), Err(Abort));
        assert_eq!(parse("admin.vm.List+é dom0 name dom0\0".as_bytes()), Err(Abort));
    }

    #[test]
    fn dest_keeps_the_rest_of_the_header() {
        assert_eq!(parse(b"m dom0 name a b\0").unwrap().dest, "a b");
    }

    #[test]
    fn event_framing() {
        let e = Event::global("domain-add").arg("vm", "work");
        assert_eq!(event(&e), b"1\0\0domain-add\0vm\0work\0\0");
    }
}
