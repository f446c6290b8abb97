//! `http-ceiling`: a do-nothing HTTP/1.1 server, the HTTP counterpart of `../shared/bench/ceiling.c`. It
//! reads each request's head and answers at once with a fixed body of the size corrald's would have, on
//! keep-alive connections (one thread each, as the load tool's). Pointed at it, `http` shows the most the
//! load tool, this machine and loopback TCP allow; report corrald's figure as a fraction of it.
//!
//! `GET /api/vms?search=…` (how `http` finds its vms) answers `--vms` `<vm id>` elements; `GET /api/vms`
//! answers a list of `--list-bytes`; anything else a `<vm>` of `--one-bytes`. No parsing beyond the
//! request line, no state, no authentication.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::Arc;
use std::thread;

use anyhow::{Context, Result};
use clap::Args;

#[derive(Args)]
pub(crate) struct CeilingArgs {
    /// Where to listen, `HOST:PORT`.
    #[arg(long, default_value = "127.0.0.1:8016")]
    listen: String,
    /// vm ids the search answer lists.
    #[arg(long, default_value_t = 1000)]
    vms: u32,
    /// Body size of a single vm (corrald's `GET /api/vms/{id}` of a bench qube is about this).
    #[arg(long, default_value_t = 3_300)]
    one_bytes: usize,
    /// Body size of the whole list (corrald's with 1,001 vms is about this).
    #[arg(long, default_value_t = 2_300_000)]
    list_bytes: usize,
}

struct Bodies {
    search: Vec<u8>,
    list: Vec<u8>,
    one: Vec<u8>,
}

/// A whole reply: status line, headers, and an XML body padded with a comment to `size` bytes.
fn reply(xml: &str, size: usize) -> Vec<u8> {
    let mut body = xml.to_string();
    if body.len() + 7 < size {
        body.push_str("<!--");
        body.push_str(&" ".repeat(size - body.len() - 3));
        body.push_str("-->");
    }
    let mut out = format!("HTTP/1.1 200 OK\r\ncontent-type: application/xml\r\ncontent-length: {}\r\n\r\n", body.len())
        .into_bytes();
    out.extend_from_slice(body.as_bytes());
    out
}

pub(crate) fn run_ceiling(args: &CeilingArgs) -> Result<()> {
    let ids: String = (0..args.vms).map(|i| format!("<vm id=\"ceiling-{i}\"/>")).collect();
    let bodies = Arc::new(Bodies {
        search: reply(&format!("<vms>{ids}</vms>"), 0),
        list: reply("<vms/>", args.list_bytes),
        one: reply("<vm id=\"ceiling\"/>", args.one_bytes),
    });
    let listener = TcpListener::bind(&args.listen).with_context(|| format!("listening on {}", args.listen))?;
    eprintln!("http-ceiling: serving on {}", listener.local_addr()?);
    for stream in listener.incoming() {
        let Ok(stream) = stream else { continue };
        let bodies = bodies.clone();
        thread::spawn(move || {
            let _ = serve(stream, &bodies);
        });
    }
    Ok(())
}

/// Answers requests on one connection until the client closes it.
fn serve(stream: TcpStream, bodies: &Bodies) -> io::Result<()> {
    stream.set_nodelay(true)?;
    let mut writer = stream.try_clone()?;
    let mut reader = BufReader::new(stream);
    let mut line = String::new();
    loop {
        line.clear();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let path = line.split(' ').nth(1).unwrap_or_default().to_string();
        // The rest of the head; the load tool's GETs have no body.
        loop {
            line.clear();
            if reader.read_line(&mut line)? == 0 {
                return Ok(());
            }
            if line == "\r\n" || line == "\n" {
                break;
            }
        }
        let body = if path.starts_with("/api/vms?search") {
            &bodies.search
        } else if path == "/api/vms" {
            &bodies.list
        } else {
            &bodies.one
        };
        writer.write_all(body)?;
    }
}
