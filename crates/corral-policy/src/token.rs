//! Qube tokens and where each may appear.

use std::fmt;

/// The UUID under which dom0 is known; a rule may name it instead of `dom0`.
pub const DOM0_UUID: &str = "00000000-0000-0000-0000-000000000000";

/// One qube designation of the policy language.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Token {
    /// `*`: every qube, dom0 included.
    Wildcard,
    /// `@anyvm`: every qube but dom0.
    AnyVm,
    /// `@adminvm`: dom0 (a rule naming `dom0` means the same).
    AdminVm,
    /// `@default`: the caller named no target.
    Default,
    /// `@dispvm`: a new disposable from the caller's `default_dispvm`.
    DispVm,
    /// `@dispvm:X`: a new disposable from the template X (a name or `uuid:…`).
    DispVmOf(String),
    /// `@dispvm:@tag:T`: a new disposable from any disposable template tagged T.
    DispVmTag(String),
    /// `@tag:T`.
    Tag(String),
    /// `@type:Class`.
    Type(String),
    /// A qube's name, or `uuid:…`.
    Name(String),
}

/// The places a token can stand; not every token is valid in every place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Place {
    /// Third column of a rule.
    Source,
    /// Fourth column of a rule.
    Target,
    /// `target=` and `default_target=` of `allow` / `ask`.
    Redirect,
    /// What the caller asked for.
    IntendedTarget,
}

impl fmt::Display for Place {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Place::Source => "source",
            Place::Target => "target",
            Place::Redirect => "redirect",
            Place::IntendedTarget => "intended target",
        })
    }
}

/// Why a token was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TokenError {
    #[error("empty {0} token")]
    Empty(Place),
    #[error("nothing after {prefix:?} in {place} token")]
    EmptyValue { place: Place, prefix: &'static str },
    #[error("{token:?} is not valid as {place}")]
    Invalid { place: Place, token: String },
}

// Longer prefixes that share a start with a shorter one come later: a value that itself starts with `@`
// belongs to a longer prefix or to no token at all.
const PREFIXES: [&str; 4] = ["@type:", "@tag:", "@dispvm:", "@dispvm:@tag:"];

impl Token {
    /// Reads `text` as a token valid in `place`.
    pub fn parse(text: &str, place: Place) -> Result<Token, TokenError> {
        if text.is_empty() {
            return Err(TokenError::Empty(place));
        }
        if !(text.starts_with('@') || text == "*") {
            return Ok(Token::Name(text.to_owned()));
        }
        let exact = match text {
            "*" => Some(Token::Wildcard),
            "@anyvm" => Some(Token::AnyVm),
            "@adminvm" => Some(Token::AdminVm),
            "@default" => Some(Token::Default),
            "@dispvm" => Some(Token::DispVm),
            _ => None,
        };
        if let Some(token) = exact {
            return if token.valid_in(place) { Ok(token) } else { Err(invalid(text, place)) };
        }
        for prefix in PREFIXES {
            let Some(value) = text.strip_prefix(prefix) else {
                continue;
            };
            let token = match prefix {
                "@type:" => Token::Type(value.to_owned()),
                "@tag:" => Token::Tag(value.to_owned()),
                "@dispvm:" => Token::DispVmOf(value.to_owned()),
                _ => Token::DispVmTag(value.to_owned()),
            };
            if !token.valid_in(place) {
                continue;
            }
            if value.is_empty() {
                return Err(TokenError::EmptyValue { place, prefix });
            }
            if value.starts_with('@') {
                continue;
            }
            return Ok(token);
        }
        Err(invalid(text, place))
    }

    /// Whether this kind of token may stand in `place` (upstream's table).
    pub fn valid_in(&self, place: Place) -> bool {
        use Token::*;
        match place {
            Place::Source => {
                matches!(self, Wildcard | AnyVm | AdminVm | Type(_) | Tag(_) | DispVmOf(_) | DispVmTag(_) | Name(_))
            }
            Place::Target => true,
            Place::Redirect => matches!(self, AdminVm | DispVm | DispVmOf(_) | Name(_)),
            Place::IntendedTarget => {
                matches!(self, AdminVm | Default | DispVm | DispVmOf(_) | Name(_))
            }
        }
    }
}

fn invalid(text: &str, place: Place) -> TokenError {
    TokenError::Invalid { place, token: text.to_owned() }
}

impl fmt::Display for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Token::Wildcard => f.write_str("*"),
            Token::AnyVm => f.write_str("@anyvm"),
            Token::AdminVm => f.write_str("@adminvm"),
            Token::Default => f.write_str("@default"),
            Token::DispVm => f.write_str("@dispvm"),
            Token::DispVmOf(v) => write!(f, "@dispvm:{v}"),
            Token::DispVmTag(v) => write!(f, "@dispvm:@tag:{v}"),
            Token::Tag(v) => write!(f, "@tag:{v}"),
            Token::Type(v) => write!(f, "@type:{v}"),
            Token::Name(v) => f.write_str(v),
        }
    }
}

/// Whether a designation means dom0: `@adminvm`, `dom0` or dom0's UUID.
pub fn is_dom0(text: &str) -> bool {
    text == "@adminvm" || text == "dom0" || text.strip_prefix("uuid:") == Some(DOM0_UUID)
}
