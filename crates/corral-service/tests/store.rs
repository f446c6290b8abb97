//! The service over a store other than its default: any [`StateStore`] will do, and a commit the store
//! refuses leaves the served model as it was (the plan is applied only once it is stored).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use corral_core::{App, HostInfo, Op, Principal};
use corral_service::{Config, QrexecAdmitted, Request, Service};
use corral_store::{LoadWarning, SqliteStore, StateStore, StoreError};

/// SQLite underneath, with commits that fail on demand as a full disk would make them.
struct Flaky {
    inner: SqliteStore,
    failing: Arc<AtomicBool>,
}

impl StateStore for Flaky {
    fn is_initialized(&self) -> corral_store::Result<bool> {
        self.inner.is_initialized()
    }

    fn commit(&mut self, ops: &[Op]) -> corral_store::Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(StoreError::Io("no space left on device".into()));
        }
        self.inner.commit(ops)
    }

    fn load(&self, host: HostInfo) -> corral_store::Result<(App, Vec<LoadWarning>)> {
        self.inner.load(host)
    }

    fn integrity_check(&self) -> corral_store::Result<Vec<String>> {
        self.inner.integrity_check()
    }

    fn qube_rows(&self) -> corral_store::Result<u64> {
        self.inner.qube_rows()
    }

    fn empty_store_accepted(&self) -> corral_store::Result<bool> {
        self.inner.empty_store_accepted()
    }

    fn accept_empty_store(&mut self) -> corral_store::Result<()> {
        self.inner.accept_empty_store()
    }
}

#[test]
fn a_change_the_store_refuses_is_not_served() {
    let dir = tempfile::tempdir().expect("tempdir");
    let state_dir = dir.path().join("state");
    std::fs::create_dir_all(&state_dir).expect("state dir");
    let mut inner = SqliteStore::open_in_memory().expect("store");
    let pools = state_dir.display().to_string();
    inner.commit(&App::initial_ops(&pools, &format!("{pools}/vm-kernels"))).expect("initial");
    let failing = Arc::new(AtomicBool::new(true));
    let config = Config {
        state_dir,
        durability: Default::default(),
        host: HostInfo { memory_mib: 4096, cpus: 2 },
        hypervisor: Err("this test runs without libvirt".into()),
        vnc_listen: std::net::Ipv4Addr::LOCALHOST.into(),
    };
    let store = Box::new(Flaky { inner, failing: failing.clone() });
    let service = Service::with_store(config, store, Box::new(QrexecAdmitted)).expect("service");
    let create = || Request::LabelCreate { name: "teal".into(), color: b"0x008080".to_vec() };
    let index = || service.handle(&Principal::AdminVm, Request::LabelIndex { name: "teal".into() });

    let refused = service.handle(&Principal::AdminVm, create());

    assert!(refused.is_err());
    assert!(index().is_err(), "a label the store did not keep is served");
    failing.store(false, Ordering::SeqCst);
    service.handle(&Principal::AdminVm, create()).expect("stored");
    assert!(index().is_ok());
}
