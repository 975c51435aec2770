//! The backup header reader against real SQL Server backups
//! (../shared/bak-samples) and against headers the writer makes.

use crate::common;

use common::{bin, run, samples};
use proptest::prelude::*;
use sqlflex_import::backup::stripes::{self, Refusal, SetProblem};
use sqlflex_import::backup::writer::{self, BackupSpec};
use sqlflex_import::backup::{BackupHeader, BackupType, HEADER_PREFIX, HeaderError, read_header};
use std::path::Path;

/// The facts the samples' README states: file, database, type, sequence, count.
const FACTS: &[(&str, &str, BackupType, u16, u16)] = &[
    (
        "singlerestore_full.bak",
        "singlerestore",
        BackupType::Full,
        1,
        1,
    ),
    ("db2_full.bak", "db2", BackupType::Full, 1, 1),
    ("db2_diff.bak", "db2", BackupType::Differential, 1, 1),
    ("stopat_log.trn", "StopAt", BackupType::Log, 1, 1),
    (
        "restoretimestripe_stripe1of2.bak",
        "RestoreTimeStripe",
        BackupType::Full,
        1,
        2,
    ),
    (
        "restoretimestripe_stripe2of2.bak",
        "RestoreTimeStripe",
        BackupType::Full,
        2,
        2,
    ),
    (
        "restoretimeclean_sql2016_full.bak",
        "RestoreTimeClean",
        BackupType::Full,
        1,
        1,
    ),
    ("media_password.bak", "stripetest", BackupType::Full, 1, 1),
];

fn header_of(dir: &Path, file: &str) -> BackupHeader {
    let bytes = std::fs::read(dir.join(file)).unwrap();
    read_header(&bytes).unwrap_or_else(|e| panic!("{file}: {e}"))
}

#[test]
fn real_samples_read_as_their_readme_says() {
    let Some(dir) = samples() else { return };
    for &(file, database, backup_type, sequence, count) in FACTS {
        let h = header_of(&dir, file);
        assert_eq!(h.database_name, database, "{file}");
        assert_eq!(h.backup_type, backup_type, "{file}");
        assert_eq!(
            (h.family_sequence, h.family_count),
            (sequence, count),
            "{file}"
        );
        assert_eq!(h.password_protected, file == "media_password.bak", "{file}");
        assert!(!h.encrypted, "{file}");
    }
    // The compatibility level the restore starts from: the issue on checks
    // after the import measured these samples at 100 to 150, and a level is
    // never above the one of the server that wrote the backup.
    for &(file, ..) in FACTS {
        let h = header_of(&dir, file);
        let major: u16 = h
            .software_version
            .split('.')
            .next()
            .unwrap()
            .parse()
            .unwrap();
        let level = u16::from(h.compatibility_level);
        assert!(
            (100..=150).contains(&level) && level % 10 == 0 && level <= major * 10,
            "{file}: level {level} of SQL Server {}",
            h.software_version
        );
    }
    // The versions the README names: 2008 R2 (10.50) and 2016 (13.0).
    assert_eq!(
        header_of(&dir, "singlerestore_full.bak").software_version,
        "10.50.1600"
    );
    assert_eq!(
        header_of(&dir, "restoretimeclean_sql2016_full.bak").software_version,
        "13.0.5081"
    );
    let clean = header_of(&dir, "restoretimeclean_sql2016_full.bak");
    assert_eq!(clean.files.len(), 2);
    assert_eq!(clean.files[0].logical_name, "RestoreTimeClean");
    assert!(
        clean.files[0]
            .physical_name
            .ends_with(r"\RestoreTimeClean.mdf"),
        "{:?}",
        clean.files
    );
}

#[test]
fn only_the_first_64_kib_are_needed() {
    let Some(dir) = samples() else { return };
    for &(file, ..) in FACTS {
        let bytes = std::fs::read(dir.join(file)).unwrap();
        assert_eq!(
            read_header(&bytes[..HEADER_PREFIX]).unwrap(),
            read_header(&bytes).unwrap(),
            "{file}"
        );
    }
}

