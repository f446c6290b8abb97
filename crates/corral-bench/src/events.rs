//! `events`: how long a libvirt-side power change takes to reach corrald's `admin.Events` subscribers.
//!
//! The bench suspends and resumes the running qube through its own libvirt connection (not corrald),
//! so the path measured is libvirtd → corrald's libvirt event loop → `hv-events` → the event bus →
//! every subscriber's socket. t0 is the instant just before the libvirt call; a delivery's latency is
//! the instant its subscriber thread's read returned minus t0. The same connection also listens for
//! the lifecycle events itself: when libvirtd's event reaches a plain libvirt client is the baseline
//! that shows corrald's own share.

use std::path::PathBuf;
use std::sync::mpsc::{channel, Receiver, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use virt::connect::Connect;
use virt::domain::Domain;

use crate::guest::{ms, Msg, Stats, Subscriber};
use crate::{lvevents, AdminClient, Json, Out};

#[derive(Args)]
pub(crate) struct EventsArgs {
    /// Path of corrald's Admin API UNIX socket.
    #[arg(long)]
    socket: PathBuf,
    /// libvirt connection the bench suspends and resumes through (the one corrald uses).
    #[arg(long, default_value = "qemu:///system")]
    uri: String,
    /// The qube: started through corrald first if halted (and killed again at the end).
    #[arg(long)]
    vm: String,
    /// `admin.Events` streams of the main measurement (a 1-subscriber run comes first).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u32).range(1..=4096))]
    subscribers: u32,
    /// Suspend + resume rounds per measurement.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u32).range(1..))]
    rounds: u32,
    /// Untimed rounds first.
    #[arg(long, default_value_t = 1)]
    warmup: u32,
    /// How long to wait for every subscriber after each libvirt call, ms.
    #[arg(long, default_value_t = 2000)]
    timeout_ms: u64,
    /// Wait at most this long (s) for the guest to go idle (a booting TCG guest keeps a CPU busy and
    /// slows QEMU's answers); then measure anyway.
    #[arg(long, default_value_t = 60)]
    idle_limit_s: u64,
    /// Diagnostic: as soon as the bench sees libvirt's event, time a virDomainGetInfo on another
    /// connection (the kind of query corrald makes before publishing); shows whether libvirtd answers
    /// queries on the domain before the suspend/resume call has returned.
    #[arg(long)]
    probe: bool,
    /// Also print one JSON object line with all figures (to stdout; the human-readable lines then
    /// go to stderr).
    #[arg(long)]
    json: bool,
}

const PAUSED: &str = "domain-paused";
const UNPAUSED: &str = "domain-unpaused";

#[derive(Default)]
struct Phase {
    subscribers: usize,
    /// Every delivery: subscriber receipt − t0, ms.
    lat: Vec<f64>,
    /// Every delivery: subscriber receipt − the bench's own libvirt event receipt, ms.
    share: Vec<f64>,
    /// The bench's libvirt event receipt − t0, ms.
    libvirt: Vec<f64>,
    /// How long suspend()/resume() took to return, ms.
    call: Vec<f64>,
    /// The same, suspend() only.
    call_suspend: Vec<f64>,
    /// `--probe`: when a domain query issued on another connection as soon as the bench saw the libvirt
    /// event returned, ms after t0.
    probe: Vec<f64>,
    /// Per event: last subscriber's receipt − first subscriber's receipt, ms (the fan-out's spread).
    spread: Vec<f64>,
    /// Deliveries expected and not seen within the timeout.
    missed: u64,
    /// Libvirt events the bench itself did not see.
    libvirt_missed: u64,
    /// Streams corrald ended during the measurement.
    closed: Vec<String>,
    expected: u64,
}

struct Run<'a> {
    args: &'a EventsArgs,
    dom: Domain,
    rx: Receiver<Msg>,
    tx: Sender<Msg>,
    timeout: Duration,
    probe: Option<Domain>,
}

