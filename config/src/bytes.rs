//! Copies of short byte strings of a length known only at run time (the keys, numbers,
//! addresses and times of an event), written without a call to `memcpy`.
//!
//! A copy whose length the compiler cannot see becomes a call into the C library, and for a
//! few bytes the call and its dispatch cost more than the copy: writing a flow record made
//! about 40 of them. Here a copy of up to 32 bytes is two fixed-size copies that overlap (the
//! first `W` bytes and the last `W`, for the smallest `W` of 4, 8 or 16 with `W <= n <= 2W`),
//! each a single load and store; shorter ones go byte by byte and longer ones to `memcpy`.

/// Append `bytes` to `out`: room for the widest short copy made at a fixed length (one
/// store), [`copy`] into it, then the length cut back to what was copied.
#[inline(always)]
pub fn put(out: &mut Vec<u8>, bytes: &[u8]) {
    let n = bytes.len();
    if n > 32 {
        out.extend_from_slice(bytes);
        return;
    }
    let start = out.len();
    out.extend_from_slice(&[0u8; 32]);
    if let Some(room) = out.get_mut(start..) {
        copy(room, bytes);
    }
    out.truncate(start + n);
}

/// Copy `src` to the start of `dst`; false (nothing copied) when `dst` is shorter.
#[inline(always)]
pub fn copy(dst: &mut [u8], src: &[u8]) -> bool {
    let n = src.len();
    let Some(dst) = dst.get_mut(..n) else {
        return false;
    };
    if n > 32 {
        dst.copy_from_slice(src);
        return true;
    }
    macro_rules! two_overlapping {
        ($w:literal) => {
            if let (Some(lo), Some(hi)) = (src.first_chunk::<$w>(), src.last_chunk::<$w>()) {
                if n <= 2 * $w {
                    if let Some(d) = dst.first_chunk_mut::<$w>() {
                        *d = *lo;
                    }
                    if let Some(d) = dst.last_chunk_mut::<$w>() {
                        *d = *hi;
                    }
                    return true;
                }
            }
        };
    }
    two_overlapping!(16);
    two_overlapping!(8);
    two_overlapping!(4);
    for (d, &s) in dst.iter_mut().zip(src) {
        *d = s;
    }
    true
}

#[cfg(test)]
mod tests {
    /// Every length around the fixed-size copies (0 to 40), after any amount already there:
    /// exactly the bytes given, and nothing else touched.
    #[test]
    fn every_length_exactly() {
        let source: Vec<u8> = (0u8..40).map(|i| b'a' + i % 26).collect();
        for already in [0usize, 1, 7, 31] {
            for n in 0..=source.len() {
                let mut out = vec![b'#'; already];
                super::put(&mut out, &source[..n]);
                let mut want = vec![b'#'; already];
                want.extend_from_slice(&source[..n]);
                assert_eq!(out, want, "put: {n} bytes after {already}");

                let mut buf = vec![b'#'; already + n + 5];
                let fits = super::copy(&mut buf[already..], &source[..n]);
                assert!(fits);
                let mut want = vec![b'#'; already + n + 5];
                want[already..already + n].copy_from_slice(&source[..n]);
                assert_eq!(buf, want, "copy: {n} bytes at {already}");
            }
        }
        let mut short = [0u8; 3];
        assert!(!super::copy(&mut short, b"abcd"), "4 bytes do not fit in 3");
        assert_eq!(short, [0; 3]);
    }
}
