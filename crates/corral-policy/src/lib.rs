//! The qrexec policy language as Qubes 4.2 evaluates it.
//!
//! [`parse_file`] turns the text of one policy file into typed [`Rule`]s and [`Directive`]s; [`load`] follows the
//! directives through the caller's [`PolicyFiles`] (reading files is the caller's) into one ordered list of rules.
//! [`evaluate`] decides a [`Request`] against such a list and a description of the [`System`], with no I/O.
//! An `ask` decision is left for the caller to put to the user, or to settle with [`Decision::resolve_ask`].

mod eval;
mod load;
mod parse;
mod token;

pub use eval::{evaluate, Decision, DenyReason, Qube, Request, System};
pub use load::{load, LoadError, PolicyFiles, MAX_DEPTH};
pub use parse::{
    merge_policy_dirs, parse_file, parse_service_file, policy_files, Action, BadFileName, Directive, Entry, Origin,
    Rule, SyntaxError, SyntaxErrorKind,
};
pub use token::{is_dom0, Place, Token, TokenError, DOM0_UUID};

#[cfg(test)]
mod tests;
