//! `http`: load on corrald's HTTP door, the RHEV style `/api` (README, "The HTTP door").
//!
//! * Setup, with `--socket`: the `admin` subcommand's bench qubes (`<prefix>-0` … `<prefix>-<N-1>`),
//!   created through the Admin API socket.
//! * The vm ids: one `GET /api/vms?search=name=<prefix>-*`, the `id` of each `<vm>`.
//! * Phase 1: C threads, each with one keep-alive HTTP/1.1 connection, `GET /api/vms/{id}` of a random
//!   one of those vms, for D seconds.
//! * Phase 2: the whole `GET /api/vms` on one connection for D/2 seconds (corrald renders it once per
//!   model change, so this is the cached steady state); then, with `--socket`, 10 times a feature change
//!   on `<prefix>-0` through the Admin socket followed by one timed `GET /api/vms`, which pays for the
//!   new rendering.
//!
//! The client is a minimal HTTP/1.1 one on std `TcpStream`, plain HTTP only: a body is delimited by
//! `Content-Length`, by the chunked transfer coding, or else by the end of the connection; a connection
//! the server closed is reopened. A latency runs from writing the request to the reply's last body byte,
//! including a reconnect when one was needed. Only 200 replies enter the latency figures; other statuses
//! are counted. `--json` objects use the `admin` keys: `clients` are connections, `calls` requests,
//! `reply_errors` non-200 replies.

use std::collections::HashSet;
use std::fmt::Write as _;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{bail, Context, Result};
use clap::Args;
use quick_xml::events::Event;
use quick_xml::Reader;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::guest::{ms, Stats};
use crate::{
    ensure_bench_qubes, fmt_opt, json_load, parse_duration, report_load_as, report_rss, run_timed, AdminClient, Json,
    Labels, Out, WorkerOut,
};

#[derive(Args)]
pub(crate) struct HttpArgs {
    /// The HTTP door, `http://HOST:PORT` (a path after it is put before `/api`).
    #[arg(long)]
    url: String,
    /// HTTP Basic user, `name@domain`.
    #[arg(long, default_value = "admin@internal")]
    user: String,
    /// HTTP Basic password.
    #[arg(long, env = "CORRAL_BENCH_PASSWORD", hide_env_values = true)]
    password: String,
    /// Admin API socket: the bench qubes are created through it first, and phase 2 changes the model
    /// through it. Without it, the qubes must exist and the after-change timing is skipped.
    #[arg(long)]
    socket: Option<PathBuf>,
    /// Number of bench qubes to create with `--socket`.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u32).range(1..))]
    vms: u32,
    /// Name prefix of the bench qubes.
    #[arg(long, default_value = "benchvm")]
    prefix: String,
    /// Concurrent keep-alive connections of phase 1, one thread each.
    #[arg(long, default_value_t = 16, value_parser = clap::value_parser!(u32).range(1..=4096))]
    connections: u32,
    /// Phase 1 duration in seconds; the list load of phase 2 runs half as long.
    #[arg(long, default_value_t = 10.0)]
    duration: f64,
    /// Also print one JSON object line with all figures (to stdout; the human-readable lines then go
    /// to stderr).
    #[arg(long)]
    json: bool,
    /// PID of the daemon, to report its peak (VmHWM) and current (VmRSS) memory.
    #[arg(long)]
    daemon_pid: Option<u32>,
}

const ONE_LABELS: Labels =
    Labels { what: "GET /api/vms/{id}", client: "connections", call: "requests", bad_reply: "non-200 replies" };
const LIST_LABELS: Labels =
    Labels { what: "GET /api/vms (cached)", client: "connections", call: "requests", bad_reply: "non-200 replies" };

/// Model changes, each followed by one timed list.
const AFTER_CHANGE_RUNS: usize = 10;

