//! Policy text → typed rules and directives. Reads no files: includes come out as directives for the caller's
//! loader to follow.

use crate::token::{Place, Token, TokenError};

/// Where a rule or directive was written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub file: String,
    pub line: usize,
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// A syntax error, with where it is.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{origin}: {kind}")]
pub struct SyntaxError {
    pub origin: Origin,
    pub kind: SyntaxErrorKind,
}

/// Why a line was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SyntaxErrorKind {
    #[error("a rule needs service, argument, source, target and action")]
    WrongNumberOfFields,
    #[error("service {0:?} has characters a service name cannot have")]
    BadService(String),
    #[error("argument {0:?} has characters an argument cannot have")]
    BadArgument(String),
    #[error("argument {0:?} must start with +")]
    ArgumentWithoutPlus(String),
    #[error("a rule for every service (*) must take every argument (*)")]
    ArgumentForWildcardService,
    #[error(transparent)]
    Token(#[from] TokenError),
    #[error("unknown action {0:?}")]
    UnknownAction(String),
    #[error("option {0:?} is not key=value")]
    OptionSyntax(String),
    #[error("option {0:?} given twice")]
    DuplicateOption(String),
    #[error("option {key:?} takes yes or no, not {value:?}")]
    NotYesNo { key: String, value: String },
    #[error("{action} takes no option {key:?}")]
    UnknownOption { action: &'static str, key: String },
    #[error("allow for an @default target must say target=")]
    DefaultWithoutRedirect,
    #[error("wrong number of parameters for {0}")]
    DirectiveParams(&'static str),
    #[error("unknown directive {0:?}")]
    UnknownDirective(String),
}

/// What a matching rule does, with its options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    Allow {
        target: Option<Token>,
        user: Option<String>,
        /// Default no.
        notify: bool,
        /// Default yes.
        autostart: bool,
    },
    Deny {
        /// Default yes.
        notify: bool,
    },
    Ask {
        target: Option<Token>,
        default_target: Option<Token>,
        user: Option<String>,
        notify: bool,
        autostart: bool,
    },
}

impl Action {
    /// The `target=` redirect, if any.
    pub fn redirect(&self) -> Option<&Token> {
        match self {
            Action::Allow { target, .. } | Action::Ask { target, .. } => target.as_ref(),
            Action::Deny { .. } => None,
        }
    }

    pub fn notify(&self) -> bool {
        match self {
            Action::Allow { notify, .. } | Action::Deny { notify } | Action::Ask { notify, .. } => *notify,
        }
    }
}

/// One rule. `service`/`argument` of `None` stand for `*`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    pub service: Option<String>,
    pub argument: Option<String>,
    pub source: Token,
    pub target: Token,
    pub action: Action,
    pub origin: Origin,
}

/// A directive; paths are as written (relative ones are the loader's to resolve).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Directive {
    /// `!include FILE`: FILE's rules in the new format, here.
    Include(String),
    /// `!include-dir DIR`: every policy file of DIR, here.
    IncludeDir(String),
    /// `!include-service SERVICE ARG FILE`, or `!include FILE` / `$include:FILE` inside such a file: FILE in the
    /// old per-service format, for that service and argument.
    IncludeService { service: String, argument: String, path: String },
    /// `!compat-4.0`: the old `/etc/qubes-rpc/policy` files, here.
    Compat40,
}

/// One line that is neither blank nor a comment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Entry {
    Rule(Rule),
    Directive { directive: Directive, origin: Origin },
}

// Characters of a qrexec call name; `+` separates the argument, so a service cannot have it.
fn rpc_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '+' | '-' | '.' | '_')
}

fn service_and_argument(service: &str, argument: &str) -> Result<(Option<String>, Option<String>), SyntaxErrorKind> {
    let service = (service != "*").then(|| service.to_owned());
    if let Some(s) = &service {
        if s.chars().any(|c| c == '+' || !rpc_char(c)) {
            return Err(SyntaxErrorKind::BadService(s.clone()));
        }
    }
    let argument = (argument != "*").then(|| argument.to_owned());
    if let Some(a) = &argument {
        if !a.chars().all(rpc_char) {
            return Err(SyntaxErrorKind::BadArgument(a.clone()));
        }
        if !a.starts_with('+') {
            return Err(SyntaxErrorKind::ArgumentWithoutPlus(a.clone()));
        }
        if service.is_none() {
            return Err(SyntaxErrorKind::ArgumentForWildcardService);
        }
    }
    Ok((service, argument))
}

