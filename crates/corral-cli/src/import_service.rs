//! The volume import services. Volume data is too large for the 64 KiB socket frame, so the caller's
//! stream goes straight into the file the daemon names in `internal.vm.volume.ImportBegin`, and
//! `internal.vm.volume.ImportEnd` commits or discards it. The daemon's final reply is this service's output.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::process::ExitCode;

pub const SERVICES: [&str; 2] = ["admin.vm.volume.Import", "admin.vm.volume.ImportWithSize"];

/// The size line `ImportWithSize` reads first: at most 21 printable bytes and a newline.
const MAX_SIZE_LINE: usize = 21;

fn internal_socket() -> String {
    std::env::var("CORRAL_INTERNAL_SOCKET").unwrap_or_else(|_| "/var/run/qubesd.internal.sock".into())
}

fn call(method: &str, src: &str, dest: &str, payload: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut s = UnixStream::connect(internal_socket())?;
    s.write_all(format!("{method} {src} name {dest}\0").as_bytes())?;
    s.write_all(payload)?;
    s.shutdown(std::net::Shutdown::Write)?;
    let mut out = Vec::new();
    s.read_to_end(&mut out)?;
    Ok(out)
}

/// A dom0 call on the internal socket; an exception reply becomes an error with its message.
pub fn internal_call(method: &str, payload: &[u8]) -> anyhow::Result<Vec<u8>> {
    let reply = call(method, "dom0", "dom0", payload)
        .map_err(|e| anyhow::anyhow!("cannot reach corrald on {}: {e}", internal_socket()))?;
    if let Some(content) = reply.strip_prefix(b"0\0") {
        return Ok(content.to_vec());
    }
    let fields: Vec<&[u8]> = reply.split(|b| *b == 0).collect();
    match fields.as_slice() {
        [b"2", kind, _, message, ..] => {
            anyhow::bail!("{}: {}", String::from_utf8_lossy(kind), String::from_utf8_lossy(message))
        }
        _ => anyhow::bail!("unexpected reply from corrald"),
    }
}

fn exception(kind: &str, message: &str) -> Vec<u8> {
    format!("2\0{kind}\0\0{message}\0").into_bytes()
}

fn read_size_line(input: &mut impl Read) -> Result<String, String> {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    loop {
        match input.read(&mut byte) {
            Ok(0) => return Err("size line is missing".into()),
            Ok(_) if byte[0] == b'\n' => break,
            Ok(_) if line.len() >= MAX_SIZE_LINE || !(0x20..0x7f).contains(&byte[0]) => {
                return Err("invalid size line".into())
            }
            Ok(_) => line.push(byte[0]),
            Err(e) => return Err(e.to_string()),
        }
    }
    String::from_utf8(line).map_err(|_| "invalid size line".into())
}

/// Copies exactly `size` bytes; more or less input is a failure the daemon is told about.
fn copy_exact(input: &mut impl Read, path: &str, size: u64) -> Result<(), String> {
    let mut file =
        std::fs::OpenOptions::new().write(true).open(path).map_err(|e| format!("cannot open {path}: {e}"))?;
    let copied = std::io::copy(&mut input.take(size), &mut file).map_err(|e| e.to_string())?;
    if copied < size {
        // The words of upstream's admin.vm.volume.Import script, which callers may show or match.
        return Err(format!("not enough data (copied {copied} bytes, expected {size} bytes)"));
    }
    let mut probe = [0u8; 1];
    if input.read(&mut probe).map_err(|e| e.to_string())? > 0 {
        return Err(format!("too much data (expected {size} bytes)"));
    }
    file.sync_all().map_err(|e| e.to_string())
}

pub fn run(service: &str, arg: Option<&str>) -> ExitCode {
    let mut stdout = std::io::stdout();
    let reply = serve(service, arg);
    let _ = stdout.write_all(&reply);
    let _ = stdout.flush();
    ExitCode::SUCCESS
}

fn serve(service: &str, arg: Option<&str>) -> Vec<u8> {
    let src = std::env::var("QREXEC_REMOTE_DOMAIN").unwrap_or_default();
    let dest = std::env::var("QREXEC_REQUESTED_TARGET").unwrap_or_default();
    let Some(volume) = arg.filter(|a| !a.is_empty()) else {
        return exception("ProtocolError", "volume name is missing");
    };
    if src.is_empty() || dest.is_empty() {
        return exception("ProtocolError", "QREXEC_REMOTE_DOMAIN and QREXEC_REQUESTED_TARGET must be set");
    }
    let mut stdin = std::io::stdin().lock();
    let size_payload = if service.ends_with("WithSize") {
        match read_size_line(&mut stdin) {
            Ok(line) => line.into_bytes(),
            Err(e) => return exception("ProtocolError", &e),
        }
    } else {
        Vec::new()
    };
    let begin = match call(&format!("internal.vm.volume.ImportBegin+{volume}"), &src, &dest, &size_payload) {
        Ok(r) => r,
        Err(e) => return exception("QubesDaemonCommunicationError", &format!("cannot reach corrald: {e}")),
    };
    let Some(answer) = begin.strip_prefix(b"0\0") else { return begin };
    let answer = String::from_utf8_lossy(answer).into_owned();
    let parsed = answer.split_once(' ').and_then(|(size, path)| Some((size.parse::<u64>().ok()?, path.to_string())));
    let outcome = match parsed {
        Some((size, path)) => copy_exact(&mut stdin, &path, size),
        None => Err("unexpected ImportBegin reply".into()),
    };
    let status = match &outcome {
        Ok(()) => b"ok".to_vec(),
        Err(msg) => format!("fail\n{msg}").into_bytes(),
    };
    match call(&format!("internal.vm.volume.ImportEnd+{volume}"), &src, &dest, &status) {
        Ok(r) => r,
        Err(e) => exception("QubesDaemonCommunicationError", &format!("cannot reach corrald: {e}")),
    }
}
