//! Writes small but structurally valid SQL Server backups: the TAPE block
//! with its RAID stream, the soft filemark, SSET, VOLB, the MSCI catalogue
//! (SCIN and one SFIN per file) and an MSDA data block padded to the size
//! asked for. Tests, the emulator and `demo` make their backups with it, so
//! no binary file is committed. The reader must parse every output back.

mod compress;

pub use compress::{compress, compress_in_chunks, xpress_huffman_block};

use super::mtf::{self, COMMON_HEADER_LEN, STREAM_HEADER_LEN};
use super::{BackupType, Guid};

/// Block boundary SQL Server uses (the TAPE's format logical block size).
const BLOCK: usize = 0x400;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupSpec {
    pub database_name: String,
    pub server_name: String,
    pub backup_type: BackupType,
    pub media_set_id: Guid,
    pub family_count: u16,
    pub family_sequence: u16,
    /// Write a media password hash into the TAPE block (WITH MEDIAPASSWORD).
    pub media_password: bool,
    /// Declare an encryption algorithm on the data stream.
    pub encrypted: bool,
    /// (major, minor, build) of the "server" that wrote it.
    pub version: (u8, u8, u16),
    /// Total file size in bytes; at least the header is always written.
    pub size: usize,
    /// Add a FILESTREAM container to the file list.
    pub filestream: bool,
    /// When the backup started (year, month, day, hour, minute, second);
    /// None: 2026-11-01 10:00:00, a day later per appended set.
    pub backup_start: Option<(u16, u8, u8, u8, u8, u8)>,
}

impl BackupSpec {
    /// A full, single-file, unprotected backup of `database`, written by
    /// SQL Server 2016, 64 KiB long.
    pub fn full(database: &str) -> Self {
        BackupSpec {
            database_name: database.to_owned(),
            server_name: "SQLFLEX-DEMO".to_owned(),
            backup_type: BackupType::Full,
            media_set_id: media_set_id_for(database, 1),
            family_count: 1,
            family_sequence: 1,
            media_password: false,
            encrypted: false,
            version: (13, 0, 5081),
            size: 64 * 1024,
            filestream: false,
            backup_start: None,
        }
    }

    /// The `count` stripes of one full backup of `database`.
    pub fn striped(database: &str, count: u16) -> Vec<Self> {
        let id = media_set_id_for(database, count);
        (1..=count)
            .map(|sequence| BackupSpec {
                media_set_id: id,
                family_count: count,
                family_sequence: sequence,
                ..BackupSpec::full(database)
            })
            .collect()
    }
}

/// A stable media set GUID per database and stripe count, so generated
/// backups are reproducible byte for byte.
pub fn media_set_id_for(database: &str, count: u16) -> Guid {
    let mut h: u128 = 0x6c62_272e_07bb_0142_62b8_2175_6295_c58d;
    for b in database.bytes().chain(count.to_le_bytes()) {
        h ^= u128::from(b);
        h = h.wrapping_mul(0x0000_0000_0100_0000_0000_0000_0000_013b);
    }
    Guid(h.to_le_bytes())
}

struct Buf(Vec<u8>);

impl Buf {
    fn reserve(&mut self, end: usize) {
        if self.0.len() < end {
            self.0.resize(end, 0);
        }
    }
    fn put(&mut self, at: usize, bytes: &[u8]) {
        self.reserve(at + bytes.len());
        self.0[at..at + bytes.len()].copy_from_slice(bytes);
    }
    fn u16(&mut self, at: usize, v: u16) {
        self.put(at, &v.to_le_bytes());
    }
    fn u32(&mut self, at: usize, v: u32) {
        self.put(at, &v.to_le_bytes());
    }
    fn u64(&mut self, at: usize, v: u64) {
        self.put(at, &v.to_le_bytes());
    }
    /// Appends `text` as UTF-16LE at `at` and stores its (size, offset)
    /// reference at `reference`, relative to `base`. Returns the end.
    fn string(&mut self, base: usize, reference: usize, at: usize, text: &str) -> usize {
        let bytes: Vec<u8> = text.encode_utf16().flat_map(u16::to_le_bytes).collect();
        self.put(at, &bytes);
        self.u16(reference, bytes.len() as u16);
        self.u16(reference + 2, (at - base) as u16);
        at + bytes.len()
    }
    /// Writes a DBLK common header at `at` and seals its checksum.
    fn block(&mut self, at: usize, kind: &[u8; 4], first_stream: usize, attributes: u32) {
        self.reserve(at + COMMON_HEADER_LEN);
        self.put(at, kind);
        self.u32(at + 4, attributes);
        self.u16(at + 8, first_stream as u16);
        self.put(at + 10, &[0x0e, 0x01]); // OS id: SQL Server writes 14 / 1.
        self.put(at + 48, &[2]); // Strings are UTF-16LE.
        let sum = mtf::xor_checksum(&self.0[at..at + 50]);
        self.u16(at + 50, sum);
    }
    /// Writes a stream header at `at`; the data follows it.
    fn stream(&mut self, at: usize, id: &[u8; 4], len: u64, encryption: u16) {
        self.reserve(at + STREAM_HEADER_LEN);
        self.put(at, id);
        self.u64(at + 8, len);
        self.u16(at + 16, encryption);
        let sum = mtf::xor_checksum(&self.0[at..at + 20]);
        self.u16(at + 20, sum);
    }
    /// An SPAD stream from `at` (4-aligned, as every stream) to the next
    /// block boundary; returns the boundary.
    fn pad_to_block(&mut self, at: usize) -> usize {
        self.pad_to(at, BLOCK)
    }

