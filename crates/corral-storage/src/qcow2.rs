//! Just enough of the qcow2 header to tell whether a prepared overlay is one `qemu-img create -f qcow2 -F raw -b
//! <origin>` would write now. Only files this crate created are ever read, but they may be stale (another origin,
//! an older size) or cut short by a crash, so anything unexpected makes [`parse`] return `None` and the caller
//! creates a fresh overlay instead. Layout per QEMU's `docs/interop/qcow2.txt`; every field is big-endian.

use std::fs::File;
use std::io::{self, Read};

const MAGIC: &[u8; 4] = b"QFI\xfb";
/// Header extension naming the backing file's format; without it QEMU would probe the origin's content.
const EXT_BACKING_FORMAT: u32 = 0xE279_2ACA;
const EXT_END: u32 = 0;
/// Version 2 headers end here and have their extensions right after.
const V2_HEADER_LEN: usize = 72;
/// Version 3 headers are at least this long and say their actual length at byte 100.
const V3_MIN_HEADER_LEN: usize = 104;
/// QEMU puts the header, its extensions and the backing file name in the first cluster, and `qemu-img create`
/// uses 64 KiB clusters by default; a name placed beyond what is read makes the file count as not ours.
const READ_LIMIT: u64 = 64 * 1024;
/// QEMU refuses to open an image whose backing file name is longer, so a longer one means a corrupt header.
const MAX_BACKING_NAME: u32 = 1023;

/// What decides whether an overlay may stand in for a freshly created one.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overlay {
    /// The backing file name exactly as stored (QEMU stores what `-b` was given).
    pub(crate) backing: Vec<u8>,
    /// The backing format extension's content; `None` when absent (QEMU would then probe).
    pub(crate) backing_format: Option<Vec<u8>>,
    /// The size the guest sees, in bytes.
    pub(crate) virtual_size: u64,
}

/// Reads the start of `file` and parses it; I/O errors are real errors, a malformed header is `Ok(None)`.
pub(crate) fn read(file: &File) -> io::Result<Option<Overlay>> {
    let mut buf = Vec::new();
    file.take(READ_LIMIT).read_to_end(&mut buf)?;
    Ok(parse(&buf))
}

/// Parses a header, refusing anything `qemu-img create` with our options would not have written: encryption,
/// internal snapshots, any incompatible feature bit (dirty, corrupt, external data file, ...), or fields pointing
/// outside `buf`.
pub(crate) fn parse(buf: &[u8]) -> Option<Overlay> {
    if buf.get(..4)? != MAGIC {
        return None;
    }
    let version = be32(buf, 4)?;
    let backing_offset = usize::try_from(be64(buf, 8)?).ok()?;
    let backing_len = be32(buf, 16)?;
    let cluster_bits = be32(buf, 20)?;
    let virtual_size = be64(buf, 24)?;
    let crypt_method = be32(buf, 32)?;
    let snapshots = be32(buf, 60)?;
    // The spec allows 512 B to 2 MiB clusters; anything else is garbage.
    if !(9..=21).contains(&cluster_bits) || crypt_method != 0 || snapshots != 0 {
        return None;
    }
    let header_len = match version {
        2 => V2_HEADER_LEN,
        3 => {
            if be64(buf, 72)? != 0 {
                return None;
            }
            let len = usize::try_from(be32(buf, 100)?).ok()?;
            // The spec requires a multiple of 8 so that extensions stay aligned.
            if len < V3_MIN_HEADER_LEN || len % 8 != 0 {
                return None;
            }
            len
        }
        _ => return None,
    };
    if backing_offset == 0 || backing_len == 0 || backing_len > MAX_BACKING_NAME {
        return None;
    }
    let backing = buf.get(backing_offset..backing_offset.checked_add(usize::try_from(backing_len).ok()?)?)?;
    let backing_format = backing_format(buf, header_len, backing_offset)?;
    Some(Overlay { backing: backing.to_vec(), backing_format, virtual_size })
}

/// Walks the header extensions from `start` to the end marker. `Some(None)` when there is no backing format
/// extension, `None` when the extension area is malformed or runs into the backing file name.
fn backing_format(buf: &[u8], start: usize, limit: usize) -> Option<Option<Vec<u8>>> {
    let mut pos = start;
    let mut format = None;
    loop {
        // As QEMU does, extensions end where the backing file name begins.
        if pos.checked_add(8)? > limit {
            return None;
        }
        let kind = be32(buf, pos)?;
        let len = usize::try_from(be32(buf, pos.checked_add(4)?)?).ok()?;
        if kind == EXT_END {
            return Some(format);
        }
        let data = pos.checked_add(8)?;
        let end = data.checked_add(len)?;
        if end > limit {
            return None;
        }
        let value = buf.get(data..end)?;
        if kind == EXT_BACKING_FORMAT {
            if format.is_some() {
                return None;
            }
            format = Some(value.to_vec());
        }
        // Extension data is padded to a multiple of 8 bytes.
        pos = end.checked_add(7)? & !7;
    }
}

