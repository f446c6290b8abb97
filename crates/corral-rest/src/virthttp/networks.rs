//! `/libvirt/networks`: the virtual networks of the daemon's libvirt connection, as virthttp shows and
//! changes them: list and query, create (a transient, started network from its XML), delete, autostart,
//! and the DHCP leases. Qubes with a netvm join libvirt's `default` network; nothing here is a qube.

use corral_core::hv::{DhcpLease, NetworkDetails};
use corral_core::ErrorKind;
use corral_service::{Request, Response};
use serde_json::{json, Value};
use uuid::Uuid;

use super::envelope::{code_of, Call, Envelope};
use super::json::Json;
use super::target::{self, Target};
use super::{run_actions, selection, unexpected, Outcome, Req, Selection};

/// virthttp's code for a failed network create or delete (it has no table entry: "Unknown error").
const NETWORK_CHANGE_FAILED: i32 = -999;

pub(super) fn handle(req: &Req<'_>, env: &mut Envelope) {
    if !req.service.can_inspect_hypervisor() {
        env.error(10);
        return;
    }
    if req.method == axum::http::Method::POST {
        return create(req, env);
    }
    let Some(chosen) = resolve(req, env) else { return };
    for n in &chosen {
        match req.method.as_str() {
            "GET" => query(req, n, env),
            "PATCH" => match req.body {
                Json::Obj(_) => {
                    alter(req, n, req.body, env);
                }
                Json::Arr(items) => run_actions(items, env, |action, env| alter(req, n, action, env)),
                _ => env.error(3),
            },
            _ => remove(req, n, env),
        }
    }
}

/// POST: a network XML string, or an array of them (with `depends`).
fn create(req: &Req<'_>, env: &mut Envelope) {
    let one = |item: &Json, env: &mut Envelope| match item {
        Json::Str(xml) => match req.run(Request::NetworkCreate { xml: xml.clone() }) {
            Ok(_) => {
                env.result(json!({"created": true}));
                Outcome::Success
            }
            Err(e) => {
                env.failed(Call::Making(NETWORK_CHANGE_FAILED), e);
                Outcome::Failure
            }
        },
        Json::Obj(_) => {
            env.error(-1);
            env.message("create", "A network is created from its XML, given as a JSON string");
            Outcome::Failure
        }
        _ => {
            env.error(0);
            Outcome::Failure
        }
    };
    match req.body {
        Json::Arr(items) => run_actions(items, env, one),
        body => {
            one(body, env);
        }
    }
}

/// DELETE: a persistent network is undefined (a running one goes on, transient, until stopped); a
/// transient one is stopped, which is all there is to remove of it.
fn remove(req: &Req<'_>, n: &NetworkDetails, env: &mut Envelope) {
    match req.run(Request::NetworkRemove { network: n.uuid }) {
        Ok(()) => env.result(json!({"deleted": true})),
        Err(e) => {
            env.error(code_of(&e, Call::On(NETWORK_CHANGE_FAILED)));
            env.message("libvirt", e.message);
        }
    }
}

/// One PATCH action: `{"autostart": bool}`, which virthttp declares without a handler. Only the first key
/// counts, as for domains.
fn alter(req: &Req<'_>, n: &NetworkDetails, action: &Json, env: &mut Envelope) -> Outcome {
    let Some((name, value)) = action.first() else {
        env.error(122);
        return Outcome::Failure;
    };
    match (name, value.as_bool()) {
        ("autostart", Some(on)) => match req.run(Request::NetworkSetAutostart { network: n.uuid, autostart: on }) {
            Ok(()) => Outcome::Success,
            Err(e) => {
                env.failed(Call::On(208), e);
                Outcome::Failure
            }
        },
        ("autostart", None) => {
            env.error(0);
            Outcome::Failure
        }
        _ => {
            env.error(123);
            Outcome::Failure
        }
    }
}

fn resolve(req: &Req<'_>, env: &mut Envelope) -> Option<Vec<NetworkDetails>> {
    let wanted = selection(req, env)?;
    let all = match req.ask(Request::NetworkList) {
        Ok(Response::Networks(all)) => all,
        // A caller who may not list the networks sees none: the same answers as for networks that do not exist.
        Err(e) if e.kind == ErrorKind::Denied => Vec::new(),
        Ok(other) => {
            env.failed(Call::On(500), unexpected(&other));
            return None;
        }
        Err(e) => {
            env.failed(Call::On(500), e);
            return None;
        }
    };
    match wanted {
        Selection::One { by_uuid, id } => {
            let uuid = by_uuid.then(|| Uuid::parse_str(id).ok()).flatten();
            let found = all.into_iter().find(|n| if by_uuid { Some(n.uuid) == uuid } else { n.name == id });
            if found.is_none() {
                env.error(100);
            }
            found.map(|n| vec![n])
        }
        Selection::List => Some(all.into_iter().filter(|n| listed(req.target, n)).collect()),
    }
}

/// The list flags `active`, `persistent`, `autostart`: each one given must match.
fn listed(t: &Target, n: &NetworkDetails) -> bool {
    [("active", n.active), ("persistent", n.persistent), ("autostart", n.autostart)]
        .iter()
        .all(|(key, fact)| t.flag_bool(key).is_none_or(|wanted| wanted == *fact))
}

fn query(req: &Req<'_>, n: &NetworkDetails, env: &mut Envelope) {
    match req.target.part(4) {
        None => {
            let mut v = json!({
                "name": n.name,
                "uuid": n.uuid.to_string(),
                "active": n.active,
                "autostart": n.autostart,
                "persistent": n.persistent,
            });
            // Only a network asked for by name or uuid shows its bridge, as in virthttp.
            if req.target.parts.len() == 4 {
                v["bridge"] = n.bridge.clone().map_or(Value::Null, Value::String);
            }
            env.result(v);
        }
        Some("dumpxml") => {
            let Some(flags) = target::NETWORK_XML.parse_csv(req.target.get("options")) else {
                env.error(301);
                return;
            };
            match req.ask(Request::NetworkXml { network: n.uuid, flags }) {
                Ok(Response::Text(xml)) => env.result(Value::String(xml)),
                Ok(other) => env.failed(Call::On(-2), unexpected(&other)),
                Err(e) => env.failed(Call::On(-2), e),
            }
        }
        Some("dhcp-leases") => {
            let mac = req.target.get("mac").map(str::to_string);
            match req.ask(Request::NetworkDhcpLeases { network: n.uuid, mac }) {
                Ok(Response::Leases(leases)) => env.result(Value::Array(leases.iter().map(lease).collect())),
                Ok(other) => env.failed(Call::On(-2), unexpected(&other)),
                Err(e) => env.failed(Call::On(-2), e),
            }
        }
        Some(_) => env.error(2),
    }
}

/// A lease with virthttp's keys.
fn lease(l: &DhcpLease) -> Value {
    json!({
        "type": if l.ipv6 { "ipv6" } else { "ipv4" },
        "client-id": l.client_id,
        "expiry-time": l.expiry_time,
        "hostname": l.hostname,
        "iaid": l.iaid,
        "interface": l.interface,
        "ip-address": l.ip_address,
        "mac-address": l.mac,
        "prefix": l.prefix,
    })
}
