//! The one redaction step. Every text that comes from outside or can carry
//! a URL, a header or a server's words (transport errors, API and S3 error
//! bodies, SQL Server messages, token endpoint answers) passes through
//! [`text`] before it reaches any output, the journal or a report:
//!
//! - every secret value the process knows ([`Secret`](crate::secret::Secret)
//!   registers itself here) is replaced by `***`; a text that still holds
//!   one, or a piece of 8 or more characters of one, in another form (JSON
//!   or URL escapes, base64, other case, NFD, split by spaces or zero-width
//!   characters) is withheld from its first `: ` on;
//! - URLs lose their user info, query string and fragment (a presigned S3
//!   URL is a working download link for as long as it is valid);
//! - anything shaped like a credential (SigV4 parameters, `Bearer` values,
//!   JWTs, PEM keys, long hex signatures, `password=`-style pairs) is
//!   replaced;
//! - control characters are shown escaped, so a hostile server or file
//!   cannot move the cursor or recolour the terminal;
//! - the result is cut to a bounded length.
//!
//! [`terminal`] is the last part alone, for strings that are data rather
//! than errors (database names from backup headers, object keys).

use regex::Regex;
use std::borrow::Cow;
use std::sync::{LazyLock, RwLock};

/// Longest redacted text, in characters; a server may answer megabytes.
pub const MAX_CHARS: usize = 600;
/// Secrets shorter than this are not searched for in text: replacing every
/// `a` of a message would destroy it, and a 3-character secret protects
/// nothing anyway.
pub const MIN_SECRET_CHARS: usize = 4;
const MASK: &str = "***";

static KNOWN: LazyLock<RwLock<Vec<String>>> = LazyLock::new(|| RwLock::new(Vec::new()));
/// Every piece of every known secret, in the folded form of [`fold`].
static PIECES: LazyLock<RwLock<Option<aho_corasick::AhoCorasick>>> =
    LazyLock::new(|| RwLock::new(None));
/// Characters of a secret piece searched for in other encodings; a piece of
/// letters only must be longer, so that a secret such as `password1` does
/// not hide every message with the word `password`.
const PIECE: usize = 8;
const LETTER_PIECE: usize = 12;
/// Bytes of a text searched for encoded secrets at most (server answers are
/// read with smaller bounds).
const SEARCHED: usize = 1 << 20;

/// Remembers a secret value so that [`text`] replaces it wherever it shows.
pub fn register(secret: &str) {
    if secret.chars().count() < MIN_SECRET_CHARS {
        return;
    }
    let mut known = KNOWN.write().unwrap_or_else(|e| e.into_inner());
    if !known.iter().any(|k| k == secret) {
        known.push(secret.to_owned());
        // Longest first, so a secret containing another is replaced whole.
        known.sort_by_key(|k| std::cmp::Reverse(k.len()));
        let pieces: Vec<String> = known.iter().flat_map(|k| pieces(&fold(k))).collect();
        let matcher = aho_corasick::AhoCorasick::new(&pieces).ok();
        *PIECES.write().unwrap_or_else(|e| e.into_inner()) = matcher;
    }
}

/// A text as compared for secrets: NFKC, lower case, without whitespace,
/// zero-width or control characters.
fn fold(s: &str) -> String {
    use unicode_normalization::UnicodeNormalization;
    s.nfkc()
        .flat_map(char::to_lowercase)
        .filter(|c| {
            !c.is_whitespace()
                && !c.is_control()
                && !matches!(
                    c,
                    '\u{200b}'..='\u{200f}' | '\u{2060}' | '\u{feff}' | '\u{00ad}'
                )
        })
        .collect()
}

/// The pieces of a folded secret searched for: all of it when short, else
/// every run of [`PIECE`] characters (of [`LETTER_PIECE`] where the run is
/// letters only).
fn pieces(folded: &str) -> Vec<String> {
    let chars: Vec<char> = folded.chars().collect();
    if chars.len() <= PIECE {
        return vec![folded.to_owned()];
    }
    let mut out = Vec::new();
    for start in 0..=chars.len() - PIECE {
        let run: String = chars[start..start + PIECE].iter().collect();
        if run.chars().all(char::is_alphabetic) {
            if start + LETTER_PIECE <= chars.len() {
                out.push(chars[start..start + LETTER_PIECE].iter().collect());
            }
        } else {
            out.push(run);
        }
    }
    if out.is_empty() {
        out.push(folded.to_owned());
    }
    out
}

