//! Fuzz-style properties of the request parser (`frame::parse`), in process and deterministic: it never
//! panics, refuses what §1.2 of the spec says to drop, and what it accepts reads back into the same bytes.
//!
//! `CORRAL_FRAME_FUZZ_ITERS` (default 200000) and `CORRAL_FRAME_FUZZ_SEED` change the run.

use corral_admin::frame::{parse, Abort, Request};

/// xorshift64*: enough randomness for input generation, without a dependency.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
    fn pick<T: Copy>(&mut self, items: &[T]) -> T {
        items[self.below(items.len())]
    }
}

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name).ok().and_then(|v| v.trim().parse().ok()).unwrap_or(default)
}

/// Pieces that valid and nearly valid headers are made of, so that random joins often parse.
const PIECES: &[&[u8]] = &[
    b"admin.vm.List",
    b"admin.vm.property.Set+memory",
    b"admin.vm.Shutdown+force+wait",
    b"+",
    b"++",
    b" ",
    b"  ",
    b"dom0",
    b"work",
    b"name",
    b"keyword",
    b"adminvm",
    b"uuid:00000000-0000-0000-0000-000000000000",
    b"\0",
    b"\0\0",
    b"\xff",
    b"\xc3\xa9",
    b"\t",
    b"\n",
    b"x",
    b"",
];

fn random_input(rng: &mut Rng) -> Vec<u8> {
    match rng.below(3) {
        // Raw bytes.
        0 => (0..rng.below(64)).map(|_| rng.next() as u8).collect(),
        // Pieces joined at random.
        1 => (0..rng.below(10)).flat_map(|_| rng.pick(PIECES).to_vec()).collect(),
        // A valid request with a few bytes changed, inserted or removed.
        _ => {
            let mut b = b"admin.vm.property.Set+memory dom0 name work\x00800".to_vec();
            for _ in 0..=rng.below(3) {
                let at = rng.below(b.len() + 1);
                match rng.below(3) {
                    0 if at < b.len() => b[at] = rng.pick(&[0, b' ', b'+', 0xff, b'a', b'\n']),
                    1 if at < b.len() => {
                        b.remove(at);
                    }
                    _ => b.insert(at, rng.pick(&[0, b' ', b'+', 0xe9, b'k'])),
                }
            }
            b
        }
    }
}

/// What §1.2 says about a buffer, checked against what `parse` made of it.
fn check(buf: &[u8]) -> Result<(), String> {
    let parsed = std::panic::catch_unwind(|| parse(buf)).map_err(|_| "parse panicked".to_string())?;
    let Some(nul) = buf.iter().position(|b| *b == 0) else {
        return match parsed {
            Err(Abort) => Ok(()),
            Ok(r) => Err(format!("no NUL, yet parsed as {r:?}")),
        };
    };
    let header = &buf[..nul];
    if !header.is_ascii() {
        return match parsed {
            Err(Abort) => Ok(()),
            Ok(r) => Err(format!("non-ASCII header, yet parsed as {r:?}")),
        };
    }
    let header = std::str::from_utf8(header).map_err(|e| e.to_string())?;
    let fields: Vec<&str> = header.splitn(4, ' ').collect();
    let must_abort = fields.len() < 4 || !(fields[2] == "name" || (fields[2] == "keyword" && fields[3] == "adminvm"));
    match parsed {
        Err(Abort) if must_abort => Ok(()),
        Err(Abort) => Err("a well-formed header was refused".to_string()),
        Ok(r) if must_abort => Err(format!("a malformed header was accepted as {r:?}")),
        Ok(Request { method, arg, src, dest, payload }) => {
            // Reading the fields back must give the header again, and the payload is the rest, NULs kept.
            let call = match (fields[0].contains('+'), arg) {
                (true, arg) => format!("{method}+{arg}"),
                (false, "") => method.to_string(),
                (false, arg) => return Err(format!("argument {arg:?} without a '+'")),
            };
            let rebuilt = if fields[2] == "keyword" {
                (dest == "dom0").then(|| format!("{call} {src} keyword adminvm"))
            } else {
                Some(format!("{call} {src} name {dest}"))
            };
            if rebuilt.as_deref() != Some(header) {
                return Err(format!("fields {method:?} {arg:?} {src:?} {dest:?} do not read back as {header:?}"));
            }
            if method.contains('+') || src.contains(' ') {
                return Err(format!("method {method:?} or source {src:?} kept a separator"));
            }
            if payload != &buf[nul + 1..] {
                return Err("payload is not everything after the first NUL".to_string());
            }
            Ok(())
        }
    }
}

#[test]
fn parse_refuses_what_it_must_and_reads_back_what_it_accepts() {
    let iters = env_u64("CORRAL_FRAME_FUZZ_ITERS", 200_000);
    let seed = env_u64("CORRAL_FRAME_FUZZ_SEED", 0x00c0_11a1) | 1;
    let mut rng = Rng(seed);
    let mut accepted = 0;
    for i in 0..iters {
        let buf = random_input(&mut rng);
        if let Err(e) = check(&buf) {
            panic!("seed {seed}, input #{i} {:?}: {e}", String::from_utf8_lossy(&buf));
        }
        accepted += usize::from(parse(&buf).is_ok());
    }
    // The generator must reach the accepting paths too, or the read-back checks test nothing.
    assert!(accepted > iters as usize / 20, "only {accepted} of {iters} inputs parsed");
}

#[test]
fn every_prefix_before_the_nul_is_refused() {
    for req in [
        &b"admin.vm.property.Set+memory dom0 name work\x00800"[..],
        b"admin.vm.List dom0 keyword adminvm\x00",
        b"admin.vm.Remove dom0 name uuid:00000000-0000-0000-0000-000000000000\x00",
    ] {
        let nul = req.iter().position(|b| *b == 0).unwrap_or(req.len());
        for cut in 0..=nul {
            assert_eq!(parse(&req[..cut]), Err(Abort), "{:?}", String::from_utf8_lossy(&req[..cut]));
        }
        assert!(parse(req).is_ok());
    }
}