    /// An SPAD stream from `at` to the next multiple of `unit` that leaves
    /// room for its header; returns that boundary.
    fn pad_to(&mut self, at: usize, unit: usize) -> usize {
        let at = at.next_multiple_of(4);
        let mut end = at.next_multiple_of(unit);
        if end - at < STREAM_HEADER_LEN {
            end += unit;
        }
        self.stream(at, b"SPAD", (end - at - STREAM_HEADER_LEN) as u64, 0);
        self.reserve(end);
        end
    }
}

const DATE: (u16, u8, u8, u8, u8, u8) = (2026, 11, 1, 10, 0, 0);

fn date() -> [u8; 5] {
    let (y, mo, d, h, mi, s) = DATE;
    mtf::encode_date_time(y, mo, d, h, mi, s)
}

pub fn write(spec: &BackupSpec) -> Vec<u8> {
    write_sets(std::slice::from_ref(spec))
}

/// Several backup sets appended to one file (`BACKUP` without `INIT`): the
/// media header from the first spec, then each set (SSET ... ESET) with its
/// data set number, 1, 2, ... Each set is about its spec's `size` long.
pub fn write_sets(specs: &[BackupSpec]) -> Vec<u8> {
    let first = specs.first().expect("at least one backup set");
    let total: usize = specs.iter().map(|s| s.size).sum();
    let mut b = Buf(Vec::with_capacity(total.max(16 * 1024)));
    let mut at = media(&mut b, first);
    for (n, spec) in specs.iter().enumerate() {
        let size = if specs.len() == 1 {
            spec.size
        } else {
            at + spec.size
        };
        at = backup_set(&mut b, at, spec, n as u16 + 1, size);
    }
    b.0
}

/// TAPE and its RAID stream; returns where the first set starts.
fn media(b: &mut Buf, spec: &BackupSpec) -> usize {
    let tape_strings = 0x5e;
    let mut end = tape_strings;
    b.u32(
        0x34,
        u32::from_le_bytes(spec.media_set_id.0[..4].try_into().expect("4 bytes")),
    );
    b.u32(0x38, 5);
    b.u16(0x3c, 1);
    b.u16(0x40, 1); // Soft filemark: one 512-byte block.
    b.u16(0x42, 3);
    if spec.media_password {
        b.u16(0x3e, 5);
        b.put(end, &[0x5a; 16]); // Where SQL Server keeps the password hash.
        b.u16(0x4c, 16);
        b.u16(0x4e, end as u16);
        end += 16;
    }
    end = b.string(0, 0x50, end, "Microsoft SQL Server\0\0");
    b.u16(0x54, BLOCK as u16);
    b.u16(0x56, 0x1200);
    b.put(0x58, &date());
    b.put(0x5d, &[1]);
    let raid = end.next_multiple_of(4);
    b.block(0, b"TAPE", raid, 0x0003_0000);
    let mut raid_data = [0u8; 32];
    raid_data[..16].copy_from_slice(&spec.media_set_id.0);
    raid_data[16..20].copy_from_slice(&[0xad, 0, 0, 0xf0]);
    raid_data[20..22].copy_from_slice(&spec.family_count.to_le_bytes());
    raid_data[22..24].copy_from_slice(&1u16.to_le_bytes());
    raid_data[24..26].copy_from_slice(&spec.family_sequence.to_le_bytes());
    b.stream(raid, b"RAID", 32, 0);
    b.put(raid + STREAM_HEADER_LEN, &raid_data);
    b.pad_to_block(raid + STREAM_HEADER_LEN + 32)
}