/// Whether `text` holds a known secret, or a piece of one, in any of the
/// forms a server may echo it in.
fn holds_secret(text: &str) -> bool {
    let matcher = PIECES.read().unwrap_or_else(|e| e.into_inner());
    let Some(matcher) = matcher.as_ref() else {
        return false;
    };
    let text = cut_bytes(text, SEARCHED);
    let found = |form: &str| matcher.is_match(&fold(form));
    let json = json_unescape(text);
    let url = url_decode(text);
    let both = url_decode(&json);
    [text, json.as_str(), url.as_str(), both.as_str()]
        .into_iter()
        .any(|form| found(form) || base64_runs(form).any(|decoded| found(&decoded)))
}

/// `\uXXXX`, `\"`, `\\`, `\/` and the other JSON escapes undone.
fn json_unescape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('u') => {
                let hex: String = chars.by_ref().take(4).collect();
                match u32::from_str_radix(&hex, 16).ok().and_then(char::from_u32) {
                    Some(decoded) => out.push(decoded),
                    None => out.push_str(&hex),
                }
            }
            Some('n') => out.push('\n'),
            Some('t') => out.push('\t'),
            Some('r') => out.push('\r'),
            Some(other) => out.push(other),
            None => {}
        }
    }
    out
}

fn url_decode(s: &str) -> String {
    let plus = s.replace('+', " ");
    percent_encoding::percent_decode_str(&plus)
        .decode_utf8_lossy()
        .into_owned()
}

/// The decoded text of each run of base64 characters (standard or URL-safe,
/// padded or not) of 12 characters or more.
fn base64_runs(s: &str) -> impl Iterator<Item = String> + '_ {
    use base64::Engine;
    use base64::engine::DecodePaddingMode;
    use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
    const LENIENT: GeneralPurposeConfig = GeneralPurposeConfig::new()
        .with_decode_allow_trailing_bits(true)
        .with_decode_padding_mode(DecodePaddingMode::Indifferent);
    static STANDARD: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::STANDARD, LENIENT);
    static URL_SAFE: GeneralPurpose = GeneralPurpose::new(&base64::alphabet::URL_SAFE, LENIENT);
    s.split(|c: char| !(c.is_ascii_alphanumeric() || matches!(c, '+' | '/' | '-' | '_' | '=')))
        .filter(|run| run.len() >= 12)
        .flat_map(|run| {
            let run = run.trim_end_matches('=');
            // Every offset of the four a secret may start at in the run.
            (0..4).filter_map(move |skip| {
                let part = run.get(skip..)?;
                let part = &part[..part.len() - part.len() % 4];
                STANDARD
                    .decode(part)
                    .or_else(|_| URL_SAFE.decode(part))
                    .ok()
                    .map(|bytes| String::from_utf8_lossy(&bytes).into_owned())
            })
        })
}

fn cut_bytes(s: &str, bytes: usize) -> &str {
    if s.len() <= bytes {
        return s;
    }
    let mut at = bytes;
    while !s.is_char_boundary(at) {
        at -= 1;
    }
    &s[..at]
}

/// A text whose remaining part repeats a secret in another form: what
/// stands before its first `: ` (such as `HTTP 400`), if that is clean.
fn withheld(s: &str) -> String {
    const NOTE: &str = "the text is withheld: it repeats a secret in another form";
    match s.split_once(": ") {
        Some((head, _)) if !head.is_empty() && !holds_secret(head) => format!("{head}: ({NOTE})"),
        _ => format!("({NOTE})"),
    }
}

static URL: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?i)\b(?:https?|wss?|ftp)://[^\s"'<>`]+"#).expect("regex"));

/// Credential-shaped substrings, each replaced whole or after its key.
static CREDENTIALS: LazyLock<Vec<(Regex, &'static str)>> = LazyLock::new(|| {
    let r = |p: &str| Regex::new(p).expect("regex");
    vec![
        // PEM blocks (private keys, certificates): the whole block.
        (
            r(r"(?s)-----BEGIN [A-Z0-9 ]+-----.*?(?:-----END [A-Z0-9 ]+-----|$)"),
            "-----REDACTED PEM-----",
        ),
        // JWTs: three base64url parts, the first a JSON header.
        (
            r(r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
            MASK,
        ),
        // `Bearer xyz`, `Basic xyz`, `AWS4-HMAC-SHA256 Credential=...`; a
        // word of fewer than 8 characters after it is prose ("the bearer
        // token is not valid"), not a credential (and a known secret is
        // replaced above whatever its shape).
        (
            r(r"(?i)\b(bearer|basic|aws4-hmac-sha256)\s+[^\s,;]{8,}"),
            "${1} ***",
        ),
        // key=value and "key": "value" pairs whose key names a credential.
        (
            r(
                r#"(?i)\b((?:x-amz-)?(?:signature|credential|security-token|access[_-]?token|refresh[_-]?token|id[_-]?token|assertion|client[_-]?secret|secret(?:[_-]?(?:access[_-]?)?key)?|s3[_-]?access[_-]?(?:key|secret)|s3[_-]?secret[_-]?key(?:[_-]id)?|access[_-]?key(?:[_-]id)?|password|passwd|pwd|token|api[_-]?key|private[_-]?key))("?\s*[:=]\s*"?)[^\s"&,;}<]+"#,
            ),
            "${1}${2}***",
        ),
        // Bare long hex runs: SigV4 signatures, HMACs.
        (r(r"\b[0-9a-fA-F]{40,}\b"), MASK),
    ]
});

