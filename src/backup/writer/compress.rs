//! `WITH COMPRESSION` for generated backups: the MTF bytes the writer made,
//! wrapped in the `MSSQLBAK` container (see `backup::container` for the
//! framing and what it rests on), in either layout, each chunk coded with
//! XPRESS Huffman ([MS-XCA] 2.2.4).
//!
//! The coder is small on purpose: greedy LZ77 matching with one hash slot,
//! and a fixed Huffman code (every one of the 512 symbols 9 bits long,
//! which fills the code space exactly). Backups are mostly zeros, so that
//! still shrinks them a hundredfold, and every part of the format a reader
//! must handle is used: literals, matches, one- and two-byte length
//! extensions, offset bits, and the bytes interleaved with the bit stream.

use crate::backup::container::{CHUNK_OUTPUT, FIRST_CHUNK, MAGIC};

/// Chunk kinds this writer uses; readers do not depend on them.
const KIND_XPRESS: u8 = 1;
const KIND_STORED: u8 = 2;

/// `mtf` (padded to 512 bytes) as a compressed backup file. The first KiB
/// (TAPE), the soft filemark after it and the rest go into separate chunks,
/// the filemark stored as it is, as SQL Server does; then 64 KiB per chunk.
pub fn compress(mtf: &[u8], layout: u8) -> Vec<u8> {
    let mut data = mtf.to_vec();
    data.resize(data.len().next_multiple_of(512).max(512), 0);
    let mut out = Vec::with_capacity(data.len() / 8 + FIRST_CHUNK);
    out.extend_from_slice(MAGIC);
    out.extend(u32::from(layout).to_le_bytes());
    out.extend(3u32.to_le_bytes()); // XPRESS
    out.extend(u32::MAX.to_le_bytes());
    out.resize(FIRST_CHUNK, 0);
    let mut cuts = vec![0];
    if data.len() > 1536 && &data[1024..1028] == b"SFMB" {
        cuts.extend([1024, 1536]);
    }
    let mut at = *cuts.last().expect("non-empty");
    while at < data.len() {
        let boundary = (at / CHUNK_OUTPUT + 1) * CHUNK_OUTPUT;
        at = boundary.min(data.len());
        cuts.push(at);
    }
    cuts.dedup();
    for piece in cuts.windows(2) {
        let plain = &data[piece[0]..piece[1]];
        let filemark = piece[0] == 1024 && piece[1] == 1536;
        let (kind, payload) = if filemark {
            (KIND_STORED, plain.to_vec())
        } else {
            (KIND_XPRESS, xpress_huffman_block(plain))
        };
        chunk(&mut out, layout, kind, plain.len(), &payload);
    }
    out
}

fn chunk(out: &mut Vec<u8>, layout: u8, kind: u8, decoded: usize, payload: &[u8]) {
    let units = (decoded / 512) as u8; // 128 for a full 64 KiB chunk
    let size = u16::try_from(payload.len()).expect("a chunk's payload fits 64 KiB");
    let crc = crc32fast::hash(payload);
    out.extend([kind, units]);
    out.extend(size.to_le_bytes());
    if layout == 1 {
        out.extend(crc.to_le_bytes());
    } else {
        out.extend([0xff; 16]);
        out.extend(0u32.to_le_bytes());
        out.extend(crc.to_le_bytes());
    }
    out.extend_from_slice(payload);
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
