//! The socket server: one request per connection, read to EOF, dispatch through the method table,
//! write the reply, close. `admin.Events` keeps the connection and streams.

use std::collections::HashMap;
use std::io;
use std::path::Path;
use std::sync::Arc;

use corral_core::{Error, Result};
use corral_service::{Principal, Service};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};

use crate::frame::{self, Request, MAX_REQUEST};
use crate::methods::{Cost, Ctx, Dest, Method, Want};

/// Which method table a socket serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Door {
    Admin,
    Internal,
}

struct Table {
    methods: HashMap<String, Method>,
    /// The reply to `admin.vm.List` of every qube and the model generation it shows: the most frequent and
    /// largest reply, rendered once per change.
    all_vms: crate::render::VmListCache,
}

impl Table {
    fn new(door: Door) -> Table {
        let list = match door {
            Door::Admin => crate::methods::admin_methods(),
            Door::Internal => crate::methods::internal_methods(),
        };
        Table { methods: list.into_iter().map(|m| (m.name.clone(), m)).collect(), all_vms: Default::default() }
    }
}

/// Binds a socket, replacing a stale socket only when nobody answers on it. Anything else at `path` (a file,
/// a directory, a symlink) is refused and left alone: a mistyped option must not cost the user a file.
pub fn bind(path: &Path) -> io::Result<UnixListener> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(io::Error::new(
                    io::ErrorKind::AddrInUse,
                    format!("{} is served by another daemon", path.display()),
                ));
            }
            std::fs::remove_file(path)?;
        }
        Ok(meta) => {
            let what = if meta.file_type().is_symlink() {
                "a symlink"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "a file that is not a socket"
            };
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{} is {what}; refusing to replace it with a socket", path.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => {}
        Err(e) => return Err(e),
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let listener = UnixListener::bind(path)?;
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o660))?;
    Ok(listener)
}

/// What the socket allows: connections in total and per uid, and how long a client may take to send its whole
/// request (to EOF) or to read a reply or event. Connections that never finish would hold a descriptor each
/// until the daemon ran out; an accepted `admin.Events` stream is busy, not idle, and is never evicted.
pub use corral_conns::Limits;

/// Tells the servers to stop: they take no new connections, answer the calls they have, and close event
/// streams.
pub type Stop = tokio::sync::watch::Receiver<bool>;

async fn stopped(stop: &mut Stop) {
    // A dropped sender means the daemon is going away as well.
    let _ = stop.wait_for(|s| *s).await;
}

/// Serves one bound socket until `stop`, then answers every call already accepted and returns. The caller
/// removes the socket's file first, so nobody connects meanwhile; what was already connected is still
/// accepted and answered rather than left with an empty reply.
pub async fn serve(service: Arc<Service>, listener: UnixListener, door: Door, mut stop: Stop, limits: Limits) {
    let table = Arc::new(Table::new(door));
    let connections = corral_conns::Door::new(limits);
    let mut calls = tokio::task::JoinSet::new();
    let for_calls = stop.clone();
    let mut refusals = corral_conns::RateLimited::default();
    let mut spawn = |calls: &mut tokio::task::JoinSet<()>, stream: UnixStream| {
        // Peers are told apart by uid: every dom0 tool and qrexec run as root, other local users do not.
        let uid = stream.peer_cred().map_or(u32::MAX, |c| c.uid());
        let mut admitted = match connections.admit(uid) {
            Ok(admitted) => admitted,
            Err(refused) => {
                refusals.warn(|suppressed| tracing::warn!(uid, ?refused, suppressed, "connection refused"));
                return;
            }
        };
        let (service, table, stop) = (service.clone(), table.clone(), for_calls.clone());
        calls.spawn(async move {
            let activity = admitted.activity.clone();
            tokio::select! {
                _ = handle(service, table, stream, stop, activity, limits.idle_timeout) => {}
                _ = admitted.must_close() => {}
            }
        });
    };
    let mut warnings = corral_conns::RateLimited::default();
    loop {
        tokio::select! {
            _ = stopped(&mut stop) => break,
            accepted = listener.accept() => match accepted {
                Ok((stream, _)) => spawn(&mut calls, stream),
                Err(e) => {
                    warnings.warn(|suppressed| tracing::warn!(error = %e, suppressed, "accept failed"));
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                }
            },
            // Finished calls are reaped as they go, so the set holds only those in flight.
            Some(_) = calls.join_next(), if !calls.is_empty() => {}
        }
    }
    // Connections that were waiting in the backlog when the stop came: accepted directly from the socket, as
    // the reactor may not have seen them yet.
    match listener.into_std() {
        Ok(backlog) => {
            while let Ok((stream, _)) = backlog.accept() {
                match stream.set_nonblocking(true).and_then(|()| UnixStream::from_std(stream)) {
                    Ok(stream) => spawn(&mut calls, stream),
                    Err(e) => tracing::warn!(error = %e, "cannot serve a connection made before the stop"),
                }
            }
        }
        Err(e) => tracing::warn!(error = %e, "cannot take the connections made before the stop"),
    }
    while calls.join_next().await.is_some() {}
}