#[test]
fn the_two_stripes_are_tied_by_their_media_set() {
    let Some(dir) = samples() else { return };
    let one = header_of(&dir, "restoretimestripe_stripe1of2.bak");
    let two = header_of(&dir, "restoretimestripe_stripe2of2.bak");
    assert_eq!(one.media_set_id, two.media_set_id);
    assert_ne!(
        one.media_set_id,
        header_of(&dir, "db2_full.bak").media_set_id
    );

    // Given in either order, they are one complete set in stripe order.
    let set = stripes::analyze(&[("b".into(), two.clone()), ("a".into(), one.clone())]).unwrap();
    assert_eq!(set.files_in_order, ["a", "b"]);
    assert_eq!(stripes::readiness(&set), Ok(()));

    let problems = stripes::analyze(&[("a".into(), one.clone())]).unwrap_err();
    assert_eq!(
        problems,
        [SetProblem::MissingStripes {
            missing: vec![2],
            count: 2
        }]
    );
    assert_eq!(problems[0].to_string(), "stripe 2 of 2 is missing");

    let problems = stripes::analyze(&[("a".into(), one.clone()), ("c".into(), one)]).unwrap_err();
    assert!(
        problems
            .iter()
            .any(|p| p.to_string() == "stripe 1 is given twice: a, c"),
        "{problems:?}"
    );
}

#[test]
fn sets_that_cannot_be_imported_say_why() {
    let Some(dir) = samples() else { return };
    let single =
        |file: &str| stripes::analyze(&[(file.to_owned(), header_of(&dir, file))]).unwrap();
    assert_eq!(
        stripes::readiness(&single("media_password.bak")),
        Err(Refusal::PasswordProtected)
    );
    let diff = stripes::readiness(&single("db2_diff.bak")).unwrap_err();
    assert_eq!(
        diff,
        Refusal::NotFull {
            backup_type: BackupType::Differential
        }
    );
    assert!(
        diff.to_string()
            .contains("a differential backup; only a full database backup can create a database")
    );
    assert!(
        stripes::readiness(&single("stopat_log.trn"))
            .unwrap_err()
            .to_string()
            .contains("transaction log backup")
    );
    assert_eq!(
        stripes::readiness(&single("singlerestore_full.bak")),
        Ok(())
    );

    // A full and its differential are two media sets of one database.
    let problems = stripes::analyze(&[
        ("db2_full.bak".into(), header_of(&dir, "db2_full.bak")),
        ("db2_diff.bak".into(), header_of(&dir, "db2_diff.bak")),
    ])
    .unwrap_err();
    let text: Vec<String> = problems.iter().map(ToString::to_string).collect();
    assert!(
        text.iter()
            .any(|t| t.starts_with("file db2_diff.bak belongs to another media set")),
        "{text:?}"
    );
    assert!(
        text.iter()
            .any(|t| t == "the files hold different backup types: full, differential"),
        "{text:?}"
    );

    let problems = stripes::analyze(&[
        ("a.bak".into(), header_of(&dir, "db2_full.bak")),
        ("b.bak".into(), header_of(&dir, "singlerestore_full.bak")),
    ])
    .unwrap_err();
    assert_eq!(
        problems[0].to_string(),
        "the files contain two databases: db2, singlerestore"
    );
}

#[test]
fn synthetic_stripe_problems_are_specific() {
    let stripes_of = |specs: Vec<BackupSpec>| -> Vec<(String, BackupHeader)> {
        specs
            .iter()
            .map(|s| {
                (
                    format!("s{}.bak", s.family_sequence),
                    read_header(&writer::write(s)).unwrap(),
                )
            })
            .collect()
    };
    let mut three = stripes_of(BackupSpec::striped("big", 3));
    three.remove(1);
    let problems = stripes::analyze(&three).unwrap_err();
    assert_eq!(
        problems.iter().map(ToString::to_string).collect::<Vec<_>>(),
        ["stripe 2 of 3 is missing"]
    );

    let mut mixed = stripes_of(BackupSpec::striped("big", 2));
    let other = BackupSpec {
        family_sequence: 2,
        ..BackupSpec::striped("big", 3).remove(0)
    };
    mixed[1] = (
        "other.bak".into(),
        read_header(&writer::write(&other)).unwrap(),
    );
    let problems = stripes::analyze(&mixed).unwrap_err();
    assert!(
        problems[0]
            .to_string()
            .starts_with("file other.bak belongs to another media set"),
        "{problems:?}"
    );
}

#[test]
fn bad_input_gives_clear_errors() {
    assert_eq!(read_header(b""), Err(HeaderError::Empty));
    assert!(matches!(
        read_header(b"hello, world"),
        Err(HeaderError::NotABackup { .. })
    ));
    assert!(
        read_header(b"hello, world")
            .unwrap_err()
            .to_string()
            .contains("starts with `hello, w`")
    );
    assert!(matches!(
        read_header(&[0u8; 4096]),
        Err(HeaderError::NotABackup { .. })
    ));
    let good = writer::write(&BackupSpec::full("x"));
    for cut in [3, 10, 51, 60, 0x90, 0x400, 0x700, 0xe10] {
        let err = read_header(&good[..cut]).unwrap_err();
        assert!(
            matches!(
                err,
                HeaderError::Truncated { .. }
                    | HeaderError::Missing(_)
                    | HeaderError::NotABackup { .. }
            ),
            "cut at {cut}: {err:?}"
        );
    }
    let mut corrupt = good.clone();
    corrupt[8] ^= 0xff; // The TAPE block's first-stream offset, without fixing the checksum.
    assert!(
        read_header(&corrupt)
            .unwrap_err()
            .to_string()
            .contains("checksum does not match")
    );
}

