//! The one path every request takes, whatever door it came through: authorization, a plan against the
//! model, one store transaction, side effects on storage, then the model update and the events.

mod audit;
mod auth;
pub mod copies;
mod events;
pub mod hypervisor;
mod inspect;
mod lifecycle;
pub mod media;
mod networks;
mod nics;
mod ops;
mod request;
mod revisions;
mod runtime;
mod tags;
mod users;
mod view;
mod volumes;

use corral_core::error::Invalid;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use corral_core::hv::Hypervisor;
use corral_core::plan::Plan;
use corral_core::{App, Domain, Error, Event, HostInfo, Result};
use corral_storage::Storage;
use corral_store::{Durability, SqliteStore, StateStore};
use parking_lot::{Mutex, RwLock};

pub use audit::{AuditRecord, Happening};
pub use auth::{Authorizer, QrexecAdmitted};
pub use corral_core::{Credential, Operation, Principal};
pub use events::{current_cause, with_cause, EventBus, Subscription, SubscriptionEnded};
pub use lifecycle::{bridge_mac, RunOnce};
pub use ops::{now_epoch, parse_bool_payload, FeatureLookup, PropView, VmSummary};
pub use request::{CreateIn, DeviceListing, NewVm, Request, Response, TemplateRef, VmSettings, DEVICE_CLASSES};
pub use users::LoginRefused;
pub use view::View;
pub use volumes::VolumeInfo;

pub struct Config {
    pub state_dir: PathBuf,
    pub durability: Durability,
    pub host: HostInfo,
    /// Without one everything but running qubes is served; the error says why there is none and what would
    /// fix it, and is what a call that needs the hypervisor answers.
    pub hypervisor: std::result::Result<Arc<dyn Hypervisor>, String>,
    /// The host address the qubes' graphical consoles (VNC) listen on.
    pub vnc_listen: std::net::IpAddr,
}

pub struct Service {
    /// The model, replaced copy-on-write: a reader's snapshot stays as it was while writers go on.
    model: RwLock<Arc<App>>,
    /// Where committed ops are kept: any backend, one transaction per commit.
    store: Mutex<Box<dyn StateStore>>,
    storage: Storage,
    events: EventBus,
    auth: Arc<dyn Authorizer>,
    volumes: volumes::Transient,
    /// Bumped on every model change, so doors can cache what they render from it.
    generation: AtomicU64,
    rendered: Mutex<std::collections::HashMap<&'static str, Rendered>>,
    /// Every qube's summary as of a model generation: `admin.vm.List` of all qubes, the most frequent call.
    summaries: Mutex<Option<(u64, Arc<Vec<VmSummary>>)>>,
    hv: Option<Arc<dyn Hypervisor>>,
    /// Why `hv` is `None`, for the callers who need it.
    hv_missing: String,
    /// Shared with every view, which shows running qubes' power and consoles live.
    runtime: Arc<runtime::Runtime>,
    /// Qubes whose start is under way, so that a second Start is a no-op and libvirt's own report of the
    /// start does not race the start's events.
    starting: Mutex<std::collections::HashSet<uuid::Uuid>>,
    /// The cause of a lifecycle call in progress on a qube, lent to the events libvirt's own report of the
    /// change fires when its thread sees the change first.
    lent_causes: Mutex<std::collections::HashMap<uuid::Uuid, std::sync::Arc<corral_core::Cause>>>,
    /// Held while a power transition is recorded and its events fired, so that a call that finds the
    /// transition already recorded by libvirt's event thread replies only once the events are out.
    transitions: Mutex<()>,
    state_dir: PathBuf,
    verified: users::Verified,
    throttle: users::LoginThrottle,
    /// Background preparations of qubes' next-start overlays.
    preparing: Mutex<std::collections::HashMap<uuid::Uuid, std::thread::JoinHandle<()>>>,
    /// Every qube's graphical console as it starts: locked with a password made for this daemon run.
    graphics: corral_core::hv::GraphicsSpec,
    cpu_samples: hypervisor::CpuSamples,
    rate_samples: hypervisor::RateSamples,
    /// What happened and who did it, for the doors' event logs.
    audit: Arc<audit::AuditLog>,
    /// Whether the bus feeds `audit` yet.
    audit_following: std::sync::atomic::AtomicBool,
}

