//! The container of a compressed backup (`BACKUP ... WITH COMPRESSION`):
//! the magic `MSSQLBAK`, a file header, then a chain of chunks, each a
//! small header and a payload that decodes to at most 64 KiB of the MTF
//! stream an uncompressed backup would hold.
//!
//! No real compressed sample is available here; the framing rests on two
//! independent descriptions (see `shared/formats/BACKUP-FORMATS.md`),
//! reconciled as follows, and the reader is tolerant where they disagree:
//!
//! - file header: `MSSQLBAK`, u32 layout word at 8 (<= 1: layout 1, SQL
//!   Server 2008-2012; 2: layout 2, 2014 and later), u32 algorithm at 12
//!   (3 = XPRESS, 131 = ZSTD); the first chunk follows at 480 (found by
//!   probing when it is not there);
//! - chunk header, layout 2 (28 bytes): byte 0 kind, byte 1 decoded size in
//!   512-byte units (0 = 64 KiB), u16 at 2 payload size, 16 bytes not used,
//!   u32 zero at 20, u32 CRC-32 of the payload at 24. (One description puts
//!   the header 4 bytes earlier and calls the payload's last word "previous
//!   size"; the fields then land on the same bytes.) Layout 1 (8 bytes):
//!   kind, units, payload size, CRC-32 at 4;
//! - the next chunk starts right after the payload, or at the next word if
//!   the payload is padded; a chain that breaks (padding at a filemark) is
//!   picked up again by scanning for the next valid header;
//! - a payload is XPRESS Huffman ([MS-XCA] 2.2.4) when it starts with a
//!   complete Huffman code-length table, and stored as it is when its size
//!   equals the decoded size.
//!
//! Only the leading chunks are decoded: as many as it takes to produce
//! `want` bytes of the MTF stream. Every size is checked before it is used;
//! output is capped, so a decompression bomb ends in an error.

use super::mtf::Bytes;
use std::fmt;

pub const MAGIC: &[u8; 8] = b"MSSQLBAK";
/// Where the first chunk starts in the files described so far.
pub const FIRST_CHUNK: usize = 480;
/// Largest output of one chunk.
pub const CHUNK_OUTPUT: usize = 64 * 1024;
/// XPRESS Huffman's code-length table in front of every block.
const TABLE_LEN: usize = 256;
/// Bytes searched for a chunk header when the chain breaks.
const RESYNC_WINDOW: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Xpress,
    Zstd,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Algorithm::Xpress => "XPRESS",
            Algorithm::Zstd => "ZSTD",
        })
    }
}

/// What the container says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compression {
    pub algorithm: Algorithm,
    /// 1 (SQL Server 2008-2012) or 2 (2014 and later).
    pub layout: u8,
}