pub(crate) fn run_http(args: &HttpArgs) -> Result<()> {
    let duration = parse_duration(args.duration)?;
    let out = Out { json: args.json };
    let target = Target::parse(&args.url, &args.user, &args.password)?;
    let mut admin = args.socket.as_deref().map(AdminClient::new);
    let mut j = Json::new();
    j.str("mode", "http");
    j.int("vms", u64::from(args.vms));

    if let Some(admin) = admin.as_mut() {
        let names: Vec<String> = (0..args.vms).map(|i| format!("{}-{i}", args.prefix)).collect();
        ensure_bench_qubes(admin, &out, &mut j, &args.prefix, &names)?;
    }

    let mut conn = Conn::new(&target.addrs);
    let search = query_escape(&format!("name={}-*", args.prefix));
    let status = conn.get(&target.get(&format!("/api/vms?search={search}"))).context("searching the bench vms")?;
    if status != 200 {
        bail!("GET /api/vms?search={search}: HTTP {status}: {}", snippet(&conn.body));
    }
    let ids = vm_ids(&conn.body)?;
    if ids.is_empty() {
        bail!("no vm named {}-* (create them with --socket)", args.prefix);
    }
    out.line(format_args!("{} vms match {}-*", ids.len(), args.prefix));
    j.int("found", ids.len() as u64);

    // Phase 1: one vm by id.
    let one: Vec<Vec<u8>> = ids.iter().map(|id| target.get(&format!("/api/vms/{id}"))).collect();
    let r1 = run_timed(args.connections, duration, |stop| worker(&target.addrs, &one, stop))?;
    report_load_as(&out, &r1, &ONE_LABELS);
    let mut jo = Json::new();
    json_load(&mut jo, &r1);
    j.raw("one", &jo.finish());

    // Phase 2: the whole list. The untimed first GET also renders it, in case phase 1 ran right after a
    // change.
    let list = target.get("/api/vms");
    let status = conn.get(&list).context("GET /api/vms")?;
    if status != 200 {
        bail!("GET /api/vms: HTTP {status}: {}", snippet(&conn.body));
    }
    let list_bytes = conn.body.len();
    let r2 = run_timed(1, duration / 2, |stop| worker(&target.addrs, std::slice::from_ref(&list), stop))?;
    report_load_as(&out, &r2, &LIST_LABELS);
    out.line(format_args!("list body: {:.1} KiB", list_bytes as f64 / 1024.0));
    let mut jl = Json::new();
    json_load(&mut jl, &r2);
    jl.int("bytes", list_bytes as u64);
    j.raw("list", &jl.finish());

    match admin.as_mut() {
        Some(admin) => {
            let after = list_after_change(admin, &mut conn, &list, &format!("{}-0", args.prefix))?;
            out.line(format_args!(
                "GET /api/vms after a change ({} runs), ms: min {}  p50 {}  max {}",
                after.len(),
                fmt_opt(after.min(), 3),
                fmt_opt(after.median(), 3),
                fmt_opt(after.max(), 3)
            ));
            let mut ja = Json::new();
            ja.int("runs", after.len() as u64);
            ja.num("min_ms", after.min());
            ja.num("p50_ms", after.median());
            ja.num("max_ms", after.max());
            j.raw("list_after_change", &ja.finish());
        }
        None => out.line(format_args!("GET /api/vms after a change: skipped (needs --socket)")),
    }

    if let Some(pid) = args.daemon_pid {
        report_rss(&out, &mut j, pid);
    }
    if args.json {
        let _ = writeln!(io::stdout().lock(), "{}", j.finish());
    }
    if r1.ok() == 0 {
        bail!("no GET /api/vms/{{id}} succeeded");
    }
    Ok(())
}

/// Times the first `GET /api/vms` after each of `AFTER_CHANGE_RUNS` changes of the `bench` feature of
/// `vm`, then puts the feature back to the value setup gives it.
fn list_after_change(admin: &mut AdminClient, conn: &mut Conn<'_>, list: &[u8], vm: &str) -> Result<Stats> {
    let mut rng = SmallRng::from_entropy();
    let mut lat = Vec::with_capacity(AFTER_CHANGE_RUNS);
    for _ in 0..AFTER_CHANGE_RUNS {
        // A fresh random value: setting the value a feature already has might not count as a change.
        let value = format!("{:016x}", rng.gen::<u64>());
        admin.call("admin.vm.feature.Set", Some("bench"), vm, value.as_bytes())?;
        let t = Instant::now();
        let status = conn.get(list).context("GET /api/vms after a change")?;
        let d = t.elapsed();
        if status != 200 {
            bail!("GET /api/vms after a change: HTTP {status}: {}", snippet(&conn.body));
        }
        lat.push(ms(d));
    }
    admin.call("admin.vm.feature.Set", Some("bench"), vm, b"1")?;
    Ok(Stats::new(lat))
}

