//! The container of a compressed backup (`BACKUP ... WITH COMPRESSION`), as
//! measured on real files written by SQL Server 2014 and 2016 (the facts
//! and how they were found are in `shared/formats/BACKUP-FORMATS.md`,
//! "Measured on real compressed files"):
//!
//! - a 480-byte file header: `MSSQLBAK`, then the u32 words 2 and 3 (3 =
//!   XPRESS); the first record follows at byte 480;
//! - records, one after the other:
//!   - a compressed chunk: byte 0 = 0x21, byte 1 = decoded size in 512-byte
//!     units (0x80 = 64 KiB), u16 at 2 = payload size, u32 at 24 = a fold
//!     of the payload's little-endian words (`x = rotl(x, 1) ^ w`), then the
//!     payload (XPRESS Huffman, [MS-XCA] 2.2.4), padded: decode until the
//!     stored size, never until the input runs out;
//!   - a record that ends a run of chunks before a filemark: 0x24 (padding,
//!     24 bytes plus the u16 at 2) or 0x2c (an index, up to the next
//!     512-byte boundary); zero blocks may follow it;
//!   - a soft filemark (`SFMB`) stored as it is, 512 bytes at a 512-aligned
//!     offset of the file;
//! - the MTF stream an uncompressed backup would hold is the decoded chunks
//!   and the stored filemarks, in file order.
//!
//! A container with other header words (older or newer SQL Servers, ZSTD)
//! is [`Unsupported`]: not read, not judged. Inside the layout measured
//! here, anything that breaks the framing (a checksum that fails, a record
//! of no known kind, a chunk that does not decode) is [`Damage`].
//!
//! Only what the header checks need is decoded: the chunks of the first
//! [`crate::backup::HEADER_PREFIX`] bytes of the stream and the first chunk
//! after every filemark (where each backup set's SSET and ESET lie). Every
//! size is checked before it is used and the decoded output is capped.

use super::mtf::{self, Bytes};
use std::fmt;
use std::ops::Range;

pub const MAGIC: &[u8; 8] = b"MSSQLBAK";
/// Where the first record starts.
pub const FIRST_RECORD: usize = 480;
/// Largest output of one chunk.
pub const CHUNK_OUTPUT: usize = 64 * 1024;
/// The header words of the layout measured on real files.
pub const LAYOUT_WORD: u32 = 2;
pub const XPRESS_WORD: u32 = 3;
/// SQL Server 2025's ZSTD, as reported (unconfirmed).
const ZSTD_WORD: u32 = 131;

pub const KIND_CHUNK: u8 = 0x21;
pub const KIND_PAD: u8 = 0x24;
pub const KIND_INDEX: u8 = 0x2c;
pub const CHUNK_HEADER: usize = 28;
/// The padding record's fixed part, before the length its u16 gives.
pub const PAD_HEADER: usize = 24;
pub const BLOCK: usize = 512;
/// Zero blocks skipped after a run's end record before a filemark.
const MAX_ZERO_BLOCKS: usize = 128;
/// How far past a record of no known kind the next record is looked for.
const RESYNC_WINDOW: usize = 64 * 1024;
/// Zero bytes after a payload for the decoder's read-ahead.
const PAYLOAD_SLACK: usize = 8;
/// Decoded bytes kept from one read; more is a bomb, not a backup header.
const MAX_DECODED: usize = 8 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Algorithm {
    Xpress,
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("XPRESS")
    }
}

/// What the container says about itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Compression {
    pub algorithm: Algorithm,
    /// The layout word (2: SQL Server 2014 and later).
    pub layout: u8,
}

/// A container this reader does not know: nothing in it is checked, and
/// nothing is wrong with it as far as anyone here can tell.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Unsupported {
    #[error(
        "its container header words are {layout} and {algorithm}; this tool reads only the \
         layout SQL Server 2014-2022 write with XPRESS ({LAYOUT_WORD} and {XPRESS_WORD})"
    )]
    UnknownLayout { layout: u32, algorithm: u32 },
    #[error("it is compressed with ZSTD (SQL Server 2025), which this tool cannot decompress")]
    Zstd,
}

