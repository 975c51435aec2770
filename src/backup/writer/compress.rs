//! `WITH COMPRESSION` for generated backups: the MTF bytes the writer made,
//! in the `MSSQLBAK` container as SQL Server 2014-2022 write it (see
//! `backup::container`): chunks with the fold checksum and their decoded
//! size, soft filemarks stored raw at 512-aligned offsets, and a record that
//! ends each run of chunks before a filemark. Each chunk is coded with
//! XPRESS Huffman ([MS-XCA] 2.2.4).
//!
//! The coder is small on purpose: greedy LZ77 matching with one hash slot,
//! and a fixed Huffman code (every one of the 512 symbols 9 bits long,
//! which fills the code space exactly). Backups are mostly zeros, so that
//! still shrinks them a hundredfold, and every part of the format a reader
//! must handle is used: literals, matches, one- and two-byte length
//! extensions, offset bits, and the bytes interleaved with the bit stream.

use crate::backup::container::{
    BLOCK, CHUNK_HEADER, CHUNK_OUTPUT, FIRST_RECORD, KIND_CHUNK, KIND_INDEX, KIND_PAD, LAYOUT_WORD,
    MAGIC, PAD_HEADER, XPRESS_WORD, fold_checksum,
};
use crate::backup::mtf;

/// `mtf` (padded to 512 bytes) as a compressed backup file, cut into chunks
/// the way the real files are: each run between filemarks starts with one
/// chunk that holds its descriptor blocks (up to 1 KiB into the first data
/// block), then 64 KiB chunks.
pub fn compress(mtf: &[u8]) -> Vec<u8> {
    let data = padded(mtf);
    let sizes: Vec<usize> = runs(&data)
        .iter()
        .filter_map(|piece| match piece {
            Piece::Run(range) => Some(run_chunks(&data[range.clone()])),
            Piece::Filemark(_) => None,
        })
        .flatten()
        .collect();
    compress_in_chunks(&data, &sizes)
}

/// `mtf` as a compressed file whose chunks decode to `sizes` bytes each,
/// in order (each a multiple of 512, at most 64 KiB, none across a
/// filemark): to lay out a stream exactly as another file does.
///
/// # Panics
/// When `sizes` does not tile the runs between the stream's filemarks.
pub fn compress_in_chunks(mtf: &[u8], sizes: &[usize]) -> Vec<u8> {
    let data = padded(mtf);
    let mut out = Vec::with_capacity(data.len() / 8 + FIRST_RECORD);
    out.extend_from_slice(MAGIC);
    out.extend(LAYOUT_WORD.to_le_bytes());
    out.extend(XPRESS_WORD.to_le_bytes());
    out.resize(FIRST_RECORD, 0);
    let mut sizes = sizes.iter();
    let mut run_has_data = false;
    let mut after_chunk = false;
    for piece in runs(&data) {
        match piece {
            Piece::Filemark(at) => {
                if after_chunk || !out.len().is_multiple_of(BLOCK) {
                    run_end(&mut out, if run_has_data { KIND_INDEX } else { KIND_PAD });
                }
                out.extend_from_slice(&data[at..at + BLOCK]);
                after_chunk = false;
                run_has_data = false;
            }
            Piece::Run(range) => {
                run_has_data = first_data_block(&data[range.clone()]).is_some();
                let mut at = range.start;
                while at < range.end {
                    let size = *sizes.next().expect("a chunk size for every chunk");
                    assert!(
                        size > 0
                            && size.is_multiple_of(BLOCK)
                            && size <= CHUNK_OUTPUT
                            && at + size <= range.end,
                        "chunk of {size} bytes at {at} does not fit the run {range:?}"
                    );
                    chunk(&mut out, &data[at..at + size]);
                    at += size;
                }
                after_chunk = true;
            }
        }
    }
    assert!(sizes.next().is_none(), "more chunk sizes than chunks");
    out
}

fn padded(mtf: &[u8]) -> Vec<u8> {
    let mut data = mtf.to_vec();
    data.resize(data.len().next_multiple_of(BLOCK).max(BLOCK), 0);
    data
}

