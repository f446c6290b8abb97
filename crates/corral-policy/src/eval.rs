//! Evaluation of one request against rules in order. Pure: the system is described by the caller.

use std::collections::BTreeSet;

use crate::parse::{Action, Origin, Rule};
use crate::token::{is_dom0, Place, Token, TokenError};

/// What the policy needs to know of one qube. dom0 is one of them, with class `AdminVM`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Qube {
    pub name: String,
    pub uuid: String,
    /// The class: `AppVM`, `TemplateVM`, `DispVM`, `AdminVM`, …
    pub class: String,
    pub tags: BTreeSet<String>,
    pub default_dispvm: Option<String>,
    pub template_for_dispvms: bool,
    /// Needed for `autostart=no`: only a running qube may be called then.
    pub running: bool,
    /// Internal qubes are never offered in an `ask`.
    pub internal: bool,
}

/// Every qube of the system.
#[derive(Debug, Clone, Default)]
pub struct System {
    pub qubes: Vec<Qube>,
}

impl System {
    /// The qube called `key`, or with `key` = `uuid:` + its UUID.
    pub fn get(&self, key: &str) -> Option<&Qube> {
        match key.strip_prefix("uuid:") {
            Some(uuid) => self.qubes.iter().find(|q| q.uuid == uuid),
            None => self.qubes.iter().find(|q| q.name == key),
        }
    }

    fn dispvm_template_of(&self, source: &str) -> Option<String> {
        self.get(source)?.default_dispvm.clone()
    }
}

/// A qrexec call to decide on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Request {
    pub service: String,
    /// With its leading `+` (`+` alone for none).
    pub argument: String,
    /// A name or `uuid:…`.
    pub source: String,
    /// As the caller wrote it; empty means `@default`.
    pub target: String,
}

/// Why a call is denied.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DenyReason {
    #[error("the argument {0:?} does not start with +")]
    BadArgument(String),
    #[error("the requested target is not valid: {0}")]
    BadTarget(TokenError),
    #[error("{0:?} is not a template for disposables")]
    NotDispVmTemplate(String),
    #[error("no rule matches")]
    NoMatchingRule,
    #[error("denied by policy {0}")]
    Rule(Origin),
    #[error("{0}: allow without a target from the caller or the policy")]
    NoTarget(Origin),
    #[error("{0}: allow to @dispvm but the caller has no default_dispvm")]
    NoDefaultDispVm(Origin),
    #[error("{origin}: {target} would have to be started, and autostart is no")]
    WouldAutostart { origin: Origin, target: String },
    #[error("{0}: ask, but there is no target to choose from")]
    NothingToAsk(Origin),
    #[error("{0}: ask, and nobody can be asked")]
    NotAsked(Origin),
    #[error("{0}: refused by the user")]
    RefusedByUser(Origin),
    #[error("{origin}: {target} is not among the targets of the ask")]
    NotAChoice { origin: Origin, target: String },
}

/// A decision on a request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Run the call in `target`: a qube's name (or `uuid:…` as written), `dom0`, or `@dispvm:T` for a new
    /// disposable from T.
    Allow {
        target: String,
        user: Option<String>,
        autostart: bool,
        notify: bool,
        origin: Origin,
    },
    /// The user must choose among `targets` (sorted), `default_target` preselected.
    Ask {
        targets: Vec<String>,
        default_target: Option<String>,
        user: Option<String>,
        autostart: bool,
        notify: bool,
        origin: Origin,
        /// The caller's intended target, for [`Decision::resolve_ask`].
        intended: String,
    },
    Deny {
        reason: DenyReason,
        notify: bool,
    },
}

impl Decision {
    /// What an `ask` becomes when nobody can be asked: a denial, or with `assume_yes` an allow to the target the
    /// caller intended, if that is among the choices (upstream's `assume_yes_for_ask`). Other decisions are
    /// returned unchanged.
    pub fn resolve_ask(self, assume_yes: bool) -> Decision {
        match &self {
            Decision::Ask { intended, .. } if assume_yes => {
                let intended = intended.clone();
                self.answer(Some(&intended))
            }
            Decision::Ask { origin, .. } => {
                Decision::Deny { reason: DenyReason::NotAsked(origin.clone()), notify: true }
            }
            _ => self,
        }
    }