/// One backup set from `at`: soft filemark, SSET, VOLB, MSCI, the MSDA data,
/// ESET and a closing soft filemark, ending at about `end` (never before
/// its blocks fit). Returns where it ends.
fn backup_set(b: &mut Buf, at: usize, spec: &BackupSpec, number: u16, end: usize) -> usize {
    // Soft filemark: a bare 512-byte block.
    b.block(at, b"SFMB", 0x200, 0x8000_0000);
    let sset = at + 0x200;

    // SSET: the backup set.
    b.u32(sset + 0x34, 4);
    b.u16(sset + 0x3c, 0x1200);
    b.u16(sset + 0x3e, number);
    let name = format!("{}-Full Database Backup", spec.database_name);
    let mut text_end = b.string(sset, sset + 0x40, sset + 0x64, &name);
    text_end = b.string(sset, sset + 0x4c, text_end, r"SQLFLEX\demo");
    b.u64(sset + 0x50, sset as u64);
    b.put(sset + 0x58, &date_of_set(number));
    b.put(sset + 0x5d, &[spec.version.0, spec.version.1, 0, 0, 2]);
    let first = text_end.next_multiple_of(4) - sset;
    b.block(sset, b"SSET", first, 0);
    let volb = b.pad_to_block(sset + first);

    // VOLB: the volume, with the machine name.
    b.u32(volb + 0x34, 2);
    let mut text_end = b.string(volb, volb + 0x38, volb + 0x4c, "C:");
    text_end = b.string(volb, volb + 0x40, text_end, &spec.server_name);
    b.put(volb + 0x44, &date());
    let first = text_end.next_multiple_of(4) - volb;
    b.block(volb, b"VOLB", first, 0);
    let msci = b.pad_to_block(volb + first);

    // MSCI: the SQL Server catalogue in its MQCI stream.
    let catalogue = catalogue(spec, number);
    let mqci = msci + 0x38;
    b.block(msci, b"MSCI", 0x38, 0);
    b.stream(mqci, b"MQCI", catalogue.len() as u64, 0);
    b.put(mqci + STREAM_HEADER_LEN, &catalogue);
    let msda = b.pad_to_block((mqci + STREAM_HEADER_LEN + catalogue.len()).next_multiple_of(4));

    // MSDA: the data, as long as `end` allows after the closing blocks
    // (a soft filemark, the ESET and another soft filemark, 512 bytes each,
    // as every real sample closes its set); the data stream ends with an
    // SPAD to the filemark's 512-byte boundary, as every block does.
    let data = msda + COMMON_HEADER_LEN;
    b.block(msda, b"MSDA", COMMON_HEADER_LEN, 0);
    let end = end.next_multiple_of(512);
    let closing = end
        .saturating_sub(3 * 0x200)
        .max((data + 2 * STREAM_HEADER_LEN + 8).next_multiple_of(0x200));
    let data_len = closing - STREAM_HEADER_LEN - 4 - (data + STREAM_HEADER_LEN);
    let data_len = data_len - data_len % 4;
    b.stream(data, b"MQDA", data_len as u64, u16::from(spec.encrypted));
    b.pad_to(data + STREAM_HEADER_LEN + data_len, 0x200);

    // A soft filemark, the ESET (the end of the set, with its number), and
    // a closing soft filemark.
    b.block(closing, b"SFMB", 0x200, 0x8000_0000);
    let eset = closing + 0x200;
    b.u32(eset + 0x34, 4);
    b.u16(eset + 0x4e, number);
    b.put(eset + 0x50, &date_of_set(number));
    b.block(eset, b"ESET", 0x58, 0);
    let sfmb = b.pad_to(eset + 0x58, 0x200);
    b.block(sfmb, b"SFMB", 0x200, 0x8000_0000);
    let set_end = sfmb + 0x200;
    b.reserve(set_end);
    set_end
}

/// Appended sets were written on different days.
fn date_of_set(number: u16) -> [u8; 5] {
    let (y, mo, d, h, mi, s) = DATE;
    mtf::encode_date_time(
        y,
        mo,
        d + (number as u8).saturating_sub(1).min(27),
        h,
        mi,
        s,
    )
}

