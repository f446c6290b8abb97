//! `flood`: what a running corrald keeps serving while its doors are attacked (issue 11, "bounded
//! doors"), scenario after scenario, against a daemon started by the caller (`scripts/bench-flood`
//! starts one, or two to compare releases).
//!
//! * `login`: K threads send `GET /api` with Basic credentials of random unknown users, each on a
//!   fresh connection, as fast as the daemon answers; meanwhile rounds of legitimate users log in for
//!   the first time (their passwords not yet verified), all of a round in parallel. Figures: logins
//!   answered 200 out of attempted, their latency, the daemon's memory before, at its peak during the
//!   flood, and 10 s after it.
//! * `idle`: 1,030 idle connections to the HTTP door, then an `admin.vm.List` on the Admin API socket
//!   and an authenticated `GET /api` are timed (at most `--probe-timeout`).
//! * `slowloris`: 1,000 connections each sending one header line per second, never ending the head;
//!   at each checkpoint, how many the daemon still keeps open, and the two probes.
//! * `heads`: 1,000 connections each sending 371 KiB of header lines without ending the head, held
//!   open; the daemon's memory before, at its peak, and after.
//!
//! Attack connections come from `--attacker-addresses` loopback addresses (127.0.1.x), round robin,
//! so that a per-address cap alone does not decide the outcome; each legitimate user and the probe
//! use an address of their own (127.0.2.x). The peak is the kernel's VmHWM, reset before each scenario
//! through `/proc/PID/clear_refs` (root only; else it is the peak since the daemon started, and says
//! so). A probe that does not answer in time is left behind in its own thread.

use std::io::{self, Read, Write};
use std::net::{IpAddr, Ipv4Addr, Shutdown, SocketAddr, TcpStream};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{mpsc, Arc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::{Args, ValueEnum};
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};
use socket2::{Domain, Protocol, Socket, Type};

use crate::guest::{ms, Stats};
use crate::{daemon_rss, describe_failure, fmt_opt, request, Json, Out};

#[derive(Args)]
pub(crate) struct FloodArgs {
    /// The HTTP door, `HOST:PORT` (plain HTTP).
    #[arg(long)]
    http: SocketAddr,
    /// The Admin API socket (probes).
    #[arg(long)]
    admin_socket: PathBuf,
    /// The internal socket, where the legitimate users are created (`corral.user.Add`).
    #[arg(long)]
    internal_socket: PathBuf,
    /// PID of the daemon, for its memory (VmRSS, VmHWM).
    #[arg(long)]
    pid: u32,
    /// Scenarios to run, in this order (default: all).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "login,idle,slowloris,heads")]
    scenario: Vec<Scenario>,
    /// Attacker thread counts of the login flood; one flood per value.
    #[arg(long, value_delimiter = ',', default_value = "4,16")]
    attackers: Vec<u32>,
    /// Seconds the login flood lasts at least (it lasts until the last round of logins is answered).
    #[arg(long, default_value_t = 10)]
    flood_duration: u64,
    /// Legitimate users logging in together, per round.
    #[arg(long, default_value_t = 6)]
    users: u32,
    /// Rounds of first logins during one login flood (new users each round).
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Loopback addresses the attack connections are spread over (127.0.1.1 …).
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u8).range(1..=250))]
    attacker_addresses: u8,
    /// Idle connections of the `idle` scenario.
    #[arg(long, default_value_t = 1030)]
    idle_connections: usize,
    /// Connections of the `slowloris` and `heads` scenarios.
    #[arg(long, default_value_t = 1000)]
    connections: usize,
    /// Seconds after its start at which the slowloris is looked at.
    #[arg(long, value_delimiter = ',', default_value = "5,30,70")]
    slowloris_checkpoints: Vec<u64>,
    /// KiB of header lines each `heads` connection sends.
    #[arg(long, default_value_t = 371)]
    head_kib: usize,
    /// Seconds the `heads` connections may take to send their lines (those still sending are then held
    /// as they are).
    #[arg(long, default_value_t = 60)]
    heads_deadline: u64,
    /// Seconds a probe (and a legitimate login) may take before it counts as failed.
    #[arg(long, default_value_t = 10)]
    probe_timeout: u64,
    /// Seconds a legitimate login may take during the login flood before it counts as failed.
    #[arg(long, default_value_t = 30)]
    login_timeout: u64,
    /// Seconds after a scenario's load ends before the "after" memory is read.
    #[arg(long, default_value_t = 10)]
    settle: u64,
    /// Print one JSON object line with all figures to stdout (the human-readable lines then go to
    /// stderr).
    #[arg(long)]
    json: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Scenario {
    Login,
    Idle,
    Slowloris,
    Heads,
}

