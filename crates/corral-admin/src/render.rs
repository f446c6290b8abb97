//! The service's typed answers in qubesd's reply formats.

use std::sync::Arc;

use corral_core::props::PropType;
use corral_core::{Error, Result};
use corral_service::{PropView, Response, VmSummary};

/// A rendered answer: the content of an OK reply, or a stream the connection serves.
pub enum Rendered {
    Content(Arc<Vec<u8>>),
    Events(corral_service::Subscription),
    Stats(String),
}

fn lines<I: IntoIterator<Item = S>, S: AsRef<str>>(items: I) -> Vec<u8> {
    let mut out = Vec::new();
    for i in items {
        out.extend_from_slice(i.as_ref().as_bytes());
        out.push(b'\n');
    }
    out
}

fn get_line(v: &PropView) -> String {
    format!("default={} type={} {}", corral_core::text::format_bool(v.is_default), v.ty.name(), v.value)
}

fn get_all_line(name: &str, v: &PropView) -> String {
    format!("{name} {}", get_line(v).replace('\\', "\\\\").replace('\n', "\\n"))
}

fn default_line(d: Option<(PropType, String)>) -> Vec<u8> {
    d.map(|(ty, v)| format!("type={} {v}", ty.name()).into_bytes()).unwrap_or_default()
}

fn vm_lines(vms: &[VmSummary]) -> Vec<u8> {
    let mut out = Vec::with_capacity(vms.len() * 80);
    for vm in vms {
        let line = format!("{} class={} state={} uuid={}\n", vm.name, vm.class.name(), vm.state, vm.uuid);
        out.extend_from_slice(line.as_bytes());
    }
    out
}

/// The last complete qube list's reply content and the model generation it shows.
pub type VmListCache = parking_lot::Mutex<Option<(u64, Arc<Vec<u8>>)>>;

/// `response` as reply content. A complete qube list is rendered once per model generation and kept in
/// `all_vms`.
pub fn render(response: Response, all_vms: &VmListCache) -> Result<Rendered> {
    let content = match response {
        Response::Events(subscription) => return Ok(Rendered::Events(subscription)),
        Response::Stats { vm } => return Ok(Rendered::Stats(vm)),
        Response::SystemInfo(json) => return Ok(Rendered::Content(json)),
        Response::Vms { list, generation: Some(generation) } => {
            if let Some((g, bytes)) = &*all_vms.lock() {
                if *g == generation {
                    return Ok(Rendered::Content(bytes.clone()));
                }
            }
            let bytes = Arc::new(vm_lines(&list));
            *all_vms.lock() = Some((generation, bytes.clone()));
            return Ok(Rendered::Content(bytes));
        }
        Response::Vms { list, generation: None } => vm_lines(&list),
        Response::Done => Vec::new(),
        Response::Text(text) => text.into_bytes(),
        Response::Names(names) => lines(names),
        Response::Flag(on) => {
            if on {
                b"1".to_vec()
            } else {
                b"0".to_vec()
            }
        }
        Response::Number(n) => n.to_string().into_bytes(),
        Response::Property(view) => get_line(&view).into_bytes(),
        Response::Properties(all) => {
            let mut out = Vec::new();
            for (name, view) in all {
                out.extend_from_slice(get_all_line(name, &view).as_bytes());
                out.push(b'\n');
            }
            out
        }
        Response::PropertyDefault(default) => default_line(default),
        Response::Fields(fields) => lines(fields.iter().map(|(k, v)| format!("{k}={v}"))),
        Response::Drivers(drivers) => {
            lines(drivers.iter().map(|(name, params)| format!("{name} {}", params.join(" "))))
        }
        Response::Volume(info) => lines(info.fields.iter().map(|(k, v)| format!("{k}={v}"))),
        Response::Firewall(rules) => lines(rules.iter().map(|r| r.to_line())),
        // One per line without a newline after the last, as qubesd answers.
        Response::Interfaces(codes) => codes.join("\n").into_bytes(),
        Response::ImportTarget { size, path } => {
            let path = path.display().to_string();
            if path.contains(char::is_whitespace) {
                return Err(Error::protocol("Path contains whitespace"));
            }
            format!("{size} {path}").into_bytes()
        }
        // Answers to the HTTP doors' own requests, which no Admin API method parses into.
        Response::Usage { .. }
        | Response::DiskRates(_)
        | Response::NicRates(_)
        | Response::Revision(_)
        | Response::Revisions(_)
        | Response::PoolUsage(_)
        | Response::Hypervisor { .. }
        | Response::Scheduler { .. }
        | Response::Networks(_)
        | Response::Network(_)
        | Response::Leases(_)
        | Response::NotStarted(_) => return Err(Error::generic("No Admin API reply for this answer")),
    };
    Ok(Rendered::Content(Arc::new(content)))
}
