//! `corral-bench`: a load tool for the Qubes Admin API socket protocol (qubesd, corrald, or any
//! server speaking the same framing).
//!
//! One call = connect to the UNIX socket → write `<method>[+<arg>] dom0 name <dest>\0<payload>` →
//! `shutdown(Write)` → read to EOF. A reply starting `0\0` is OK; anything else (an exception
//! `2\0Type\0traceback\0message\0`, an empty reply, an IO error) counts as an error.
//!
//! * `admin` creates `<prefix>-<i>` AppVMs (i = 0..N, skipping those that exist), runs a timed load
//!   of C client threads (70% `admin.vm.property.Get+memory`, 20% `admin.vm.List`, 10%
//!   `admin.vm.feature.Get+bench`) and prints throughput, latency percentiles, errors and optionally
//!   the daemon's RSS; `--cleanup` removes the bench qubes afterwards.
//! * `raw` runs the same load loop against a do-nothing server (`/work/shared/bench/ceiling.c`)
//!   with the fixed qube name `vm-name`, to measure the tool's own ceiling.
//!
//! * `http` loads corrald's HTTP door (`/api/vms/{id}` on keep-alive connections, then the full
//!   `/api/vms` list, cached and right after a model change); see `http.rs`.
//!
//! * `setup-guest` prepares the tiny test guest (`tests/guest/`) as a qube on corrald; `start` times
//!   `admin.vm.Start` against libvirt starting the same domain XML; `events` times libvirt power
//!   changes reaching many `admin.Events` subscribers (see `start.rs`, `events.rs`).
//!
//! * `flood` attacks a running corrald's doors and times what it still serves (see `flood.rs`).
//!
//! The hot loop allocates nothing: requests are pre-built once and shared, and each thread reuses
//! one reply buffer and one latency vector.

use std::collections::{HashMap, HashSet};
use std::fmt::{self, Write as _};
use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, Parser, Subcommand};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

mod ceiling;
mod events;
mod flood;
mod guest;
mod http;
#[allow(unsafe_code)]
mod lvevents;
mod start;

/// Load tool for the Qubes Admin API socket protocol.
#[derive(Parser)]
#[command(name = "corral-bench", version, about)]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Create bench qubes on a real daemon, run the mixed load, optionally clean up.
    Admin(AdminArgs),
    /// Run the load loop against a do-nothing server (ceiling.c) to measure the tool itself.
    Raw(LoadArgs),
    /// Load the HTTP door: one vm by id on keep-alive connections, then the full vm list.
    Http(http::HttpArgs),
    /// A do-nothing HTTP server with corrald's reply sizes: the `http` load's ceiling on this machine.
    HttpCeiling(ceiling::CeilingArgs),
    /// Create the tiny test guest as a qube on corrald (kernel link, TemplateVM, AppVM).
    SetupGuest(guest::SetupArgs),
    /// Time admin.vm.Start against libvirt starting the same domain XML.
    Start(start::StartArgs),
    /// Time libvirt suspend/resume reaching many admin.Events subscribers.
    Events(events::EventsArgs),
    /// Attack a running corrald's doors (login flood, idle connections, slowloris, unfinished heads)
    /// and time what it still serves, with its memory.
    Flood(flood::FloodArgs),
}