/// Recomputes the checksum of every block and stream header found at a
/// 4-byte boundary, so mutations get past the checksums and reach the
/// parsing of lengths and offsets behind them.
fn reseal(bytes: &mut [u8]) {
    const BLOCKS: [&[u8; 4]; 6] = [b"TAPE", b"SFMB", b"SSET", b"VOLB", b"MSCI", b"MSDA"];
    const STREAMS: [&[u8; 4]; 5] = [b"RAID", b"SPAD", b"MQCI", b"MQDA", b"APAD"];
    for at in (0..bytes.len().saturating_sub(52)).step_by(4) {
        let tag = &bytes[at..at + 4];
        let (len, sum_at) = if BLOCKS.iter().any(|b| b.as_slice() == tag) {
            (50, at + 50)
        } else if STREAMS.iter().any(|s| s.as_slice() == tag) {
            (20, at + 20)
        } else {
            continue;
        };
        let sum = sqlflex_import::backup::mtf::xor_checksum(&bytes[at..at + len]);
        bytes[sum_at..sum_at + 2].copy_from_slice(&sum.to_le_bytes());
    }
}

/// Built once: proptest calls for them thousands of times.
static SEEDS: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(seed_headers);

fn seed_headers() -> Vec<Vec<u8>> {
    let mut seeds = vec![
        writer::write(&BackupSpec::full("seed")),
        writer::write(&BackupSpec::striped("s", 2)[1]),
    ];
    if let Some(dir) = samples() {
        for &(file, ..) in FACTS {
            let bytes = std::fs::read(dir.join(file)).unwrap();
            seeds.push(bytes[..16 * 1024].to_vec());
        }
    }
    seeds
}

#[derive(Debug, Clone)]
enum Mutation {
    Byte(usize, u8),
    Word(usize, u16),
    Long(usize, u32),
    Truncate(usize),
}

