//! Log files as a stream of lines: plain or gzip (by its magic bytes, so a
//! rotated `access.log.2.gz` needs no flag), read in 1 MiB blocks, one line
//! borrowed at a time.

use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

/// The lines of one input.
pub struct Lines {
    r: Box<dyn Read + Send>,
    buf: Vec<u8>,
    pos: usize,
    len: usize,
    eof: bool,
    /// The number of the last line returned (1-based).
    pub line_no: u64,
    /// Bytes returned so far (decompressed).
    pub bytes: u64,
    pub gzip: bool,
}

const BLOCK: usize = 1 << 20;

impl Lines {
    /// Opens a file; gzip if it starts with gzip's magic bytes.
    pub fn open(path: &Path) -> io::Result<Lines> {
        Lines::from_reader(std::fs::File::open(path)?)
    }

    pub fn from_reader(r: impl Read + Send + 'static) -> io::Result<Lines> {
        let mut r = BufReader::with_capacity(64 * 1024, r);
        let gzip = r.fill_buf()?.starts_with(&[0x1f, 0x8b]);
        let r: Box<dyn Read + Send> = if gzip { Box::new(flate2::read::MultiGzDecoder::new(r)) } else { Box::new(r) };
        Ok(Lines { r, buf: vec![0; BLOCK], pos: 0, len: 0, eof: false, line_no: 0, bytes: 0, gzip })
    }

    /// The next line, without its `\n`, and its number; `None` at the end.
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            if let Some(i) = memchr::memchr(b'\n', &self.buf[self.pos..self.len]) {
                let start = self.pos;
                self.pos += i + 1;
                self.line_no += 1;
                self.bytes += (i + 1) as u64;
                return Ok(Some((self.line_no, &self.buf[start..start + i])));
            }
            if self.eof {
                if self.pos == self.len {
                    return Ok(None);
                }
                let start = self.pos;
                self.pos = self.len;
                self.line_no += 1;
                self.bytes += (self.len - start) as u64;
                return Ok(Some((self.line_no, &self.buf[start..self.len])));
            }
            // Keep the partial line, make room (a line longer than the
            // buffer doubles it), read more.
            self.buf.copy_within(self.pos..self.len, 0);
            self.len -= self.pos;
            self.pos = 0;
            if self.len == self.buf.len() {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            let n = loop {
                match self.r.read(&mut self.buf[self.len..]) {
                    Ok(n) => break n,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => return Err(e),
                }
            };
            if n == 0 {
                self.eof = true;
            }
            self.len += n;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn all(mut l: Lines) -> Vec<String> {
        let mut out = Vec::new();
        while let Some((_, b)) = l.next_line().unwrap() {
            out.push(String::from_utf8_lossy(b).into_owned());
        }
        out
    }

    #[test]
    fn plain_gzip_and_long_lines() {
        let long = "x".repeat(3 * BLOCK);
        let text = format!("a\n\nb\n{long}\nlast");
        assert_eq!(all(Lines::from_reader(io::Cursor::new(text.clone().into_bytes())).unwrap()), ["a", "", "b", long.as_str(), "last"]);
        let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        gz.write_all(text.as_bytes()).unwrap();
        let l = Lines::from_reader(io::Cursor::new(gz.finish().unwrap())).unwrap();
        assert!(l.gzip);
        assert_eq!(all(l).len(), 5);
        assert!(all(Lines::from_reader(io::Cursor::new(Vec::new())).unwrap()).is_empty());
    }
}
