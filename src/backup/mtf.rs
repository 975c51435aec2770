//! The Microsoft Tape Format as SQL Server writes it: a walk over descriptor
//! blocks (DBLKs) and the streams that follow each one.
//!
//! Layout facts used here (MTF 1.00a, checked against SQL Server 2008 R2 and
//! 2016 backups):
//! - every DBLK starts with a 52-byte common header: 4-byte type, attributes,
//!   the offset of its first stream, OS id/version, sizes, string type and a
//!   16-bit XOR checksum over the first 25 words;
//! - streams follow at that offset: 22-byte header (4-byte id, attributes,
//!   64-bit length, encryption and compression algorithms, XOR checksum over
//!   10 words), the data, then padding to 4 bytes; an `SPAD` stream pads to
//!   the next block, so the next DBLK starts where the SPAD ends;
//! - the soft filemark block (`SFMB`) carries no streams and is
//!   `soft_filemark_size * 512` bytes long;
//! - strings are (size, offset) pairs relative to their block.
//!
//! Everything is bounds-checked: a length or offset that points outside the
//! bytes at hand is an error, never a panic, and the walk only moves forward.

use super::HeaderError;

pub const COMMON_HEADER_LEN: usize = 52;
pub const STREAM_HEADER_LEN: usize = 22;
/// A backup's header section has about ten blocks; more means garbage.
const MAX_BLOCKS: usize = 64;
/// Streams per block, likewise bounded.
const MAX_STREAMS: usize = 256;

/// Little-endian reads that fail instead of panicking.
pub trait Bytes {
    fn bytes_at(&self, at: usize, len: usize) -> Option<&[u8]>;
    fn u8_at(&self, at: usize) -> Option<u8> {
        self.bytes_at(at, 1).map(|b| b[0])
    }
    fn u16_at(&self, at: usize) -> Option<u16> {
        self.bytes_at(at, 2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
    }
    fn u32_at(&self, at: usize) -> Option<u32> {
        self.bytes_at(at, 4)
            .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
    }
    fn u64_at(&self, at: usize) -> Option<u64> {
        self.bytes_at(at, 8)
            .map(|b| u64::from_le_bytes(b.try_into().expect("8 bytes")))
    }
}

impl Bytes for [u8] {
    fn bytes_at(&self, at: usize, len: usize) -> Option<&[u8]> {
        self.get(at..at.checked_add(len)?)
    }
}

/// XOR of the little-endian 16-bit words, MTF's header checksum.
pub fn xor_checksum(bytes: &[u8]) -> u16 {
    bytes
        .chunks_exact(2)
        .fold(0, |acc, w| acc ^ u16::from_le_bytes([w[0], w[1]]))
}

#[derive(Debug, Clone, Copy)]
pub struct Block<'a> {
    pub kind: [u8; 4],
    pub offset: usize,
    /// The block's bytes from its start to the end of the input.
    pub bytes: &'a [u8],
    pub first_stream: usize,
    /// 1 = ANSI, 2 = UTF-16LE.
    pub string_type: u8,
}

#[derive(Debug, Clone, Copy)]
pub struct Stream<'a> {
    pub id: [u8; 4],
    pub offset: usize,
    pub data: &'a [u8],
    pub encryption_algorithm: u16,
}

pub fn kind_name(kind: &[u8; 4]) -> String {
    kind.iter()
        .map(|&b| if b.is_ascii_graphic() { b as char } else { '?' })
        .collect()
}

/// Reads the DBLK at `offset`, checking its checksum.
/// Whether a descriptor block of `kind` with a valid checksum starts at
/// `offset`: how blocks are found by scanning rather than walking.
pub fn is_block(input: &[u8], offset: usize, kind: &[u8; 4]) -> bool {
    input.bytes_at(offset, COMMON_HEADER_LEN).is_some_and(|h| {
        &h[..4] == kind && xor_checksum(&h[..50]) == u16::from_le_bytes([h[50], h[51]])
    })
}

