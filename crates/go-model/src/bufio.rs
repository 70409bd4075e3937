//! Go's `bufio.Writer.Write` and `WriteString` algorithms as plans, so both
//! of Go's response buffers (the 2 KiB `response.w` and the 4 KiB
//! `conn.bufw`) spill to the next layer at exactly the moments Go's do.
//! Whether any byte reached the socket before WriteTimeout fired is what
//! separates a 502 from a truncated 200, so this matters.

use std::ops::Range;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BufOp {
    /// Buffer empty and the data larger than the buffer: write it straight through.
    WriteDirect(Range<usize>),
    /// Top the buffer up with this range, then flush the full buffer.
    FillAndFlush(Range<usize>),
    /// Copy this range into the buffer.
    Buffer(Range<usize>),
}

/// The operations `bufio.Writer.Write(p)` performs with `buffered` bytes
/// already in a buffer of `size`, for `len(p) == len` (assuming no error).
pub fn plan_write(buffered: usize, size: usize, len: usize) -> Vec<BufOp> {
    plan(buffered, size, len, true)
}

/// The operations `bufio.Writer.WriteString(s)` performs (Go 1.19) when the
/// next layer has no `WriteString` of its own, which holds for both of
/// Go's response buffers (`chunkWriter` and `checkConnErrorWriter` only have
/// `Write`): it never writes straight through, it fills and flushes.
pub fn plan_write_string(buffered: usize, size: usize, len: usize) -> Vec<BufOp> {
    plan(buffered, size, len, false)
}

/// `Write` and `WriteString` differ in one branch: with an empty buffer,
/// `Write` hands a large `p` straight to the next layer.
fn plan(mut buffered: usize, size: usize, len: usize, write_through: bool) -> Vec<BufOp> {
    let mut ops = Vec::new();
    let mut off = 0;
    while len - off > size - buffered {
        if buffered == 0 && write_through {
            ops.push(BufOp::WriteDirect(off..len));
            return ops;
        }
        let n = size - buffered;
        ops.push(BufOp::FillAndFlush(off..off + n));
        off += n;
        buffered = 0;
    }
    if off < len {
        ops.push(BufOp::Buffer(off..len));
    }
    ops
}

#[cfg(test)]
mod tests {
    use super::*;
    use BufOp::*;

    #[test]
    fn plan_table() {
        assert_eq!(plan_write(0, 2048, 3), vec![Buffer(0..3)]);
        assert_eq!(plan_write(0, 2048, 2048), vec![Buffer(0..2048)]);
        assert_eq!(plan_write(0, 2048, 5000), vec![WriteDirect(0..5000)]);
        assert_eq!(plan_write(100, 2048, 5000), vec![FillAndFlush(0..1948), WriteDirect(1948..5000)]);
        assert_eq!(plan_write(2000, 2048, 100), vec![FillAndFlush(0..48), Buffer(48..100)]);
        assert_eq!(plan_write(0, 2048, 0), vec![]);
    }

    #[test]
    fn write_string_never_writes_through() {
        assert_eq!(plan_write_string(0, 4096, 10), vec![Buffer(0..10)]);
        assert_eq!(plan_write_string(0, 4096, 5000), vec![FillAndFlush(0..4096), Buffer(4096..5000)]);
        assert_eq!(plan_write_string(4000, 4096, 200), vec![FillAndFlush(0..96), Buffer(96..200)]);
        assert_eq!(plan_write_string(0, 4096, 8192), vec![FillAndFlush(0..4096), Buffer(4096..8192)]);
    }
}