    /// What an `ask` becomes with the user's reply: `None` if they refused, else the target they chose, which must
    /// be one of the choices. Other decisions are returned unchanged.
    pub fn answer(self, chosen: Option<&str>) -> Decision {
        let Decision::Ask { targets, user, autostart, notify, origin, .. } = self else {
            return self;
        };
        let Some(chosen) = chosen else {
            return Decision::Deny { reason: DenyReason::RefusedByUser(origin), notify };
        };
        if !targets.iter().any(|t| t == chosen) {
            return Decision::Deny {
                reason: DenyReason::NotAChoice { origin, target: chosen.to_owned() },
                notify: true,
            };
        }
        Decision::Allow { target: chosen.to_owned(), user, autostart, notify, origin }
    }
}

// Names compare directly; `uuid:` forms compare against the named qube's UUID.
fn same_qube(system: &System, a: &str, b: &str) -> bool {
    match (a.strip_prefix("uuid:"), b.strip_prefix("uuid:")) {
        (Some(_), Some(_)) => a == b,
        (Some(uuid), None) => system.get(b).is_some_and(|q| q.uuid == uuid),
        (None, Some(uuid)) => system.get(a).is_some_and(|q| q.uuid == uuid),
        (None, None) => a == b,
    }
}

/// The caller's target once checked against the system.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Intended {
    AdminVm,
    Default,
    DispVm,
    DispVmOf(String),
    Name(String),
}

impl Intended {
    fn text(&self) -> String {
        match self {
            Intended::AdminVm => "@adminvm".into(),
            Intended::Default => "@default".into(),
            Intended::DispVm => "@dispvm".into(),
            Intended::DispVmOf(t) => format!("@dispvm:{t}"),
            Intended::Name(n) => n.clone(),
        }
    }
}

// A named qube that does not exist becomes `@default`; `@dispvm:X` must name a disposable template.
fn verify(token: &Token, system: &System) -> Result<Intended, DenyReason> {
    Ok(match token {
        Token::AdminVm => Intended::AdminVm,
        Token::Default => Intended::Default,
        Token::DispVm => Intended::DispVm,
        Token::DispVmOf(t) => match system.get(t) {
            Some(q) if q.template_for_dispvms => Intended::DispVmOf(t.clone()),
            _ => return Err(DenyReason::NotDispVmTemplate(t.clone())),
        },
        Token::Name(n) if system.get(n).is_some() => Intended::Name(n.clone()),
        Token::Name(_) => Intended::Default,
        other => {
            return Err(DenyReason::BadTarget(TokenError::Invalid {
                place: Place::IntendedTarget,
                token: other.to_string(),
            }))
        }
    })
}

fn matches_source(token: &Token, source: &str, system: &System) -> bool {
    match token {
        Token::Wildcard => true,
        Token::AdminVm => is_dom0(source),
        Token::AnyVm => !is_dom0(source),
        Token::Type(c) => system.get(source).is_some_and(|q| &q.class == c),
        Token::Tag(t) => system.get(source).is_some_and(|q| q.tags.contains(t)),
        Token::Name(n) if is_dom0(n) => is_dom0(source),
        Token::Name(n) => same_qube(system, n, source),
        // A caller is a qube, never a disposable-to-be: these tokens name no source.
        Token::DispVmOf(_) | Token::DispVmTag(_) | Token::Default | Token::DispVm => false,
    }
}