pub fn block(input: &[u8], offset: usize) -> Result<Block<'_>, HeaderError> {
    let header = input
        .bytes_at(offset, COMMON_HEADER_LEN)
        .ok_or(HeaderError::Truncated {
            offset,
            what: "a descriptor block header".into(),
        })?;
    let kind: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let stored = u16::from_le_bytes([header[50], header[51]]);
    if xor_checksum(&header[..50]) != stored {
        return Err(HeaderError::Corrupt {
            offset,
            what: format!(
                "the {} block's header checksum does not match",
                kind_name(&kind)
            ),
        });
    }
    let first_stream = usize::from(header.u16_at(8).expect("in header"));
    if first_stream < COMMON_HEADER_LEN && first_stream != 0 {
        return Err(HeaderError::Corrupt {
            offset,
            what: format!(
                "the {} block's first stream offset {first_stream} lies inside its header",
                kind_name(&kind)
            ),
        });
    }
    Ok(Block {
        kind,
        offset,
        bytes: &input[offset..],
        first_stream,
        string_type: header[48],
    })
}

/// Reads the stream header at `offset` and returns the stream with as much of
/// its data as the input holds (`complete` says whether that is all of it).
pub fn stream(input: &[u8], offset: usize) -> Result<(Stream<'_>, bool), HeaderError> {
    let header = input
        .bytes_at(offset, STREAM_HEADER_LEN)
        .ok_or(HeaderError::Truncated {
            offset,
            what: "a stream header".into(),
        })?;
    let id: [u8; 4] = header[..4].try_into().expect("4 bytes");
    let stored = u16::from_le_bytes([header[20], header[21]]);
    if xor_checksum(&header[..20]) != stored {
        return Err(HeaderError::Corrupt {
            offset,
            what: format!(
                "the {} stream's header checksum does not match",
                kind_name(&id)
            ),
        });
    }
    let len = header.u64_at(8).expect("in header");
    let start = offset + STREAM_HEADER_LEN;
    let available = input.len().saturating_sub(start) as u64;
    let complete = len <= available;
    let take = len.min(available) as usize;
    let stream = Stream {
        id,
        offset,
        data: &input[start..start + take],
        encryption_algorithm: header.u16_at(16).expect("in header"),
    };
    Ok((stream, complete))
}

/// Where the stream after `s` starts (streams are 4-byte aligned).
pub fn next_stream(s: &Stream<'_>, declared_len: u64) -> Option<usize> {
    let end = (s.offset as u64)
        .checked_add(STREAM_HEADER_LEN as u64)?
        .checked_add(declared_len)?;
    usize::try_from(end.checked_add(3)? & !3).ok()
}

/// One step of the walk: a block and its streams, and where the next block is.
pub struct Visit<'a> {
    pub block: Block<'a>,
    pub streams: Vec<Stream<'a>>,
    pub next: Option<usize>,
}

/// Walks the blocks from the start of `input`, calling `visit` for each,
/// until `visit` says stop, the input ends, or a data block is reached.
pub fn walk<'a>(
    input: &'a [u8],
    visit: impl FnMut(&Visit<'a>) -> Result<bool, HeaderError>,
) -> Result<(), HeaderError> {
    walk_from(input, 0, visit)
}

/// [`walk`] from the block at `start` (a later backup set's SSET).
pub fn walk_from<'a>(
    input: &'a [u8],
    start: usize,
    mut visit: impl FnMut(&Visit<'a>) -> Result<bool, HeaderError>,
) -> Result<(), HeaderError> {
    let mut offset = start;
    let mut filemark_size = 512usize;
    for _ in 0..MAX_BLOCKS {
        if offset >= input.len() {
            return Ok(());
        }
        let block = block(input, offset)?;
        if &block.kind == b"TAPE" {
            // The soft filemark block size, in 512-byte units.
            filemark_size = usize::from(block.bytes.u16_at(0x40).unwrap_or(1).max(1)) * 512;
        }
        let (streams, next) = if &block.kind == b"SFMB" {
            (Vec::new(), Some(offset + filemark_size))
        } else {
            streams_of(input, &block)?
        };
        let visit_state = Visit {
            block,
            streams,
            next,
        };
        if !visit(&visit_state)? {
            return Ok(());
        }
        match next {
            Some(n) if n > offset => offset = n,
            _ => return Ok(()),
        }
    }
    Err(HeaderError::Corrupt {
        offset,
        what: format!("more than {MAX_BLOCKS} descriptor blocks before the data"),
    })
}