fn be32(buf: &[u8], at: usize) -> Option<u32> {
    let bytes = buf.get(at..at.checked_add(4)?)?;
    Some(u32::from_be_bytes(bytes.try_into().ok()?))
}

fn be64(buf: &[u8], at: usize) -> Option<u64> {
    let bytes = buf.get(at..at.checked_add(8)?)?;
    Some(u64::from_be_bytes(bytes.try_into().ok()?))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A version 3 header as `qemu-img create -f qcow2 -F <format> -b <backing>` writes it, with 64 KiB clusters.
    fn header(backing: &str, format: Option<&str>, size: u64) -> Vec<u8> {
        let mut buf = vec![0u8; 0x10000];
        buf[..4].copy_from_slice(MAGIC);
        buf[4..8].copy_from_slice(&3u32.to_be_bytes());
        buf[8..16].copy_from_slice(&0x210u64.to_be_bytes());
        buf[16..20].copy_from_slice(&u32::try_from(backing.len()).unwrap().to_be_bytes());
        buf[20..24].copy_from_slice(&16u32.to_be_bytes());
        buf[24..32].copy_from_slice(&size.to_be_bytes());
        buf[96..100].copy_from_slice(&4u32.to_be_bytes());
        buf[100..104].copy_from_slice(&112u32.to_be_bytes());
        let mut pos = 112;
        if let Some(f) = format {
            buf[pos..pos + 4].copy_from_slice(&EXT_BACKING_FORMAT.to_be_bytes());
            buf[pos + 4..pos + 8].copy_from_slice(&u32::try_from(f.len()).unwrap().to_be_bytes());
            buf[pos + 8..pos + 8 + f.len()].copy_from_slice(f.as_bytes());
            pos += 8 + f.len().div_ceil(8) * 8;
        }
        // Some other extension (QEMU writes a feature name table) must be skipped over.
        buf[pos..pos + 4].copy_from_slice(&0x6803_f857u32.to_be_bytes());
        buf[pos + 4..pos + 8].copy_from_slice(&5u32.to_be_bytes());
        buf[0x210..0x210 + backing.len()].copy_from_slice(backing.as_bytes());
        buf
    }

    #[test]
    fn a_qemu_img_style_header_is_understood() {
        let o = parse(&header("/pool/vm-templates/t/root.img", Some("raw"), 10 << 30)).unwrap();
        assert_eq!(o.backing, b"/pool/vm-templates/t/root.img");
        assert_eq!(o.backing_format.as_deref(), Some(&b"raw"[..]));
        assert_eq!(o.virtual_size, 10 << 30);
        assert_eq!(parse(&header("/o.img", None, 1)).unwrap().backing_format, None);
    }

    #[test]
    fn anything_unexpected_is_refused() {
        let good = header("/o.img", Some("raw"), 1 << 20);
        let bad = |f: &dyn Fn(&mut Vec<u8>)| {
            let mut b = good.clone();
            f(&mut b);
            parse(&b)
        };
        assert!(parse(&good).is_some());
        assert_eq!(parse(&[]), None);
        assert_eq!(parse(&good[..50]), None, "cut short");
        assert_eq!(parse(&good[..0x212]), None, "backing name cut short");
        assert_eq!(bad(&|b| b[3] = 0), None, "magic");
        assert_eq!(bad(&|b| b[7] = 4), None, "version");
        assert_eq!(bad(&|b| b[23] = 30), None, "cluster bits");
        assert_eq!(bad(&|b| b[35] = 1), None, "encrypted");
        assert_eq!(bad(&|b| b[63] = 1), None, "snapshots");
        assert_eq!(bad(&|b| b[79] = 1), None, "dirty bit");
        assert_eq!(bad(&|b| b[103] = 100), None, "header length");
        assert_eq!(bad(&|b| b[8..16].fill(0)), None, "no backing file");
        assert_eq!(bad(&|b| b[8..16].copy_from_slice(&u64::MAX.to_be_bytes())), None, "backing name outside");
        assert_eq!(bad(&|b| b[16..20].copy_from_slice(&2000u32.to_be_bytes())), None, "backing name too long");
        assert_eq!(bad(&|b| b[116..120].copy_from_slice(&0x1000u32.to_be_bytes())), None, "extension too long");
        assert_eq!(bad(&|b| b[120..0x210].fill(0xff)), None, "no end of extensions");
    }
}