enum Piece {
    Filemark(usize),
    Run(std::ops::Range<usize>),
}

/// The stream as filemarks and the runs between them.
fn runs(data: &[u8]) -> Vec<Piece> {
    let mut pieces = Vec::new();
    let mut start = 0;
    for at in (0..data.len()).step_by(BLOCK) {
        if mtf::is_block(data, at, b"SFMB") {
            if start < at {
                pieces.push(Piece::Run(start..at));
            }
            pieces.push(Piece::Filemark(at));
            start = at + BLOCK;
        }
    }
    if start < data.len() {
        pieces.push(Piece::Run(start..data.len()));
    }
    pieces
}

/// The first block of a run that is not a descriptor of the header section
/// (MSDA, MSTL, ...), relative to the run.
fn first_data_block(run: &[u8]) -> Option<usize> {
    (0..run.len()).step_by(BLOCK).find(|&at| {
        run.get(at..at + 4).is_some_and(|kind| {
            kind.iter().all(u8::is_ascii_uppercase)
                && !matches!(
                    kind,
                    b"TAPE" | b"SSET" | b"VOLB" | b"MSCI" | b"ESET" | b"TSMP"
                )
                && mtf::is_block(run, at, kind.try_into().expect("4 bytes"))
        })
    })
}

/// Decoded sizes of a run's chunks: descriptors (and the first KiB of the
/// data block) in one, then 64 KiB each, as the real files are cut.
fn run_chunks(run: &[u8]) -> Vec<usize> {
    let first = first_data_block(run)
        .map_or(run.len(), |at| at + 2 * BLOCK)
        .min(run.len())
        .min(CHUNK_OUTPUT);
    let mut sizes = vec![first];
    let mut at = first;
    while at < run.len() {
        let size = (run.len() - at).min(CHUNK_OUTPUT);
        sizes.push(size);
        at += size;
    }
    sizes
}

fn chunk(out: &mut Vec<u8>, plain: &[u8]) {
    let payload = xpress_huffman_block(plain);
    let units = u8::try_from(plain.len() / BLOCK).expect("at most 128 blocks");
    let size = u16::try_from(payload.len()).expect("a chunk's payload fits 64 KiB");
    out.extend([KIND_CHUNK, units]);
    out.extend(size.to_le_bytes());
    out.extend([0; CHUNK_HEADER - 8]);
    out.extend(fold_checksum(&payload).to_le_bytes());
    out.extend_from_slice(&payload);
}

/// The record that ends a run of chunks, up to the next 512-byte boundary
/// of the file, where the filemark goes.
fn run_end(out: &mut Vec<u8>, kind: u8) {
    let at = out.len();
    let end = if kind == KIND_PAD {
        (at + PAD_HEADER).next_multiple_of(BLOCK)
    } else {
        (at + 1).next_multiple_of(BLOCK)
    };
    out.push(kind);
    out.push(0);
    if kind == KIND_PAD {
        let len = u16::try_from(end - at - PAD_HEADER).expect("under 512");
        out.extend(len.to_le_bytes());
    }
    out.resize(end, 0);
}

