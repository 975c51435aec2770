//! What SQL Server's `RESTORE DATABASE` decides about a set of backup
//! files, as the emulator models the service. The headers are read with the
//! tool's reader (the file format is a format, like TDS), but every decision
//! here is the emulator's own, in SQL Server's words: which files make a
//! media set, what can be restored, which versions an instance takes. It
//! never asks the client's rules (`backup::stripes`, `backup::verdict`), so
//! a mistake there cannot hide in the test double.

use crate::backup::{BackupHeader, BackupType};

/// SQL Server releases as the service names them, their major version, and
/// the newest database version each restores (Microsoft's table of
/// internal database versions; 2025 restores at least 2022's).
const RELEASES: [(&str, &str, u16); 5] = [
    ("2016", "13", 852),
    ("2017", "14", 869),
    ("2019", "15", 904),
    ("2022", "16", 957),
    ("2025", "17", 957),
];

/// SQL Server 2016 and later restore databases from SQL Server 2008 on.
const OLDEST_DATABASE_VERSION: u16 = 655;

/// The major version (`16`) of a release (`2022`); 2022's for one not known.
pub fn major_of(release: &str) -> &'static str {
    RELEASES
        .iter()
        .find(|r| r.0 == release)
        .map_or("16", |r| r.1)
}

/// The newest database version an instance of `release` restores.
fn newest_of(release: &str) -> u16 {
    RELEASES
        .iter()
        .find(|r| r.0 == release)
        .map_or(957, |r| r.2)
}

/// What the restore needs from the backup: its size and where it comes from.
pub struct Facts {
    pub backup_size: u64,
    pub database_version: u16,
    pub software_version: String,
    /// The database's compatibility level, as its backup records it.
    pub compatibility_level: u8,
}

/// SQL Server's verdict on the files of one `RESTORE DATABASE ... FROM
/// URL = ...` (`uri` and header of each, in the order given): the media
/// set must be whole, the first backup set (RESTORE without `FILE =`
/// restores the first) a full database backup without password or
/// encryption.
pub fn judge(files: &[(String, BackupHeader)]) -> Result<Facts, String> {
    let Some((first_uri, first)) = files.first() else {
        return Err("RESTORE DATABASE names no backup device".into());
    };
    for (uri, h) in files {
        if h.media_set_id != first.media_set_id || h.family_count != first.family_count {
            return Err(format!(
                "The media loaded on '{uri}' is not part of the media set on '{first_uri}' \
                 (SQL Server error 3231)"
            ));
        }
    }
    let mut seen = vec![false; usize::from(first.family_count)];
    for (uri, h) in files {
        let slot = usize::from(h.family_sequence)
            .checked_sub(1)
            .and_then(|i| seen.get_mut(i));
        match slot {
            Some(taken @ false) => *taken = true,
            _ => {
                return Err(format!(
                    "The volume on device '{uri}' is a duplicate of stripe {} of this media \
                     set (SQL Server error 3227)",
                    h.family_sequence
                ));
            }
        }
    }
    let given = seen.iter().filter(|s| **s).count();
    if given < seen.len() {
        return Err(format!(
            "The media set has {} media families but only {given} are provided. All members \
             must be provided (SQL Server error 3132)",
            seen.len()
        ));
    }
    if first.password_protected {
        return Err(format!(
            "The backup set on '{first_uri}' is password protected; RESTORE needs WITH \
             PASSWORD (SQL Server error 3279)"
        ));
    }
    if first.encrypted {
        return Err(
            "Cannot find server certificate with the thumbprint the backup was encrypted with \
             (SQL Server error 33111)"
                .into(),
        );
    }
    if first.backup_type != BackupType::Full {
        return Err(
            "The log or differential backup cannot be restored because no files are ready to \
             rollforward (SQL Server error 3117)"
                .into(),
        );
    }
    Ok(Facts {
        backup_size: first.backup_size,
        database_version: first.database_version,
        software_version: first.software_version.clone(),
        compatibility_level: first.compatibility_level,
    })
}

/// The compatibility levels an instance of `release` offers: from 100 up
/// to its own (SQL Server 2016: 130, 2017: 140, 2019: 150, 2022: 160).
pub fn levels_offered(release: &str) -> Vec<u16> {
    let own: u16 = major_of(release).parse::<u16>().unwrap_or(16) * 10;
    (100..=own.max(100)).step_by(10).collect()
}

/// The release a level belongs to, as the API describes it.
pub fn release_of_level(level: u16) -> String {
    let major = (level / 10).to_string();
    match RELEASES.iter().find(|r| r.1 == major) {
        Some(r) => format!("SQL Server {}", r.0),
        None => format!("compatibility level {level}"),
    }
}

/// The level a restored database has: its own, raised to the lowest the
/// instance offers (a restore upgrades older databases to it).
pub fn level_after_restore(backup_level: u8, release: &str) -> u16 {
    let offered = levels_offered(release);
    let low = offered.first().copied().unwrap_or(100);
    let high = offered.last().copied().unwrap_or(160);
    u16::from(backup_level).clamp(low, high)
}

/// Whether an instance of `release` restores a database of `facts`'s version.
pub fn version_fits(facts: &Facts, release: &str) -> Result<(), String> {
    if facts.database_version < OLDEST_DATABASE_VERSION {
        return Err(format!(
            "The database was backed up on a server running version {}. That version is \
             incompatible with this server, which is running SQL Server {release}. Either \
             restore the database on a server that supports the backup, or use a backup that \
             is compatible with this server (SQL Server error 3169)",
            facts.software_version
        ));
    }
    let newest = newest_of(release);
    if facts.database_version > newest {
        return Err(format!(
            "The database was backed up on a server running database version {}. That \
             version is incompatible with this server, which supports version {newest} \
             (SQL Server error 948)",
            facts.database_version
        ));
    }
    Ok(())
}