/// A cached rendering and the model generation it was made from.
type Rendered = (u64, Arc<Vec<u8>>);

/// A store failure is the daemon's fault, not the caller's: it gets a generic exception and the log the details.
fn store_error(e: corral_store::StoreError) -> Error {
    tracing::error!(error = ?e, "state database write failed");
    Error::generic("Failed to save the change to the state database")
}

impl Service {
    /// Opens (or creates) the state in `state_dir`'s SQLite database; a fresh directory gets what a fresh
    /// Qubes install has.
    pub fn open(config: Config, auth: Box<dyn Authorizer>) -> anyhow_like::Result<Arc<Service>> {
        let store = open_store(&config.state_dir, config.durability)?;
        Service::with_store(config, store, auth)
    }

    /// Serves the model `store` holds (an initialized one: see [`open_store`]); `config.durability` is the
    /// store's business, set when it was opened.
    pub fn with_store(
        config: Config,
        store: Box<dyn StateStore>,
        auth: Box<dyn Authorizer>,
    ) -> anyhow_like::Result<Arc<Service>> {
        let (app, warnings) = store.load(config.host)?;
        for w in &warnings {
            tracing::warn!(table = w.table, key = %w.key, reason = %w.reason, "quarantined invalid row at load");
        }
        if !warnings.is_empty() {
            tracing::warn!(
                rows = warnings.len(),
                "{} rows of the state database could not be loaded: they are kept in the database as they \
                 are, not served, and new objects avoid their names and ids; repair or delete them with \
                 sqlite3 while corrald is stopped",
                warnings.len()
            );
        }
        let storage = Storage;
        for pool in app.pools() {
            if let Err(e) = storage.setup_pool(pool) {
                tracing::warn!(pool = %pool.name, error = %e, "pool directory is not usable");
            }
        }
        // An import cut short by a crash leaves a pending file that would block the next one.
        for v in app.domains().flat_map(|d| d.volumes.iter()) {
            if let Some(pool) = app.pool(&v.pool) {
                if let Err(e) = storage.discard_pending(pool, v) {
                    tracing::warn!(vid = %v.vid, error = %e, "cannot discard an unfinished import");
                }
            }
        }
        let (hv, hv_missing) = match config.hypervisor {
            Ok(hv) => (Some(hv), String::new()),
            Err(why) => (None, why),
        };
        let service = Arc::new(Service {
            hv: hv.clone(),
            hv_missing,
            runtime: Default::default(),
            starting: Mutex::new(std::collections::HashSet::new()),
            lent_causes: Mutex::new(std::collections::HashMap::new()),
            transitions: Mutex::new(()),
            state_dir: config.state_dir.clone(),
            verified: users::Verified::default(),
            throttle: users::LoginThrottle::default(),
            preparing: Mutex::new(std::collections::HashMap::new()),
            graphics: lifecycle::locked_graphics(config.vnc_listen),
            model: RwLock::new(Arc::new(app)),
            store: Mutex::new(store),
            storage,
            events: EventBus::new(),
            auth: Arc::from(auth),
            volumes: volumes::Transient::default(),
            generation: AtomicU64::new(0),
            rendered: Mutex::new(std::collections::HashMap::new()),
            summaries: Mutex::new(None),
            cpu_samples: Default::default(),
            rate_samples: Default::default(),
            audit: Default::default(),
            audit_following: Default::default(),
        });
        std::fs::create_dir_all(config.state_dir.join("logs"))?;
        service.reconcile();
        if let Some(rx) = hv.as_ref().and_then(|hv| hv.events()) {
            let weak = Arc::downgrade(&service);
            std::thread::Builder::new().name("hv-events".into()).spawn(move || {
                while let Ok(ev) = rx.recv() {
                    let Some(service) = weak.upgrade() else { break };
                    service.on_hv_event(ev);
                }
            })?;
        }
        Ok(service)
    }

    pub fn events(&self) -> &EventBus {
        &self.events
    }

    /// What `principal` may see of the model now: the only way a door reads it.
    pub fn view(&self, principal: &Principal) -> View {
        let model = self.model.read();
        // Taken under the lock that every model change holds, so the two agree.
        let generation = self.generation.load(Ordering::Acquire);
        View::new(
            model.clone(),
            generation,
            principal.clone(),
            self.auth.clone(),
            self.audit.clone(),
            view::Live { runtime: self.runtime.clone(), hv: self.hv.clone() },
        )
    }