fn matches_target(token: &Token, target: &Intended, source: &str, system: &System) -> bool {
    let text = target.text();
    // For `@dispvm`, the template it would be made from is the caller's default_dispvm.
    let template = || match target {
        Intended::DispVm => system.dispvm_template_of(source),
        Intended::DispVmOf(t) => Some(t.clone()),
        _ => None,
    };
    match token {
        Token::Wildcard => true,
        Token::AdminVm => is_dom0(&text),
        Token::AnyVm => !is_dom0(&text),
        Token::Default => *target == Intended::Default,
        Token::DispVm => *target == Intended::DispVm,
        Token::Type(c) => system.get(&text).is_some_and(|q| &q.class == c),
        Token::Tag(t) => system.get(&text).is_some_and(|q| q.tags.contains(t)),
        Token::DispVmOf(x) => match target {
            // Upstream compares the spelled templates here, without UUID lookup.
            Intended::DispVm => template().is_some_and(|t| *x == t),
            Intended::DispVmOf(t) => same_qube(system, x, t),
            _ => false,
        },
        Token::DispVmTag(tag) => {
            template().and_then(|t| system.get(&t)).is_some_and(|q| q.template_for_dispvms && q.tags.contains(tag))
        }
        Token::Name(n) if is_dom0(n) => is_dom0(&text),
        Token::Name(n) => same_qube(system, n, &text),
    }
}

fn matches_but_target(rule: &Rule, request: &Request, system: &System) -> bool {
    rule.service.as_ref().is_none_or(|s| *s == request.service)
        && rule.argument.as_ref().is_none_or(|a| *a == request.argument)
        && matches_source(&rule.source, &request.source, system)
}

fn name_of(system: &System, key: &str) -> Option<String> {
    if key.starts_with("uuid:") {
        return system.get(key).map(|q| q.name.clone());
    }
    if let Some(rest) = key.strip_prefix("@dispvm:uuid:") {
        return system.get(&format!("uuid:{rest}")).map(|q| format!("@dispvm:{}", q.name));
    }
    Some(key.to_owned())
}

// The concrete targets a rule's target (or redirect) stands for, when offering choices in an ask.
fn expand(token: &Token, system: &System) -> Vec<String> {
    let templates = |filter: &dyn Fn(&Qube) -> bool| -> Vec<String> {
        system
            .qubes
            .iter()
            .filter(|q| q.template_for_dispvms && filter(q))
            .map(|q| format!("@dispvm:{}", q.name))
            .collect()
    };
    let mut out: Vec<String> = match token {
        Token::Wildcard | Token::AnyVm => {
            let anyvm = *token == Token::AnyVm;
            let mut v: Vec<String> =
                system.qubes.iter().filter(|q| !(anyvm && is_dom0(&q.name))).map(|q| q.name.clone()).collect();
            v.extend(templates(&|_| true));
            v.push("@dispvm".into());
            v
        }
        Token::AdminVm => vec!["@adminvm".into()],
        Token::Default => vec![],
        Token::DispVm => vec!["@dispvm".into()],
        Token::Type(c) => system.qubes.iter().filter(|q| &q.class == c).map(|q| q.name.clone()).collect(),
        Token::Tag(t) => system.qubes.iter().filter(|q| q.tags.contains(t)).map(|q| q.name.clone()).collect(),
        Token::DispVmOf(x) => match system.get(x) {
            Some(q) if q.template_for_dispvms => vec![format!("@dispvm:{x}")],
            _ => vec![],
        },
        Token::DispVmTag(t) => templates(&|q| q.tags.contains(t)),
        Token::Name(n) if system.get(n).is_some() => vec![n.clone()],
        Token::Name(_) => vec![],
    };
    out.retain(|t| !t.is_empty());
    out.into_iter().filter_map(|t| name_of(system, &t)).collect()
}

fn targets_for_ask(rules: &[Rule], request: &Request, system: &System) -> BTreeSet<String> {
    let mut targets = BTreeSet::new();
    // Walking backwards lets an earlier deny take away what a later rule offered.
    for rule in rules.iter().rev().filter(|r| matches_but_target(r, request, system)) {
        let stands_for = expand(rule.action.redirect().unwrap_or(&rule.target), system);
        if matches!(rule.action, Action::Deny { .. }) {
            for t in &stands_for {
                targets.remove(t);
            }
        } else {
            targets.extend(stands_for);
        }
    }
    if targets.remove("@dispvm") {
        if let Some(t) = system.dispvm_template_of(&request.source) {
            targets.insert(format!("@dispvm:{t}"));
        }
    }
    if targets.remove("@adminvm") {
        targets.insert("dom0".into());
    }
    if let Some(source) = system.get(&request.source) {
        targets.remove(&source.name);
        targets.remove(&format!("uuid:{}", source.uuid));
    }
    targets.retain(|t| {
        let base = t.strip_prefix("@dispvm:").unwrap_or(t);
        system.get(base).is_none_or(|q| !q.internal)
    });
    targets
}

