//! Daemon configuration: command-line flags win over `CORRAL_*` environment variables, which win over
//! the TOML file given with `--config`, which wins over the embedded defaults.

use std::path::{Path, PathBuf};

use anyhow::Context;
use clap::Parser;
use corral_core::HostInfo;
use corral_store::Durability;
use serde::Deserialize;

#[derive(Parser, Debug)]
#[command(name = "corrald", version, about = "Corral virtualization daemon (qubesd-compatible Admin API)")]
struct Cli {
    /// Admin API socket (the qubesadmin client's default path).
    #[arg(long, env = "CORRAL_ADMIN_SOCKET")]
    admin_socket: Option<PathBuf>,
    /// Socket for trusted dom0 tools (volume import, qrexec policy).
    #[arg(long, env = "CORRAL_INTERNAL_SOCKET")]
    internal_socket: Option<PathBuf>,
    /// Directory holding the SQLite state and the default file pool.
    #[arg(long, env = "CORRAL_STATE_DIR")]
    state_dir: Option<PathBuf>,
    /// libvirt connection URI; chosen automatically when absent (see README).
    #[arg(long, env = "CORRAL_LIBVIRT_URI")]
    libvirt_uri: Option<String>,
    /// libvirt domain type: `kvm`, `qemu` (TCG) or `test`; chosen from the URI and the host when absent.
    #[arg(long, env = "CORRAL_DOMAIN_TYPE")]
    domain_type: Option<String>,
    /// HTTP door address (`/api`, `/libvirt`); `off` disables it. Port 0 picks a free port, written to
    /// `<state-dir>/http-address`.
    #[arg(long, env = "CORRAL_HTTP")]
    http: Option<String>,
    /// HTTPS certificate chain (PEM, the server's certificate first); needs `--tls-key`.
    #[arg(long, env = "CORRAL_TLS_CERT")]
    tls_cert: Option<PathBuf>,
    /// Private key (PEM) of `--tls-cert`.
    #[arg(long, env = "CORRAL_TLS_KEY")]
    tls_key: Option<PathBuf>,
    /// Serve HTTPS with a self-signed certificate made on first start in `<state-dir>/tls/`.
    #[arg(long, env = "CORRAL_TLS_SELF_SIGNED", num_args = 0..=1, default_missing_value = "true")]
    tls_self_signed: Option<bool>,
    /// TOML file with any of these settings (keys as the flags, with underscores).
    #[arg(long, env = "CORRAL_CONFIG")]
    config: Option<PathBuf>,
    /// Host address the qubes' graphical consoles (VNC) listen on.
    #[arg(long, env = "CORRAL_VNC_LISTEN")]
    vnc_listen: Option<std::net::IpAddr>,
    /// fsync every commit (survives power loss, not only a crash of the daemon).
    #[arg(long, env = "CORRAL_SYNC_COMMITS")]
    sync_commits: Option<bool>,
    /// Log filter (tracing's EnvFilter syntax), e.g. `info` or `corral_service=debug`.
    #[arg(long, env = "CORRAL_LOG_LEVEL")]
    log_level: Option<String>,
    /// Start although the state database holds no qubes while qube images are in the state directory
    /// (a lost or damaged database); a flag, not a configuration key, since it is a one-time decision.
    #[arg(long)]
    accept_empty_store: bool,
    /// Seconds SIGTERM/SIGINT waits for the calls in flight to be answered (default 10).
    #[arg(long, env = "CORRAL_SHUTDOWN_GRACE")]
    shutdown_grace: Option<u64>,
    /// Seconds a client of either door has to send a request (HTTP: its head, then its body), that a connection
    /// may stay idle before or between requests, and that a client may take to read a reply (default 60).
    #[arg(long, env = "CORRAL_REQUEST_TIMEOUT", value_parser = clap::value_parser!(u64).range(1..))]
    request_timeout: Option<u64>,
    /// Connections the HTTP door keeps open at once (default: half the descriptors left after a reserve of 256).
    #[arg(long, env = "CORRAL_HTTP_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    http_max_connections: Option<u64>,
    /// Connections one client address may keep open on the HTTP door (default: a quarter of the door's).
    #[arg(long, env = "CORRAL_HTTP_MAX_CONNECTIONS_PER_PEER", value_parser = clap::value_parser!(u64).range(1..))]
    http_max_connections_per_peer: Option<u64>,
    /// Connections each Admin API socket keeps open at once (default: a quarter of the descriptors left after
    /// the reserve).
    #[arg(long, env = "CORRAL_ADMIN_MAX_CONNECTIONS", value_parser = clap::value_parser!(u64).range(1..))]
    admin_max_connections: Option<u64>,
    /// Connections one local user (uid) may keep open on an Admin API socket (default: a quarter of the
    /// socket's).
    #[arg(long, env = "CORRAL_ADMIN_MAX_CONNECTIONS_PER_PEER", value_parser = clap::value_parser!(u64).range(1..))]
    admin_max_connections_per_peer: Option<u64>,
}

