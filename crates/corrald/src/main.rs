//! `corrald`: the Corral daemon. Loads the state, then serves the Admin API sockets until SIGTERM/SIGINT.

mod config;
mod lost_store;
mod privs;
mod tls;

use std::sync::Arc;

use anyhow::Context;
use corral_admin::Door;
use corral_core::hv::Hypervisor;
use corral_service::{QrexecAdmitted, Service};
use tokio::signal::unix::{signal, SignalKind};

fn main() -> anyhow::Result<()> {
    let config = config::Config::load()?;
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG").unwrap_or_else(|_| config.log_filter().into()),
        )
        .init();
    // Before any thread exists, so every thread of the daemon runs without them.
    privs::drop_unused_capabilities();
    let open_files = raise_open_files_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread().enable_all().build()?;
    let outcome = runtime.block_on(run(config, open_files));
    // A call abandoned at the end of the grace period may still hold a blocking thread: not waited for.
    runtime.shutdown_timeout(std::time::Duration::from_secs(1));
    outcome
}

/// Every connection holds a descriptor, and systemd's soft limit of 1,024 let a thousand idle clients starve
/// both doors and libvirt: the soft limit goes up to the hard one, which is the administrator's to set.
fn raise_open_files_limit() -> u64 {
    match rlimit::increase_nofile_limit(u64::MAX) {
        Ok(limit) => {
            tracing::debug!(limit, "open files limit");
            limit
        }
        Err(e) => {
            tracing::warn!(error = %e, "cannot raise the open files limit");
            rlimit::getrlimit(rlimit::Resource::NOFILE).map_or(1024, |(soft, _)| soft)
        }
    }
}

/// The descriptors left to the doors after a reserve for libvirt, SQLite and the guests' files: half to the
/// HTTP door, a quarter to each Admin API socket, so that no HTTP traffic can take the Admin API's away.
fn door_shares(open_files: u64) -> (u64, u64) {
    let left = open_files.saturating_sub(256);
    (left / 2, left / 4)
}

/// libvirt is optional: without it everything but running qubes is served. The error explains why there is
/// none and what would fix it; it is logged here once and answered to every call that needs libvirt.
async fn connect_hypervisor(uri: &str, domain_type: Option<&str>) -> Result<Arc<dyn Hypervisor>, String> {
    if let Err(e) = config::prepare_embedded_root(uri) {
        tracing::warn!(error = %e, "cannot prepare the embedded QEMU driver's configuration");
    }
    let (owned_uri, domain_type) = (uri.to_string(), domain_type.map(str::to_string));
    let connected =
        tokio::task::spawn_blocking(move || corral_hv::Libvirt::connect(&owned_uri, domain_type.as_deref())).await;
    let why = match connected {
        Ok(Ok(hv)) => {
            tracing::info!(uri = %hv.uri(), domain_type = %hv.domain_type(), "connected to libvirt");
            return Ok(Arc::new(hv));
        }
        Ok(Err(e)) => config::no_hypervisor_advice(uri, &e.to_string()),
        Err(e) => format!("the connection attempt to {uri} failed ({e}); restart corrald to try again"),
    };
    tracing::warn!("no hypervisor, qubes cannot be started: {why}");
    Err(why)
}