/// A container of the known layout whose bytes break it: a damaged file.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Damage {
    #[error("the file ends inside the compressed container's file header")]
    ShortHeader,
    #[error("compressed chunk {index} at byte {offset} fails its checksum: the file is damaged")]
    BadChecksum { index: usize, offset: u64 },
    #[error("compressed chunk {index} at byte {offset} has an impossible header ({what})")]
    BadChunk {
        index: usize,
        offset: u64,
        what: &'static str,
    },
    #[error("compressed chunk {index} at byte {offset} does not decode: {what}")]
    Undecodable {
        index: usize,
        offset: u64,
        what: String,
    },
    #[error(
        "byte {offset} of the compressed file holds neither a chunk nor a filemark \
         (record kind 0x{kind:02x}): the file is damaged"
    )]
    UnknownRecord { offset: u64, kind: u8 },
    #[error("the file ends at byte {end}, inside the record at byte {offset} (chunk {index})")]
    Cut { index: usize, offset: u64, end: u64 },
}

impl Damage {
    /// Whether the file ends too early (a cut upload), rather than holding
    /// bytes that break the container.
    pub fn is_cut(&self) -> bool {
        matches!(self, Damage::ShortHeader | Damage::Cut { .. })
    }
}

/// Why a compressed header could not be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ContainerError {
    #[error("{0}")]
    Unsupported(#[from] Unsupported),
    #[error("{0}")]
    Damaged(#[from] Damage),
}

/// One record of the container, with offsets into the bytes walked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Record {
    Chunk(Chunk),
    /// A soft filemark stored as it is: 512 bytes of the MTF stream.
    Filemark {
        at: usize,
    },
    /// The record that ends a run of chunks (0x24 or 0x2c), and the zero
    /// blocks after it: `len` bytes in all.
    RunEnd {
        at: usize,
        kind: u8,
        len: usize,
    },
    /// Bytes of no known kind, skipped up to the next filemark or the next
    /// chunk whose checksum holds.
    Unknown {
        at: usize,
        kind: u8,
        len: usize,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's place in the walk (1 for the first chunk walked).
    pub index: usize,
    pub at: usize,
    /// Where it starts in the file.
    pub offset: u64,
    /// Decoded size in bytes (the stored size byte times 512).
    pub decoded_len: usize,
    pub payload: Range<usize>,
    pub checksum: u32,
}

/// How a walk ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// The bytes ended exactly after a record.
    End,
    /// A record runs past the bytes: at `at` (file offset of the record).
    Cut { index: usize, at: u64 },
    /// More was decoded than a header can need; the rest was not read.
    Capped,
}

/// The checksum at chunk + 24: each little-endian u32 of the payload (the
/// last one zero-padded) folded in as `x = rotl(x, 1) ^ w`, from 0.
pub fn fold_checksum(payload: &[u8]) -> u32 {
    let mut words = payload.chunks_exact(4);
    let mut x = words.by_ref().fold(0u32, |x, w| {
        x.rotate_left(1) ^ u32::from_le_bytes(w.try_into().expect("4 bytes"))
    });
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut last = [0u8; 4];
        last[..rest.len()].copy_from_slice(rest);
        x = x.rotate_left(1) ^ u32::from_le_bytes(last);
    }
    x
}

/// The container's header words, checked.
pub fn compression(input: &[u8]) -> Result<Compression, ContainerError> {
    let (Some(layout), Some(algorithm)) = (input.u32_at(8), input.u32_at(12)) else {
        return Err(Damage::ShortHeader.into());
    };
    match (layout, algorithm) {
        (LAYOUT_WORD, XPRESS_WORD) => Ok(Compression {
            algorithm: Algorithm::Xpress,
            layout: LAYOUT_WORD as u8,
        }),
        (_, ZSTD_WORD) => Err(Unsupported::Zstd.into()),
        (layout, algorithm) => Err(Unsupported::UnknownLayout { layout, algorithm }.into()),
    }
}

/// The records of a container, from `at` in `input`, whose first byte is
/// byte `base` of the file (512-byte alignment is the file's).
pub struct Walk<'a> {
    input: &'a [u8],
    base: u64,
    at: usize,
    index: usize,
    stop: Option<Stop>,
}

impl<'a> Walk<'a> {
    pub fn new(input: &'a [u8], base: u64, at: usize) -> Self {
        Walk {
            input,
            base,
            at,
            index: 0,
            stop: None,
        }
    }

    /// How the walk ended; None while it has not.
    pub fn stop(&self) -> Option<Stop> {
        self.stop
    }

    fn file_offset(&self, at: usize) -> u64 {
        self.base + at as u64
    }

    fn aligned(&self, at: usize) -> bool {
        self.file_offset(at).is_multiple_of(BLOCK as u64)
    }