impl Run<'_> {
    fn phase(&self, id: u32, n: usize) -> Result<Phase> {
        let mut subs = Vec::with_capacity(n);
        let opened = (|| -> Result<()> {
            for i in 0..n {
                subs.push(Subscriber::open(&self.args.socket, &self.args.vm, id, i, self.tx.clone())?);
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            let mut ready = 0;
            while ready < n {
                let left = deadline.checked_duration_since(Instant::now()).unwrap_or_default();
                match self.rx.recv_timeout(left) {
                    Ok(Msg::Ready { phase, .. }) if phase == id => ready += 1,
                    Ok(Msg::Closed { phase, why, .. }) if phase == id => bail!("an admin.Events stream ended: {why}"),
                    Ok(_) => {}
                    Err(_) => bail!("only {ready} of {n} admin.Events streams established within 10 s"),
                }
            }
            Ok(())
        })();
        let result = opened.and_then(|()| self.rounds(id, n));
        for s in subs {
            s.close();
        }
        result
    }

    fn rounds(&self, id: u32, n: usize) -> Result<Phase> {
        let mut p = Phase { subscribers: n, ..Phase::default() };
        let mut got: Vec<Option<Instant>> = vec![None; n];
        for round in 0..self.args.warmup + self.args.rounds {
            let timed = round >= self.args.warmup;
            for (want, suspend) in [(PAUSED, true), (UNPAUSED, false)] {
                while self.rx.try_recv().is_ok() {}
                got.iter_mut().for_each(|g| *g = None);
                let mut count = 0;
                let mut libvirt: Option<Instant> = None;
                let mut probe_done: Option<Instant> = None;
                let t0 = Instant::now();
                let call = if suspend { self.dom.suspend() } else { self.dom.resume() };
                let call_ms = ms(t0.elapsed());
                call.map_err(|e| {
                    anyhow::anyhow!(
                        "{} of {}: {}",
                        if suspend { "suspend" } else { "resume" },
                        self.args.vm,
                        e.message()
                    )
                })?;
                let deadline = t0 + self.timeout;
                let mut all_at: Option<Instant> = None;
                loop {
                    let now = Instant::now();
                    // Once every subscriber has it, give the bench's own libvirt event a moment more.
                    let until = match all_at {
                        Some(a) if libvirt.is_none() => deadline.min(a + Duration::from_millis(100)),
                        Some(_) => break,
                        None => deadline,
                    };
                    let Some(left) = until.checked_duration_since(now) else { break };
                    match self.rx.recv_timeout(left) {
                        Ok(Msg::Event { phase, sub, name, at }) if phase == id && name == want && at >= t0 => {
                            if got[sub].is_none() {
                                got[sub] = Some(at);
                                count += 1;
                                if count == n {
                                    all_at = Some(Instant::now());
                                }
                            }
                        }
                        Ok(Msg::Libvirt { suspended, at }) if suspended == suspend && at >= t0 => {
                            if libvirt.is_none() {
                                libvirt = Some(at);
                                if let Some(probe) = &self.probe {
                                    let _ = probe.info();
                                    probe_done = Some(Instant::now());
                                }
                            }
                        }
                        Ok(Msg::Closed { phase, sub, why }) if phase == id => {
                            p.closed.push(format!("subscriber {sub}: {why}"));
                        }
                        Ok(_) => {}
                        Err(RecvTimeoutError::Timeout) => break,
                        Err(RecvTimeoutError::Disconnected) => bail!("every event source is gone"),
                    }
                }
                if !timed {
                    continue;
                }
                p.expected += n as u64;
                p.missed += (n - count) as u64;
                p.call.push(call_ms);
                if suspend {
                    p.call_suspend.push(call_ms);
                }
                if let Some(d) = probe_done {
                    p.probe.push(ms(d - t0));
                }
                match libvirt {
                    Some(l) => p.libvirt.push(ms(l - t0)),
                    None => p.libvirt_missed += 1,
                }
                let first = got.iter().flatten().min();
                let last = got.iter().flatten().max();
                if let (Some(first), Some(last)) = (first, last) {
                    p.spread.push(ms(*last - *first));
                }
                for at in got.iter().flatten() {
                    p.lat.push(ms(*at - t0));
                    if let Some(l) = libvirt {
                        p.share.push(ms(at.saturating_duration_since(l)) - ms(l.saturating_duration_since(*at)));
                    }
                }
            }
        }
        Ok(p)
    }
}

