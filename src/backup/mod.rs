//! What a `.bak` file really is, read from its first bytes without a SQL
//! Server: the equivalent of `RESTORE HEADERONLY` for what the import needs.
//! Pure: bytes in, typed header out.

pub mod container;
pub mod mtf;
pub mod sets;
mod sqlinfo;
pub mod stripes;
pub mod verdict;
#[cfg(feature = "emulator")]
pub mod writer;

use mtf::Bytes;
use serde::Serialize;
use std::fmt;

/// The descriptor blocks before the data: media, filemark, set, volume and
/// SQL Server's catalogue.
const HEADER_BLOCKS: [&[u8; 4]; 5] = [b"TAPE", b"SFMB", b"SSET", b"VOLB", b"MSCI"];

/// How much of a file the reader looks at. SQL Server writes the whole
/// header section (TAPE, SSET, VOLB, MSCI with the database and file
/// catalogue) within the first few KiB; 64 KiB leaves room for databases
/// with many files.
pub const HEADER_PREFIX: usize = 64 * 1024;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum BackupType {
    Full,
    Differential,
    Log,
    File,
    FileDifferential,
    Partial,
    PartialDifferential,
}

impl BackupType {
    /// From the msdb code letter SQL Server records (`backupset.type`).
    pub fn from_code(code: u8) -> Option<Self> {
        Some(match code {
            b'D' => BackupType::Full,
            b'I' => BackupType::Differential,
            b'L' => BackupType::Log,
            b'F' => BackupType::File,
            b'G' => BackupType::FileDifferential,
            b'P' => BackupType::Partial,
            b'Q' => BackupType::PartialDifferential,
            _ => return None,
        })
    }

    pub fn code(self) -> u8 {
        match self {
            BackupType::Full => b'D',
            BackupType::Differential => b'I',
            BackupType::Log => b'L',
            BackupType::File => b'F',
            BackupType::FileDifferential => b'G',
            BackupType::Partial => b'P',
            BackupType::PartialDifferential => b'Q',
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            BackupType::Full => "full",
            BackupType::Differential => "differential",
            BackupType::Log => "log",
            BackupType::File => "file",
            BackupType::FileDifferential => "file_differential",
            BackupType::Partial => "partial",
            BackupType::PartialDifferential => "partial_differential",
        }
    }

    /// In the words of SQL Server's documentation.
    pub fn describe(self) -> &'static str {
        match self {
            BackupType::Full => "a full database backup",
            BackupType::Differential => "a differential backup",
            BackupType::Log => "a transaction log backup",
            BackupType::File => "a file or filegroup backup",
            BackupType::FileDifferential => "a differential file backup",
            BackupType::Partial => "a partial backup",
            BackupType::PartialDifferential => "a differential partial backup",
        }
    }
}

impl fmt::Display for BackupType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A media set id, the GUID every stripe of one backup set shares.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Guid(pub [u8; 16]);

impl fmt::Display for Guid {
    /// The registry form SQL Server shows (`media_set_guid`): the first
    /// three groups little-endian.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let b = &self.0;
        write!(
            f,
            "{:02x}{:02x}{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}-{:02x}{:02x}{:02x}{:02x}{:02x}{:02x}",
            b[3],
            b[2],
            b[1],
            b[0],
            b[5],
            b[4],
            b[7],
            b[6],
            b[8],
            b[9],
            b[10],
            b[11],
            b[12],
            b[13],
            b[14],
            b[15]
        )
    }
}

impl Serialize for Guid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// One database file recorded in the backup (`RESTORE FILELISTONLY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupFile {
    pub file_id: u32,
    pub logical_name: String,
    pub physical_name: String,
    #[serde(rename = "type")]
    pub kind: FileKind,
}

/// What a database file holds, from the SFIN record's type word. Observed:
/// 1 data and 2 log on every real sample; 7 FILESTREAM as reported by one
/// reverse-engineering source. Memory-optimised data lives in a FILESTREAM
/// container and is reported as such. Anything else is named by its code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FileKind {
    Data,
    Log,
    Filestream,
    Other(u32),
}