/// One phase-1 or phase-2 thread: GETs of a random one of `reqs` on one connection until `stop`.
fn worker(addrs: &[SocketAddr], reqs: &[Vec<u8>], stop: &AtomicBool) -> WorkerOut {
    let mut rng = SmallRng::from_entropy();
    let mut conn = Conn::new(addrs);
    let mut out = WorkerOut { lat: Vec::with_capacity(1 << 18), ..WorkerOut::default() };
    while !stop.load(Ordering::Relaxed) {
        let req = &reqs[rng.gen_range(0..reqs.len())];
        let t = Instant::now();
        let res = conn.get(req);
        let us = u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX);
        match res {
            Ok(200) => out.lat.push(us),
            Ok(status) => {
                out.reply_errors += 1;
                out.note(format!("HTTP {status}"));
            }
            Err(e) => {
                out.io_errors += 1;
                out.note(format!("IO error: {e}"));
                // Do not spin at full speed against a door that is gone.
                if e.kind() == io::ErrorKind::ConnectionRefused {
                    thread::sleep(Duration::from_millis(1));
                }
            }
        }
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Requests
// ---------------------------------------------------------------------------------------------

/// Where and as whom requests go.
struct Target {
    addrs: Vec<SocketAddr>,
    /// The `Host` header: the URL's authority as written.
    host: String,
    /// The URL's path without its trailing `/` (usually empty), put before every request path.
    base: String,
    /// `base64(user:password)`.
    auth: String,
}

impl Target {
    fn parse(url: &str, user: &str, password: &str) -> Result<Target> {
        let Some(rest) = url.strip_prefix("http://") else {
            bail!("--url must be http://HOST:PORT (this client speaks plain HTTP only): {url}");
        };
        let (authority, path) = rest.split_once('/').unwrap_or((rest, ""));
        if authority.is_empty() {
            bail!("--url has no host: {url}");
        }
        // A port is what follows the last `:` outside an IPv6 literal's brackets.
        let has_port = authority.rsplit_once(':').is_some_and(|(_, p)| !p.contains(']'));
        let with_port = if has_port { authority.to_owned() } else { format!("{authority}:80") };
        let addrs: Vec<SocketAddr> =
            with_port.to_socket_addrs().with_context(|| format!("resolving {with_port}"))?.collect();
        if addrs.is_empty() {
            bail!("{with_port} resolves to no address");
        }
        let path = path.trim_end_matches('/');
        let base = if path.is_empty() { String::new() } else { format!("/{path}") };
        let auth = base64(format!("{user}:{password}").as_bytes());
        Ok(Target { addrs, host: authority.to_owned(), base, auth })
    }

    /// A complete `GET` request for `path` (which starts with `/`).
    fn get(&self, path: &str) -> Vec<u8> {
        format!(
            "GET {}{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Basic {}\r\nAccept: application/xml\r\n\r\n",
            self.base, self.host, self.auth
        )
        .into_bytes()
    }
}

/// Basic credentials are standard base64 with padding.
fn base64(data: &[u8]) -> String {
    use base64::Engine;
    base64::engine::general_purpose::STANDARD.encode(data)
}

/// Percent-encodes all but unreserved characters and `*` (the search wildcard, legal in a query).
fn query_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || b"-._~*".contains(&b) {
            out.push(char::from(b));
        } else {
            let _ = write!(out, "%{b:02X}");
        }
    }
    out
}