#[derive(Args)]
struct LoadArgs {
    /// Path of the Admin API UNIX socket.
    #[arg(long)]
    socket: PathBuf,
    /// Number of concurrent client threads.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    clients: u32,
    /// Load duration in seconds.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Also print one JSON object line with all figures (to stdout; the human-readable lines
    /// then go to stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
struct AdminArgs {
    #[command(flatten)]
    load: LoadArgs,
    /// Number of bench qubes (`<prefix>-0` … `<prefix>-<N-1>`).
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(1..))]
    vms: u32,
    /// Name prefix of the bench qubes.
    #[arg(long, default_value = "benchvm")]
    prefix: String,
    /// Do not create qubes; assume `<prefix>-<i>` exist and carry the `bench` feature.
    #[arg(long)]
    no_setup: bool,
    /// Remove the bench qubes after the load.
    #[arg(long)]
    cleanup: bool,
    /// PID of the daemon, to report its peak (VmHWM) and current (VmRSS) memory.
    #[arg(long)]
    daemon_pid: Option<u32>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let res = match cli.cmd {
        Cmd::Raw(load) => run_raw(&load),
        Cmd::Admin(args) => run_admin(&args),
        Cmd::Http(args) => http::run_http(&args),
        Cmd::HttpCeiling(args) => ceiling::run_ceiling(&args),
        Cmd::SetupGuest(args) => guest::run_setup(&args),
        Cmd::Start(args) => start::run_start(&args),
        Cmd::Events(args) => events::run_events(&args),
        Cmd::Flood(args) => flood::run_flood(&args),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("corral-bench: {e:#}");
            ExitCode::FAILURE
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Wire protocol
// ---------------------------------------------------------------------------------------------

/// Appends `<method>[+<arg>] dom0 name <dest>\0<payload>` to `out` (after clearing it).
fn build_request(out: &mut Vec<u8>, method: &str, arg: Option<&str>, dest: &str, payload: &[u8]) {
    out.clear();
    out.extend_from_slice(method.as_bytes());
    if let Some(arg) = arg {
        out.push(b'+');
        out.extend_from_slice(arg.as_bytes());
    }
    out.extend_from_slice(b" dom0 name ");
    out.extend_from_slice(dest.as_bytes());
    out.push(0);
    out.extend_from_slice(payload);
}

fn request(method: &str, arg: Option<&str>, dest: &str, payload: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(method.len() + dest.len() + payload.len() + 32);
    build_request(&mut v, method, arg, dest, payload);
    v
}

/// One full call: connect, send `req`, half-close, read the reply to EOF into `buf` (grown if
/// needed, never shrunk). Returns the reply length.
fn call(socket: &Path, req: &[u8], buf: &mut Vec<u8>) -> io::Result<usize> {
    let mut s = UnixStream::connect(socket)?;
    s.write_all(req)?;
    s.shutdown(Shutdown::Write)?;
    let mut len = 0;
    loop {
        if len == buf.len() {
            let new_len = (buf.len() * 2).max(4096);
            buf.resize(new_len, 0);
        }
        match s.read(&mut buf[len..]) {
            Ok(0) => return Ok(len),
            Ok(n) => len += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
}

/// Human description of a non-OK reply.
fn describe_failure(reply: &[u8]) -> String {
    if reply.is_empty() {
        return "empty reply (call dropped by the server)".to_owned();
    }
    if let Some(rest) = reply.strip_prefix(b"2\0") {
        let mut parts = rest.split(|&b| b == 0);
        let ty = parts.next().unwrap_or_default();
        let _traceback = parts.next();
        let msg = parts.next().unwrap_or_default();
        return format!("{}: {}", String::from_utf8_lossy(ty), String::from_utf8_lossy(msg));
    }
    let head = &reply[..reply.len().min(80)];
    format!("unexpected reply: {:?}", head.escape_ascii().to_string())
}

/// A sequential client for setup and cleanup calls.
struct AdminClient {
    socket: PathBuf,
    req: Vec<u8>,
    buf: Vec<u8>,
}

impl AdminClient {
    fn new(socket: &Path) -> Self {
        AdminClient { socket: socket.to_owned(), req: Vec::new(), buf: vec![0; 65536] }
    }

    /// Performs a call and returns the OK content, or an error carrying the exception.
    fn call(&mut self, method: &str, arg: Option<&str>, dest: &str, payload: &[u8]) -> Result<String> {
        build_request(&mut self.req, method, arg, dest, payload);
        let what = || match arg {
            Some(a) => format!("{method}+{a} to {dest}"),
            None => format!("{method} to {dest}"),
        };
        let len = call(&self.socket, &self.req, &mut self.buf)
            .with_context(|| format!("{} via {}", what(), self.socket.display()))?;
        let reply = &self.buf[..len];
        match reply.strip_prefix(b"0\0") {
            Some(content) => Ok(String::from_utf8_lossy(content).into_owned()),
            None => bail!("{}: {}", what(), describe_failure(reply)),
        }
    }

    /// Names of all qubes (first token of each `admin.vm.List` line).
    fn list(&mut self) -> Result<HashSet<String>> {
        let list = self.call("admin.vm.List", None, "dom0", b"")?;
        Ok(list.lines().filter_map(|l| l.split(' ').next()).filter(|n| !n.is_empty()).map(str::to_owned).collect())
    }
}

// ---------------------------------------------------------------------------------------------
// Load loop
// ---------------------------------------------------------------------------------------------

/// Pre-built requests of the load mix.
struct Mix {
    /// `admin.vm.property.Get+memory`, one per qube.
    prop: Vec<Vec<u8>>,
    /// `admin.vm.List` to dom0.
    list: Vec<u8>,
    /// `admin.vm.feature.Get+bench`, one per qube.
    feat: Vec<Vec<u8>>,
}

impl Mix {
    fn new(names: &[String]) -> Self {
        Mix {
            prop: names.iter().map(|n| request("admin.vm.property.Get", Some("memory"), n, b"")).collect(),
            list: request("admin.vm.List", None, "dom0", b""),
            feat: names.iter().map(|n| request("admin.vm.feature.Get", Some("bench"), n, b"")).collect(),
        }
    }
}

/// Distinct error messages kept per thread (further distinct ones are only counted).
const MAX_ERROR_KINDS: usize = 16;

#[derive(Default)]
struct WorkerOut {
    /// Latency of each successful call, microseconds.
    lat: Vec<u32>,
    io_errors: u64,
    reply_errors: u64,
    /// Error message → count.
    kinds: HashMap<String, u64>,
}

impl WorkerOut {
    fn note(&mut self, msg: String) {
        let n = self.kinds.len();
        match self.kinds.get_mut(&msg) {
            Some(c) => *c += 1,
            None if n < MAX_ERROR_KINDS => {
                self.kinds.insert(msg, 1);
            }
            None => *self.kinds.entry("(other errors)".to_owned()).or_insert(0) += 1,
        }
    }
}

fn worker(socket: &Path, mix: &Mix, stop: &AtomicBool) -> WorkerOut {
    let mut rng = SmallRng::from_entropy();
    let mut buf = vec![0u8; 65536];
    let mut out = WorkerOut { lat: Vec::with_capacity(1 << 18), ..WorkerOut::default() };
    let n = mix.prop.len();
    while !stop.load(Ordering::Relaxed) {
        let r = rng.gen_range(0..100u32);
        let req: &[u8] = if r < 70 {
            &mix.prop[rng.gen_range(0..n)]
        } else if r < 90 {
            &mix.list
        } else {
            &mix.feat[rng.gen_range(0..n)]
        };
        let t = Instant::now();
        let res = call(socket, req, &mut buf);
        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        match res {
            Ok(len) if buf[..len].starts_with(b"0\0") => out.lat.push(us),
            Ok(len) => {
                out.reply_errors += 1;
                let msg = describe_failure(&buf[..len]);
                out.note(msg);
            }
            Err(e) => {
                out.io_errors += 1;
                out.note(format!("IO error: {e}"));
                // Do not spin at full speed on a dead socket.
                if matches!(e.kind(), io::ErrorKind::NotFound | io::ErrorKind::ConnectionRefused) {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    out
}

struct LoadResult {
    clients: u32,
    elapsed: Duration,
    /// Sorted latencies of successful calls, microseconds.
    lat: Vec<u32>,
    io_errors: u64,
    reply_errors: u64,
    kinds: Vec<(String, u64)>,
}

impl LoadResult {
    fn ok(&self) -> u64 {
        self.lat.len() as u64
    }
    fn errors(&self) -> u64 {
        self.io_errors + self.reply_errors
    }
    fn per_s(&self, n: u64) -> f64 {
        n as f64 / self.elapsed.as_secs_f64()
    }
    /// Percentile `p` (0–100) in milliseconds, nearest-rank.
    fn pct_ms(&self, p: f64) -> Option<f64> {
        if self.lat.is_empty() {
            return None;
        }
        let rank = ((p / 100.0) * self.lat.len() as f64).ceil() as usize;
        let idx = rank.clamp(1, self.lat.len()) - 1;
        Some(f64::from(self.lat[idx]) / 1000.0)
    }
}

fn run_load(socket: &Path, clients: u32, duration: Duration, names: &[String]) -> Result<LoadResult> {
    let mix = Mix::new(names);
    run_timed(clients, duration, |stop| worker(socket, &mix, stop))
}

/// Runs `work` on `clients` threads until `duration` has passed, then merges what they measured.
/// `work` must return soon after the flag it is given turns true.
fn run_timed<F>(clients: u32, duration: Duration, work: F) -> Result<LoadResult>
where
    F: Fn(&AtomicBool) -> WorkerOut + Sync,
{
    let stop = AtomicBool::new(false);
    let start = Instant::now();
    let joined = thread::scope(|s| -> Result<Vec<thread::Result<WorkerOut>>> {
        let mut handles = Vec::with_capacity(clients as usize);
        for i in 0..clients {
            match thread::Builder::new().name(format!("client-{i}")).spawn_scoped(s, || work(&stop)) {
                Ok(h) => handles.push(h),
                Err(e) => {
                    // The scope joins the threads already started; they must see the flag to end.
                    stop.store(true, Ordering::Relaxed);
                    return Err(e).context("spawning client thread");
                }
            }
        }
        thread::sleep(duration);
        stop.store(true, Ordering::Relaxed);
        // Every handle is joined before any panic is reported: the scope would panic on an unjoined one.
        Ok(handles.into_iter().map(|h| h.join()).collect())
    })?;
    let elapsed = start.elapsed();
    let mut outs = Vec::with_capacity(joined.len());
    for o in joined {
        match o {
            Ok(o) => outs.push(o),
            Err(_) => bail!("a client thread panicked"),
        }
    }

    let total: usize = outs.iter().map(|o| o.lat.len()).sum();
    let mut lat = Vec::with_capacity(total);
    let (mut io_errors, mut reply_errors) = (0, 0);
    let mut kinds: HashMap<String, u64> = HashMap::new();
    for o in outs {
        lat.extend_from_slice(&o.lat);
        io_errors += o.io_errors;
        reply_errors += o.reply_errors;
        for (k, c) in o.kinds {
            *kinds.entry(k).or_insert(0) += c;
        }
    }
    lat.sort_unstable();
    let mut kinds: Vec<_> = kinds.into_iter().collect();
    kinds.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    Ok(LoadResult { clients, elapsed, lat, io_errors, reply_errors, kinds })
}

// ---------------------------------------------------------------------------------------------
// Reporting
// ---------------------------------------------------------------------------------------------

/// Human-readable output: stdout, or stderr when `--json` owns stdout.
struct Out {
    json: bool,
}

impl Out {
    /// Write errors (e.g. a closed pipe) are ignored: the figures are best effort output.
    fn line(&self, args: fmt::Arguments<'_>) {
        if self.json {
            let _ = writeln!(io::stderr().lock(), "{args}");
        } else {
            let _ = writeln!(io::stdout().lock(), "{args}");
        }
    }
}

fn fmt_opt(v: Option<f64>, prec: usize) -> String {
    v.map_or_else(|| "-".to_owned(), |v| format!("{v:.prec$}"))
}

/// Words of a load report, so that the Admin API and HTTP loads print alike.
struct Labels {
    /// What ran: the first word of the summary line.
    what: &'static str,
    /// One load thread.
    client: &'static str,
    /// One measured exchange.
    call: &'static str,
    /// A reply that is not a success.
    bad_reply: &'static str,
}

const ADMIN_LABELS: Labels = Labels { what: "load", client: "clients", call: "calls", bad_reply: "error replies" };

fn report_load(out: &Out, r: &LoadResult) {
    report_load_as(out, r, &ADMIN_LABELS);
}

fn report_load_as(out: &Out, r: &LoadResult, l: &Labels) {
    out.line(format_args!(
        "{}: {} {}, {:.2} s: {} {}, {:.0} {}/s",
        l.what,
        r.clients,
        l.client,
        r.elapsed.as_secs_f64(),
        r.ok(),
        l.call,
        r.per_s(r.ok()),
        l.call
    ));
    out.line(format_args!(
        "latency ms: p50 {}  p95 {}  p99 {}  max {}",
        fmt_opt(r.pct_ms(50.0), 3),
        fmt_opt(r.pct_ms(95.0), 3),
        fmt_opt(r.pct_ms(99.0), 3),
        fmt_opt(r.pct_ms(100.0), 3)
    ));
    out.line(format_args!("errors: {} ({} IO, {} {})", r.errors(), r.io_errors, r.reply_errors, l.bad_reply));
    for (msg, c) in &r.kinds {
        out.line(format_args!("  {c:>9} × {msg}"));
    }
}

/// Minimal JSON object builder (numbers, null, and plain ASCII strings).
struct Json(String);

impl Json {
    fn new() -> Self {
        Json(String::from("{"))
    }
    fn key(&mut self, k: &str) {
        if self.0.len() > 1 {
            self.0.push(',');
        }
        let _ = write!(self.0, "\"{k}\":");
    }
    fn str(&mut self, k: &str, v: &str) {
        self.key(k);
        self.0.push('"');
        for c in v.chars() {
            match c {
                '"' => self.0.push_str("\\\""),
                '\\' => self.0.push_str("\\\\"),
                c if (c as u32) < 0x20 => {
                    let _ = write!(self.0, "\\u{:04x}", c as u32);
                }
                c => self.0.push(c),
            }
        }
        self.0.push('"');
    }
    fn int(&mut self, k: &str, v: u64) {
        self.key(k);
        let _ = write!(self.0, "{v}");
    }
    fn num(&mut self, k: &str, v: Option<f64>) {
        self.key(k);
        match v {
            Some(v) if v.is_finite() => {
                let _ = write!(self.0, "{v:.3}");
            }
            _ => self.0.push_str("null"),
        }
    }
    /// `v` must be valid JSON already (e.g. another `Json`'s `finish()`).
    fn raw(&mut self, k: &str, v: &str) {
        self.key(k);
        self.0.push_str(v);
    }
    fn finish(mut self) -> String {
        self.0.push('}');
        self.0
    }
}

fn json_load(j: &mut Json, r: &LoadResult) {
    j.int("clients", u64::from(r.clients));
    j.num("duration_s", Some(r.elapsed.as_secs_f64()));
    j.int("calls", r.ok());
    j.num("calls_per_s", Some(r.per_s(r.ok())));
    j.num("p50_ms", r.pct_ms(50.0));
    j.num("p95_ms", r.pct_ms(95.0));
    j.num("p99_ms", r.pct_ms(99.0));
    j.num("max_ms", r.pct_ms(100.0));
    j.int("errors", r.errors());
    j.int("io_errors", r.io_errors);
    j.int("reply_errors", r.reply_errors);
}

/// (VmHWM, VmRSS) of a process, in MB.
fn daemon_rss(pid: u32) -> Result<(f64, f64)> {
    let path = format!("/proc/{pid}/status");
    let status = std::fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let field = |name: &str| -> Result<f64> {
        let line =
            status.lines().find_map(|l| l.strip_prefix(name)).with_context(|| format!("{name} missing in {path}"))?;
        let kb: u64 = line
            .trim_start_matches(':')
            .trim()
            .trim_end_matches("kB")
            .trim()
            .parse()
            .with_context(|| format!("parsing {name} in {path}"))?;
        Ok(kb as f64 / 1024.0)
    };
    Ok((field("VmHWM")?, field("VmRSS")?))
}

/// Prints and records the daemon's memory; a failure to read it is reported, not fatal, since the
/// load figures are still worth having.
fn report_rss(out: &Out, j: &mut Json, pid: u32) {
    match daemon_rss(pid) {
        Ok((hwm, rss)) => {
            out.line(format_args!("daemon RSS: peak {hwm:.1} MB, now {rss:.1} MB"));
            j.num("rss_peak_mb", Some(hwm));
            j.num("rss_mb", Some(rss));
        }
        Err(e) => {
            out.line(format_args!("daemon RSS: unavailable: {e:#}"));
            j.num("rss_peak_mb", None);
            j.num("rss_mb", None);
        }
    }
}

fn parse_duration(secs: f64) -> Result<Duration> {
    if !(secs.is_finite() && secs > 0.0) {
        bail!("--duration must be a positive number of seconds");
    }
    Ok(Duration::from_secs_f64(secs))
}

// ---------------------------------------------------------------------------------------------
// Subcommands
// ---------------------------------------------------------------------------------------------

fn run_raw(args: &LoadArgs) -> Result<()> {
    let duration = parse_duration(args.duration)?;
    let out = Out { json: args.json };
    let names = ["vm-name".to_owned()];
    let r = run_load(&args.socket, args.clients, duration, &names)?;
    report_load(&out, &r);
    if args.json {
        let mut j = Json::new();
        j.str("mode", "raw");
        json_load(&mut j, &r);
        let _ = writeln!(io::stdout().lock(), "{}", j.finish());
    }
    if r.ok() == 0 {
        bail!("no call succeeded");
    }
    Ok(())
}

/// Creates `<prefix>-tpl` and makes it `default_template` if that property is unset.
fn ensure_default_template(admin: &mut AdminClient, out: &Out, prefix: &str, existing: &HashSet<String>) -> Result<()> {
    let value = admin.call("admin.property.Get", Some("default_template"), "dom0", b"")?;
    if !value.ends_with(' ') {
        return Ok(());
    }
    let tpl = format!("{prefix}-tpl");
    if !existing.contains(&tpl) {
        admin.call("admin.vm.Create.TemplateVM", None, "dom0", format!("name={tpl} label=black").as_bytes())?;
    }
    admin.call("admin.property.Set", Some("default_template"), "dom0", tpl.as_bytes())?;
    out.line(format_args!("default_template was unset: now {tpl}"));
    Ok(())
}

/// Creates those of `names` that do not exist (AppVMs of the default template, made first if unset) and
/// gives each new one the `bench` feature the load reads.
fn ensure_bench_qubes(admin: &mut AdminClient, out: &Out, j: &mut Json, prefix: &str, names: &[String]) -> Result<()> {
    let existing = admin.list()?;
    let missing: Vec<&String> = names.iter().filter(|n| !existing.contains(*n)).collect();
    if missing.is_empty() {
        out.line(format_args!("all {} bench qubes exist", names.len()));
        j.int("created", 0);
        return Ok(());
    }
    ensure_default_template(admin, out, prefix, &existing)?;
    let t0 = Instant::now();
    for name in &missing {
        admin.call("admin.vm.Create.AppVM", None, "dom0", format!("name={name} label=red").as_bytes())?;
    }
    let dt = t0.elapsed().as_secs_f64();
    let rate = missing.len() as f64 / dt;
    out.line(format_args!("created {} qubes in {dt:.2} s ({rate:.1}/s)", missing.len()));
    j.int("created", missing.len() as u64);
    j.num("create_s", Some(dt));
    j.num("create_per_s", Some(rate));
    for name in &missing {
        admin.call("admin.vm.feature.Set", Some("bench"), name, b"1")?;
    }
    Ok(())
}

fn run_admin(args: &AdminArgs) -> Result<()> {
    let load = &args.load;
    let duration = parse_duration(load.duration)?;
    let out = Out { json: load.json };
    let names: Vec<String> = (0..args.vms).map(|i| format!("{}-{i}", args.prefix)).collect();
    let mut admin = AdminClient::new(&load.socket);
    let mut j = Json::new();
    j.str("mode", "admin");
    j.int("vms", u64::from(args.vms));

    if !args.no_setup {
        ensure_bench_qubes(&mut admin, &out, &mut j, &args.prefix, &names)?;
    }

    let r = run_load(&load.socket, load.clients, duration, &names)?;
    report_load(&out, &r);
    json_load(&mut j, &r);

    if let Some(pid) = args.daemon_pid {
        report_rss(&out, &mut j, pid);
    }

    if args.cleanup {
        let existing = admin.list()?;
        let present: Vec<&String> = names.iter().filter(|n| existing.contains(*n)).collect();
        let t0 = Instant::now();
        for name in &present {
            admin.call("admin.vm.Remove", None, name, b"")?;
        }
        let dt = t0.elapsed().as_secs_f64();
        out.line(format_args!("removed {} qubes in {dt:.2} s", present.len()));
        j.int("removed", present.len() as u64);
        j.num("remove_s", Some(dt));
    }

    if load.json {
        let _ = writeln!(io::stdout().lock(), "{}", j.finish());
    }
    if r.ok() == 0 {
        bail!("no call succeeded");
    }
    Ok(())
}