impl FileKind {
    pub fn from_code(code: u32) -> Self {
        match code {
            1 => FileKind::Data,
            2 => FileKind::Log,
            7 => FileKind::Filestream,
            other => FileKind::Other(other),
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FileKind::Data => f.write_str("data"),
            FileKind::Log => f.write_str("log"),
            FileKind::Filestream => f.write_str("FILESTREAM"),
            FileKind::Other(code) => write!(f, "type {code}"),
        }
    }
}

/// The SQL Server release a database version belongs to (`DatabaseVersion`
/// in `RESTORE HEADERONLY`): 539 2000, 611/612 2005, 655 2008, 660/661 2008
/// R2, 706 2012, 782 2014, 852 2016, 868/869 2017, 904 2019, 957 2022.
/// Numbers between known ones are given to the older release (pre-release
/// builds); above 957 is newer than 2022, which a 2022 instance cannot
/// restore.
pub fn release_of(database_version: u16) -> &'static str {
    match database_version {
        0..=538 => "older than SQL Server 2000",
        539..=610 => "SQL Server 2000",
        611..=654 => "SQL Server 2005",
        655..=659 => "SQL Server 2008",
        660..=705 => "SQL Server 2008 R2",
        706..=781 => "SQL Server 2012",
        782..=851 => "SQL Server 2014",
        852..=867 => "SQL Server 2016",
        868..=903 => "SQL Server 2017",
        904..=956 => "SQL Server 2019",
        957 => "SQL Server 2022",
        _ => "newer than SQL Server 2022",
    }
}

/// The newest database version SQL Server 2022 (what Flex runs) restores.
pub const NEWEST_RESTORABLE: u16 = 957;
/// The oldest: SQL Server 2008's. SQL Server 2016 and later refuse 2005
/// databases (error 3169); their lowest compatibility level is 100.
pub const OLDEST_RESTORABLE: u16 = 655;

/// SQL Server releases as the API names them, their major version
/// (`SERVERPROPERTY('ProductMajorVersion')`), and the newest database
/// version each restores (2025's is not confirmed, so it has none).
const RELEASES: [(&str, &str, Option<u16>); 5] = [
    ("2016", "13", Some(852)),
    ("2017", "14", Some(869)),
    ("2019", "15", Some(904)),
    ("2022", "16", Some(NEWEST_RESTORABLE)),
    ("2025", "17", None),
];

/// The newest database version an instance of a SQL Server release (as
/// the API names it: `2022`) restores; None for a release not known here.
pub fn newest_restorable(release: &str) -> Option<u16> {
    RELEASES.iter().find(|r| r.0 == release).and_then(|r| r.2)
}

/// The release (`2022`) of a major version (`16`), or the major version
/// itself when it is not known here.
pub fn release_of_major(major: &str) -> String {
    let major = major.trim();
    RELEASES
        .iter()
        .find(|r| r.1 == major)
        .map_or(major, |r| r.0)
        .to_owned()
}

/// The major version (`16`) of a release (`2022`); None when not known.
pub fn major_of_release(release: &str) -> Option<&'static str> {
    RELEASES.iter().find(|r| r.0 == release).map(|r| r.1)
}

/// One backup set seen in a file (`Position` in `RESTORE HEADERONLY`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetSeen {
    pub position: u16,
    /// None when the set's catalogue lies beyond the bytes read.
    pub backup_type: Option<BackupType>,
    pub backup_start: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BackupHeader {
    pub database_name: String,
    pub server_name: String,
    pub backup_type: BackupType,
    pub media_set_id: Guid,
    pub family_count: u16,
    pub family_sequence: u16,
    /// Written WITH MEDIAPASSWORD or WITH PASSWORD.
    pub password_protected: bool,
    /// A stream in the header section declares a data encryption algorithm.
    pub encrypted: bool,
    pub media_family_id: u32,
    /// `major.minor.build` of the SQL Server that wrote the backup.
    pub software_version: String,
    pub database_version: u16,
    pub compatibility_level: u8,
    pub backup_start: Option<String>,
    pub database_creation: Option<String>,
    /// Bytes of database data in the backup, as recorded by SQL Server.
    pub backup_size: u64,
    pub backup_name: Option<String>,
    pub user_name: Option<String>,
    pub machine_name: Option<String>,
    pub files: Vec<BackupFile>,
    /// `source_version`: the release named by `database_version`.
    pub source_version: &'static str,
    /// Written WITH COMPRESSION (an `MSSQLBAK` container).
    pub compressed: bool,
    pub compression: Option<container::Compression>,
    /// The backup sets seen in the bytes read (the first always; more when
    /// the file holds several and they are within reach).
    pub backup_sets: Vec<SetSeen>,
    /// What the end of the file says, when it was read.
    pub tail: Option<Tail>,
}