/// Shared by all scenarios of one run.
struct Ctx<'a> {
    args: &'a FloodArgs,
    out: Out,
    /// Distinguishes this run's user names from an earlier run's against the same daemon.
    run: u32,
    probe_user: (String, String),
    probe_timeout: Duration,
}

pub(crate) fn run_flood(args: &FloodArgs) -> Result<()> {
    // One fd per attack connection, more than the daemon's 1,024.
    let nofile = rlimit::increase_nofile_limit(u64::MAX).context("raising the open-files limit")?;
    let needed = args.idle_connections.max(args.connections) as u64 + 256;
    if nofile < needed {
        bail!("open-files limit {nofile} is below the {needed} the scenarios need (ulimit -n)");
    }
    let out = Out { json: args.json };
    let run = SmallRng::from_entropy().gen_range(0..1_000_000);
    let mut ctx = Ctx {
        args,
        out,
        run,
        probe_user: (format!("probe{run}@internal"), format!("probe secret {run}")),
        probe_timeout: Duration::from_secs(args.probe_timeout),
    };
    add_user(&args.internal_socket, &format!("probe{run}"), &ctx.probe_user.1)?;
    // The probe's password is verified once now, so that its probes time the door, not the hash.
    let first = http_get(args.http, probe_addr(), &ctx.probe_user.0, &ctx.probe_user.1, ctx.probe_timeout);
    if !matches!(first, Ok(200)) {
        bail!("the probe user cannot log in before any flood: {first:?}");
    }
    let mut j = Json::new();
    j.str("mode", "flood");
    let (_, rss) = daemon_rss(args.pid)?;
    j.num("rss_start_mb", Some(rss));
    for s in &args.scenario {
        match s {
            Scenario::Login => {
                for &k in &args.attackers {
                    let jo = login_flood(&mut ctx, k)?;
                    j.raw(&format!("login_{k}"), &jo);
                }
            }
            Scenario::Idle => j.raw("idle", &idle(&ctx)),
            Scenario::Slowloris => j.raw("slowloris", &slowloris(&ctx)),
            Scenario::Heads => j.raw("heads", &heads(&ctx)?),
        }
    }
    if args.json {
        let _ = writeln!(io::stdout().lock(), "{}", j.finish());
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Scenarios
// ---------------------------------------------------------------------------------------------

fn login_flood(ctx: &mut Ctx<'_>, attackers: u32) -> Result<String> {
    let a = ctx.args;
    let out = &ctx.out;
    out.line(format_args!("== login flood: {attackers} attackers, {} rounds of {} first logins", a.rounds, a.users));
    // All legitimate users exist before the flood starts: only their logins run during it.
    let mut rounds = Vec::new();
    for r in 0..a.rounds {
        let mut users = Vec::new();
        for i in 0..a.users {
            let name = format!("u{}k{attackers}r{r}i{i}", ctx.run);
            let password = format!("secret {r} {i} {}", ctx.run);
            add_user(&a.internal_socket, &name, &password)?;
            users.push((format!("{name}@internal"), password));
        }
        rounds.push(users);
    }
    let mem = Memory::start(a.pid);

    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let answered = Arc::new(AtomicU64::new(0));
    let flood: Vec<_> = (0..attackers)
        .map(|k| {
            let (stop, sent, answered) = (stop.clone(), sent.clone(), answered.clone());
            let (http, from) = (a.http, attacker_addr(a, k as usize));
            thread::spawn(move || {
                let mut rng = SmallRng::from_entropy();
                while !stop.load(Ordering::Relaxed) {
                    let user = format!("nobody{:016x}@internal", rng.gen::<u64>());
                    sent.fetch_add(1, Ordering::Relaxed);
                    match http_get(http, from, &user, "guess", Duration::from_secs(60)) {
                        Ok(_) => {
                            answered.fetch_add(1, Ordering::Relaxed);
                        }
                        // A refused or reset connection: do not spin at full speed.
                        Err(_) => thread::sleep(Duration::from_millis(1)),
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    thread::sleep(Duration::from_secs(1));

    let mut ok = 0u64;
    let mut attempted = 0u64;
    let mut lat = Vec::new();
    let mut failures: Vec<String> = Vec::new();
    for (r, users) in rounds.into_iter().enumerate() {
        let logins: Vec<_> = users
            .into_iter()
            .enumerate()
            .map(|(i, (user, password))| {
                let (http, from, timeout) = (a.http, legit_addr(i), Duration::from_secs(a.login_timeout));
                thread::spawn(move || {
                    let t = Instant::now();
                    let res = http_get(http, from, &user, &password, timeout);
                    (res, t.elapsed())
                })
            })
            .collect();
        for h in logins {
            attempted += 1;
            match h.join() {
                Ok((Ok(200), d)) => {
                    ok += 1;
                    lat.push(ms(d));
                }
                Ok((Ok(status), _)) => failures.push(format!("round {r}: HTTP {status}")),
                Ok((Err(e), d)) => failures.push(format!("round {r}: {e} after {:.1} s", d.as_secs_f64())),
                Err(_) => failures.push(format!("round {r}: login thread panicked")),
            }
        }
        thread::sleep(Duration::from_secs(1));
    }
    thread::sleep(Duration::from_secs(a.flood_duration).saturating_sub(started.elapsed()));
    stop.store(true, Ordering::Relaxed);
    for h in flood {
        let _ = h.join();
    }
    let flood_s = started.elapsed().as_secs_f64();
    let mem = mem.peak_then_settle(Duration::from_secs(a.settle));

    let lat = Stats::new(lat);
    let (sent, answered) = (sent.load(Ordering::Relaxed), answered.load(Ordering::Relaxed));
    out.line(format_args!(
        "attack: {sent} requests in {flood_s:.1} s ({:.0}/s), {answered} answered",
        sent as f64 / flood_s
    ));
    out.line(format_args!(
        "legitimate first logins: {ok}/{attempted} answered 200; latency ms: p50 {}  max {}",
        fmt_opt(lat.median(), 1),
        fmt_opt(lat.max(), 1)
    ));
    failures.sort();
    failures.dedup();
    for f in failures.iter().take(5) {
        out.line(format_args!("  failed: {f}"));
    }
    mem.report(out);
    let mut j = Json::new();
    j.int("attackers", u64::from(attackers));
    j.int("attack_sent", sent);
    j.int("attack_answered", answered);
    j.num("attack_per_s", Some(sent as f64 / flood_s));
    j.int("logins_ok", ok);
    j.int("logins_attempted", attempted);
    j.num("login_p50_ms", lat.median());
    j.num("login_max_ms", lat.max());
    mem.json(&mut j);
    Ok(j.finish())
}

fn idle(ctx: &Ctx<'_>) -> String {
    let a = ctx.args;
    let out = &ctx.out;
    out.line(format_args!("== idle: {} idle connections", a.idle_connections));
    let mem = Memory::start(a.pid);
    let (conns, refused) = open_many(a, a.idle_connections);
    out.line(format_args!("opened {}, {refused} failed to connect", conns.len()));
    // Give the daemon time to accept (or not) what the kernel queued.
    thread::sleep(Duration::from_secs(1));
    let p = probe(ctx);
    p.report(out, "with the idle connections held");
    let open = conns.iter().filter(|c| still_open(c)).count();
    out.line(format_args!("still open after the probes: {open}"));
    drop(conns);
    let mem = mem.peak_then_settle(Duration::from_secs(1));
    // Whether the door serves again once the attacker lets go.
    let after = probe(ctx);
    after.report(out, "1 s after closing them");
    mem.report(out);
    let mut j = Json::new();
    j.int("opened", a.idle_connections.saturating_sub(refused) as u64);
    j.int("connect_failed", refused as u64);
    j.int("still_open", open as u64);
    p.json(&mut j, "");
    after.json(&mut j, "after_");
    mem.json(&mut j);
    j.finish()
}

fn slowloris(ctx: &Ctx<'_>) -> String {
    let a = ctx.args;
    let out = &ctx.out;
    out.line(format_args!(
        "== slowloris: {} connections, one header line per second; checkpoints {:?} s",
        a.connections, a.slowloris_checkpoints
    ));
    let mem = Memory::start(a.pid);
    let (conns, refused) = open_many(a, a.connections);
    out.line(format_args!("opened {}, {refused} failed to connect", conns.len()));
    let started = Instant::now();
    let open = Arc::new(AtomicUsize::new(conns.len()));
    let stop = Arc::new(AtomicBool::new(false));
    let driver = {
        let (open, stop) = (open.clone(), stop.clone());
        thread::spawn(move || trickle(conns, &open, &stop))
    };
    let mut j = Json::new();
    j.int("opened", a.connections.saturating_sub(refused) as u64);
    j.int("connect_failed", refused as u64);
    let mut checkpoints = a.slowloris_checkpoints.clone();
    checkpoints.sort_unstable();
    for at in checkpoints {
        let wait = Duration::from_secs(at).saturating_sub(started.elapsed());
        thread::sleep(wait);
        let still = open.load(Ordering::Relaxed);
        out.line(format_args!("at {at} s: {still} still open"));
        let p = probe(ctx);
        p.report(out, &format!("at {at} s"));
        let mut jc = Json::new();
        jc.int("open", still as u64);
        p.json(&mut jc, "");
        j.raw(&format!("at_{at}s"), &jc.finish());
    }
    stop.store(true, Ordering::Relaxed);
    let _ = driver.join();
    let mem = mem.peak_then_settle(Duration::from_secs(1));
    mem.report(out);
    mem.json(&mut j);
    j.finish()
}

fn heads(ctx: &Ctx<'_>) -> Result<String> {
    let a = ctx.args;
    let out = &ctx.out;
    out.line(format_args!("== unfinished heads: {} connections × {} KiB of header lines", a.connections, a.head_kib));
    // One shared buffer: the request line, then 1 KiB header lines, never the blank line.
    let mut head = b"GET /api HTTP/1.1\r\nHost: flood\r\n".to_vec();
    for i in 0..a.head_kib {
        let name = format!("X-Pad-{i:05}: ");
        head.extend_from_slice(name.as_bytes());
        head.resize(head.len() + 1022 - name.len(), b'a');
        head.extend_from_slice(b"\r\n");
    }
    let head = head;
    let mem = Memory::start(a.pid);
    let (conns, refused) = open_many(a, a.connections);
    out.line(format_args!("opened {}, {refused} failed to connect", conns.len()));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(a.heads_deadline);
    let mut sent = vec![0usize; conns.len()];
    let mut closed = vec![false; conns.len()];
    for c in &conns {
        c.set_nonblocking(true).context("nonblocking socket")?;
    }
    loop {
        let mut progress = false;
        let mut pending = 0;
        for (i, c) in conns.iter().enumerate() {
            if closed[i] || sent[i] == head.len() {
                continue;
            }
            match (&*c).write(&head[sent[i]..]) {
                Ok(n) => {
                    sent[i] += n;
                    progress |= n > 0;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => closed[i] = true,
            }
            if !closed[i] && sent[i] < head.len() {
                pending += 1;
            }
        }
        if pending == 0 || Instant::now() >= deadline {
            break;
        }
        if !progress {
            thread::sleep(Duration::from_millis(10));
        }
    }
    let send_s = started.elapsed().as_secs_f64();
    // Held a moment, as an attacker would; the daemon has then read what it is going to read.
    thread::sleep(Duration::from_secs(2));
    for (i, c) in conns.iter().enumerate() {
        closed[i] |= !still_open(c);
    }
    let complete = sent.iter().filter(|&&n| n == head.len()).count();
    let closed_n = closed.iter().filter(|&&c| c).count();
    let total: usize = sent.iter().sum();
    let held = daemon_rss(a.pid).map(|(_, rss)| rss).ok();
    out.line(format_args!(
        "sent {:.1} MiB in {send_s:.1} s; {complete} heads sent whole; {closed_n} connections closed by the daemon",
        total as f64 / (1024.0 * 1024.0)
    ));
    out.line(format_args!("daemon RSS while held: {} MB", fmt_opt(held, 1)));
    drop(conns);
    let mem = mem.peak_then_settle(Duration::from_secs(a.settle));
    mem.report(out);
    let mut j = Json::new();
    j.int("opened", a.connections.saturating_sub(refused) as u64);
    j.int("connect_failed", refused as u64);
    j.num("sent_mib", Some(total as f64 / (1024.0 * 1024.0)));
    j.int("complete", complete as u64);
    j.int("closed_by_daemon", closed_n as u64);
    j.num("rss_held_mb", held);
    mem.json(&mut j);
    Ok(j.finish())
}

/// Sends each open connection one more header line per second until `stop`; `open` counts those the
/// daemon has not closed.
fn trickle(conns: Vec<TcpStream>, open: &AtomicUsize, stop: &AtomicBool) {
    let mut alive: Vec<Option<TcpStream>> = conns
        .into_iter()
        .map(|c| {
            let ok = c.set_nonblocking(true).is_ok() && (&c).write_all(b"GET /api HTTP/1.1\r\nHost: flood\r\n").is_ok();
            ok.then_some(c)
        })
        .collect();
    let mut line = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let tick = Instant::now();
        let header = format!("X-Slow-{line}: x\r\n");
        for slot in &mut alive {
            let gone = match slot {
                // A full send buffer (the daemon not reading) is not a closed connection.
                Some(c) => {
                    !still_open(c)
                        || matches!((&*c).write(header.as_bytes()), Err(e) if e.kind() != io::ErrorKind::WouldBlock)
                }
                None => false,
            };
            if gone {
                *slot = None;
            }
        }
        open.store(alive.iter().filter(|c| c.is_some()).count(), Ordering::Relaxed);
        line += 1;
        while tick.elapsed() < Duration::from_secs(1) && !stop.load(Ordering::Relaxed) {
            thread::sleep(Duration::from_millis(50));
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Probes
// ---------------------------------------------------------------------------------------------

/// An `admin.vm.List` and an authenticated `GET /api`, concurrently.
struct Probe {
    admin: std::result::Result<Duration, String>,
    http: std::result::Result<Duration, String>,
}

fn probe(ctx: &Ctx<'_>) -> Probe {
    let timeout = ctx.probe_timeout;
    let socket = ctx.args.admin_socket.clone();
    let admin = within(timeout, move || {
        let req = request("admin.vm.List", None, "dom0", b"");
        let reply = admin_call(&socket, &req, timeout).map_err(|e| e.to_string())?;
        if reply.starts_with(b"0\0") {
            Ok(())
        } else {
            Err(describe_failure(&reply))
        }
    });
    let (http, (user, password)) = (ctx.args.http, ctx.probe_user.clone());
    let get = within(timeout, move || match http_get(http, probe_addr(), &user, &password, timeout) {
        Ok(200) => Ok(()),
        Ok(status) => Err(format!("HTTP {status}")),
        Err(e) => Err(e.to_string()),
    });
    Probe { admin: admin.wait(), http: get.wait() }
}

impl Probe {
    fn report(&self, out: &Out, when: &str) {
        let show = |r: &std::result::Result<Duration, String>| match r {
            Ok(d) => format!("{:.1} ms", ms(*d)),
            Err(e) => format!("FAILED ({e})"),
        };
        out.line(format_args!("{when}: admin.vm.List {}; GET /api {}", show(&self.admin), show(&self.http)));
    }

    fn json(&self, j: &mut Json, prefix: &str) {
        for (name, r) in [("admin_list", &self.admin), ("http_get", &self.http)] {
            match r {
                Ok(d) => j.num(&format!("{prefix}{name}_ms"), Some(ms(*d))),
                Err(e) => {
                    j.num(&format!("{prefix}{name}_ms"), None);
                    j.str(&format!("{prefix}{name}_error"), e);
                }
            }
        }
    }
}

/// A probe running in its own thread, timed from its start.
struct Pending {
    rx: mpsc::Receiver<(std::result::Result<(), String>, Duration)>,
    started: Instant,
    timeout: Duration,
}

fn within<F>(timeout: Duration, f: F) -> Pending
where
    F: FnOnce() -> std::result::Result<(), String> + Send + 'static,
{
    let (tx, rx) = mpsc::channel();
    let started = Instant::now();
    thread::spawn(move || {
        let res = f();
        let _ = tx.send((res, started.elapsed()));
    });
    Pending { rx, started, timeout }
}

impl Pending {
    fn wait(self) -> std::result::Result<Duration, String> {
        let left = self.timeout.saturating_sub(self.started.elapsed()) + Duration::from_millis(100);
        match self.rx.recv_timeout(left) {
            Ok((Ok(()), d)) if d <= self.timeout => Ok(d),
            Ok((Ok(()), d)) => Err(format!("answered only after {:.1} s", d.as_secs_f64())),
            Ok((Err(e), _)) => Err(e),
            Err(_) => Err(format!("no answer in {} s", self.timeout.as_secs())),
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------------------

/// The daemon's memory over one scenario, in MB.
struct Memory {
    pid: u32,
    before: Option<f64>,
    /// Whether VmHWM was reset at the start, i.e. is this scenario's peak.
    hwm_reset: bool,
    peak: Option<f64>,
    after: Option<f64>,
}

impl Memory {
    fn start(pid: u32) -> Memory {
        // "5" resets the peak resident set to the current one (proc(5), clear_refs).
        let hwm_reset = std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok();
        let before = daemon_rss(pid).map(|(_, rss)| rss).ok();
        Memory { pid, before, hwm_reset, peak: None, after: None }
    }

    fn peak_then_settle(mut self, settle: Duration) -> Memory {
        self.peak = daemon_rss(self.pid).map(|(hwm, _)| hwm).ok();
        thread::sleep(settle);
        self.after = daemon_rss(self.pid).map(|(_, rss)| rss).ok();
        self
    }

    fn report(&self, out: &Out) {
        out.line(format_args!(
            "daemon RSS MB: before {}, peak {}{}, after {}",
            fmt_opt(self.before, 1),
            fmt_opt(self.peak, 1),
            if self.hwm_reset { "" } else { " (since daemon start)" },
            fmt_opt(self.after, 1)
        ));
    }

    fn json(&self, j: &mut Json) {
        j.num("rss_before_mb", self.before);
        j.num("rss_peak_mb", self.peak);
        j.num("rss_after_mb", self.after);
    }
}

// ---------------------------------------------------------------------------------------------
// Connections
// ---------------------------------------------------------------------------------------------

fn attacker_addr(a: &FloodArgs, k: usize) -> IpAddr {
    let n = (k % usize::from(a.attacker_addresses)) as u8;
    IpAddr::V4(Ipv4Addr::new(127, 0, 1, n + 1))
}

fn legit_addr(i: usize) -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, (i % 250) as u8 + 2))
}

fn probe_addr() -> IpAddr {
    IpAddr::V4(Ipv4Addr::new(127, 0, 2, 1))
}

/// A TCP connection from `from` (a loopback address) to `to`, the connect bounded by `timeout`.
fn connect_from(from: IpAddr, to: SocketAddr, timeout: Duration) -> io::Result<TcpStream> {
    let s = Socket::new(Domain::for_address(to), Type::STREAM, Some(Protocol::TCP))?;
    s.bind(&SocketAddr::new(from, 0).into())?;
    s.connect_timeout(&to.into(), timeout)?;
    Ok(s.into())
}

/// `n` connections spread over the attacker addresses; those that fail to connect in 2 s are counted.
fn open_many(a: &FloodArgs, n: usize) -> (Vec<TcpStream>, usize) {
    let mut conns = Vec::with_capacity(n);
    let mut failed = 0;
    for i in 0..n {
        match connect_from(attacker_addr(a, i), a.http, Duration::from_secs(2)) {
            Ok(c) => conns.push(c),
            Err(_) => failed += 1,
        }
    }
    (conns, failed)
}

/// Whether the peer has neither closed `c` nor answered on it (a reply, e.g. a 408, counts as the
/// daemon giving the connection up).
/// Leaves `c` nonblocking.
fn still_open(c: &TcpStream) -> bool {
    let mut buf = [0u8; 512];
    c.set_nonblocking(true).is_ok() && matches!((&*c).read(&mut buf), Err(e) if e.kind() == io::ErrorKind::WouldBlock)
}

/// `GET /api` as `user` from `from` on a fresh connection; the reply's status.
fn http_get(to: SocketAddr, from: IpAddr, user: &str, password: &str, timeout: Duration) -> io::Result<u16> {
    use base64::Engine;
    let auth = base64::engine::general_purpose::STANDARD.encode(format!("{user}:{password}"));
    let mut s = connect_from(from, to, timeout)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    write!(
        s,
        "GET /api HTTP/1.1\r\nHost: {to}\r\nAuthorization: Basic {auth}\r\nAccept: application/xml\r\nConnection: close\r\n\r\n"
    )?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply).map_err(|e| match e.kind() {
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut => {
            io::Error::new(e.kind(), format!("no reply in {} s", timeout.as_secs()))
        }
        _ => e,
    })?;
    // `HTTP/1.1 200 OK`: the status is the second word.
    let status =
        reply.split(|&b| b == b' ').nth(1).and_then(|w| std::str::from_utf8(w).ok()).and_then(|w| w.parse().ok());
    status.ok_or_else(|| io::Error::new(io::ErrorKind::InvalidData, "no HTTP status in the reply"))
}

fn admin_call(socket: &Path, req: &[u8], timeout: Duration) -> io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(socket)?;
    s.set_read_timeout(Some(timeout))?;
    s.set_write_timeout(Some(timeout))?;
    s.write_all(req)?;
    s.shutdown(Shutdown::Write)?;
    let mut reply = Vec::new();
    s.read_to_end(&mut reply)?;
    Ok(reply)
}

/// Creates a local HTTP user through the internal socket, as `corral user add` does.
fn add_user(internal: &Path, name: &str, password: &str) -> Result<()> {
    let req = request("corral.user.Add", Some(name), "dom0", password.as_bytes());
    let reply = admin_call(internal, &req, Duration::from_secs(30)).context("corral.user.Add")?;
    if reply != b"0\0" {
        bail!("corral.user.Add+{name}: {}", describe_failure(&reply));
    }
    Ok(())
}