    /// The next 512-aligned position (of the file) at or after `at`.
    fn align_up(&self, at: usize) -> usize {
        let rem = (self.file_offset(at) % BLOCK as u64) as usize;
        if rem == 0 { at } else { at + (BLOCK - rem) }
    }

    fn cut(&mut self, index: usize) -> Option<Result<Record, Damage>> {
        self.stop = Some(Stop::Cut {
            index,
            at: self.file_offset(self.at),
        });
        None
    }

    fn chunk(&mut self) -> Option<Result<Record, Damage>> {
        let at = self.at;
        self.index += 1;
        let index = self.index;
        let offset = self.file_offset(at);
        let Some(header) = self.input.bytes_at(at, CHUNK_HEADER) else {
            return self.cut(index);
        };
        let units = usize::from(header[1]);
        let payload_len = usize::from(header.u16_at(2).expect("in the header"));
        let checksum = header.u32_at(24).expect("in the header");
        let bad = |what| {
            Some(Err(Damage::BadChunk {
                index,
                offset,
                what,
            }))
        };
        if units == 0 || units * BLOCK > CHUNK_OUTPUT {
            return bad("its decoded size is not 1 to 128 blocks");
        }
        if payload_len == 0 {
            return bad("its payload is empty");
        }
        let payload = at + CHUNK_HEADER..at + CHUNK_HEADER + payload_len;
        if payload.end > self.input.len() {
            return self.cut(index);
        }
        if fold_checksum(&self.input[payload.clone()]) != checksum {
            return Some(Err(Damage::BadChecksum { index, offset }));
        }
        self.at = payload.end;
        Some(Ok(Record::Chunk(Chunk {
            index,
            at,
            offset,
            decoded_len: units * BLOCK,
            payload,
            checksum,
        })))
    }

    fn run_end(&mut self, kind: u8) -> Option<Result<Record, Damage>> {
        let at = self.at;
        let declared = match kind {
            KIND_PAD => match self.input.u16_at(at + 2) {
                Some(len) => at + PAD_HEADER + usize::from(len),
                None => return self.cut(self.index),
            },
            _ => at + 1,
        };
        let mut next = self.align_up(declared);
        // Zero blocks may stand between the record and the filemark.
        for _ in 0..MAX_ZERO_BLOCKS {
            match self.input.get(next..next + BLOCK) {
                Some(block) if block.iter().all(|&b| b == 0) => next += BLOCK,
                _ => break,
            }
        }
        // A filemark follows the record: bytes that end before it are cut.
        if next >= self.input.len() {
            self.at = self.input.len();
            self.stop = Some(Stop::Cut {
                index: self.index,
                at: self.file_offset(at),
            });
        } else {
            self.at = next;
        }
        Some(Ok(Record::RunEnd {
            at,
            kind,
            len: next.min(self.input.len()) - at,
        }))
    }
}

enum Resync {
    Found(usize),
    OutOfInput,
    Nothing,
}

impl Walk<'_> {
    /// The next filemark, or chunk whose checksum holds, within
    /// [`RESYNC_WINDOW`] bytes of `from`: what a record of no known kind
    /// (a future filler, a second file header) is skipped to.
    fn resync(&self, from: usize) -> Resync {
        let end = from.saturating_add(RESYNC_WINDOW);
        for at in from..end.min(self.input.len()) {
            let found = if self.aligned(at) && mtf::is_block(self.input, at, b"SFMB") {
                true
            } else {
                self.input[at] == KIND_CHUNK && self.sound_chunk_at(at)
            };
            if found {
                return Resync::Found(at);
            }
        }
        if end > self.input.len() {
            Resync::OutOfInput
        } else {
            Resync::Nothing
        }
    }

    fn sound_chunk_at(&self, at: usize) -> bool {
        let Some(header) = self.input.bytes_at(at, CHUNK_HEADER) else {
            return false;
        };
        let units = usize::from(header[1]);
        let len = usize::from(header.u16_at(2).expect("in the header"));
        (1..=CHUNK_OUTPUT / BLOCK).contains(&units)
            && len > 0
            && self
                .input
                .bytes_at(at + CHUNK_HEADER, len)
                .is_some_and(|p| fold_checksum(p) == header.u32_at(24).expect("in the header"))
    }
}