/// The last bytes of a file: whether its last backup set is closed (an
/// ESET: a cut upload has none), and the highest set number there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Tail {
    pub ends_with_end_of_set: bool,
    pub last_set_position: Option<u16>,
}

impl BackupHeader {
    /// How many backup sets the file holds, at least.
    pub fn set_count(&self) -> u16 {
        let head = self
            .backup_sets
            .iter()
            .map(|s| s.position)
            .max()
            .unwrap_or(1);
        let tail = self
            .tail
            .as_ref()
            .and_then(|t| t.last_set_position)
            .unwrap_or(1);
        head.max(tail).max(self.backup_sets.len() as u16)
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HeaderError {
    #[error("the file is empty")]
    Empty,
    #[error(
        "not a SQL Server backup: it does not start with an MTF TAPE block (it starts with {found})"
    )]
    NotABackup { found: String },
    #[error("truncated: the data ends inside {what} at byte {offset}")]
    Truncated { offset: usize, what: String },
    #[error("corrupt backup header at byte {offset}: {what}")]
    Corrupt { offset: usize, what: String },
    #[error("incomplete backup header: {0}")]
    Missing(String),
    /// The bytes could not be had at all (a local read or S3 failed).
    #[error("{0}")]
    Unavailable(String),
    /// A compressed backup in a container this tool does not read: not a
    /// sign of a bad backup, only that nothing in it could be checked.
    #[error("compressed backup (MSSQLBAK) that this tool cannot read: {0}")]
    Compressed(container::Unsupported),
    /// A compressed backup whose container is broken, or cut short.
    #[error("{}", damaged(.0))]
    Damaged(container::Damage),
}

fn damaged(d: &container::Damage) -> String {
    if d.is_cut() {
        format!("compressed backup cut short: {d}")
    } else {
        format!("damaged compressed backup: {d}")
    }
}

impl From<container::ContainerError> for HeaderError {
    fn from(e: container::ContainerError) -> Self {
        match e {
            container::ContainerError::Unsupported(u) => HeaderError::Compressed(u),
            container::ContainerError::Damaged(d) => HeaderError::Damaged(d),
        }
    }
}

/// Bytes `plan` and `inspect` read from the start of each object: the
/// header section of an uncompressed backup takes 7-10 KiB, of a compressed
/// one its first few chunks (the header blocks shrink to a few hundred
/// bytes each; an incompressible 64 KiB chunk is the worst case), and small
/// files are read whole, so appended sets in them are seen.
pub const HEAD_READ: usize = 256 * 1024;
/// Bytes read from the end of an object larger than [`HEAD_READ`]: where
/// the last set's ESET lies (the real samples end with a filemark, ESET,
/// TSMP, ESET and a filemark within the last 4 KiB; a compressed file with
/// a filemark, one small chunk holding them, and a filemark).
pub const TAIL_READ: usize = 64 * 1024;

/// Parses the header of a backup from its first bytes, compressed or not.
pub fn read_header(bytes: &[u8]) -> Result<BackupHeader, HeaderError> {
    let whole = bytes.len() < HEAD_READ;
    if !bytes.starts_with(container::MAGIC) {
        return read_mtf_header(bytes, whole);
    }
    let (compression, decoded) =
        container::decode_head(bytes, HEADER_PREFIX).map_err(HeaderError::from)?;
    if let (true, container::Stop::Cut { index, at }) = (decoded.prefix().is_empty(), decoded.stop)
    {
        // Not one chunk whole: an upload cut inside its first chunk.
        return Err(HeaderError::Damaged(container::Damage::Cut {
            index,
            offset: at,
            end: bytes.len() as u64,
        }));
    }
    let mut header = read_mtf_header(decoded.prefix(), whole)?;
    // Sets whose SSET lies after a filemark beyond the prefix.
    for segment in decoded.segments.iter().skip(1) {
        for set in sets::scan(&segment.bytes) {
            if header.backup_sets.len() < sets::MAX_SETS
                && !header
                    .backup_sets
                    .iter()
                    .any(|s| s.position == set.position)
            {
                header.backup_sets.push(set);
            }
        }
    }
    header.compressed = true;
    header.compression = Some(compression);
    Ok(header)
}