/// The `id` of each `<vm>` element, in document order, once each.
fn vm_ids(xml: &[u8]) -> Result<Vec<String>> {
    let text = std::str::from_utf8(xml).context("the vm list is not UTF-8")?;
    let mut reader = Reader::from_str(text);
    let mut seen = HashSet::new();
    let mut ids = Vec::new();
    loop {
        match reader.read_event().context("parsing the vm list")? {
            Event::Start(e) | Event::Empty(e) if e.name().as_ref() == b"vm" => {
                if let Some(a) = e.try_get_attribute("id").context("reading a vm's id")? {
                    let id = a.unescape_value().context("decoding a vm's id")?.into_owned();
                    if seen.insert(id.clone()) {
                        ids.push(id);
                    }
                }
            }
            Event::Eof => return Ok(ids),
            _ => {}
        }
    }
}

/// The start of a reply body, for error messages.
fn snippet(body: &[u8]) -> String {
    String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned()
}

// ---------------------------------------------------------------------------------------------
// HTTP/1.1 client
// ---------------------------------------------------------------------------------------------

/// Bounds on what a broken server could make the reader buffer.
const MAX_HEAD: usize = 64 * 1024;
const MAX_LINE: usize = 4096;

/// How long one read or write may block: a hung door then shows as an error instead of a hung run.
const IO_TIMEOUT: Duration = Duration::from_secs(30);

/// One keep-alive connection, opened on first use and again after the server closes it.
struct Conn<'a> {
    addrs: &'a [SocketAddr],
    stream: Option<TcpStream>,
    reader: ReplyReader,
    /// The last reply's body (decoded when chunked); reused, so the hot loop does not allocate.
    body: Vec<u8>,
}

impl<'a> Conn<'a> {
    fn new(addrs: &'a [SocketAddr]) -> Self {
        Conn { addrs, stream: None, reader: ReplyReader::new(), body: Vec::with_capacity(64 * 1024) }
    }

    /// Sends `req` and reads the whole reply; returns its status, the body is in `self.body`.
    fn get(&mut self, req: &[u8]) -> io::Result<u16> {
        let mut retried = false;
        loop {
            let reused = self.stream.is_some();
            let stream = match self.stream.take() {
                Some(s) => s,
                None => {
                    self.reader.clear();
                    connect(self.addrs)?
                }
            };
            // A write that fails on a stale connection must count as "nothing arrived" too.
            self.reader.got_any = false;
            let res = (&stream).write_all(req).and_then(|()| self.reader.read_reply(&mut &stream, &mut self.body));
            match res {
                Ok(reply) => {
                    if reply.keep_alive {
                        self.stream = Some(stream);
                    }
                    return Ok(reply.status);
                }
                // A kept connection the server closed while idle fails before any byte of the reply: the
                // GET is sent again, once, on a new connection. Any other failure is the request's.
                Err(_) if reused && !self.reader.got_any && !retried => retried = true,
                Err(e) => return Err(e),
            }
        }
    }
}

fn connect(addrs: &[SocketAddr]) -> io::Result<TcpStream> {
    let s = TcpStream::connect(addrs)?;
    // As wrk does, so that the two are compared alike.
    s.set_nodelay(true)?;
    s.set_read_timeout(Some(IO_TIMEOUT))?;
    s.set_write_timeout(Some(IO_TIMEOUT))?;
    Ok(s)
}

fn invalid(msg: &str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, msg.to_owned())
}

/// What the client needs of a reply head.
#[derive(Debug, PartialEq, Eq)]
struct Head {
    status: u16,
    content_length: Option<usize>,
    /// `Transfer-Encoding` is present: the body is chunked if its last coding is `chunked`, else it
    /// runs to the end of the connection (RFC 9112 §6.3).
    transfer_encoding: bool,
    chunked: bool,
    keep_alive: bool,
}

#[derive(Debug, PartialEq, Eq)]
struct Reply {
    status: u16,
    /// Whether the connection can carry the next request.
    keep_alive: bool,
}

/// Reads replies from a byte stream; bytes that arrive past one reply stay for the next.
struct ReplyReader {
    buf: Vec<u8>,
    start: usize,
    end: usize,
    /// Some byte of the current reply has arrived (see `Conn::get`'s retry).
    got_any: bool,
}

impl ReplyReader {
    fn new() -> Self {
        ReplyReader { buf: vec![0; 64 * 1024], start: 0, end: 0, got_any: false }
    }