impl Iterator for Walk<'_> {
    type Item = Result<Record, Damage>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.stop.is_some() {
            return None;
        }
        let at = self.at;
        let Some(&kind) = self.input.get(at) else {
            self.stop = Some(Stop::End);
            return None;
        };
        if self.aligned(at) && self.input.get(at..at + 4) == Some(b"SFMB") {
            if at + BLOCK > self.input.len() {
                return self.cut(self.index);
            }
            self.at = at + BLOCK;
            return Some(Ok(Record::Filemark { at }));
        }
        match kind {
            KIND_CHUNK => self.chunk(),
            KIND_PAD | KIND_INDEX => self.run_end(kind),
            kind => match self.resync(at + 1) {
                Resync::Found(next) => {
                    self.at = next;
                    Some(Ok(Record::Unknown {
                        at,
                        kind,
                        len: next - at,
                    }))
                }
                // The bytes end before anything known follows.
                Resync::OutOfInput => self.cut(self.index),
                Resync::Nothing => {
                    self.stop = Some(Stop::End);
                    Some(Err(Damage::UnknownRecord {
                        offset: self.file_offset(at),
                        kind,
                    }))
                }
            },
        }
    }
}

/// A stretch of the MTF stream, decoded, starting at a block boundary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segment {
    /// Where it lies in the MTF stream (None when the walk did not start at
    /// the container's first record: only the order is known).
    pub mtf_offset: Option<u64>,
    pub bytes: Vec<u8>,
}

/// What was decoded from the bytes read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// In stream order; the first of a head starts at byte 0 of the stream.
    pub segments: Vec<Segment>,
    pub stop: Stop,
}

impl Decoded {
    /// The stream from byte 0, as far as it was decoded without a gap.
    pub fn prefix(&self) -> &[u8] {
        match self.segments.first() {
            Some(s) if s.mtf_offset == Some(0) => &s.bytes,
            _ => &[],
        }
    }
}

/// The start of a compressed file: the first `prefix` bytes of its MTF
/// stream in one piece, and the first chunk after every filemark in reach.
pub fn decode_head(input: &[u8], prefix: usize) -> Result<(Compression, Decoded), ContainerError> {
    let info = compression(input)?;
    if input.len() < FIRST_RECORD {
        return Err(Damage::ShortHeader.into());
    }
    let decoded = decode(Walk::new(input, 0, FIRST_RECORD), input, Some(0), prefix)?;
    Ok((info, decoded))
}

/// The end of a compressed file: `tail` is its last bytes, starting at byte
/// `base` of the file. The walk starts at the first filemark in them (a
/// set's ESET is in the first chunk after its filemark); None when there is
/// none, which a complete file always has (it ends with one). A filemark is
/// a block whose MTF checksum holds, which compressed bytes do not fake.
pub fn decode_tail(tail: &[u8], base: u64) -> Result<Option<Decoded>, Damage> {
    let first = Walk::new(tail, base, 0).align_up(0);
    let Some(at) = (first..tail.len())
        .step_by(BLOCK)
        .find(|&at| mtf::is_block(tail, at, b"SFMB"))
    else {
        return Ok(None);
    };
    match decode(Walk::new(tail, base, at), tail, None, 0) {
        Ok(decoded) => Ok(Some(decoded)),
        Err(ContainerError::Damaged(damage)) => Err(damage),
        Err(ContainerError::Unsupported(_)) => unreachable!("a walk reads no file header"),
    }
}

/// Walks the records and decodes what the checks need: everything before
/// `prefix` bytes of stream (when the walk starts at stream offset `start`)
/// and the first chunk after each filemark.
fn decode(
    mut walk: Walk<'_>,
    input: &[u8],
    start: Option<u64>,
    prefix: usize,
) -> Result<Decoded, ContainerError> {
    let mut segments: Vec<Segment> = Vec::new();
    let mut offset = start;
    let mut after_filemark = false;
    let mut kept = 0usize;
    let mut capped = false;
    let mut push = |segments: &mut Vec<Segment>, at: Option<u64>, bytes: &[u8], joined: bool| {
        kept += bytes.len();
        match segments.last_mut() {
            Some(last) if joined => last.bytes.extend_from_slice(bytes),
            _ => segments.push(Segment {
                mtf_offset: at,
                bytes: bytes.to_vec(),
            }),
        }
        kept <= MAX_DECODED
    };
    // Whether the last record walked was kept, so the next one continues it.
    let mut joined = false;
    for record in walk.by_ref() {
        match record? {
            Record::Filemark { at } => {
                let more = push(&mut segments, offset, &input[at..at + BLOCK], joined);
                offset = offset.map(|o| o + BLOCK as u64);
                after_filemark = true;
                joined = true;
                if !more {
                    capped = true;
                    break;
                }
            }
            Record::Chunk(chunk) => {
                let wanted = after_filemark || offset.is_some_and(|o| o < prefix as u64);
                after_filemark = false;
                if wanted {
                    let bytes = decode_chunk(&input[chunk.payload.clone()], chunk.decoded_len)
                        .map_err(|e| Damage::Undecodable {
                            index: chunk.index,
                            offset: chunk.offset,
                            what: e.to_string(),
                        })?;
                    if !push(&mut segments, offset, &bytes, joined) {
                        capped = true;
                        break;
                    }
                }
                joined = wanted;
                offset = offset.map(|o| o + chunk.decoded_len as u64);
            }
            Record::RunEnd { .. } | Record::Unknown { .. } => {}
        }
    }
    Ok(Decoded {
        segments,
        stop: if capped {
            Stop::Capped
        } else {
            walk.stop().unwrap_or(Stop::End)
        },
    })
}