/// A text that may carry secrets, URLs or a server's words, made safe to
/// show and store, and cut to [`MAX_CHARS`]. See the module documentation.
pub fn text(input: &str) -> String {
    // Known secrets are replaced, and encoded ones looked for, in all of it
    // (bounded) before any cut: a cut must not leave a piece of a secret
    // that the replacement would have caught whole.
    let known = replace_known(cut_bytes(input, SEARCHED));
    if holds_secret(&known) {
        return terminal(&withheld(cut(&known, MAX_CHARS))).into_owned();
    }
    // Bound the work before the patterns: they are linear, but a megabyte
    // answer would still be shown to nobody.
    let out = terminal(&shapes(cut(&known, MAX_CHARS * 4).to_owned())).into_owned();
    if out.chars().count() > MAX_CHARS {
        cut(&out, MAX_CHARS).to_owned() + " …"
    } else {
        out
    }
}

/// [`text`] without the length bound: for texts this program composed
/// (a plan's reasons, an event's reason), as the last step before output.
pub fn scrub(input: &str) -> String {
    terminal(&credentials(input)).into_owned()
}

/// The secrets, URL parts and credential shapes of [`scrub`], with control
/// characters left as they are: for text whose control characters a
/// formatter has already dealt with, such as a whole log line with its
/// colours (see `commands::logging`).
pub fn credentials(input: &str) -> String {
    let out = replace_known(input);
    if holds_secret(&out) {
        return withheld(&out);
    }
    shapes(out)
}

/// URLs without their query and user info, and credential shapes replaced.
fn shapes(mut out: String) -> String {
    out = URL
        .replace_all(&out, |c: &regex::Captures| without_query(&c[0]))
        .into_owned();
    for (pattern, with) in CREDENTIALS.iter() {
        if let Cow::Owned(s) = pattern.replace_all(&out, *with) {
            out = s;
        }
    }
    out
}