    /// Forgets buffered bytes: they belonged to a connection that is gone.
    fn clear(&mut self) {
        self.start = 0;
        self.end = 0;
    }

    fn avail(&self) -> &[u8] {
        &self.buf[self.start..self.end]
    }

    /// Reads at least one more byte into the buffer; the end of the stream is an error here, since
    /// every caller still expects bytes.
    fn fill(&mut self, src: &mut impl Read) -> io::Result<()> {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        } else if self.end == self.buf.len() {
            if self.start > 0 {
                self.buf.copy_within(self.start..self.end, 0);
                self.end -= self.start;
                self.start = 0;
            } else {
                // Only a head or a line longer than the buffer gets here, and both are bounded.
                let n = self.buf.len() * 2;
                self.buf.resize(n, 0);
            }
        }
        loop {
            match src.read(&mut self.buf[self.end..]) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "connection closed by the server")),
                Ok(n) => {
                    self.end += n;
                    self.got_any = true;
                    return Ok(());
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    /// Reads one reply (skipping interim 1xx ones) and its body into `body`.
    fn read_reply(&mut self, src: &mut impl Read, body: &mut Vec<u8>) -> io::Result<Reply> {
        self.got_any = self.start != self.end;
        body.clear();
        loop {
            let head_len = loop {
                if let Some(i) = find(self.avail(), b"\r\n\r\n") {
                    break i + 4;
                }
                if self.end - self.start > MAX_HEAD {
                    return Err(invalid("reply head over 64 KiB"));
                }
                self.fill(src)?;
            };
            let head = parse_head(&self.buf[self.start..self.start + head_len])?;
            self.start += head_len;
            match head.status {
                101 => return Err(invalid("unexpected 101 Switching Protocols")),
                100..=199 => continue,
                // Never a body, whatever the headers say (RFC 9112 §6.3).
                204 | 304 => return Ok(Reply { status: head.status, keep_alive: head.keep_alive }),
                _ => {}
            }
            let mut keep_alive = head.keep_alive;
            if head.chunked {
                self.read_chunked(src, body)?;
            } else if let (false, Some(n)) = (head.transfer_encoding, head.content_length) {
                self.take(src, n, body)?;
            } else {
                self.read_to_end(src, body)?;
                keep_alive = false;
            }
            return Ok(Reply { status: head.status, keep_alive });
        }
    }

    /// Moves exactly `n` bytes to `body`.
    fn take(&mut self, src: &mut impl Read, n: usize, body: &mut Vec<u8>) -> io::Result<()> {
        let mut left = n;
        while left > 0 {
            if self.start == self.end {
                self.fill(src)?;
            }
            let k = left.min(self.end - self.start);
            body.extend_from_slice(&self.buf[self.start..self.start + k]);
            self.start += k;
            left -= k;
        }
        Ok(())
    }

    fn read_to_end(&mut self, src: &mut impl Read, body: &mut Vec<u8>) -> io::Result<()> {
        loop {
            body.extend_from_slice(self.avail());
            self.start = self.end;
            match self.fill(src) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(()),
                Err(e) => return Err(e),
            }
        }
    }

    /// The next CRLF-terminated line, as a range of `self.buf` valid until the next `fill`.
    fn line(&mut self, src: &mut impl Read) -> io::Result<(usize, usize)> {
        loop {
            if let Some(i) = find(self.avail(), b"\r\n") {
                let r = (self.start, self.start + i);
                self.start += i + 2;
                return Ok(r);
            }
            if self.end - self.start > MAX_LINE {
                return Err(invalid("chunk size or trailer line over 4 KiB"));
            }
            self.fill(src)?;
        }
    }

    /// Decodes the chunked transfer coding into `body`, up to and including the trailer section.
    fn read_chunked(&mut self, src: &mut impl Read, body: &mut Vec<u8>) -> io::Result<()> {
        loop {
            let (a, b) = self.line(src)?;
            let size = parse_chunk_size(&self.buf[a..b])?;
            if size == 0 {
                // Trailer fields (ignored) up to the empty line that ends the message.
                loop {
                    let (a, b) = self.line(src)?;
                    if a == b {
                        return Ok(());
                    }
                }
            }
            self.take(src, size, body)?;
            let (a, b) = self.line(src)?;
            if a != b {
                return Err(invalid("chunk data not followed by CRLF"));
            }
        }
    }
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// `1a3f[;ext…]` → 0x1a3f.
fn parse_chunk_size(line: &[u8]) -> io::Result<usize> {
    let hex = line.split(|&b| b == b';').next().unwrap_or_default().trim_ascii();
    if hex.is_empty() || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err(invalid("bad chunk size"));
    }
    let text = std::str::from_utf8(hex).map_err(|_| invalid("bad chunk size"))?;
    usize::from_str_radix(text, 16).map_err(|_| invalid("chunk size too large"))
}