    /// The model under the read lock, for the service's own short reads: unlike a snapshot, it never makes
    /// the next writer copy the model.
    fn current(&self) -> parking_lot::RwLockReadGuard<'_, Arc<App>> {
        self.model.read()
    }

    /// Resolves a destination token: a qube name or `uuid:<36 chars>`.
    pub fn resolve(&self, token: &str) -> Result<String> {
        let app = self.model.read();
        resolve_in(&app, token).map(|d| d.name.clone())
    }

    /// Whether `principal` may do `op`: `Err` with `PermissionDenied` refuses it.
    pub fn authorize(&self, principal: &Principal, op: &Operation<'_>) -> Result<()> {
        self.auth.authorize(principal, op)
    }

    /// Plans against the current model, commits the plan's ops in one transaction, applies them, then
    /// publishes its events, all under the write lock so that events keep commit order.
    fn mutate<T>(&self, f: impl FnOnce(&App) -> Result<(Plan, T)>) -> Result<T> {
        let mut model = self.model.write();
        let (plan, out) = f(&model)?;
        if !plan.ops.is_empty() {
            self.store.lock().commit(&plan.ops).map_err(store_error)?;
        }
        self.apply_ops(&mut model, plan.ops);
        self.events.publish_all(plan.events);
        Ok(out)
    }

    /// The only way committed ops reach the model.
    fn apply_ops(&self, model: &mut Arc<App>, ops: Vec<corral_core::Op>) {
        // Copies the model only while a reader still holds the previous snapshot, and then only the qubes'
        // index: the qubes themselves are shared until changed.
        let model = Arc::make_mut(model);
        for op in ops {
            model.apply(op);
        }
        self.bump();
    }

    /// Invalidates renderings: the model or a qube's power state changed.
    fn bump(&self) {
        self.generation.fetch_add(1, Ordering::Release);
    }

    /// A door's rendering of what `view` shows (e.g. every vm), reused by every view of the same model
    /// generation that sees everything; a view that sees less gets its own. `render` gets the length of the
    /// previous rendering, a good guess of the next one's.
    pub fn rendered(
        &self,
        view: &View,
        key: &'static str,
        render: impl FnOnce(&View, usize) -> Vec<u8>,
    ) -> Arc<Vec<u8>> {
        if !view.is_complete() {
            return Arc::new(render(view, 0));
        }
        let generation = view.generation();
        let mut previous_len = 0;
        if let Some((g, bytes)) = self.rendered.lock().get(key) {
            if *g == generation {
                return bytes.clone();
            }
            previous_len = bytes.len();
        }
        let bytes = Arc::new(render(view, previous_len));
        self.rendered.lock().insert(key, (generation, bytes.clone()));
        bytes
    }

    /// The service's own rendering of the whole model (the system description for dom0's tools), reused
    /// until the model changes.
    fn rendered_model(&self, key: &'static str, render: impl FnOnce(&App, usize) -> Vec<u8>) -> Arc<Vec<u8>> {
        let app = self.model.read();
        let generation = self.generation.load(Ordering::Acquire);
        let mut previous_len = 0;
        if let Some((g, bytes)) = self.rendered.lock().get(key) {
            if *g == generation {
                return bytes.clone();
            }
            previous_len = bytes.len();
        }
        let bytes = Arc::new(render(&app, previous_len));
        self.rendered.lock().insert(key, (generation, bytes.clone()));
        bytes
    }

    /// Every qube's summary and the model generation it was taken at, reused until the model changes.
    pub(crate) fn all_summaries(&self) -> (Arc<Vec<VmSummary>>, u64) {
        let app = self.model.read();
        let generation = self.generation.load(Ordering::Acquire);
        if let Some((g, list)) = &*self.summaries.lock() {
            if *g == generation {
                return (list.clone(), generation);
            }
        }
        let list = Arc::new(self.summaries(&app));
        *self.summaries.lock() = Some((generation, list.clone()));
        (list, generation)
    }

    /// The model generation: it changes whenever anything a rendering shows may have changed.
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn publish(&self, event: Event) {
        self.events.publish_all(vec![event]);
    }

    /// The store's own consistency check: the problems it found, none when healthy.
    pub fn integrity_check(&self) -> std::result::Result<Vec<String>, corral_store::StoreError> {
        self.store.lock().integrity_check()
    }
}