/// [`read_header`], plus what the object's last bytes say. `tail` is the
/// end of an object of `size` bytes (None when `head` is all of it).
pub fn read_object(
    head: &[u8],
    tail: Option<&[u8]>,
    size: u64,
) -> Result<BackupHeader, HeaderError> {
    let mut header = read_header(head)?;
    let (end, base) = match tail {
        Some(tail) => (tail, size.saturating_sub(tail.len() as u64)),
        None => (head, 0),
    };
    header.tail = Some(if header.compressed {
        match container::decode_tail(end, base).map_err(HeaderError::Damaged)? {
            Some(decoded) => {
                sets::read_tail_segments(&decoded.segments, decoded.stop == container::Stop::End)
            }
            // A complete compressed file ends with a filemark.
            None => Tail {
                ends_with_end_of_set: false,
                last_set_position: None,
            },
        }
    } else {
        let first_block = (512 - (base % 512) as usize) % 512;
        sets::read_tail(end, first_block)
    });
    Ok(header)
}

fn read_mtf_header(bytes: &[u8], whole: bool) -> Result<BackupHeader, HeaderError> {
    let all = bytes;
    let input = &bytes[..bytes.len().min(HEADER_PREFIX)];
    if input.is_empty() {
        return Err(HeaderError::Empty);
    }
    if !input.starts_with(b"TAPE") {
        return Err(HeaderError::NotABackup {
            found: describe_start(input),
        });
    }

    let mut tape: Option<Tape> = None;
    let mut media: Option<MediaSet> = None;
    let mut set: Option<SetInfo> = None;
    let mut machine_name = None;
    let mut info: Option<sqlinfo::SqlInfo> = None;
    let mut encrypted = false;
    let mut reached_data = false;

    mtf::walk(input, |visit| {
        let block = &visit.block;
        match &block.kind {
            b"TAPE" => tape = Some(Tape::parse(block)?),
            b"SSET" => set = Some(SetInfo::parse(block)?),
            b"VOLB" => {
                machine_name = mtf::string_at(block.bytes, 0x40, block.string_type)
                    .map_err(|e| corrupt(block, e))?
            }
            _ => {}
        }
        for stream in &visit.streams {
            encrypted |= stream.encryption_algorithm != 0;
            match &stream.id {
                b"RAID" => media = Some(MediaSet::parse(stream)?),
                b"MQCI" => info = Some(sqlinfo::parse(stream)?),
                _ => {}
            }
        }
        // The first block that is not a header block (MSDA for database
        // data, MSTL for log data, ...) ends the header section.
        reached_data = !HEADER_BLOCKS.contains(&&block.kind);
        Ok(!reached_data)
    })?;
    if !reached_data && whole && input.len() < HEADER_PREFIX {
        // The input is the whole file, and it ends inside the header section.
        return Err(HeaderError::Truncated {
            offset: input.len(),
            what: "the backup's header section".into(),
        });
    }

    let tape = tape.ok_or_else(|| HeaderError::Missing("no TAPE block".into()))?;
    let media = media.ok_or_else(|| {
        HeaderError::Missing("no media set information (RAID stream) after the TAPE block".into())
    })?;
    let info = info.ok_or_else(|| {
        HeaderError::Missing(format!(
            "no SQL Server catalogue (MSCI block) in the first {} KiB",
            input.len().div_ceil(1024)
        ))
    })?;
    let set = set.unwrap_or_default();
    let mut backup_sets = sets::scan(all);
    if backup_sets.is_empty() {
        backup_sets.push(SetSeen {
            position: set.number.max(1),
            backup_type: Some(info.backup_type),
            backup_start: info.backup_start.clone().or(set.written.clone()),
        });
    }
    Ok(BackupHeader {
        source_version: release_of(info.database_version),
        compressed: false,
        compression: None,
        backup_sets,
        tail: None,
        database_name: info.database_name,
        server_name: info.server_name,
        backup_type: info.backup_type,
        media_set_id: media.id,
        family_count: media.family_count,
        family_sequence: media.family_sequence,
        password_protected: tape.password_protected || set.password_protected,
        encrypted,
        media_family_id: tape.media_family_id,
        software_version: format!("{}.{}.{}", info.version.0, info.version.1, info.version.2),
        database_version: info.database_version,
        compatibility_level: info.compatibility_level,
        backup_start: info.backup_start.or(set.written),
        database_creation: info.database_creation,
        backup_size: info.backup_size,
        backup_name: set.name,
        user_name: set.user,
        machine_name,
        files: info.files,
    })
}