/// One XPRESS Huffman block: the code-length table, then the coded stream.
/// `plain` is at most 64 KiB (one block).
pub fn xpress_huffman_block(plain: &[u8]) -> Vec<u8> {
    assert!(plain.len() <= CHUNK_OUTPUT);
    let mut bits = Bits::default();
    let mut head = vec![usize::MAX; 1 << 16];
    let hash = |i: usize| {
        (usize::from(plain[i]) << 8 ^ usize::from(plain[i + 1]) << 4 ^ usize::from(plain[i + 2]))
            & 0xffff
    };
    let mut i = 0;
    while i < plain.len() {
        let mut best = (0usize, 0usize); // (length, offset)
        if i + 3 <= plain.len() {
            let h = hash(i);
            let candidate = head[h];
            head[h] = i;
            if candidate != usize::MAX && i - candidate < 1 << 16 {
                let max = (plain.len() - i).min(65535 + 3);
                let len = (0..max)
                    .take_while(|&k| plain[candidate + k] == plain[i + k])
                    .count();
                if len >= 3 {
                    best = (len, i - candidate);
                }
            }
        }
        if best.0 == 0 {
            bits.symbol(u16::from(plain[i]));
            i += 1;
            continue;
        }
        let (len, offset) = best;
        let offset_bits = usize::BITS - 1 - offset.leading_zeros();
        let extra = len - 3;
        let nibble = extra.min(15) as u16;
        bits.symbol(256 + ((offset_bits as u16) << 4) + nibble);
        if extra >= 15 {
            if extra - 15 < 255 {
                bits.byte((extra - 15) as u8);
            } else {
                bits.byte(255);
                let [lo, hi] = (extra as u16).to_le_bytes();
                bits.byte(lo);
                bits.byte(hi);
            }
        }
        bits.put((offset - (1 << offset_bits)) as u32, offset_bits);
        // Later positions inside the match still seed the hash.
        for j in (i + 1..i + len).take(64) {
            if j + 3 <= plain.len() {
                head[hash(j)] = j;
            }
        }
        i += len;
    }
    bits.symbol(256); // End of stream, as [MS-XCA] writes it.
    let mut out = vec![0x99; 256]; // Every symbol 9 bits long.
    out.extend(bits.finish());
    out
}

/// The bit stream with its interleaved bytes, laid out in the order the
/// decoder reads them: 16-bit words (most significant bit first) fetched
/// two ahead, and length bytes read at the position reached at that moment.
#[derive(Default)]
struct Bits {
    words: Vec<u16>,
    written: usize,
    order: Vec<Item>,
}

enum Item {
    Word(usize),
    Byte(u8),
}

impl Bits {
    fn symbol(&mut self, symbol: u16) {
        self.put(u32::from(symbol), 9);
    }

    fn put(&mut self, value: u32, count: u32) {
        if self.order.is_empty() {
            self.order.extend([Item::Word(0), Item::Word(1)]);
        }
        for k in (0..count).rev() {
            let word = self.written / 16;
            if word >= self.words.len() {
                self.words.resize(word + 1, 0);
            }
            if (value >> k) & 1 == 1 {
                self.words[word] |= 1 << (15 - self.written % 16);
            }
            self.written += 1;
            // The decoder holds 32 bits and fetches a word whenever fewer
            // than 16 are left: after bit 17, 33, 49, ...
            if self.written > 16 && (self.written - 1).is_multiple_of(16) {
                self.order.push(Item::Word((self.written - 1) / 16 + 1));
            }
        }
    }

    fn byte(&mut self, b: u8) {
        self.order.push(Item::Byte(b));
    }

    fn finish(self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.words.len() * 2 + 8);
        for item in &self.order {
            match item {
                Item::Word(k) => out.extend(self.words.get(*k).copied().unwrap_or(0).to_le_bytes()),
                Item::Byte(b) => out.push(*b),
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_decode_with_an_independent_decoder() {
        let mut plain = b"SQL Server backup, SQL Server backup, ".repeat(40);
        plain.extend(vec![0u8; 20_000]); // a long run: two-byte length
        plain.extend((0..=255u8).cycle().take(3000)); // literals and short matches
        plain.extend(vec![7u8; 200]); // a one-byte length extension
        plain.resize(CHUNK_OUTPUT, 0);
        let coded = xpress_huffman_block(&plain);
        assert!(coded.len() < plain.len() / 4, "{}", coded.len());
        assert_eq!(
            xpress_huffman::decompress(&coded, plain.len()).unwrap(),
            plain
        );
        for len in [1usize, 2, 3, 17, 512, 4099] {
            let p: Vec<u8> = (0..len).map(|i| (i * 7 % 5) as u8).collect();
            assert_eq!(
                xpress_huffman::decompress(&xpress_huffman_block(&p), len).unwrap(),
                p,
                "{len}"
            );
        }
    }
}