fn build_rule(
    service: &str,
    argument: &str,
    source: &str,
    target: &str,
    action: &str,
    params: &[&str],
    origin: &Origin,
) -> Result<Rule, SyntaxErrorKind> {
    let (service, argument) = service_and_argument(service, argument)?;
    let source = Token::parse(source, Place::Source)?;
    let target = Token::parse(target, Place::Target)?;
    let name: &'static str = match action {
        "allow" => "allow",
        "deny" => "deny",
        "ask" => "ask",
        other => return Err(SyntaxErrorKind::UnknownAction(other.to_owned())),
    };
    let mut options: Vec<(&str, &str)> = Vec::new();
    for param in params {
        let (key, value) = param.split_once('=').ok_or_else(|| SyntaxErrorKind::OptionSyntax((*param).to_owned()))?;
        if options.iter().any(|(k, _)| *k == key) {
            return Err(SyntaxErrorKind::DuplicateOption(key.to_owned()));
        }
        options.push((key, value));
    }
    let mut flags: Vec<(&str, bool)> = Vec::new();
    for (key, value) in &options {
        if matches!(*key, "notify" | "autostart") {
            let yes = match *value {
                "yes" => true,
                "no" => false,
                _ => return Err(SyntaxErrorKind::NotYesNo { key: (*key).to_owned(), value: (*value).to_owned() }),
            };
            flags.push((key, yes));
        }
    }
    let allowed: &[&str] = match name {
        "allow" => &["target", "user", "notify", "autostart"],
        "deny" => &["notify"],
        _ => &["target", "default_target", "user", "notify", "autostart"],
    };
    if let Some((key, _)) = options.iter().find(|(k, _)| !allowed.contains(k)) {
        return Err(SyntaxErrorKind::UnknownOption { action: name, key: (*key).to_owned() });
    }
    let text = |k: &str| options.iter().find(|(key, _)| *key == k).map(|(_, v)| *v);
    let flag = |k: &str, default: bool| flags.iter().find(|(key, _)| *key == k).map_or(default, |(_, v)| *v);
    let redirect = |k: &str| text(k).map(|v| Token::parse(v, Place::Redirect)).transpose();
    let action = match name {
        "allow" => Action::Allow {
            target: redirect("target")?,
            user: text("user").map(str::to_owned),
            notify: flag("notify", false),
            autostart: flag("autostart", true),
        },
        "deny" => Action::Deny { notify: flag("notify", true) },
        _ => Action::Ask {
            target: redirect("target")?,
            default_target: redirect("default_target")?,
            user: text("user").map(str::to_owned),
            notify: flag("notify", false),
            autostart: flag("autostart", true),
        },
    };
    if target == Token::Default && matches!(action, Action::Allow { target: None, .. }) {
        return Err(SyntaxErrorKind::DefaultWithoutRedirect);
    }
    Ok(Rule { service, argument, source, target, action, origin: origin.clone() })
}

fn directive(words: &[&str]) -> Result<Directive, SyntaxErrorKind> {
    match words {
        ["!include", path] => Ok(Directive::Include((*path).to_owned())),
        ["!include", ..] => Err(SyntaxErrorKind::DirectiveParams("!include")),
        ["!include-dir", path] => Ok(Directive::IncludeDir((*path).to_owned())),
        ["!include-dir", ..] => Err(SyntaxErrorKind::DirectiveParams("!include-dir")),
        ["!include-service", service, argument, path] => {
            // Checked here as a rule's would be, so a bad service fails even when its file holds no rule.
            service_and_argument(service, argument)?;
            Ok(Directive::IncludeService {
                service: (*service).to_owned(),
                argument: (*argument).to_owned(),
                path: (*path).to_owned(),
            })
        }
        ["!include-service", ..] => Err(SyntaxErrorKind::DirectiveParams("!include-service")),
        ["!compat-4.0"] => Ok(Directive::Compat40),
        ["!compat-4.0", ..] => Err(SyntaxErrorKind::DirectiveParams("!compat-4.0")),
        [other, ..] => Err(SyntaxErrorKind::UnknownDirective((*other).to_owned())),
        [] => Err(SyntaxErrorKind::UnknownDirective(String::new())),
    }
}

