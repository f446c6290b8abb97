//! `/libvirt/networks`: the virtual networks of the daemon's libvirt connection, read-only. The daemon
//! does not manage networks (a qube with a netvm joins libvirt's `default` network), so creating,
//! changing and deleting them answer "Unsupported".

use corral_core::hv::NetworkDetails;
use serde_json::{json, Value};
use uuid::Uuid;

use super::envelope::Envelope;
use super::target::{self, Target};
use super::{caller, selection, Req, Selection};

const NOT_MANAGED: &str = "The daemon does not manage libvirt networks; change them with libvirt's own tools";

pub(super) fn handle(req: &Req<'_>, env: &mut Envelope) {
    if !req.service.can_inspect_hypervisor() {
        env.error(10);
        return;
    }
    if req.method == axum::http::Method::POST {
        env.error(-1);
        env.message("create", NOT_MANAGED);
        return;
    }
    let Some(chosen) = resolve(req, env) else { return };
    for n in &chosen {
        match req.method.as_str() {
            "GET" => query(req, n, env),
            "PATCH" => {
                env.error(-1);
                env.message("alter", NOT_MANAGED);
            }
            _ => {
                env.error(-1);
                env.message("delete", NOT_MANAGED);
            }
        }
    }
}

fn resolve(req: &Req<'_>, env: &mut Envelope) -> Option<Vec<NetworkDetails>> {
    let wanted = selection(req, env)?;
    let all = match req.service.network_details(&caller()) {
        Ok(all) => all,
        Err(e) => {
            env.error_because(500, e.message);
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
            match req.service.network_xml(&caller(), &n.uuid, flags) {
                Ok(xml) => env.result(Value::String(xml)),
                Err(e) => env.error_because(-2, e.message),
            }
        }
        Some("dhcp-leases") => {
            env.error(-1);
            env.message("dhcp-leases", "The daemon's libvirt binding has no DHCP lease query");
        }
        Some(_) => env.error(2),
    }
}
