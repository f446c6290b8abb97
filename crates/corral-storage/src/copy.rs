//! Copying images without inflating them: a reflink when the file system can share extents, otherwise a copy
//! that reads only the source's data regions and leaves zero blocks as holes.

use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

use crate::sys;

/// Granularity of the zero check: large enough to keep the copy fast, small enough that images keep most holes.
const BLOCK: usize = 64 * 1024;

/// Makes the empty, writable `dst` an exact copy of `src`, content and length.
pub(crate) fn copy_into(src: &File, dst: &File) -> io::Result<()> {
    let len = src.metadata()?.len();
    // Any failure here just means "no sharing possible" (other file system, no reflink support, ...).
    if sys::ficlone(dst, src).is_ok() && dst.metadata()?.len() == len {
        return Ok(());
    }
    dst.set_len(0)?;
    dst.set_len(len)?;
    let mut buf = vec![0u8; BLOCK];
    let mut pos = 0;
    while let Some((start, end)) = next_data(src, pos, len)? {
        copy_range(src, dst, start, end, &mut buf)?;
        pos = end;
    }
    Ok(())
}

/// The next `[start, end)` range of `src` at or after `from` that may hold data.
fn next_data(src: &File, from: u64, len: u64) -> io::Result<Option<(u64, u64)>> {
    if from >= len {
        return Ok(None);
    }
    let start = match sys::seek_data(src, from) {
        Ok(Some(start)) if start < len => start,
        Ok(_) => return Ok(None),
        Err(e) if no_hole_support(&e) => return Ok(Some((from, len))),
        Err(e) => return Err(e),
    };
    let end = match sys::seek_hole(src, start) {
        Ok(end) if end > start => end.min(len),
        Ok(_) => len,
        Err(e) if no_hole_support(&e) => len,
        Err(e) => return Err(e),
    };
    Ok(Some((start, end)))
}

fn no_hole_support(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EINVAL | libc::EOPNOTSUPP | libc::ENOSYS))
}

fn copy_range(src: &File, dst: &File, start: u64, end: u64, buf: &mut [u8]) -> io::Result<()> {
    let mut off = start;
    while off < end {
        let n = usize::try_from(end - off).map_or(buf.len(), |rest| rest.min(buf.len()));
        let chunk = &mut buf[..n];
        src.read_exact_at(chunk, off)?;
        // dst was extended with holes beforehand, so skipping a zero block is the same as writing it.
        if chunk.iter().any(|&b| b != 0) {
            dst.write_all_at(chunk, off)?;
        }
        off += n as u64;
    }
    Ok(())
}