// Without autostart only dom0 and running qubes can be called; a disposable would have to start.
fn callable_without_autostart(target: &str, system: &System) -> bool {
    if is_dom0(target) {
        return true;
    }
    if target.starts_with("@dispvm") {
        return false;
    }
    system.get(target).is_some_and(|q| q.running)
}

/// Decides `request` by `rules` (in the order the files give them): the first rule whose service, argument,
/// source and target match decides; none matching denies.
pub fn evaluate(rules: &[Rule], system: &System, request: &Request) -> Decision {
    let deny = |reason: DenyReason, notify: bool| Decision::Deny { reason, notify };
    if !request.argument.starts_with('+') {
        return deny(DenyReason::BadArgument(request.argument.clone()), true);
    }
    let written = if request.target.is_empty() { "@default" } else { request.target.as_str() };
    let intended = match Token::parse(written, Place::IntendedTarget) {
        Ok(token) => match verify(&token, system) {
            Ok(i) => i,
            Err(reason) => return deny(reason, true),
        },
        Err(e) => return deny(DenyReason::BadTarget(e), true),
    };
    let Some(rule) = rules.iter().find(|r| {
        matches_but_target(r, request, system) && matches_target(&r.target, &intended, &request.source, system)
    }) else {
        return deny(DenyReason::NoMatchingRule, true);
    };
    let origin = rule.origin.clone();
    match &rule.action {
        Action::Deny { notify } => deny(DenyReason::Rule(origin), *notify),
        Action::Allow { target: redirect, user, notify, autostart } => {
            let actual = match redirect {
                Some(r) => match verify(r, system) {
                    Ok(i) => i,
                    Err(reason) => return deny(reason, true),
                },
                None => intended,
            };
            let target = match actual {
                Intended::Default => return deny(DenyReason::NoTarget(origin), true),
                Intended::DispVm => match system.dispvm_template_of(&request.source) {
                    Some(t) => format!("@dispvm:{t}"),
                    None => return deny(DenyReason::NoDefaultDispVm(origin), true),
                },
                Intended::AdminVm => "dom0".into(),
                other => other.text(),
            };
            if !autostart && !callable_without_autostart(&target, system) {
                return deny(DenyReason::WouldAutostart { origin, target }, *notify);
            }
            Decision::Allow { target, user: user.clone(), autostart: *autostart, notify: *notify, origin }
        }
        Action::Ask { target: redirect, default_target, user, notify, autostart } => {
            let mut targets: Vec<String> = match redirect {
                Some(r) if is_dom0(&r.to_string()) => vec!["dom0".into()],
                // Upstream offers a bare `@dispvm` here, which no reply can then be run in; offering the
                // caller's disposable template (as `default_target=@dispvm` does) keeps the choice usable.
                Some(Token::DispVm) => {
                    system.dispvm_template_of(&request.source).map(|t| format!("@dispvm:{t}")).into_iter().collect()
                }
                Some(r) => vec![r.to_string()],
                None => targets_for_ask(rules, request, system).into_iter().collect(),
            };
            if !autostart {
                targets.retain(|t| callable_without_autostart(t, system));
            }
            if targets.is_empty() {
                return deny(DenyReason::NothingToAsk(origin), true);
            }
            let default_target = default_target
                .as_ref()
                .and_then(|d| match d {
                    Token::DispVm => system.dispvm_template_of(&request.source).map(|t| format!("@dispvm:{t}")),
                    d if is_dom0(&d.to_string()) => Some("dom0".into()),
                    d => Some(d.to_string()),
                })
                .filter(|d| targets.contains(d));
            Decision::Ask {
                targets,
                default_target,
                user: user.clone(),
                autostart: *autostart,
                notify: *notify,
                origin,
                intended: intended.text(),
            }
        }
    }
}
