//! Backup sets in one file. `BACKUP ... TO DISK` without `INIT` appends a
//! set to what the file holds, and `RESTORE` without `FILE = n` restores
//! the first one, which may be an old backup. Each set runs from its SSET
//! (whose data set number is its position) to its ESET (which repeats the
//! number), at 512-byte block boundaries; the file ends after the last
//! set's ESET and a filemark, as every real sample does.

use super::mtf::{self, Bytes};
use super::{SetSeen, Tail, sqlinfo};

const BLOCK: usize = 512;
/// SSET and ESET both keep the data set number here.
const SSET_NUMBER: usize = 0x3e;
const ESET_NUMBER: usize = 0x4e;
/// More sets than this in the bytes at hand is garbage, not a backup.
pub const MAX_SETS: usize = 256;

/// Every set whose SSET lies in `bytes` (which start at a block boundary),
/// with its type and start when its catalogue is in reach too.
pub fn scan(bytes: &[u8]) -> Vec<SetSeen> {
    let mut sets = Vec::new();
    for at in (0..bytes.len()).step_by(BLOCK) {
        if sets.len() >= MAX_SETS {
            break;
        }
        if !mtf::is_block(bytes, at, b"SSET") {
            continue;
        }
        let Some(position) = bytes.u16_at(at + SSET_NUMBER) else {
            continue;
        };
        let mut seen = SetSeen {
            position,
            backup_type: None,
            backup_start: bytes.bytes_at(at + 0x58, 5).and_then(mtf::date_time),
        };
        // The set's own header blocks; a catalogue beyond the bytes read, or
        // broken, leaves the type unknown rather than failing the scan.
        let _ = mtf::walk_from(bytes, at, |visit| {
            for stream in &visit.streams {
                if &stream.id == b"MQCI"
                    && let Ok(info) = sqlinfo::parse(stream)
                {
                    seen.backup_type = Some(info.backup_type);
                    seen.backup_start = info.backup_start.or(seen.backup_start.take());
                    return Ok(false);
                }
            }
            Ok(matches!(&visit.block.kind, b"SSET" | b"VOLB" | b"MSCI"))
        });
        sets.push(seen);
    }
    sets
}

/// The end of a file: `first_block` is where the first whole block starts
/// in `bytes` (for the last bytes of an object, `len % 512`).
pub fn read_tail(bytes: &[u8], first_block: usize) -> Tail {
    let mut last = None;
    for at in (first_block..bytes.len()).step_by(BLOCK) {
        if mtf::is_block(bytes, at, b"ESET")
            && let Some(n) = bytes.u16_at(at + ESET_NUMBER)
        {
            last = Some(last.map_or(n, |l: u16| l.max(n)));
        }
    }
    Tail {
        ends_with_end_of_set: last.is_some(),
        last_set_position: last,
    }
}

/// The end of a compressed file, from the segments decoded from its last
/// bytes (each starts at a block boundary). `complete`: the container's
/// last record ends where the file ends (else the file was cut inside one,
/// whatever the segments hold).
pub fn read_tail_segments(segments: &[super::container::Segment], complete: bool) -> Tail {
    let mut last: Option<u16> = None;
    for segment in segments {
        if let Some(n) = read_tail(&segment.bytes, 0).last_set_position {
            last = Some(last.map_or(n, |l| l.max(n)));
        }
    }
    Tail {
        ends_with_end_of_set: complete && last.is_some(),
        last_set_position: last,
    }
}
