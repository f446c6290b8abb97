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
    copy_sparse(src, dst, len)
}

/// The fallback: reads only `src`'s data regions and writes only non-zero blocks of them into `dst`.
fn copy_sparse(src: &File, dst: &File, len: u64) -> io::Result<()> {
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

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    const MIB: u64 = 1024 * 1024;

    #[test]
    fn sparse_copy_skips_holes_and_zero_blocks() {
        let tmp = tempfile::tempdir().unwrap();
        let src =
            File::options().read(true).write(true).create(true).truncate(true).open(tmp.path().join("src")).unwrap();
        src.set_len(64 * MIB).unwrap();
        src.write_all_at(b"start", 0).unwrap();
        src.write_all_at(&[0xab; 100_000], 17 * MIB + 3).unwrap();
        // Explicitly written zeroes: allocated in the source, holes in the copy.
        src.write_all_at(&vec![0; 8 * MIB as usize], 30 * MIB).unwrap();
        src.write_all_at(b"end", 64 * MIB - 3).unwrap();
        let dst =
            File::options().read(true).write(true).create(true).truncate(true).open(tmp.path().join("dst")).unwrap();
        // Leftover content must not survive the copy.
        dst.write_all_at(b"junk", 40 * MIB).unwrap();

        copy_sparse(&src, &dst, src.metadata().unwrap().len()).unwrap();

        assert_eq!(dst.metadata().unwrap().len(), 64 * MIB);
        assert_eq!(std::fs::read(tmp.path().join("src")).unwrap(), std::fs::read(tmp.path().join("dst")).unwrap());
        assert!(src.metadata().unwrap().blocks() * 512 > 8 * MIB);
        let used = dst.metadata().unwrap().blocks() * 512;
        assert!(used <= 4 * 64 * 1024, "copy is not sparse: {used} bytes allocated");
    }

    #[test]
    fn copies_empty_and_fully_sparse_files() {
        let tmp = tempfile::tempdir().unwrap();
        for len in [0, 5 * MIB] {
            let src =
                File::options().read(true).write(true).create(true).truncate(true).open(tmp.path().join("s")).unwrap();
            src.set_len(len).unwrap();
            let dst =
                File::options().read(true).write(true).create(true).truncate(true).open(tmp.path().join("d")).unwrap();
            copy_into(&src, &dst).unwrap();
            assert_eq!(dst.metadata().unwrap().len(), len);
            assert_eq!(dst.metadata().unwrap().blocks(), 0);
        }
    }
}