/// Parses a policy file in the current format. `file` names it in rules and errors.
pub fn parse_file(file: &str, text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let origin = Origin { file: file.to_owned(), line: index + 1 };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let words: Vec<&str> = line.split_whitespace().collect();
        let parsed = if line.starts_with('!') {
            directive(&words).map(|directive| Entry::Directive { directive, origin: origin.clone() })
        } else {
            match words.as_slice() {
                [service, argument, source, target, action, params @ ..] => {
                    build_rule(service, argument, source, target, action, params, &origin).map(Entry::Rule)
                }
                _ => Err(SyntaxErrorKind::WrongNumberOfFields),
            }
        };
        entries.push(parsed.map_err(|kind| SyntaxError { origin, kind })?);
    }
    Ok(entries)
}

/// Parses a file in the old per-service format (`source target action[,option…]`, `$` for `@`), as included by
/// `!include-service service argument file`. Its own includes stay in that format and for that service.
pub fn parse_service_file(service: &str, argument: &str, file: &str, text: &str) -> Result<Vec<Entry>, SyntaxError> {
    let mut entries = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let origin = Origin { file: file.to_owned(), line: index + 1 };
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        let line = line.replace("$include:", "!include ").replace('$', "@").replace(',', " ");
        let words: Vec<&str> = line.split_whitespace().collect();
        let parsed = if line.starts_with('!') {
            match words.as_slice() {
                ["!include", path] => Ok(Entry::Directive {
                    directive: Directive::IncludeService {
                        service: service.to_owned(),
                        argument: argument.to_owned(),
                        path: (*path).to_owned(),
                    },
                    origin: origin.clone(),
                }),
                ["!include", ..] => Err(SyntaxErrorKind::DirectiveParams("!include")),
                [other, ..] => Err(SyntaxErrorKind::UnknownDirective((*other).to_owned())),
                [] => Err(SyntaxErrorKind::UnknownDirective(String::new())),
            }
        } else {
            match words.as_slice() {
                [source, target, action, params @ ..] => {
                    build_rule(service, argument, source, target, action, params, &origin).map(Entry::Rule)
                }
                _ => Err(SyntaxErrorKind::WrongNumberOfFields),
            }
        };
        entries.push(parsed.map_err(|kind| SyntaxError { origin, kind })?);
    }
    Ok(entries)
}

/// A policy directory holds a file whose name policy files cannot have; upstream then denies every call.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid policy file name {0:?}: only a-z, 0-9, '_', '.' and '-' are allowed")]
pub struct BadFileName(pub String);

/// Which of a directory's file names are policy files, in load order: names ending in `.policy` and not starting
/// with `.`; other names are ignored. One such name with a character outside `[0-9a-z_.-]` refuses the lot.
pub fn policy_files<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<Vec<&'a str>, BadFileName> {
    let mut files: Vec<&str> = names.into_iter().filter(|n| !n.starts_with('.') && n.ends_with(".policy")).collect();
    if let Some(bad) = files
        .iter()
        .find(|n| !n.chars().all(|c| c.is_ascii_digit() || c.is_ascii_lowercase() || matches!(c, '_' | '.' | '-')))
    {
        return Err(BadFileName((*bad).to_owned()));
    }
    files.sort_unstable();
    Ok(files)
}

/// The files of several policy directories, merged: the first directory holding a name supplies it (upstream lists
/// the runtime directory first), and all are loaded in order of their names. Each item is (directory index, name).
pub fn merge_policy_dirs<'a>(dirs: &[Vec<&'a str>]) -> Result<Vec<(usize, &'a str)>, BadFileName> {
    let mut merged: Vec<(usize, &str)> = Vec::new();
    for (index, names) in dirs.iter().enumerate() {
        for name in policy_files(names.iter().copied())? {
            if !merged.iter().any(|(_, n)| *n == name) {
                merged.push((index, name));
            }
        }
    }
    merged.sort_by(|a, b| a.1.cmp(b.1));
    Ok(merged)
}