/// A chunk whose payload does not decode to its stored size.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
enum DecodeError {
    #[error("{0}")]
    Xpress(String),
    #[error("it decodes to {got} bytes, not the {want} its header gives")]
    Short { got: usize, want: usize },
}

fn decode_chunk(payload: &[u8], decoded_len: usize) -> Result<Vec<u8>, DecodeError> {
    // The decoder stops when its read position reaches the end of the
    // input, but it reads two words ahead of the symbols it decodes: on a
    // payload that ends without padding it returns the chunk short of its
    // last symbols (65,535 of 65,536 bytes on a real chunk). Zeros after the
    // payload let it finish; output past the stored size is cut below.
    let mut padded = Vec::with_capacity(payload.len() + PAYLOAD_SLACK);
    padded.extend_from_slice(payload);
    padded.resize(payload.len() + PAYLOAD_SLACK, 0);
    let mut out = xpress_huffman::decompress(&padded, decoded_len)
        .map_err(|e| DecodeError::Xpress(e.to_string()))?;
    if out.len() < decoded_len {
        return Err(DecodeError::Short {
            got: out.len(),
            want: decoded_len,
        });
    }
    // A match may run past the stored size; what lies past it is not part
    // of the chunk.
    out.truncate(decoded_len);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_fold_checksum_pads_the_last_word_with_zeros() {
        assert_eq!(fold_checksum(&[]), 0);
        assert_eq!(fold_checksum(&[1, 0, 0, 0]), 1);
        // rotl(1, 1) ^ 2 = 0
        assert_eq!(fold_checksum(&[1, 0, 0, 0, 2, 0, 0, 0]), 0);
        assert_eq!(fold_checksum(&[1, 0, 0, 0, 3]), 1);
        assert_eq!(fold_checksum(&[0, 0, 0, 0x80, 0, 0, 0, 0]), 1);
    }

    #[test]
    fn the_writers_containers_walk_to_their_end() {
        use crate::backup::writer::{self, BackupSpec};
        for spec in BackupSpec::striped("sales", 2) {
            let file = writer::compress(&writer::write(&spec));
            let mut walk = Walk::new(&file, 0, FIRST_RECORD);
            let records: Vec<Record> = walk.by_ref().map(Result::unwrap).collect();
            assert_eq!(walk.stop(), Some(Stop::End), "{records:?}");
            let tail = decode_tail(&file, 0).unwrap().unwrap();
            assert_eq!(tail.stop, Stop::End, "{records:?}");
        }
    }

    #[test]
    fn unknown_header_words_and_zstd_are_unsupported_not_damaged() {
        let header = |a: u32, b: u32| {
            let mut h = MAGIC.to_vec();
            h.extend(a.to_le_bytes());
            h.extend(b.to_le_bytes());
            h
        };
        assert_eq!(
            compression(&header(1, 3)),
            Err(ContainerError::Unsupported(Unsupported::UnknownLayout {
                layout: 1,
                algorithm: 3
            }))
        );
        assert_eq!(
            compression(&header(2, 131)),
            Err(ContainerError::Unsupported(Unsupported::Zstd))
        );
        assert!(compression(&header(2, 3)).is_ok());
        assert_eq!(
            compression(&MAGIC[..]),
            Err(ContainerError::Damaged(Damage::ShortHeader))
        );
    }
}
