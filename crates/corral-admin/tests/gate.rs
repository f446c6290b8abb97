//! The one gate: with an authorizer that refuses a qube, every Admin API method it calls is refused the same way
//! whether or not what it names exists, nothing changes, and lists and event streams show only what the caller
//! may see. dom0 is allowed everything throughout, to set the scene and to look at the result.

use std::collections::HashSet;
use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use corral_core::{Error, Operation, Principal, Result};
use corral_service::{Authorizer, Config, Service};

/// Allows dom0 everything and other callers only operations on `visible` targets.
struct SeesOnly {
    visible: HashSet<String>,
}

impl Authorizer for SeesOnly {
    fn authorize(&self, principal: &Principal, op: &Operation<'_>) -> Result<()> {
        if principal.is_admin_vm() || self.visible.contains(op.target.as_ref()) {
            Ok(())
        } else {
            Err(Error::denied(""))
        }
    }
}

struct Door {
    socket: PathBuf,
    _runtime: tokio::runtime::Runtime,
    _state: tempfile::TempDir,
    _stop: tokio::sync::watch::Sender<bool>,
}

impl Door {
    fn open(visible: &[&str]) -> Door {
        let state = tempfile::tempdir().expect("tempdir");
        let config = Config {
            state_dir: state.path().join("state"),
            durability: Default::default(),
            host: corral_core::HostInfo { memory_mib: 4096, cpus: 2 },
            hypervisor: Err("these tests run without libvirt".into()),
            vnc_listen: std::net::Ipv4Addr::LOCALHOST.into(),
        };
        let authorizer = SeesOnly { visible: visible.iter().map(|v| v.to_string()).collect() };
        let service = Service::open(config, Box::new(authorizer)).expect("service");
        let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
        let socket = state.path().join("qubesd.sock");
        let (stop, stopping) = tokio::sync::watch::channel(false);
        let limits =
            corral_admin::Limits { max_connections: 64, max_per_peer: 64, idle_timeout: Duration::from_secs(10) };
        let listener = {
            let _entered = runtime.enter();
            corral_admin::bind(&socket).expect("bind")
        };
        runtime.spawn(corral_admin::serve(service, listener, corral_admin::Door::Admin, stopping, limits));
        Door { socket, _runtime: runtime, _state: state, _stop: stop }
    }

    fn call(&self, src: &str, method: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
        call(&self.socket, src, method, dest, payload)
    }

    fn ok(&self, method: &str, dest: &str, payload: &[u8]) -> String {
        let reply = self.call("dom0", method, dest, payload);
        assert!(reply.starts_with(b"0\0"), "{method} {dest}: {}", String::from_utf8_lossy(&reply));
        String::from_utf8_lossy(&reply[2..]).into_owned()
    }

    /// Everything dom0 can see of the state, to compare before and after.
    fn snapshot(&self) -> Vec<String> {
        let mut all = vec![
            self.ok("admin.vm.List", "dom0", b""),
            self.ok("admin.property.GetAll", "dom0", b""),
            self.ok("admin.label.List", "dom0", b""),
            self.ok("admin.pool.List", "dom0", b""),
        ];
        for vm in ["work", "untrusted"] {
            for method in ["admin.vm.property.GetAll", "admin.vm.feature.List", "admin.vm.tag.List"] {
                all.push(self.ok(method, vm, b""));
            }
            all.push(self.ok("admin.vm.volume.List", vm, b""));
        }
        all
    }
}

fn call(socket: &Path, src: &str, method: &str, dest: &str, payload: &[u8]) -> Vec<u8> {
    let mut s = UnixStream::connect(socket).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    let mut request = format!("{method} {src} name {dest}\0").into_bytes();
    request.extend_from_slice(payload);
    s.write_all(&request).expect("send");
    s.shutdown(std::net::Shutdown::Write).expect("half-close");
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).expect("reply");
    reply
}

fn scene(visible: &[&str]) -> Door {
    let door = Door::open(visible);
    door.ok("admin.vm.Create.TemplateVM", "dom0", b"name=tpl label=black");
    door.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=work label=red");
    door.ok("admin.vm.Create.AppVM+tpl", "dom0", b"name=untrusted label=red");
    door.ok("admin.vm.feature.Set+secret", "work", b"1");
    door
}

#[test]
fn every_method_a_refused_qube_calls_is_refused_alike_whether_its_target_exists_or_not() {
    let door = scene(&[]);
    let before = door.snapshot();
    let work_uuid = door.ok("admin.vm.property.Get+uuid", "work", b"");
    let work_uuid = work_uuid.rsplit(' ').next().expect("uuid").to_string();
    let refused = b"2\0PermissionDenied\0\0\0".to_vec();

    let methods = corral_admin::methods::admin_methods();
    assert!(methods.len() > 80, "only {} methods", methods.len());
    for method in &methods {
        use corral_admin::methods::Want;
        let name = if method.arg == Want::No { method.name.clone() } else { format!("{}+private", method.name) };
        let payload: &[u8] = if method.payload == Want::No { b"" } else { b"name=new label=red" };
        for dest in ["work", "dom0", "ghost", &format!("uuid:{work_uuid}"), "uuid:00000000-0000-4000-8000-000000000001"]
        {
            let reply = door.call("untrusted", &name, dest, payload);
            assert_eq!(reply, refused, "{name} on {dest}: {}", String::from_utf8_lossy(&reply));
        }
    }
    // A method that does not exist is refused before it is looked up, like one that does.
    assert_eq!(door.call("untrusted", "admin.no.Such", "ghost", b""), refused);
    assert_eq!(door.snapshot(), before, "a refused call changed the state");
}

#[test]
fn a_qube_lists_only_the_qubes_it_may_see_and_hears_only_their_events() {
    let door = scene(&["dom0", "work"]);

    let listed = String::from_utf8(door.call("untrusted", "admin.vm.List", "dom0", b"")).expect("utf-8");
    let names: Vec<&str> = listed.trim_start_matches("0\0").lines().filter_map(|l| l.split(' ').next()).collect();
    assert_eq!(names, ["dom0", "work"]);
    // dom0 still sees every qube, and its cached list is not the filtered one.
    let all = door.ok("admin.vm.List", "dom0", b"");
    assert_eq!(all.lines().count(), 4, "{all}");
    let again = String::from_utf8(door.call("untrusted", "admin.vm.List", "dom0", b"")).expect("utf-8");
    assert_eq!(again, listed);

    let mut events = UnixStream::connect(&door.socket).expect("connect");
    events.write_all(b"admin.Events untrusted name dom0\0").expect("subscribe");
    events.shutdown(std::net::Shutdown::Write).expect("half-close");
    events.set_read_timeout(Some(Duration::from_millis(500))).expect("timeout");
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    // The stream is open once its first frame arrived.
    while !String::from_utf8_lossy(&seen).contains("connection-established") {
        let n = events.read(&mut chunk).expect("hello");
        seen.extend_from_slice(&chunk[..n]);
    }
    door.ok("admin.vm.feature.Set+hidden", "untrusted", b"1");
    door.ok("admin.vm.feature.Set+shown", "work", b"1");
    while !String::from_utf8_lossy(&seen).contains("feature-set:shown") {
        let n = events.read(&mut chunk).expect("the visible qube's event");
        seen.extend_from_slice(&chunk[..n]);
    }
    let seen = String::from_utf8_lossy(&seen);
    assert!(!seen.contains("untrusted"), "{seen:?}");
    assert!(!seen.contains("hidden"), "{seen:?}");
}
