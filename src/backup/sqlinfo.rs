//! The MQCI stream of the MSCI block: SQL Server's own catalogue of the
//! backup, a sequence of tagged sections (`SCIN` for the database and the
//! backup set, `SFGI` per filegroup, `SFIN` per file), each starting with a
//! 4-byte tag and a 32-bit length that includes those 8 bytes.
//!
//! Field positions inside SCIN and SFIN are fixed by the structure (they do
//! not move with string lengths: names are (size, offset) references), and
//! are the same in backups of SQL Server 2008 R2 and 2016.

use super::mtf::{self, Bytes, Stream};
use super::{BackupFile, BackupType, HeaderError};

pub struct SqlInfo {
    pub database_name: String,
    pub server_name: String,
    pub backup_type: BackupType,
    /// (major, minor, build)
    pub version: (u8, u8, u16),
    pub database_version: u16,
    pub compatibility_level: u8,
    pub database_creation: Option<String>,
    pub backup_start: Option<String>,
    pub backup_size: u64,
    pub files: Vec<BackupFile>,
}

/// SCIN field offsets.
mod scin {
    pub const BUILD: usize = 0x18;
    pub const MINOR: usize = 0x1a;
    pub const MAJOR: usize = 0x1b;
    pub const DATABASE_CREATION: usize = 0x48;
    pub const BACKUP_START: usize = 0x4d;
    pub const TYPE: usize = 0x57;
    pub const COMPATIBILITY: usize = 0x5b;
    pub const DATABASE_VERSION: usize = 0x5e;
    pub const BACKUP_SIZE: usize = 0x60;
    pub const DATABASE_NAME: usize = 0x68;
    pub const SERVER_NAME: usize = 0x6c;
    pub const MIN_LEN: usize = 0x70;
}

/// SFIN field offsets.
mod sfin {
    pub const FILE_ID: usize = 0x14;
    pub const TYPE: usize = 0x1c;
    pub const LOGICAL_NAME: usize = 0x30;
    pub const PHYSICAL_NAME: usize = 0x34;
    pub const MIN_LEN: usize = 0x38;
}

/// Database files listed beyond this are not reported (a database has at
/// most 32,767 files; the header prefix holds far fewer).
const MAX_FILES: usize = 4096;

pub fn parse(stream: &Stream<'_>) -> Result<SqlInfo, HeaderError> {
    let data = stream.data;
    let base = stream.offset + mtf::STREAM_HEADER_LEN;
    let corrupt = |at: usize, what: String| HeaderError::Corrupt {
        offset: base + at,
        what,
    };
    let mut info: Option<SqlInfo> = None;
    let mut files = Vec::new();
    let mut pos = 0usize;
    while pos + 8 <= data.len() {
        let tag: [u8; 4] = data[pos..pos + 4].try_into().expect("4 bytes");
        let len = data.u32_at(pos + 4).expect("checked") as usize;
        if len < 8 {
            break; // Past the last section: padding.
        }
        let Some(section) = data.bytes_at(pos, len) else {
            if info.is_none() {
                return Err(HeaderError::Truncated {
                    offset: base + pos,
                    what: format!(
                        "the {} section of the SQL Server catalogue",
                        mtf::kind_name(&tag)
                    ),
                });
            }
            break; // The file list runs past the prefix; what we have is enough.
        };
        let string = |at| {
            mtf::string_at(section, at, 2)
                .map_err(|e| corrupt(pos, format!("{} section: {e}", mtf::kind_name(&tag))))
        };
        match &tag {
            b"SCIN" => {
                if len < scin::MIN_LEN {
                    return Err(corrupt(
                        pos,
                        format!("the SCIN section is only {len} bytes long"),
                    ));
                }
                let code = section[scin::TYPE];
                let backup_type = BackupType::from_code(code).ok_or_else(|| {
                    corrupt(
                        pos + scin::TYPE,
                        format!("unknown backup type code 0x{code:02x}"),
                    )
                })?;
                let database_name = string(scin::DATABASE_NAME)?
                    .ok_or_else(|| corrupt(pos, "the backup names no database".into()))?;
                info = Some(SqlInfo {
                    database_name,
                    server_name: string(scin::SERVER_NAME)?.unwrap_or_default(),
                    backup_type,
                    version: (
                        section[scin::MAJOR],
                        section[scin::MINOR],
                        section.u16_at(scin::BUILD).expect("checked length"),
                    ),
                    database_version: section
                        .u16_at(scin::DATABASE_VERSION)
                        .expect("checked length"),
                    compatibility_level: section[scin::COMPATIBILITY],
                    database_creation: mtf::date_time(&section[scin::DATABASE_CREATION..]),
                    backup_start: mtf::date_time(&section[scin::BACKUP_START..]),
                    backup_size: section.u64_at(scin::BACKUP_SIZE).expect("checked length"),
                    files: Vec::new(),
                });
            }
            b"SFIN" if len >= sfin::MIN_LEN && files.len() < MAX_FILES => files.push(BackupFile {
                file_id: section.u32_at(sfin::FILE_ID).expect("checked length"),
                logical_name: string(sfin::LOGICAL_NAME)?.unwrap_or_default(),
                physical_name: string(sfin::PHYSICAL_NAME)?.unwrap_or_default(),
                kind: super::FileKind::from_code(
                    section.u32_at(sfin::TYPE).expect("checked length"),
                ),
            }),
            _ => {}
        }
        pos += len;
    }
    let mut info = info.ok_or_else(|| {
        HeaderError::Missing("the SQL Server catalogue (MQCI) has no SCIN section".into())
    })?;
    info.files = files;
    Ok(info)
}
