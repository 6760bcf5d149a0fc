//! The chunker: cuts a stream into content-defined chunks with FastCDC (v2020)
//! using the lake's parameters, without copying chunks out of its read window.
//! Boundaries are found sequentially (fast); callers may hash and compress the
//! chunks of a window in parallel.

use std::io::Read;

use crate::superblock::ChunkerParams;

/// Read window: many chunks per refill, so per-window costs vanish.
const WINDOW: usize = 8 << 20;

pub struct Chunker<R: Read> {
    reader: R,
    params: ChunkerParams,
    buf: Vec<u8>,
    filled: usize,
    eof: bool,
}

impl<R: Read> Chunker<R> {
    pub fn new(reader: R, params: ChunkerParams) -> Self {
        let window = WINDOW.max(params.max as usize * 4);
        Chunker { reader, params, buf: vec![0; window], filled: 0, eof: false }
    }

    /// Refills the window (keeping `keep_from..filled`) and returns the chunks
    /// that can be cut from it; an empty list means the stream ended.
    pub fn next_window(&mut self, keep_from: usize) -> std::io::Result<Vec<&[u8]>> {
        self.buf.copy_within(keep_from..self.filled, 0);
        self.filled -= keep_from;
        while !self.eof && self.filled < self.buf.len() {
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let p = self.params;
        let data = &self.buf[..self.filled];
        let cdc = fastcdc::v2020::FastCDC::new(data, p.min as usize, p.avg as usize, p.max as usize);
        let mut out = Vec::new();
        let mut pos = 0;
        // A cut is final only with a full max-size chunk of lookahead, or at the end.
        while pos < data.len() && (self.eof || data.len() - pos >= p.max as usize) {
            let (_, end) = cdc.cut(pos, data.len() - pos);
            out.push(&data[pos..end]);
            pos = end;
        }
        Ok(out)
    }
}

/// Cuts `reader` fully, calling `window` with each batch of chunks in order;
/// read errors go through `io_err`.
pub fn for_each_window<R: Read, E>(
    reader: R,
    params: ChunkerParams,
    io_err: impl Fn(std::io::Error) -> E,
    mut window: impl FnMut(&[&[u8]]) -> Result<(), E>,
) -> Result<(), E> {
    let mut c = Chunker::new(reader, params);
    let mut keep_from = 0;
    loop {
        let chunks = c.next_window(keep_from).map_err(&io_err)?;
        if chunks.is_empty() {
            return Ok(());
        }
        keep_from = chunks.iter().map(|c| c.len()).sum();
        window(&chunks)?;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(n: usize) -> Vec<u8> {
        let mut x: u64 = 0x1234_5678;
        (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x as u8
            })
            .collect()
    }

    #[test]
    fn same_cuts_as_fastcdc_on_the_whole_buffer() {
        let d = data(20 << 20);
        let p = ChunkerParams::default();
        let whole: Vec<usize> =
            fastcdc::v2020::FastCDC::new(&d, p.min as usize, p.avg as usize, p.max as usize).map(|c| c.length).collect();
        let mut streamed = Vec::new();
        // A reader that returns odd-sized pieces, to exercise refills.
        struct Odd<'a>(&'a [u8]);
        impl Read for Odd<'_> {
            fn read(&mut self, b: &mut [u8]) -> std::io::Result<usize> {
                let n = b.len().min(self.0.len()).min(777_777);
                b[..n].copy_from_slice(&self.0[..n]);
                self.0 = &self.0[n..];
                Ok(n)
            }
        }
        for_each_window(
            Odd(&d),
            p,
            |e| e,
            |w| {
                streamed.extend(w.iter().map(|c| c.len()));
                Ok(())
            },
        )
        .unwrap();
        assert_eq!(streamed, whole);
        assert_eq!(streamed.iter().sum::<usize>(), d.len());
    }
}