#[derive(Deserialize, Default, Debug)]
#[serde(deny_unknown_fields)]
struct File {
    admin_socket: Option<PathBuf>,
    internal_socket: Option<PathBuf>,
    state_dir: Option<PathBuf>,
    libvirt_uri: Option<String>,
    domain_type: Option<String>,
    http: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    tls_self_signed: Option<bool>,
    vnc_listen: Option<std::net::IpAddr>,
    sync_commits: Option<bool>,
    log_level: Option<String>,
    shutdown_grace: Option<u64>,
    request_timeout: Option<u64>,
    http_max_connections: Option<u64>,
    http_max_connections_per_peer: Option<u64>,
    admin_max_connections: Option<u64>,
    admin_max_connections_per_peer: Option<u64>,
}

#[derive(Debug)]
pub struct Config {
    pub admin_socket: PathBuf,
    pub internal_socket: PathBuf,
    pub state_dir: PathBuf,
    libvirt_uri: Option<String>,
    pub domain_type: Option<String>,
    /// `None` when the HTTP door is off.
    pub http: Option<String>,
    pub tls: Tls,
    /// Where the qubes' VNC servers listen: the host's loopback unless configured.
    pub vnc_listen: std::net::IpAddr,
    sync_commits: bool,
    log_level: String,
    pub accept_empty_store: bool,
    shutdown_grace: std::time::Duration,
    /// How long a client may take over a request, and how long a connection may stay idle.
    pub request_timeout: std::time::Duration,
    pub http_connections: Caps,
    pub admin_connections: Caps,
}

/// Connection caps of a door as configured; what is not configured follows from the descriptors available.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Caps {
    pub max: Option<u64>,
    pub per_peer: Option<u64>,
}

impl Caps {
    /// The door's limits, given the descriptors it may use when nothing was configured.
    pub fn limits(&self, share: u64, idle_timeout: std::time::Duration) -> corral_conns::Limits {
        let mut limits = corral_conns::Limits::from_share(self.max.unwrap_or(share), idle_timeout);
        if let Some(max) = self.max {
            // Configured caps are taken as they are, not clamped to what a share would be.
            limits.max_connections = usize::try_from(max).unwrap_or(usize::MAX);
        }
        if let Some(per_peer) = self.per_peer {
            limits.max_per_peer = usize::try_from(per_peer).unwrap_or(usize::MAX);
        }
        limits
    }
}

/// How the HTTP door is served.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Tls {
    /// Plain HTTP (the loopback default).
    Off,
    /// HTTPS with a given certificate chain and key (PEM files).
    Files { cert: PathBuf, key: PathBuf },
    /// HTTPS with a self-signed certificate kept in `<state-dir>/tls/`.
    SelfSigned,
}

impl Tls {
    fn choose(cert: Option<PathBuf>, key: Option<PathBuf>, self_signed: bool) -> anyhow::Result<Tls> {
        match (cert, key) {
            (Some(_), _) | (_, Some(_)) if self_signed => {
                anyhow::bail!("--tls-self-signed cannot be combined with --tls-cert/--tls-key")
            }
            (Some(cert), Some(key)) => Ok(Tls::Files { cert, key }),
            (Some(_), None) => anyhow::bail!("--tls-cert needs --tls-key (the certificate's private key, PEM)"),
            (None, Some(_)) => anyhow::bail!("--tls-key needs --tls-cert (the certificate chain, PEM)"),
            (None, None) if self_signed => Ok(Tls::SelfSigned),
            (None, None) => Ok(Tls::Off),
        }
    }
}

impl Config {
    pub fn load() -> anyhow::Result<Config> {
        let cli = Cli::parse();
        let file = match &cli.config {
            Some(path) => {
                let text = std::fs::read_to_string(path).with_context(|| format!("Cannot read {}", path.display()))?;
                toml::from_str(&text).with_context(|| format!("Invalid configuration in {}", path.display()))?
            }
            None => File::default(),
        };
        Ok(Config {
            admin_socket: cli.admin_socket.or(file.admin_socket).unwrap_or_else(|| "/var/run/qubesd.sock".into()),
            internal_socket: cli
                .internal_socket
                .or(file.internal_socket)
                .unwrap_or_else(|| "/var/run/qubesd.internal.sock".into()),
            // Pools record absolute paths; a relative directory would not validate when read back.
            state_dir: std::path::absolute(
                cli.state_dir.or(file.state_dir).unwrap_or_else(|| "/var/lib/corral".into()),
            )
            .context("Cannot resolve the state directory")?,
            libvirt_uri: cli.libvirt_uri.or(file.libvirt_uri),
            domain_type: cli.domain_type.or(file.domain_type),
            http: Some(cli.http.or(file.http).unwrap_or_else(|| "127.0.0.1:8006".into())).filter(|h| h != "off"),
            tls: Tls::choose(
                cli.tls_cert.or(file.tls_cert),
                cli.tls_key.or(file.tls_key),
                cli.tls_self_signed.or(file.tls_self_signed).unwrap_or(false),
            )?,
            vnc_listen: cli.vnc_listen.or(file.vnc_listen).unwrap_or(std::net::Ipv4Addr::LOCALHOST.into()),
            sync_commits: cli.sync_commits.or(file.sync_commits).unwrap_or(false),
            log_level: cli.log_level.or(file.log_level).unwrap_or_else(|| "info".into()),
            accept_empty_store: cli.accept_empty_store,
            shutdown_grace: std::time::Duration::from_secs(cli.shutdown_grace.or(file.shutdown_grace).unwrap_or(10)),
            request_timeout: match cli.request_timeout.or(file.request_timeout) {
                Some(0) => anyhow::bail!("request_timeout must be at least 1 second"),
                Some(secs) => std::time::Duration::from_secs(secs),
                None => std::time::Duration::from_secs(60),
            },
            http_connections: Caps {
                max: positive("http_max_connections", cli.http_max_connections.or(file.http_max_connections))?,
                per_peer: positive(
                    "http_max_connections_per_peer",
                    cli.http_max_connections_per_peer.or(file.http_max_connections_per_peer),
                )?,
            },
            admin_connections: Caps {
                max: positive("admin_max_connections", cli.admin_max_connections.or(file.admin_max_connections))?,
                per_peer: positive(
                    "admin_max_connections_per_peer",
                    cli.admin_max_connections_per_peer.or(file.admin_max_connections_per_peer),
                )?,
            },
        })
    }