/// SCIN for the database and backup set, SFIN for its data and log file.
fn catalogue(spec: &BackupSpec, number: u16) -> Vec<u8> {
    let mut b = Buf(Vec::new());
    let database_version = match spec.version.0 {
        10 => 661,
        11 => 706,
        12 => 782,
        13 => 852,
        14 => 869,
        15 => 904,
        16 => 957,
        // SQL Server 2025: newer than 2022; its number is not confirmed,
        // any larger one tests the rule.
        _ => 998,
    };
    b.put(0, b"SCIN");
    b.u32(8, 0x200);
    b.u32(0x0c, 1);
    b.u32(0x10, 1);
    b.u16(0x18, spec.version.2);
    b.put(0x1a, &[spec.version.1, spec.version.0]);
    b.put(0x48, &date());
    let start = match spec.backup_start {
        Some((y, mo, d, h, mi, s)) => mtf::encode_date_time(y, mo, d, h, mi, s),
        None => date_of_set(number),
    };
    b.put(0x4d, &start);
    b.put(0x57, &[spec.backup_type.code()]);
    // A database at the level of the server that wrote it.
    b.put(0x5b, &[spec.version.0.saturating_mul(10)]);
    b.u16(0x5e, database_version);
    b.u64(0x60, spec.size as u64);
    let end = b.string(0, 0x68, 0x16c, &spec.database_name);
    let end = b.string(0, 0x6c, end, &spec.server_name);
    let scin_len = end.next_multiple_of(2);
    b.u32(4, scin_len as u32);

    let mut at = scin_len;
    let mut files = vec![(1u32, "", "mdf", 1u32), (2, "_log", "ldf", 2)];
    if spec.filestream {
        files.push((3, "_fs", "", 7));
    }
    for (file_id, suffix, ext, kind) in files {
        let logical = format!("{}{suffix}", spec.database_name);
        let physical = format!(r"D:\MSSQL\DATA\{}{suffix}.{ext}", spec.database_name);
        b.put(at, b"SFIN");
        b.u32(at + 0x14, file_id);
        b.u32(at + 0x1c, kind);
        let end = b.string(at, at + 0x30, at + 0x40, &logical);
        let end = b.string(at, at + 0x34, end, &physical);
        let len = (end - at).next_multiple_of(4);
        b.u32(at + 4, len as u32);
        at += len;
    }
    b.0.resize(at, 0);
    b.0
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backup::read_header;

    #[test]
    fn round_trips_through_the_reader() {
        let mut spec = BackupSpec::full("Sales_2026");
        spec.backup_type = BackupType::Differential;
        spec.size = 100_000;
        let bytes = write(&spec);
        // Backups are whole 512-byte blocks.
        assert_eq!(bytes.len(), 100_352);
        let h = read_header(&bytes).unwrap();
        assert_eq!(h.database_name, "Sales_2026");
        assert_eq!(h.server_name, "SQLFLEX-DEMO");
        assert_eq!(h.machine_name.as_deref(), Some("SQLFLEX-DEMO"));
        assert_eq!(h.backup_type, BackupType::Differential);
        assert_eq!(h.media_set_id, spec.media_set_id);
        assert_eq!((h.family_count, h.family_sequence), (1, 1));
        assert!(!h.password_protected && !h.encrypted);
        assert_eq!(h.software_version, "13.0.5081");
        assert_eq!(h.backup_start.as_deref(), Some("2026-11-01T10:00:00"));
        assert_eq!(h.files.len(), 2);
        assert_eq!(h.files[1].logical_name, "Sales_2026_log");
    }

    #[test]
    fn writes_stripes_passwords_and_encryption() {
        let stripes = BackupSpec::striped("big", 3);
        let headers: Vec<_> = stripes
            .iter()
            .map(|s| read_header(&write(s)).unwrap())
            .collect();
        assert!(
            headers
                .iter()
                .all(|h| h.media_set_id == headers[0].media_set_id && h.family_count == 3)
        );
        assert_eq!(
            headers
                .iter()
                .map(|h| h.family_sequence)
                .collect::<Vec<_>>(),
            [1, 2, 3]
        );

        let mut locked = BackupSpec::full("locked");
        locked.media_password = true;
        assert!(read_header(&write(&locked)).unwrap().password_protected);

        let mut sealed = BackupSpec::full("sealed");
        sealed.encrypted = true;
        assert!(read_header(&write(&sealed)).unwrap().encrypted);
    }

    #[test]
    fn is_reproducible_and_small_by_default() {
        let a = write(&BackupSpec::full("x"));
        assert_eq!(a, write(&BackupSpec::full("x")));
        assert_eq!(a.len(), 64 * 1024);
    }
}