fn mutation() -> impl Strategy<Value = Mutation> {
    // Most positions inside the header section, where the structure is.
    let pos = prop_oneof![4 => 0..0x2000usize, 1 => 0..0x4000usize];
    let extreme = prop::sample::select(vec![0u16, 1, 3, 0x34, 0x7fff, 0x8000, 0xfffe, 0xffff]);
    prop_oneof![
        (pos.clone(), any::<u8>()).prop_map(|(p, b)| Mutation::Byte(p, b)),
        (pos.clone(), extreme).prop_map(|(p, w)| Mutation::Word(p, w)),
        (
            pos.clone(),
            prop::sample::select(vec![0u32, 8, 0xffff, 0x7fff_ffff, u32::MAX])
        )
            .prop_map(|(p, l)| Mutation::Long(p, l)),
        pos.prop_map(Mutation::Truncate),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 4000, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_headers_never_panic(seed in any::<prop::sample::Index>(), mutations in prop::collection::vec(mutation(), 1..6), fix in any::<bool>()) {
        let mut bytes = seed.get(&SEEDS).clone();
        for m in mutations {
            match m {
                Mutation::Byte(p, b) => if let Some(x) = bytes.get_mut(p) { *x = b },
                Mutation::Word(p, w) => if p + 2 <= bytes.len() { bytes[p..p + 2].copy_from_slice(&w.to_le_bytes()) },
                Mutation::Long(p, l) => if p + 4 <= bytes.len() { bytes[p..p + 4].copy_from_slice(&l.to_le_bytes()) },
                Mutation::Truncate(p) => bytes.truncate(p),
            }
        }
        if fix {
            reseal(&mut bytes);
        }
        let _ = read_header(&bytes);
    }

    #[test]
    fn random_bytes_never_panic(mut bytes in prop::collection::vec(any::<u8>(), 0..3000), tape in any::<bool>()) {
        if tape && bytes.len() >= 4 {
            bytes[..4].copy_from_slice(b"TAPE");
            reseal(&mut bytes);
        }
        let _ = read_header(&bytes);
    }

    #[test]
    fn the_writer_round_trips(
        name in "[A-Za-z_][A-Za-z0-9_]{0,79}",
        server in "[A-Z][A-Z0-9-]{0,20}",
        code in prop::sample::select(b"DILFGPQ".to_vec()),
        count in 1u16..64,
        sequence_seed in any::<u16>(),
        password in any::<bool>(),
        encrypted in any::<bool>(),
        size in 0usize..200_000,
    ) {
        let spec = BackupSpec {
            server_name: server.clone(),
            backup_type: BackupType::from_code(code).unwrap(),
            family_count: count,
            family_sequence: sequence_seed % count + 1,
            media_password: password,
            encrypted,
            size,
            ..BackupSpec::full(&name)
        };
        let bytes = writer::write(&spec);
        prop_assert!(bytes.len() >= size);
        let h = read_header(&bytes).unwrap();
        prop_assert_eq!(&h.database_name, &name);
        prop_assert_eq!(&h.server_name, &server);
        prop_assert_eq!(h.backup_type, spec.backup_type);
        prop_assert_eq!(h.media_set_id, spec.media_set_id);
        prop_assert_eq!((h.family_sequence, h.family_count), (spec.family_sequence, count));
        prop_assert_eq!(h.password_protected, password);
        prop_assert_eq!(h.encrypted, encrypted);
    }
}

#[test]
fn inspect_json_reproduces_the_readme_facts() {
    let Some(dir) = samples() else { return };
    let mut cmd = bin();
    cmd.args(["inspect", "--format", "json"]);
    for &(file, ..) in FACTS {
        cmd.arg(dir.join(file));
    }
    let (code, stdout, stderr) = run(&mut cmd);
    assert_eq!(code, 0, "{stderr}");
    let items: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(items.len(), FACTS.len());
    for (item, &(file, database, backup_type, sequence, count)) in items.iter().zip(FACTS) {
        assert!(item["path"].as_str().unwrap().ends_with(file));
        assert_eq!(item["database_name"], database);
        assert_eq!(item["backup_type"], backup_type.as_str());
        assert_eq!(item["family_sequence"], sequence);
        assert_eq!(item["family_count"], count);
        assert_eq!(item["password_protected"], file == "media_password.bak");
        for key in ["server_name", "media_set_id"] {
            assert!(
                item[key].as_str().is_some_and(|s| !s.is_empty()),
                "{file}: {key}"
            );
        }
    }
    assert_eq!(
        items[4]["media_set_id"], items[5]["media_set_id"],
        "the stripes share their media set"
    );
    // Unrelated backups are judged each on its own, not as one broken set.
    assert!(
        stderr.contains("8 files in 7 backups (media sets); each is judged on its own"),
        "{stderr}"
    );
    assert!(
        stderr.contains("2 of 2 stripes of `RestoreTimeStripe` (full), ready to import"),
        "{stderr}"
    );
    assert!(!stderr.contains("not one complete backup"), "{stderr}");
}

#[test]
fn inspect_reports_unreadable_files_and_still_lists_the_rest() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.bak");
    std::fs::write(&good, writer::write(&BackupSpec::full("good"))).unwrap();
    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "not a backup").unwrap();
    let (code, stdout, _) = run(bin()
        .args(["--format", "json", "inspect"])
        .arg(&good)
        .arg(&text)
        .arg(dir.path().join("missing.bak")));
    assert_eq!(code, 1);
    let items: Vec<serde_json::Value> = serde_json::from_str(&stdout).unwrap();
    assert_eq!(items[0]["database_name"], "good");
    assert!(
        items[1]["error"]
            .as_str()
            .unwrap()
            .contains("not a SQL Server backup")
    );
    assert!(items[2]["error"].as_str().unwrap().contains("cannot read"));
    assert_eq!(
        items[1].as_object().unwrap().len(),
        2,
        "an unreadable file is just {{path, error}}"
    );
}

#[test]
fn inspect_gives_the_stripe_verdict_of_a_list() {
    let dir = tempfile::tempdir().unwrap();
    let specs = BackupSpec::striped("big", 3);
    let paths: Vec<_> = specs
        .iter()
        .map(|s| {
            let p = dir.path().join(format!("big_{}.bak", s.family_sequence));
            std::fs::write(&p, writer::write(s)).unwrap();
            p
        })
        .collect();
    let (code, stdout, stderr) = run(bin().arg("inspect").arg(&paths[0]).arg(&paths[2]));
    assert_eq!(
        code, 0,
        "a verdict informs; only unreadable files fail inspect"
    );
    assert!(
        stdout.contains("DATABASE") && stdout.contains("1 of 3") && stdout.contains("3 of 3"),
        "{stdout}"
    );
    assert!(stderr.contains("stripe 2 of 3 is missing"), "{stderr}");
    let (_, _, stderr) = run(bin().arg("inspect").args(&paths));
    assert!(
        stderr.contains("stripe set: complete, 3 of 3 stripes of `big` (full), ready to import"),
        "{stderr}"
    );
}