/// Parses a head including its final empty line.
fn parse_head(head: &[u8]) -> io::Result<Head> {
    let mut lines = head.split(|&b| b == b'\n').map(|l| l.strip_suffix(b"\r").unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let (http10, rest) = if let Some(r) = status_line.strip_prefix(b"HTTP/1.1 ") {
        (false, r)
    } else if let Some(r) = status_line.strip_prefix(b"HTTP/1.0 ") {
        (true, r)
    } else {
        return Err(invalid("reply does not start with HTTP/1.x"));
    };
    let code = rest.get(..3).filter(|c| c.iter().all(u8::is_ascii_digit)).ok_or_else(|| invalid("bad status code"))?;
    let status = code.iter().fold(0u16, |n, d| n * 10 + u16::from(d - b'0'));
    let mut h = Head { status, content_length: None, transfer_encoding: false, chunked: false, keep_alive: !http10 };
    for line in lines.filter(|l| !l.is_empty()) {
        let colon = line.iter().position(|&b| b == b':').ok_or_else(|| invalid("header line without ':'"))?;
        let (name, value) = (&line[..colon], line[colon + 1..].trim_ascii());
        if name.eq_ignore_ascii_case(b"content-length") {
            let n = std::str::from_utf8(value)
                .ok()
                .filter(|v| !v.is_empty() && v.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|v| v.parse::<usize>().ok())
                .ok_or_else(|| invalid("bad Content-Length"))?;
            if h.content_length.is_some_and(|m| m != n) {
                return Err(invalid("conflicting Content-Length headers"));
            }
            h.content_length = Some(n);
        } else if name.eq_ignore_ascii_case(b"transfer-encoding") {
            // Codings may span several headers; only the last one decides.
            h.transfer_encoding = true;
            if let Some(last) = value.split(|&b| b == b',').map(<[u8]>::trim_ascii).rfind(|c| !c.is_empty()) {
                h.chunked = last.eq_ignore_ascii_case(b"chunked");
            }
        } else if name.eq_ignore_ascii_case(b"connection") {
            for token in value.split(|&b| b == b',').map(<[u8]>::trim_ascii) {
                if token.eq_ignore_ascii_case(b"close") {
                    h.keep_alive = false;
                } else if http10 && token.eq_ignore_ascii_case(b"keep-alive") {
                    h.keep_alive = true;
                }
            }
        }
    }
    Ok(h)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Hands out its bytes `step` at a time, so that every boundary falls inside a read somewhere.
    struct Trickle<'a> {
        data: &'a [u8],
        step: usize,
    }

    impl Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.step.min(buf.len()).min(self.data.len());
            buf[..n].copy_from_slice(&self.data[..n]);
            self.data = &self.data[n..];
            Ok(n)
        }
    }

    /// Reads every reply in `wire`, for each read size from 1 to 64 bytes.
    fn replies(wire: &[u8]) -> Vec<Vec<(Reply, Vec<u8>)>> {
        (1..=64)
            .map(|step| {
                let mut src = Trickle { data: wire, step };
                let mut rd = ReplyReader::new();
                let mut got = Vec::new();
                loop {
                    let mut body = Vec::new();
                    match rd.read_reply(&mut src, &mut body) {
                        Ok(r) => {
                            let ka = r.keep_alive;
                            got.push((r, body));
                            if !ka {
                                break;
                            }
                        }
                        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof && rd.avail().is_empty() => break,
                        Err(e) => panic!("step {step}: {e}"),
                    }
                }
                got
            })
            .collect()
    }

    #[test]
    fn content_length_and_chunked_on_one_connection() {
        let wire = b"HTTP/1.1 200 OK\r\ncontent-length: 5\r\n\r\nhello\
HTTP/1.1 100 Continue\r\n\r\n\
HTTP/1.1 404 Not Found\r\nTransfer-Encoding: gzip, chunked\r\n\r\n4;ext=1\r\nwiki\r\n5\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\nX-Trailer: 1\r\n\r\n\
HTTP/1.1 204 No Content\r\nContent-Length: 3\r\n\r\n\
HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok";
        for got in replies(wire) {
            let summary: Vec<(u16, bool, &[u8])> = got.iter().map(|(r, b)| (r.status, r.keep_alive, &b[..])).collect();
            assert_eq!(
                summary,
                [
                    (200, true, &b"hello"[..]),
                    (404, true, &b"wikipedia in\r\n\r\nchunks."[..]),
                    (204, true, &b""[..]),
                    (200, false, &b"ok"[..]),
                ]
            );
        }
    }

    #[test]
    fn body_to_end_of_connection() {
        let wire = b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\nall of it";
        for got in replies(wire) {
            assert_eq!(got.len(), 1);
            assert_eq!((got[0].0.status, got[0].0.keep_alive, &got[0].1[..]), (200, false, &b"all of it"[..]));
        }
    }

    #[test]
    fn http10_keep_alive_and_transfer_encoding_over_length() {
        let h = parse_head(b"HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n").ok();
        assert_eq!(h.map(|h| h.keep_alive), Some(true));
        let h = parse_head(b"HTTP/1.1 200 OK\r\nContent-Length: 9\r\nTransfer-Encoding: chunked\r\n\r\n").ok();
        assert_eq!(h.map(|h| (h.chunked, h.content_length)), Some((true, Some(9))));
        let wire = b"HTTP/1.1 200 OK\r\nContent-Length: 99\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(replies(wire)[0][0].1, b"hi");
    }

    #[test]
    fn malformed_replies_are_errors() {
        for wire in [
            &b"HTTP/1.1 200 OK\r\nContent-Length: x\r\n\r\n"[..],
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\nab",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n2\r\nhiX\r\n",
            b"SSH-2.0-OpenSSH\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nshort",
        ] {
            let mut rd = ReplyReader::new();
            let mut body = Vec::new();
            assert!(rd.read_reply(&mut Trickle { data: wire, step: 3 }, &mut body).is_err(), "{wire:?}");
        }
    }

    #[test]
    fn vm_ids_and_urls() {
        let xml = br#"<vms><vm href="/api/vms/a" id="a"><name>benchvm-0</name><template id="t"/></vm><vm id="b"/><vm id="a"/></vms>"#;
        assert_eq!(vm_ids(xml).ok(), Some(vec!["a".to_owned(), "b".to_owned()]));
        assert_eq!(query_escape("name=benchvm-*"), "name%3Dbenchvm-*");
        let b64: Vec<String> = ["", "f", "fo", "foo", "foob", "fooba", "foobar"].map(|s| base64(s.as_bytes())).into();
        assert_eq!(b64, ["", "Zg==", "Zm8=", "Zm9v", "Zm9vYg==", "Zm9vYmE=", "Zm9vYmFy"]);
        let t = Target::parse("http://127.0.0.1:8006/", "admin@internal", "pw").ok();
        assert_eq!(t.as_ref().map(|t| (t.host.as_str(), t.base.as_str())), Some(("127.0.0.1:8006", "")));
        assert!(Target::parse("https://127.0.0.1:8006", "u", "p").is_err());
        let t = Target::parse("http://127.0.0.1:8006/x/", "u", "p").ok();
        assert_eq!(
            t.map(|t| String::from_utf8_lossy(&t.get("/api/vms")).into_owned()).as_deref().map(|s| &s[..21]),
            Some("GET /x/api/vms HTTP/1")
        );
    }
}