/// The streams of a block, up to its SPAD; `next` is where the following
/// block starts, if the input reaches that far.
fn streams_of<'a>(
    input: &'a [u8],
    block: &Block<'a>,
) -> Result<(Vec<Stream<'a>>, Option<usize>), HeaderError> {
    let mut streams = Vec::new();
    if block.first_stream == 0 {
        return Ok((streams, None));
    }
    let mut pos = block.offset + block.first_stream;
    for _ in 0..MAX_STREAMS {
        if pos + STREAM_HEADER_LEN > input.len() {
            return Ok((streams, None));
        }
        let (s, _complete) = stream(input, pos)?;
        let declared = input.u64_at(pos + 8).expect("checked above");
        let next = next_stream(&s, declared);
        let is_pad = &s.id == b"SPAD";
        streams.push(s);
        match next {
            // SPAD runs exactly to the next block, which is not aligned to 4
            // by the stream rule but by the block size: take its end as is.
            Some(_) if is_pad => {
                let end = pos + STREAM_HEADER_LEN + usize::try_from(declared).unwrap_or(usize::MAX);
                return Ok((streams, Some(end)));
            }
            Some(n) if n > pos => pos = n,
            _ => return Ok((streams, None)),
        }
    }
    Err(HeaderError::Corrupt {
        offset: block.offset,
        what: "too many streams in one block".into(),
    })
}

/// A string reference that points outside its data.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum StringRefError {
    #[error("a string reference lies beyond the data")]
    ReferenceBeyond,
    #[error("a string ({size} bytes at offset {offset}) lies beyond its block")]
    StringBeyond { size: u16, offset: u16 },
}

/// A (size, offset) string reference relative to `base`, decoded as
/// `string_type` says. Out-of-range references are errors.
pub fn string_at(
    base: &[u8],
    at: usize,
    string_type: u8,
) -> Result<Option<String>, StringRefError> {
    let (Some(size), Some(offset)) = (base.u16_at(at), base.u16_at(at + 2)) else {
        return Err(StringRefError::ReferenceBeyond);
    };
    if size == 0 {
        return Ok(None);
    }
    let bytes = base
        .bytes_at(usize::from(offset), usize::from(size))
        .ok_or(StringRefError::StringBeyond { size, offset })?;
    Ok(Some(decode(bytes, string_type)))
}

pub fn decode(bytes: &[u8], string_type: u8) -> String {
    let text = if string_type == 1 {
        bytes.iter().map(|&b| b as char).collect::<String>()
    } else {
        let units: Vec<u16> = bytes
            .chunks_exact(2)
            .map(|w| u16::from_le_bytes([w[0], w[1]]))
            .collect();
        String::from_utf16_lossy(&units)
    };
    text.trim_end_matches('\0').to_owned()
}

/// MTF_DATE_TIME: 40 bits, year(14) month(4) day(5) hour(5) minute(6) second(6).
pub fn date_time(bytes: &[u8]) -> Option<String> {
    let b: [u8; 5] = bytes.get(..5)?.try_into().ok()?;
    let v = b.iter().fold(0u64, |acc, &x| (acc << 8) | u64::from(x));
    let (year, month, day) = (v >> 26, (v >> 22) & 0xf, (v >> 17) & 0x1f);
    let (hour, minute, second) = ((v >> 12) & 0x1f, (v >> 6) & 0x3f, v & 0x3f);
    let valid = (1900..=9999).contains(&year)
        && (1..=12).contains(&month)
        && (1..=31).contains(&day)
        && hour < 24
        && minute < 60
        && second < 60;
    valid.then(|| format!("{year:04}-{month:02}-{day:02}T{hour:02}:{minute:02}:{second:02}"))
}

/// The inverse of [`date_time`], for the writer.
pub fn encode_date_time(
    year: u16,
    month: u8,
    day: u8,
    hour: u8,
    minute: u8,
    second: u8,
) -> [u8; 5] {
    let v = (u64::from(year) << 26)
        | (u64::from(month) << 22)
        | (u64::from(day) << 17)
        | (u64::from(hour) << 12)
        | (u64::from(minute) << 6)
        | u64::from(second);
    let b = v.to_be_bytes();
    [b[3], b[4], b[5], b[6], b[7]]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip() {
        let b = encode_date_time(2017, 5, 18, 13, 51, 14);
        // As in the SSET block of singlerestore_full.bak.
        assert_eq!(b, [0x1f, 0x85, 0x64, 0xdc, 0xce]);
        assert_eq!(date_time(&b).as_deref(), Some("2017-05-18T13:51:14"));
        assert_eq!(date_time(&[0; 5]), None);
    }

    #[test]
    fn reads_fail_instead_of_panicking() {
        let b = [1u8, 2, 3];
        assert_eq!(b.u16_at(1), Some(0x0302));
        assert_eq!(b.u16_at(2), None);
        assert_eq!(b.u64_at(usize::MAX - 2), None);
        assert!(string_at(&b, 0, 2).is_err());
    }
}