fn describe_start(input: &[u8]) -> String {
    let head = &input[..input.len().min(8)];
    if head.iter().all(|b| b.is_ascii_graphic() || *b == b' ') {
        format!("`{}`", String::from_utf8_lossy(head))
    } else {
        let hex: Vec<String> = head.iter().map(|b| format!("{b:02x}")).collect();
        format!("bytes {}", hex.join(" "))
    }
}

/// The input ended inside `block`'s fixed fields.
fn truncated(block: &mtf::Block<'_>) -> HeaderError {
    HeaderError::Truncated {
        offset: block.offset,
        what: format!("the {} block", mtf::kind_name(&block.kind)),
    }
}

fn corrupt(block: &mtf::Block<'_>, what: impl std::fmt::Display) -> HeaderError {
    HeaderError::Corrupt {
        offset: block.offset,
        what: format!("{} block: {what}", mtf::kind_name(&block.kind)),
    }
}

/// MTF_TAPE: the media header.
struct Tape {
    media_family_id: u32,
    password_protected: bool,
}

impl Tape {
    fn parse(block: &mtf::Block<'_>) -> Result<Self, HeaderError> {
        let b = block.bytes;
        let field = |at| b.u16_at(at).ok_or_else(|| truncated(block));
        let media_family_id = b.u32_at(0x34).ok_or_else(|| truncated(block))?;
        let password_algorithm = field(0x3e)?;
        let password_size = field(0x4c)?;
        Ok(Tape {
            media_family_id,
            password_protected: password_algorithm != 0 || password_size != 0,
        })
    }
}

/// The RAID stream SQL Server writes after the TAPE block: the media set
/// GUID, the number of media families (stripes) and this file's sequence.
struct MediaSet {
    id: Guid,
    family_count: u16,
    family_sequence: u16,
}

impl MediaSet {
    fn parse(s: &mtf::Stream<'_>) -> Result<Self, HeaderError> {
        let d = s.data;
        let bad = || HeaderError::Corrupt {
            offset: s.offset,
            what: "the RAID stream is too short".into(),
        };
        let id = Guid(
            d.bytes_at(0, 16)
                .ok_or_else(bad)?
                .try_into()
                .expect("16 bytes"),
        );
        let family_count = d.u16_at(20).ok_or_else(bad)?;
        let family_sequence = d.u16_at(24).ok_or_else(bad)?;
        if family_count == 0 || family_sequence == 0 || family_sequence > family_count {
            return Err(HeaderError::Corrupt {
                offset: s.offset,
                what: format!("media family {family_sequence} of {family_count} is impossible"),
            });
        }
        Ok(MediaSet {
            id,
            family_count,
            family_sequence,
        })
    }
}

/// MTF_SSET: the backup set.
#[derive(Default)]
struct SetInfo {
    number: u16,
    name: Option<String>,
    user: Option<String>,
    written: Option<String>,
    password_protected: bool,
}

impl SetInfo {
    fn parse(block: &mtf::Block<'_>) -> Result<Self, HeaderError> {
        let b = block.bytes;
        let short = || truncated(block);
        let password_algorithm = b.u16_at(0x38).ok_or_else(short)?;
        let password_size = b.u16_at(0x48).ok_or_else(short)?;
        let string = |at| mtf::string_at(b, at, block.string_type).map_err(|e| corrupt(block, e));
        Ok(SetInfo {
            number: b.u16_at(0x3e).ok_or_else(short)?,
            name: string(0x40)?,
            user: string(0x4c)?,
            written: b.bytes_at(0x58, 5).and_then(mtf::date_time),
            password_protected: password_algorithm != 0 || password_size != 0,
        })
    }
}