/// Why the leading chunks could not be decoded. Each names what could not
/// be checked; none means the backup is bad, only that it is unread.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("the compressed container's layout word {0} is unknown (known: 1 and 2)")]
    UnknownLayout(u32),
    #[error("compressed with {0}, which this tool cannot decompress")]
    UnsupportedAlgorithm(String),
    #[error("the compressed container ends inside its file header")]
    ShortHeader,
    #[error("no compressed chunk was found after the container's file header")]
    NoChunk,
    #[error("compressed chunk {index} at byte {offset} is cut off (the data ends at byte {end})")]
    TruncatedChunk {
        index: usize,
        offset: usize,
        end: usize,
    },
    #[error("compressed chunk {index} at byte {offset} fails its CRC-32 check")]
    BadChecksum { index: usize, offset: usize },
    #[error("compressed chunk {index} at byte {offset} does not decode: {what}")]
    Undecodable {
        index: usize,
        offset: usize,
        what: String,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Chunk {
    offset: usize,
    header_len: usize,
    payload_len: usize,
    decoded_len: usize,
    crc: u32,
}

/// The container's header, checked: the compression it uses.
pub fn compression(input: &[u8]) -> Result<Compression, ContainerError> {
    let (Some(layout), Some(algorithm)) = (input.u32_at(8), input.u32_at(12)) else {
        return Err(ContainerError::ShortHeader);
    };
    let layout = match layout {
        0 | 1 => 1,
        2 => 2,
        other => return Err(ContainerError::UnknownLayout(other)),
    };
    let algorithm = match algorithm {
        // Layout-1 files of SQL Server 2008-2012 may leave the word at 0:
        // they knew only XPRESS.
        0..=3 => Algorithm::Xpress,
        131 => Algorithm::Zstd,
        other => {
            return Err(ContainerError::UnsupportedAlgorithm(format!(
                "algorithm {other}"
            )));
        }
    };
    Ok(Compression { algorithm, layout })
}

/// The first `want` bytes of the MTF stream inside a compressed backup, or
/// fewer when `input` ends first (the caller read a prefix of the object).
pub fn decode_prefix(input: &[u8], want: usize) -> Result<(Compression, Vec<u8>), ContainerError> {
    let info = compression(input)?;
    if info.algorithm == Algorithm::Zstd {
        return Err(ContainerError::UnsupportedAlgorithm("ZSTD".into()));
    }
    let mut out = Vec::with_capacity(want.min(1 << 20));
    let mut at = find_chunk(input, FIRST_CHUNK.min(input.len()), info.layout)
        .or_else(|| find_chunk(input, MAGIC.len() + 8, info.layout))
        .ok_or(ContainerError::NoChunk)?;
    let mut index = 0;
    while out.len() < want {
        index += 1;
        let Some(chunk) = chunk_at(input, at, info.layout) else {
            break;
        };
        let end = chunk.offset + chunk.header_len + chunk.payload_len;
        let Some(payload) = input.get(chunk.offset + chunk.header_len..end) else {
            if out.is_empty() {
                return Err(ContainerError::TruncatedChunk {
                    index,
                    offset: chunk.offset,
                    end: input.len(),
                });
            }
            break; // The prefix read ends inside a later chunk: enough.
        };
        if crc32fast::hash(payload) != chunk.crc {
            return Err(ContainerError::BadChecksum {
                index,
                offset: chunk.offset,
            });
        }
        let decoded = decode_chunk(payload, chunk.decoded_len).map_err(|what| {
            ContainerError::Undecodable {
                index,
                offset: chunk.offset,
                what,
            }
        })?;
        out.extend_from_slice(&decoded[..decoded.len().min(want - out.len())]);
        // The next header follows the payload, perhaps after word padding,
        // or (at a filemark) after some padding that has to be skipped.
        match chunk_after(input, end, info.layout).or_else(|| find_chunk(input, end, info.layout)) {
            Some(next) if next > chunk.offset => at = next,
            _ => break,
        }
    }
    if out.is_empty() {
        return Err(ContainerError::NoChunk);
    }
    Ok((info, out))
}

/// The MTF stream of the last chunks of a compressed backup, found in its
/// last bytes; None when no chunk can be made out there (the end could not
/// be checked). Only the last [`TAIL_CHUNKS`] chunks are decoded: the end
/// of the last set lies in the last few KiB of the stream.
pub fn decode_tail(tail: &[u8]) -> Option<Vec<u8>> {
    // The tail has no file header; both layouts are tried.
    for layout in [2, 1] {
        let mut from = 0;
        while let Some(first) = find_chunk(tail, from, layout) {
            from = first + 2;
            // Follow the chain by its headers and checksums alone.
            let mut chain = Vec::new();
            let mut next = Some(first);
            while let Some(at) = next {
                let Some(chunk) = chunk_at(tail, at, layout) else {
                    break;
                };
                let start = at + chunk.header_len;
                let Some(payload) = tail.get(start..start + chunk.payload_len) else {
                    break;
                };
                if crc32fast::hash(payload) != chunk.crc {
                    break;
                }
                chain.push((start, chunk));
                let end = start + chunk.payload_len;
                next = chunk_after(tail, end, layout);
            }
            if chain.is_empty() {
                continue;
            }
            let mut out = Vec::new();
            for (start, chunk) in &chain[chain.len().saturating_sub(TAIL_CHUNKS)..] {
                let payload = &tail[*start..start + chunk.payload_len];
                out.extend(decode_chunk(payload, chunk.decoded_len).ok()?);
            }
            return Some(out);
        }
    }
    None
}

/// Chunks decoded at the end of a compressed backup.
const TAIL_CHUNKS: usize = 2;

fn header_len(layout: u8) -> usize {
    if layout == 1 { 8 } else { 28 }
}

/// A structurally valid chunk header at `at`: sizes in range, the zero
/// word where layout 2 has it, and a payload that can be a chunk (stored,
/// or starting with a complete Huffman table). The payload may run past the
/// input; `decode_prefix` decides what that means.
fn chunk_at(input: &[u8], at: usize, layout: u8) -> Option<Chunk> {
    let header_len = header_len(layout);
    let header = input.bytes_at(at, header_len)?;
    let units = usize::from(header[1]);
    let decoded_len = if units == 0 {
        CHUNK_OUTPUT
    } else {
        units * 512
    };
    let payload_len = usize::from(header.u16_at(2)?);
    let crc = if layout == 1 {
        header.u32_at(4)?
    } else {
        if header.u32_at(20)? != 0 {
            return None;
        }
        header.u32_at(24)?
    };
    if payload_len == 0 || decoded_len > CHUNK_OUTPUT {
        return None;
    }
    let payload_start = at + header_len;
    let stored = payload_len == decoded_len;
    let table = input.bytes_at(payload_start, TABLE_LEN);
    let huffman = payload_len > TABLE_LEN && table.is_some_and(kraft_complete);
    if !(stored || huffman) {
        return None;
    }
    Some(Chunk {
        offset: at,
        header_len,
        payload_len,
        decoded_len,
        crc,
    })
}

/// The chunk right after a payload that ends at `end`: there, or after the
/// payload's padding to a word or a double word.
fn chunk_after(input: &[u8], end: usize, layout: u8) -> Option<usize> {
    [end, end.next_multiple_of(2), end.next_multiple_of(4)]
        .into_iter()
        .find(|&at| chunk_at(input, at, layout).is_some())
}

/// The next valid chunk header at or after `from` (word steps).
fn find_chunk(input: &[u8], from: usize, layout: u8) -> Option<usize> {
    let end = input.len().min(from.saturating_add(RESYNC_WINDOW));
    (from..end)
        .step_by(2)
        .find(|&at| chunk_at(input, at, layout).is_some())
}

/// Whether 512 4-bit code lengths fill the code space exactly (Kraft's
/// equality): what every XPRESS Huffman block starts with, and what random
/// bytes almost never are.
fn kraft_complete(table: &[u8]) -> bool {
    let mut sum: u32 = 0;
    let mut any = false;
    for &b in table {
        for len in [b & 0x0f, b >> 4] {
            if len > 0 {
                any = true;
                sum += 1 << (15 - u32::from(len));
            }
        }
    }
    any && sum == 1 << 15
}

fn decode_chunk(payload: &[u8], decoded_len: usize) -> Result<Vec<u8>, String> {
    let stored = payload.len() == decoded_len;
    if !kraft_complete(payload.get(..TABLE_LEN).unwrap_or(&[])) {
        return if stored {
            Ok(payload.to_vec())
        } else {
            Err("neither stored nor XPRESS Huffman".into())
        };
    }
    match xpress_huffman::decompress(payload, decoded_len) {
        Ok(mut out) => {
            // A match may run past the size the header gives; what lies
            // past it is not part of the chunk.
            out.truncate(decoded_len);
            Ok(out)
        }
        // Stored bytes that happen to start like a Huffman table.
        Err(_) if stored => Ok(payload.to_vec()),
        Err(e) => Err(e.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kraft_equality() {
        assert!(kraft_complete(&[0x99; 256])); // 512 codes of 9 bits
        assert!(!kraft_complete(&[0x88; 256])); // over-subscribed
        assert!(!kraft_complete(&[0; 256]));
        let mut two = [0u8; 256];
        two[0] = 0x11; // two codes of 1 bit
        assert!(kraft_complete(&two));
    }

    #[test]
    fn unknown_layouts_and_zstd_are_named() {
        let mut h = MAGIC.to_vec();
        h.extend(7u32.to_le_bytes());
        h.extend(3u32.to_le_bytes());
        assert_eq!(compression(&h), Err(ContainerError::UnknownLayout(7)));
        let mut h = MAGIC.to_vec();
        h.extend(2u32.to_le_bytes());
        h.extend(131u32.to_le_bytes());
        assert_eq!(
            decode_prefix(&h, 10).unwrap_err().to_string(),
            "compressed with ZSTD, which this tool cannot decompress"
        );
    }
}
