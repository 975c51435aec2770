//! Malformed manifests end in diagnostics and exit 2: never a panic, never a
//! hang, never unbounded memory.

use crate::common;

use common::{bin, project_root, run};
use proptest::prelude::*;
use sqlflex_import::manifest;
use std::path::Path;

fn env(name: &str) -> Option<String> {
    name.len().is_multiple_of(2).then(|| "value".to_owned())
}

fn seeds() -> Vec<String> {
    std::fs::read_dir(project_root().join("examples"))
        .unwrap()
        .map(|e| std::fs::read_to_string(e.unwrap().path()).unwrap())
        .collect()
}

/// Characters that matter to YAML and to the loader.
const ALPHABET: &[char] = &[
    ':', '-', '{', '}', '[', ']', '&', '*', '!', '|', '>', '\'', '"', '#', '\n', ' ', '\t', '$',
    '%', '@', '?', ',', 'a', '1', '\u{0}', '\u{feff}', 'é', '\\',
];

#[derive(Debug, Clone)]
enum Edit {
    Insert(usize, char),
    Delete(usize),
    Replace(usize, char),
    Duplicate(usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    let c = prop::sample::select(ALPHABET);
    prop_oneof![
        (any::<usize>(), c.clone()).prop_map(|(i, c)| Edit::Insert(i, c)),
        any::<usize>().prop_map(Edit::Delete),
        (any::<usize>(), c).prop_map(|(i, c)| Edit::Replace(i, c)),
        (any::<usize>(), 1..200usize).prop_map(|(i, n)| Edit::Duplicate(i, n)),
    ]
}

fn apply(text: &str, edits: &[Edit]) -> String {
    let mut chars: Vec<char> = text.chars().collect();
    for e in edits {
        let n = chars.len().max(1);
        match *e {
            Edit::Insert(i, c) => chars.insert(i % (chars.len() + 1), c),
            Edit::Delete(i) if !chars.is_empty() => {
                chars.remove(i % n);
            }
            Edit::Replace(i, c) if !chars.is_empty() => chars[i % n] = c,
            Edit::Duplicate(i, len) if !chars.is_empty() => {
                let start = i % n;
                let piece: Vec<char> = chars[start..(start + len).min(chars.len())].to_vec();
                chars.splice(start..start, piece);
            }
            _ => {}
        }
    }
    chars.into_iter().collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 1500, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn mutated_manifests_never_panic(seed in 0usize..4, edits in prop::collection::vec(edit(), 1..12)) {
        let seeds = seeds();
        let text = apply(&seeds[seed % seeds.len()], &edits);
        let _ = manifest::load_str("fuzz.yaml", &text, Path::new("."), &env);
    }

    #[test]
    fn arbitrary_text_never_panics(text in "\\PC{0,400}") {
        let _ = manifest::load_str("fuzz.yaml", &text, Path::new("."), &env);
    }
}

fn validate_file(bytes: &[u8]) -> (i32, String) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.yaml");
    std::fs::write(&path, bytes).unwrap();
    let (code, _, stderr) = run(bin().arg("validate").arg(&path));
    (code, stderr)
}

#[test]
fn empty_and_binary_files_are_diagnosed() {
    let (code, stderr) = validate_file(b"");
    assert_eq!(code, 2);
    assert!(stderr.contains("the manifest is empty"), "{stderr}");

    let garbage: Vec<u8> = (0..4096u32)
        .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
        .collect();
    let (code, stderr) = validate_file(&garbage);
    assert_eq!(code, 2);
    assert!(stderr.contains("is not UTF-8 text"), "{stderr}");
}

#[test]
fn a_50_mb_file_is_refused_by_size() {
    let big = "# padding\n".repeat(5 * 1024 * 1024);
    let (code, stderr) = validate_file(big.as_bytes());
    assert_eq!(code, 2);
    assert!(stderr.contains("is larger than 32 MiB"), "{stderr}");
}

#[test]
fn deep_nesting_and_alias_bombs_are_refused() {
    let deep = format!("version: {}{}\n", "[".repeat(5000), "]".repeat(5000));
    let (code, stderr) = validate_file(deep.as_bytes());
    assert_eq!(code, 2, "{stderr}");

    let mut bomb = String::from("a0: &a0 [x, x, x, x, x, x, x, x, x, x]\n");
    for i in 1..15 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    let (code, stderr) = validate_file(bomb.as_bytes());
    assert_eq!(code, 2);
    assert!(stderr.contains("expands to more than"), "{stderr}");
}