/// Waits until the guest's CPU time grows by less than 10% of wall time over four 250 ms windows in a
/// row (a freshly started guest boots first), or `limit` passes; returns how long that took.
fn wait_idle(dom: &Domain, limit: Duration) -> Result<Duration> {
    let start = Instant::now();
    let cpu =
        || dom.info().map(|i| i.cpu_time).map_err(|e| anyhow::anyhow!("reading the domain info: {}", e.message()));
    let mut quiet = 0;
    let (mut last, mut at) = (cpu()?, Instant::now());
    while quiet < 4 && start.elapsed() < limit {
        std::thread::sleep(Duration::from_millis(250));
        let (now, t) = (cpu()?, Instant::now());
        let busy = now.saturating_sub(last) as f64 / (t - at).as_nanos().max(1) as f64;
        quiet = if busy < 0.1 { quiet + 1 } else { 0 };
        (last, at) = (now, t);
    }
    Ok(start.elapsed())
}

pub(crate) fn run_events(args: &EventsArgs) -> Result<()> {
    let out = Out { json: args.json };
    let vm = args.vm.as_str();
    lvevents::start_event_loop()?;
    let conn =
        Connect::open(Some(&args.uri)).map_err(|e| anyhow::anyhow!("connecting to {}: {}", args.uri, e.message()))?;
    let mut admin = AdminClient::new(&args.socket);
    let state = admin.power_state(vm)?;
    let started_here = match state.as_str() {
        "Running" => false,
        "Halted" => {
            admin.call("admin.vm.Start", None, vm, b"")?;
            admin.wait_power(vm, "Running", Duration::from_secs(30))?;
            true
        }
        other => bail!("{vm} is {other}; it must be Running (or Halted, to be started)"),
    };
    let (tx, rx) = channel();
    let result = (|| -> Result<(Phase, Phase)> {
        let dom = conn
            .lookup_domain_by_name(vm)
            .map_err(|e| anyhow::anyhow!("looking up {vm} in libvirt: {}", e.message()))?;
        let idle = wait_idle(&dom, Duration::from_secs(args.idle_limit_s))?;
        out.line(format_args!("{vm}: guest idle (vCPU < 10% for 1 s) after {:.1} s", idle.as_secs_f64()));
        let callback = lvevents::register(&conn, &dom, tx.clone())?;
        // The probe has a connection of its own, so that it queues behind nothing of the bench's.
        let probe_conn = match args.probe {
            true => Some(
                Connect::open(Some(&args.uri))
                    .map_err(|e| anyhow::anyhow!("connecting to {}: {}", args.uri, e.message()))?,
            ),
            false => None,
        };
        let probe = match &probe_conn {
            Some(c) => Some(c.lookup_domain_by_name(vm).map_err(|e| anyhow::anyhow!("probe lookup: {}", e.message()))?),
            None => None,
        };
        let run = Run { args, dom, rx, tx, timeout: Duration::from_millis(args.timeout_ms), probe };
        let phases = run.phase(1, 1).and_then(|one| Ok((one, run.phase(2, args.subscribers as usize)?)));
        lvevents::deregister(&conn, callback);
        // Whatever happened, leave the qube running rather than paused.
        if run.dom.state().is_ok_and(|(s, _)| s.known() == Some(virt::domain::DomainState::Paused)) {
            let _ = run.dom.resume();
        }
        phases
    })();
    if started_here {
        admin.call("admin.vm.Kill", None, vm, b"").context("killing the qube the bench started")?;
    }
    let (one, many) = result?;

    out.line(format_args!(""));
    out.line(format_args!(
        "events of {vm}: {} rounds of suspend + resume through the bench's own libvirt connection \
         (after {} warm-up), {} ms timeout",
        args.rounds, args.warmup, args.timeout_ms
    ));
    out.line(format_args!(
        "note: latency = subscriber receipt - the instant before the libvirt call; it includes the libvirt \
         call itself (QEMU stop/cont) and libvirtd's own event dispatch to corrald's connection"
    ));
    let f = |v: Option<f64>| v.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    out.line(format_args!(
        "{:<46} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8}",
        "ms", "deliveries", "missed", "p50", "p95", "p99", "max"
    ));
    let row = |label: &str, s: &Stats, missed: Option<u64>| {
        out.line(format_args!(
            "{label:<46} {:>10} {:>7} {:>8} {:>8} {:>8} {:>8}",
            s.len(),
            missed.map_or_else(|| "-".to_owned(), |m| m.to_string()),
            f(s.pct(50.0)),
            f(s.pct(95.0)),
            f(s.pct(99.0)),
            f(s.max())
        ));
    };
    let mut j = Json::new();
    j.str("mode", "events");
    j.str("vm", vm);
    j.int("rounds", u64::from(args.rounds));
    for (key, p) in [("one", &one), ("many", &many)] {
        let who = if p.subscribers == 1 { "1 subscriber".to_owned() } else { format!("{} subscribers", p.subscribers) };
        let lat = Stats::new(p.lat.clone());
        let share = Stats::new(p.share.clone());
        let libvirt = Stats::new(p.libvirt.clone());
        let call = Stats::new(p.call.clone());
        row(&format!("{who}: corrald subscriber receipt"), &lat, Some(p.missed));
        row("  libvirt event at the bench's own connection", &libvirt, Some(p.libvirt_missed));
        row("  corrald's share (subscriber - that event)", &share, None);
        let spread = Stats::new(p.spread.clone());
        if p.subscribers > 1 {
            row("  spread per event (last - first subscriber)", &spread, None);
        }
        row("  suspend()/resume() call returned", &call, None);
        row("    suspend() only", &Stats::new(p.call_suspend.clone()), None);
        if !p.probe.is_empty() {
            row("  probe: virDomainGetInfo issued at that event", &Stats::new(p.probe.clone()), None);
        }
        for c in &p.closed {
            out.line(format_args!("  stream ended early: {c}"));
        }
        j.int(&format!("{key}_subscribers"), p.subscribers as u64);
        j.int(&format!("{key}_deliveries"), lat.len() as u64);
        j.int(&format!("{key}_expected"), p.expected);
        j.int(&format!("{key}_missed"), p.missed);
        j.int(&format!("{key}_closed"), p.closed.len() as u64);
        let probe = Stats::new(p.probe.clone());
        let suspend_call = Stats::new(p.call_suspend.clone());
        for (name, s) in [
            ("", &lat),
            ("libvirt_", &libvirt),
            ("share_", &share),
            ("call_", &call),
            ("suspend_call_", &suspend_call),
            ("probe_", &probe),
            ("spread_", &spread),
        ] {
            j.num(&format!("{key}_{name}p50_ms"), s.pct(50.0));
            j.num(&format!("{key}_{name}p95_ms"), s.pct(95.0));
            j.num(&format!("{key}_{name}p99_ms"), s.pct(99.0));
            j.num(&format!("{key}_{name}max_ms"), s.max());
        }
    }
    let many_lat = Stats::new(many.lat.clone());
    let verdict = |v: Option<f64>| match v {
        Some(v) if v <= 1.0 => "met",
        Some(_) => "MISSED",
        None => "-",
    };
    out.line(format_args!(
        "target <= 1 ms with {} subscribers: p50 {} ({}), p99 {} ({})",
        many.subscribers,
        f(many_lat.pct(50.0)),
        verdict(many_lat.pct(50.0)),
        f(many_lat.pct(99.0)),
        verdict(many_lat.pct(99.0))
    ));
    if args.json {
        let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), format!("{}\n", j.finish()).as_bytes());
    }
    Ok(())
}