    pub fn durability(&self) -> Durability {
        if self.sync_commits {
            Durability::PowerLoss
        } else {
            Durability::ProcessCrash
        }
    }

    /// How long a stop waits for the calls in flight.
    pub fn shutdown_grace(&self) -> std::time::Duration {
        self.shutdown_grace
    }

    pub fn log_filter(&self) -> &str {
        &self.log_level
    }

    /// The explicit URI, else `qemu:///system` when a libvirt daemon listens, else an embedded QEMU
    /// driver when QEMU is installed, else libvirt's in-memory test driver.
    pub fn libvirt_uri(&self) -> String {
        if let Some(uri) = &self.libvirt_uri {
            return uri.clone();
        }
        if Path::new("/var/run/libvirt/libvirt-sock").exists() {
            return "qemu:///system".into();
        }
        let has_qemu = std::env::var_os("PATH")
            .is_some_and(|p| std::env::split_paths(&p).any(|d| d.join("qemu-system-x86_64").is_file()));
        if has_qemu {
            return format!("qemu:///embed?root={}", self.state_dir.join("libvirt").display());
        }
        "test:///default".into()
    }
}

/// The host's memory and CPUs, for the read-only global `maxmem` and `no_cpus`.
pub fn host_info() -> HostInfo {
    let memory_kib = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|m| {
            m.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1)?.parse::<u64>().ok())
        })
        .unwrap_or(0);
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1);
    HostInfo { memory_mib: memory_kib / 1024, cpus: u32::try_from(cpus).unwrap_or(1) }
}

/// Why libvirt at `uri` could not be reached, and what the operator can do about it.
pub fn no_hypervisor_advice(uri: &str, error: &str) -> String {
    // libvirt's QEMU driver resolves its default user before it reads qemu.conf, so a machine with only
    // `libvirt-daemon` (the user comes with `libvirt-daemon-system`) cannot run QEMU at all.
    let advice = if error.contains("Failed to parse user 'libvirt-qemu'") {
        "libvirt's QEMU driver needs the system user libvirt-qemu: create it with scripts/deps (or install \
         libvirt-daemon-system), then restart corrald"
    } else if uri.starts_with("qemu:///embed") {
        "check that QEMU and libvirt's QEMU driver (libvirt-daemon-driver-qemu) are installed, or name another \
         connection with --libvirt-uri, then restart corrald"
    } else {
        "check that this libvirt daemon runs and that corrald may connect to it, or name another connection \
         with --libvirt-uri, then restart corrald"
    };
    // libvirt's own message names the URI already.
    format!("corrald has no libvirt connection ({error}); {advice}")
}

/// The embedded QEMU driver reads `<root>/etc/qemu.conf`. Without `user`/`group` root it re-probes
/// capabilities on every start (QEMU as `libvirt-qemu` cannot open a root-only `/dev/kvm`), and without
/// `stdio_handler = "file"` it wants a virtlogd. An existing file is left alone.
pub fn prepare_embedded_root(uri: &str) -> std::io::Result<()> {
    let Some(root) = uri.strip_prefix("qemu:///embed?root=") else { return Ok(()) };
    let etc = Path::new(root).join("etc");
    let conf = etc.join("qemu.conf");
    if conf.exists() {
        return Ok(());
    }
    std::fs::create_dir_all(&etc)?;
    std::fs::write(conf, "user = \"root\"\ngroup = \"root\"\nstdio_handler = \"file\"\n")
}

/// A count from the configuration file, where 0 would mean a door that takes nobody.
fn positive(key: &str, value: Option<u64>) -> anyhow::Result<Option<u64>> {
    match value {
        Some(0) => anyhow::bail!("{key} must be at least 1"),
        other => Ok(other),
    }
}