/// Opens the state database of `state_dir` (created private to its owner), giving a fresh one what a fresh
/// Qubes install has.
pub fn open_store(state_dir: &std::path::Path, durability: Durability) -> anyhow_like::Result<Box<dyn StateStore>> {
    let mut store = open_uninitialized(state_dir, durability)?;
    if !store.is_initialized()? {
        store.commit(&initial_ops(state_dir))?;
    }
    Ok(store)
}

fn open_uninitialized(state_dir: &std::path::Path, durability: Durability) -> anyhow_like::Result<Box<dyn StateStore>> {
    std::fs::create_dir_all(state_dir)?;
    Ok(Box::new(SqliteStore::open(&state_dir.join("corral.sqlite"), durability)?))
}

/// What a fresh Qubes install has: dom0, the standard labels and the built-in pools (`varlibqubes` in the
/// state directory, `linux-kernel`).
fn initial_ops(state_dir: &std::path::Path) -> Vec<corral_core::Op> {
    let pool_dir = state_dir.display().to_string();
    let kernels = state_dir.join("vm-kernels").display().to_string();
    App::initial_ops(&pool_dir, &kernels)
}

/// Moves another host's model (a qubes.xml's ops) into the state of `state_dir`, which no daemon may be
/// serving: planned against the stored model like every write, then committed in one transaction with
/// what a fresh state gets, so that an import cut short leaves the directory as it was. Returns how many
/// qubes beside dom0 the state then holds.
pub fn import_model(
    state_dir: &std::path::Path,
    durability: Durability,
    ops: Vec<corral_core::Op>,
) -> std::result::Result<usize, ImportError> {
    let host = HostInfo { memory_mib: 0, cpus: 0 };
    let mut store = open_uninitialized(state_dir, durability)?;
    let (mut commit, app) = if store.is_initialized()? {
        // Rows that do not load still hold their keys: a store with any qube row is not fresh.
        if store.qube_rows()? > 0 {
            return Err(ImportError::Refused(Error::value(
                "The state already holds qubes: import into a fresh state directory",
            )));
        }
        (Vec::new(), store.load(host)?.0)
    } else {
        let initial = initial_ops(state_dir);
        let mut app = App::empty(host);
        for op in initial.clone() {
            app.apply(op);
        }
        (initial, app)
    };
    let plan = app.plan_import(ops).map_err(ImportError::Refused)?;
    commit.extend(plan.ops);
    store.commit(&commit)?;
    let (app, _) = store.load(host)?;
    Ok(app.domain_count().saturating_sub(1))
}

#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    #[error("{}", .0.message)]
    Refused(Error),
    #[error(transparent)]
    Open(#[from] anyhow_like::OpenError),
    #[error(transparent)]
    Store(#[from] corral_store::StoreError),
}

pub fn resolve_in<'a>(app: &'a App, token: &str) -> Result<&'a Domain> {
    if let Some(rest) = token.strip_prefix("uuid:") {
        let well_formed = rest.len() == 36
            && rest.char_indices().all(|(i, c)| {
                if matches!(i, 8 | 13 | 18 | 23) {
                    c == '-'
                } else {
                    c.is_ascii_digit() || ('a'..='f').contains(&c)
                }
            });
        let uuid = uuid::Uuid::parse_str(rest).ok().filter(|_| well_formed).ok_or_else(|| {
            Error::new(
                corral_core::ErrorKind::Invalid(Invalid::Uuid),
                format!("VM UUID is not valid: {}", corral_core::text::pyrepr(rest)),
            )
        })?;
        return app.domain_by_uuid(&uuid).ok_or_else(|| Error::vm_not_found(token));
    }
    // qubesd checks the name rule before the lookup, so a malformed name is a QubesValueError.
    corral_core::text::validate_vm_name(token)?;
    app.domain(token).ok_or_else(|| Error::vm_not_found(token))
}

/// Startup errors for the daemon binary, which prints the whole chain.
pub mod anyhow_like {
    pub type Result<T> = std::result::Result<T, OpenError>;

    #[derive(Debug, thiserror::Error)]
    pub enum OpenError {
        #[error("Cannot create the state directory")]
        Io(#[from] std::io::Error),
        #[error(transparent)]
        Store(#[from] corral_store::StoreError),
    }
}