/// Control characters shown escaped (`\u{1b}`), newlines and tabs as spaces;
/// everything else as it is. For any outside string shown on a terminal.
pub fn terminal(s: &str) -> Cow<'_, str> {
    if !s.chars().any(is_unsafe) {
        return Cow::Borrowed(s);
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\n' | '\r' | '\t' => out.push(' '),
            c if is_unsafe(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

/// C0 and C1 controls, DEL, and the bidirectional overrides that can make
/// a text read differently from what it is.
pub fn is_unsafe(c: char) -> bool {
    c.is_control() || matches!(c, '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

fn replace_known(s: &str) -> String {
    let known = KNOWN.read().unwrap_or_else(|e| e.into_inner());
    let mut out = s.to_owned();
    for secret in known.iter() {
        if out.contains(secret.as_str()) {
            out = out.replace(secret.as_str(), MASK);
        }
    }
    out
}

/// `https://user:pw@host/path?query#f` -> `https://host/path`.
fn without_query(url: &str) -> String {
    let end = url.find(['?', '#']).unwrap_or(url.len());
    let url = &url[..end];
    match url.find("://") {
        Some(scheme_end) => {
            let rest = &url[scheme_end + 3..];
            let authority_end = rest.find('/').unwrap_or(rest.len());
            match rest[..authority_end].rfind('@') {
                Some(at) => format!("{}{}", &url[..scheme_end + 3], &rest[at + 1..]),
                None => url.to_owned(),
            }
        }
        None => url.to_owned(),
    }
}

fn cut(s: &str, chars: usize) -> &str {
    match s.char_indices().nth(chars) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// A transport error (reqwest), described without its URL: what happened
/// and its innermost cause, redacted. reqwest puts the whole request URL,
/// presigned query included, into its `Display`.
pub fn transport(e: &reqwest::Error) -> String {
    let kind = if e.is_builder() {
        "the request could not be built"
    } else if e.is_timeout() {
        "timed out"
    } else if e.is_connect() {
        "could not connect"
    } else if e.is_redirect() {
        "too many redirects"
    } else if e.is_decode() {
        "the answer could not be read"
    } else if e.is_request() || e.is_body() {
        "the connection broke"
    } else {
        "request failed"
    };
    let mut detail = String::new();
    let mut source = std::error::Error::source(e);
    while let Some(s) = source {
        detail = s.to_string();
        source = s.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        text(&format!("{kind}: {detail}"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn presigned_urls_lose_their_query() {
        let e = "error sending request for url (http://127.0.0.1:1/bucket/a.bak?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIA%2F20261130&X-Amz-Signature=0123abcd)";
        let out = text(e);
        assert!(out.contains("http://127.0.0.1:1/bucket/a.bak"), "{out}");
        assert!(!out.contains("X-Amz"), "{out}");
        assert!(!out.contains("0123abcd"), "{out}");
        assert_eq!(
            without_query("https://u:p@h.example/x?y=1"),
            "https://h.example/x"
        );
    }

    #[test]
    fn known_secrets_and_credential_shapes_are_replaced() {
        register("KNOWN-SECRET-VALUE-71");
        register("ab"); // too short to search for
        let out = text(
            "bad request: {\"s3_access_secret\": \"KNOWN-SECRET-VALUE-71\", \"password\": \"other\"} ab",
        );
        assert!(!out.contains("KNOWN-SECRET-VALUE-71"), "{out}");
        assert!(!out.contains("other"), "{out}");
        assert!(out.ends_with("ab"), "{out}");
        for (input, gone) in [
            ("Authorization: Bearer abc.def-ghi", "abc.def"),
            ("Authorization: Basic dXNlcjpwYXNz", "dXNlcjpw"),
            (
                "token eyJhbGciOiJSUzUxMiJ9.eyJzdWIiOiJ4In0.c2ln here",
                "eyJhbGci",
            ),
            (
                "sig 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
                "9f86d08",
            ),
            ("access_token=xyz123&x=1", "xyz123"),
            (
                "-----BEGIN PRIVATE KEY-----\nMIIE\n-----END PRIVATE KEY-----",
                "MIIE",
            ),
        ] {
            let out = text(input);
            assert!(!out.contains(gone), "{input} -> {out}");
        }
    }

    /// The echoes of the second review: the secret in another encoding, in
    /// pieces, or past the cut. None of its 8-character pieces may remain.
    #[test]
    fn a_secret_echoed_in_another_form_is_withheld() {
        use base64::Engine;
        let secret = "S3cr3t-Echo-Value-4711-xyz";
        register(secret);
        let nfd_secret = "Sécret-Wért-Ärger-92";
        register(nfd_secret);
        let b64 = base64::engine::general_purpose::STANDARD;
        let json = secret
            .chars()
            .map(|c| format!("\\u{:04x}", c as u32))
            .collect::<String>();
        let url: String = secret.bytes().map(|b| format!("%{b:02X}")).collect();
        let zero_width: String = secret.chars().flat_map(|c| [c, '\u{200b}']).collect();
        let (half1, half2) = secret.split_at(11);
        let echoes = [
            format!("HTTP 400: bad request: {{\"secret\": \"{json}\"}}"),
            format!("HTTP 400: {url}"),
            format!(
                "HTTP 400: body was {}",
                b64.encode(format!("{{\"s\":\"{secret}\"}}"))
            ),
            format!("HTTP 400: {}", secret.to_uppercase()),
            format!("HTTP 400: {half1}\n{half2}"),
            format!("HTTP 400: {zero_width}"),
            format!("HTTP 400: {}", &secret[1..]),
            format!("HTTP 400: {}{secret}", "x".repeat(2390)),
            {
                use unicode_normalization::UnicodeNormalization;
                format!("HTTP 400: {}", nfd_secret.nfd().collect::<String>())
            },
        ];
        for echo in &echoes {
            let out = text(echo);
            for piece in pieces(&fold(secret))
                .iter()
                .chain(&pieces(&fold(nfd_secret)))
            {
                assert!(!fold(&out).contains(piece.as_str()), "{echo:?} -> {out}");
            }
            assert!(out.starts_with("HTTP 400: "), "{out}");
            assert!(!credentials(echo).contains("Echo-Value"), "{echo:?}");
        }
        // Prose stays, and a password made of a word does not hide the word.
        register("password1");
        assert_eq!(
            text("login failed: the password is wrong"),
            "login failed: the password is wrong"
        );
    }

    #[test]
    fn prose_about_credentials_is_left_as_it_is() {
        for prose in [
            "HTTP 401: the bearer token is not valid",
            "basic auth is not supported",
        ] {
            assert_eq!(text(prose), prose);
        }
    }

    #[test]
    fn control_characters_are_escaped_and_length_is_bounded() {
        let out = text("evil\u{1b}[2J\u{7}name\nnext");
        assert!(!out.chars().any(|c| c.is_control()), "{out:?}");
        assert!(out.contains("\\u{1b}[2J"), "{out}");
        let long = "x".repeat(100_000);
        assert!(text(&long).chars().count() <= MAX_CHARS + 2);
        assert_eq!(terminal("plain"), Cow::Borrowed("plain"));
        assert!(!terminal("a\u{202e}b").contains('\u{202e}'));
    }
}