async fn run(config: config::Config, open_files: u64) -> anyhow::Result<()> {
    let uri = config.libvirt_uri();
    tracing::info!(state_dir = %config.state_dir.display(), libvirt_uri = %uri, "starting corrald");
    // One daemon per state directory; offline tools (qubes.xml import) take the same lock.
    privs::prepare_state_dir(&config.state_dir)
        .with_context(|| format!("Cannot prepare {}", config.state_dir.display()))?;
    privs::private_umask();
    let lock = std::fs::File::create(config.state_dir.join("corral.lock"))?;
    if lock.try_lock().is_err() {
        anyhow::bail!("{} is in use by another corrald", config.state_dir.display());
    }
    lost_store::refuse_lost_store(&config.state_dir, config.accept_empty_store)?;
    let tls = if config.http.is_some() { tls::load(&config.tls, &config.state_dir)? } else { None };
    let service_config = corral_service::Config {
        state_dir: config.state_dir.clone(),
        durability: config.durability(),
        host: config::host_info(),
        hypervisor: connect_hypervisor(&uri, config.domain_type.as_deref()).await,
        vnc_listen: config.vnc_listen,
    };
    let service: Arc<Service> =
        Service::open(service_config, Box::new(QrexecAdmitted)).context("Cannot open the daemon's state")?;
    lost_store::warn_unowned_images(&config.state_dir, &service.view(&corral_core::Principal::AdminVm));

    // Sockets appear only once the state is loaded, so a client that connects is served.
    let mut tasks = Vec::new();
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let (http_share, admin_share) = door_shares(open_files);
    let admin_limits = config.admin_connections.limits(admin_share, config.request_timeout);
    tracing::info!(
        max_connections = admin_limits.max_connections,
        per_uid = admin_limits.max_per_peer,
        timeout_s = admin_limits.idle_timeout.as_secs(),
        "Admin API limits"
    );
    for (path, door) in [(&config.admin_socket, Door::Admin), (&config.internal_socket, Door::Internal)] {
        let listener = corral_admin::bind(path).with_context(|| format!("Cannot listen on {}", path.display()))?;
        tracing::info!(socket = %path.display(), ?door, "serving");
        tasks.push(tokio::spawn(corral_admin::serve(service.clone(), listener, door, stopping.clone(), admin_limits)));
    }

    if let Some(addr) = &config.http {
        let listener =
            tokio::net::TcpListener::bind(addr).await.with_context(|| format!("Cannot listen for HTTP on {addr}"))?;
        let local = listener.local_addr()?;
        // Written aside and renamed, so a reader never sees the file before its content.
        let pending = config.state_dir.join("http-address.new");
        std::fs::write(&pending, local.to_string())?;
        std::fs::rename(&pending, config.state_dir.join("http-address"))?;
        if tls.is_none() && !local.ip().is_loopback() {
            tracing::warn!(address = %local, "plain HTTP on a non-loopback address: passwords and session cookies \
                cross the network in clear (use --tls-cert/--tls-key or --tls-self-signed)");
        }
        let http_limits = config.http_connections.limits(http_share, config.request_timeout);
        tracing::info!(
            address = %local,
            tls = tls.is_some(),
            max_connections = http_limits.max_connections,
            per_address = http_limits.max_per_peer,
            "serving HTTP"
        );
        let rest = match &tls {
            Some(tls) => corral_rest::Rest::new_tls(service.clone(), tls.certificate_pem.clone()),
            None => corral_rest::Rest::new(service.clone(), false),
        };
        let mut stopping = stopping.clone();
        let stop_http = async move {
            let _ = stopping.wait_for(|s| *s).await;
        };
        tasks.push(tokio::spawn(async move {
            let served = match tls {
                Some(tls) => corral_rest::serve_tls(listener, rest, tls.config, stop_http, http_limits).await,
                None => corral_rest::serve(listener, rest, stop_http, http_limits).await,
            };
            if let Err(e) = served {
                tracing::error!(error = %e, "HTTP server stopped");
            }
        }));
    }

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received, shutting down"),
        _ = int.recv() => tracing::info!("SIGINT received, shutting down"),
    }
    // The socket files go first, so a client arriving now finds no daemon rather than one that will not
    // answer; calls already made are answered (bounded: a stuck call must not keep the daemon alive).
    for path in [&config.admin_socket, &config.internal_socket] {
        let _ = std::fs::remove_file(path);
    }
    let _ = stop.send(true);
    let grace = config.shutdown_grace();
    let all = join_all(&mut tasks);
    if tokio::time::timeout(grace, all).await.is_err() {
        tracing::warn!(seconds = grace.as_secs(), "calls still running at shutdown were abandoned");
        for t in &tasks {
            t.abort();
        }
    }
    Ok(())
}

/// Waits for every server task to finish.
async fn join_all(tasks: &mut [tokio::task::JoinHandle<()>]) {
    for t in tasks {
        let _ = t.await;
    }
}
