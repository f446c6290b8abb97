//! The Admin API door: qubesd's UNIX-socket protocol over the Corral service.

pub mod frame;
pub mod methods;
mod render;
mod server;

pub use server::{bind, serve, Door, Limits, Stop};
