//! Corral's model of a virtualization host, in the shape of the Qubes OS Admin API. No I/O happens here:
//! the service layer reads and writes through `corral-store` and `corral-storage`.

pub mod access;
pub mod app;
pub mod domain;
pub mod error;
pub mod event;
pub mod firewall;
pub mod hv;
pub mod label;
pub mod plan;
pub mod props;
pub mod setup;
pub mod text;
pub mod user;
pub mod volume;

pub use access::{Credential, Operation, Principal};
pub use app::{App, HostInfo, Op};
pub use domain::{Class, Domain};
pub use error::{Error, ErrorKind, Result};
pub use event::{Cause, Event};
