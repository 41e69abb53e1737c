//! Native pcap / pcapng reader (`capture::file::FileReader`) on arbitrary file bytes.
//! Input: one byte choosing the read chunk size, then the file. Reading must not panic, hand
//! out only bytes of the file, and give the same packets and end whatever the chunk size and
//! whether the bytes come through `read()` or as one slice (the source the memory-mapped
//! reader uses, with the whole file as its window).
#![no_main]
use crossline_agent::capture::file::{FileReader, ReadError, Source};
use libfuzzer_sys::fuzz_target;

type Seen = (i64, i64, i64, u32, i32, Vec<u8>);

fn read<S: Source>(file: &[u8], r: Result<FileReader<S>, ReadError>) -> (Vec<Seen>, Option<String>) {
    let mut r = match r {
        Ok(r) => r,
        Err(e) => return (Vec::new(), Some(e.to_string())),
    };
    let mut out = Vec::new();
    let mut total = 0usize;
    loop {
        match r.next_packet() {
            Ok(Some(p)) => {
                total += p.raw.data.len();
                assert!(total <= file.len(), "more bytes out than in");
                out.push((
                    p.raw.ts_micros,
                    p.ts_sec,
                    p.ts_nsec,
                    p.raw.orig_len,
                    p.raw.linktype,
                    p.raw.data.to_vec(),
                ));
            }
            Ok(None) => return (out, None),
            Err(e) => return (out, Some(e.to_string())),
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Some((&sel, file)) = data.split_first() else {
        return;
    };
    let small = read(file, FileReader::with_chunk(file, 64 + usize::from(sel)));
    let large = read(file, FileReader::with_chunk(file, 1 << 16));
    assert_eq!(small, large, "result depends on the chunk size");
    let slice = read(file, FileReader::from_bytes(file));
    assert_eq!(small, slice, "the slice source differs from read()");
});