async fn read_request(stream: &mut UnixStream) -> io::Result<Option<Vec<u8>>> {
    let mut buf = Vec::with_capacity(512);
    let mut chunk = [0u8; 8192];
    loop {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(Some(buf));
        }
        if buf.len() + n > MAX_REQUEST {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

/// Serves one connection. Until its request has arrived it is idle (the door closes it after the idle timeout);
/// from then on it is busy until the reply is written or the stream ends.
async fn handle(
    service: Arc<Service>,
    table: Arc<Table>,
    stream: UnixStream,
    mut stop: Stop,
    activity: Arc<corral_conns::Activity>,
    write_timeout: std::time::Duration,
) {
    let mut stream = Timed { stream, timeout: write_timeout };
    let Ok(Some(buf)) = read_request(&mut stream.stream).await else { return };
    let _busy = activity.begin();
    let Ok(request) = frame::parse(&buf) else { return };
    let reply = match prepare(&service, &table, &request) {
        Err(e) => Wire::Bytes(frame::exception(&e)),
        Ok(Prepared { caller, method, request }) => {
            match answer(service.clone(), &table, caller.clone(), method, request).await {
                Answer::Wire(wire) => wire,
                // Streams never end by themselves: at stop they are closed, not waited for.
                Answer::Events(mut subscription) => {
                    return tokio::select! {
                        _ = stream_events(&service, &mut stream, &mut subscription) => {}
                        _ = stopped(&mut stop) => {}
                    }
                }
                Answer::Stats(dest) => {
                    return tokio::select! {
                        _ = stream_stats(service.clone(), &mut stream, &dest) => {}
                        _ = stopped(&mut stop) => {}
                    }
                }
            }
        }
    };
    let written = match reply {
        // An empty reply is an internal failure: close without answering, as qubesd does.
        Wire::Bytes(bytes) if bytes.is_empty() => return,
        Wire::Bytes(bytes) => stream.write_all(&bytes).await,
        Wire::Ok(content) => within(stream.timeout, write_ok(&mut stream.stream, &content)).await,
    };
    if written.is_ok() {
        let _ = stream.stream.shutdown().await;
    }
}

/// A connection whose writes must finish within a time: a client that stops reading its reply or its events
/// would otherwise hold the connection (and an event subscription) for ever.
struct Timed {
    stream: UnixStream,
    timeout: std::time::Duration,
}

impl Timed {
    async fn write_all(&mut self, bytes: &[u8]) -> io::Result<()> {
        within(self.timeout, self.stream.write_all(bytes)).await
    }
}

async fn within<T>(
    timeout: std::time::Duration,
    write: impl std::future::Future<Output = io::Result<T>>,
) -> io::Result<T> {
    tokio::time::timeout(timeout, write)
        .await
        .unwrap_or_else(|_| Err(io::Error::new(io::ErrorKind::TimedOut, "the client stopped reading")))
}

/// A reply ready for the socket: encoded bytes, or shared OK content still to be framed.
enum Wire {
    Bytes(Vec<u8>),
    Ok(Arc<Vec<u8>>),
}

/// Replies larger than the default socket buffer would take several wakeups of both sides.
const LARGE_REPLY: usize = 128 * 1024;

/// `0\0` and the content without copying the content into a new buffer.
async fn write_ok(stream: &mut UnixStream, content: &[u8]) -> io::Result<()> {
    if content.len() > LARGE_REPLY {
        // Best effort: the kernel caps it at wmem_max, and a smaller buffer only costs time.
        let _ = socket2::SockRef::from(&*stream).set_send_buffer_size(content.len() + 64);
    }
    let header: &[u8] = b"0\0";
    let mut sent = 0;
    let total = header.len() + content.len();
    while sent < total {
        let n = if sent < header.len() {
            let bufs = [io::IoSlice::new(&header[sent..]), io::IoSlice::new(content)];
            stream.write_vectored(&bufs).await?
        } else {
            stream.write(&content[sent - header.len()..]).await?
        };
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        sent += n;
    }
    Ok(())
}

/// A call that passed the gate and the framing checks, as its typed request.
struct Prepared {
    caller: Principal,
    method: Method,
    request: corral_service::Request,
}

/// Checks a call in qubesd's order, all before the service runs it: the caller may make it at all (asked
/// with the destination as given, before anything is looked up, as qrexec's policy is asked before qubesd
/// sees a call), then the destination exists, the method exists, and the payload, argument and destination
/// fit the method; then the method's parser reads the argument and payload.
fn prepare(service: &Service, table: &Table, r: &Request<'_>) -> Result<Prepared> {
    let caller = Principal::from_source(&service.resolve(r.src)?);
    service.authorize(&caller, &corral_core::Operation::new(r.method, r.arg, r.dest))?;
    let dest = service.resolve(r.dest)?;
    let Some(method) = table.methods.get(r.method) else {
        return Err(Error::protocol(format!("no such method: {}", corral_core::text::pyrepr(r.method))));
    };
    match (method.payload, r.payload.is_empty()) {
        (Want::Yes, true) => return Err(Error::protocol("expected payload")),
        (Want::No, false) => return Err(Error::protocol("unexpected payload")),
        _ => {}
    }
    match (method.arg, r.arg.is_empty()) {
        (Want::Yes, true) => return Err(Error::protocol("expected an argument")),
        (Want::No, false) => return Err(Error::protocol("unexpected argument")),
        _ => {}
    }
    match (method.dest, dest == corral_core::domain::DOM0) {
        (Dest::Admin, false) => return Err(Error::protocol("expected destination to be AdminVM")),
        (Dest::NotAdmin, true) => return Err(Error::protocol("expected destination to not be AdminVM")),
        _ => {}
    }
    let ctx = Ctx { caller: &caller, method: &method.name, arg: r.arg, dest: &dest, payload: r.payload };
    let request = (method.parse)(&ctx)?;
    Ok(Prepared { caller, method: method.clone(), request })
}

/// What the connection does with a call's outcome: write a reply, or stream.
enum Answer {
    Wire(Wire),
    Events(corral_service::Subscription),
    Stats(String),
}

/// Runs the request through the service's entry point (off the executor when it may block) and renders the
/// answer.
async fn answer(
    service: Arc<Service>,
    table: &Table,
    caller: Principal,
    method: Method,
    request: corral_service::Request,
) -> Answer {
    let outcome = match method.cost {
        Cost::Memory => service.handle(&caller, request),
        // A panic in the service must not take the daemon down; the client sees an empty reply, as upstream
        // clients see for unexpected internal errors.
        Cost::Io => match tokio::task::spawn_blocking(move || service.handle(&caller, request)).await {
            Ok(outcome) => outcome,
            Err(_) => return Answer::Wire(Wire::Bytes(Vec::new())),
        },
    };
    match outcome.and_then(|response| crate::render::render(response, &table.all_vms)) {
        Ok(crate::render::Rendered::Content(content)) => Answer::Wire(Wire::Ok(content)),
        Ok(crate::render::Rendered::Events(subscription)) => Answer::Events(subscription),
        Ok(crate::render::Rendered::Stats(vm)) => Answer::Stats(vm),
        Err(e) => Answer::Wire(Wire::Bytes(frame::exception(&e))),
    }
}

/// `vm-stats` for every running qube (or only the destination) every `stats_interval` seconds.
async fn stream_stats(service: Arc<Service>, stream: &mut Timed, dest: &str) {
    let hello = corral_core::Event::global("connection-established");
    if stream.write_all(&frame::event(&hello)).await.is_err() {
        return;
    }
    let mut previous: HashMap<String, (u64, std::time::Instant)> = HashMap::new();
    loop {
        let (svc, target) = (service.clone(), dest.to_string());
        let Ok((samples, interval)) = tokio::task::spawn_blocking(move || svc.stats_sample(&target)).await else {
            return;
        };
        for (name, info) in samples {
            let now = std::time::Instant::now();
            let usage = previous.get(&name).map_or(0.0, |(cpu, at)| {
                let wall = now.duration_since(*at).as_nanos() as f64;
                let used = info.cpu_time_ns.saturating_sub(*cpu) as f64;
                if wall > 0.0 {
                    100.0 * used / wall / f64::from(info.vcpus.max(1))
                } else {
                    0.0
                }
            });
            previous.insert(name.clone(), (info.cpu_time_ns, now));
            let event = corral_core::Event::on(&name, "vm-stats")
                .arg("memory_kb", info.memory_kib.to_string())
                .arg("memory_assigned_total", info.max_memory_kib.to_string())
                .arg("memory_assigned_usable", info.memory_kib.to_string())
                .arg("memory_with_swap_used", info.memory_kib.to_string())
                .arg("cpu_time", (info.cpu_time_ns / 1_000_000).to_string())
                .arg("cpu_usage", format!("{}", usage.round() as u64))
                .arg("online_vcpus", info.vcpus.to_string());
            if stream.write_all(&frame::event(&event)).await.is_err() {
                return;
            }
        }
        tokio::time::sleep(interval).await;
    }
}

/// Forwards what the subscription lets through until the client goes away or falls too far behind.
async fn stream_events(service: &Service, stream: &mut Timed, subscription: &mut corral_service::Subscription) {
    let hello = corral_core::Event::global("connection-established");
    if stream.write_all(&frame::event(&hello)).await.is_err() {
        return;
    }
    loop {
        match subscription.next(service).await {
            Ok(event) => {
                if stream.write_all(&frame::event(&event)).await.is_err() {
                    return;
                }
            }
            Err(corral_service::SubscriptionEnded::FellBehind(n)) => {
                tracing::warn!(missed = n, "event subscriber fell behind; closing its stream");
                return;
            }
            Err(corral_service::SubscriptionEnded::Closed) => return,
        }
    }
}
