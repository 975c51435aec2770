//! Logs: the level from `-v`/`-q` or RUST_LOG, and the one writer every log
//! line goes through on its way to stderr.
//!
//! Not only this crate logs: at `-vv` the crates underneath describe their
//! requests (the emulator's S3 prints each presigned URL it is asked for,
//! a working download link), and tiberius logs every error a server sends,
//! in the server's words, at any level. So each line, whoever wrote it,
//! passes the redaction step before it is shown.

use crate::redact;
use std::io::{self, Write};
use tracing_subscriber::filter::Targets;
use tracing_subscriber::fmt::MakeWriter;

/// Logs go to stderr; `-v`/`-q` pick the level, RUST_LOG overrides with
/// `target=level` directives (a bare level is the default for every target).
pub fn init_logging(global: &crate::cli::Global) {
    use tracing::Level;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    let level = match (global.quiet, global.verbose) {
        (true, _) => Level::ERROR,
        (false, 0) => Level::WARN,
        (false, 1) => Level::INFO,
        (false, 2) => Level::DEBUG,
        _ => Level::TRACE,
    };
    let (filter, unreadable) = log_filter(level, crate::environment::var("RUST_LOG").as_deref());
    let logs = tracing_subscriber::fmt()
        .with_writer(Redacted(std::io::stderr))
        .with_ansi(crate::diagnostic::stderr_is_styled())
        .with_target(false)
        // The Targets layer below decides; the builder's own cap (INFO by
        // default) would hide -vv and -vvv.
        .with_max_level(Level::TRACE)
        .finish()
        .with(filter);
    if logs.try_init().is_ok()
        && let Some(e) = unreadable
    {
        tracing::warn!(
            "RUST_LOG is not a list of `target=level` directives ({e}); using the default levels"
        );
    }
}

/// RUST_LOG's directives when it holds some that parse, otherwise `level`
/// (and why RUST_LOG was passed over).
fn log_filter(
    level: tracing::Level,
    rust_log: Option<&str>,
) -> (Targets, Option<tracing_subscriber::filter::ParseError>) {
    // tiberius warns on every login without TLS; `encrypt: false` is the
    // manifest's explicit choice, so only its errors are shown.
    let default = Targets::new()
        .with_default(level)
        .with_target("tiberius", tracing::Level::ERROR);
    // An empty RUST_LOG, as CI systems often export it, counts as unset: as
    // directives it would silence even errors.
    match rust_log.filter(|v| !v.trim().is_empty()).map(str::parse) {
        Some(Ok(targets)) => (targets, None),
        Some(Err(e)) => (default, Some(e)),
        None => (default, None),
    }
}

/// Longest log line shown, in bytes; the rest is cut. A crate's trace of a
/// whole answer could otherwise be megabytes.
const MAX_LINE_BYTES: usize = 16 * 1024;

/// A writer maker whose writers each collect one log event and hand it on,
/// redacted, when the formatter is done with it: a secret split across two
/// writes is still one secret.
struct Redacted<M>(M);

impl<'a, M: MakeWriter<'a>> MakeWriter<'a> for Redacted<M> {
    type Writer = LogLine<M::Writer>;

    fn make_writer(&'a self) -> Self::Writer {
        LogLine {
            text: Vec::new(),
            cut: false,
            to: self.0.make_writer(),
        }
    }
}

struct LogLine<W: Write> {
    text: Vec<u8>,
    cut: bool,
    to: W,
}

impl<W: Write> Write for LogLine<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        // Twice what is shown is kept, so that a secret (at most 16 KiB,
        // as a secret file) across the cut is still found whole.
        let room = (2 * MAX_LINE_BYTES).saturating_sub(self.text.len());
        self.cut |= buf.len() > room;
        self.text.extend_from_slice(&buf[..buf.len().min(room)]);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

impl<W: Write> Drop for LogLine<W> {
    fn drop(&mut self) {
        if self.text.is_empty() {
            return;
        }
        let mut shown = shown(&String::from_utf8_lossy(&self.text));
        if self.cut || shown.len() > MAX_LINE_BYTES {
            let mut end = MAX_LINE_BYTES.min(shown.len());
            while !shown.is_char_boundary(end) {
                end -= 1;
            }
            shown.truncate(end);
            shown = shown.trim_end().to_owned() + " …\n";
        }
        // Nowhere to report a failed write to stderr.
        super::progress::around_bars(|| {
            let _ = self.to.write_all(shown.as_bytes());
            let _ = self.to.flush();
        });
    }
}

/// One formatted log line as it may be shown: redacted, and with control
/// characters escaped except its line breaks, tabs and the colours the
/// formatter put in (field values are escaped by the formatter itself).
fn shown(line: &str) -> String {
    let line = redact::credentials(line);
    let mut out = String::with_capacity(line.len());
    let mut rest = line.as_str();
    while let Some(c) = rest.chars().next() {
        if let Some(len) = colour_len(rest) {
            out.push_str(&rest[..len]);
            rest = &rest[len..];
            continue;
        }
        match c {
            '\n' | '\t' => out.push(c),
            c if redact::is_unsafe(c) => out.extend(c.escape_unicode()),
            c => out.push(c),
        }
        rest = &rest[c.len_utf8()..];
    }
    out
}

/// The length of the SGR sequence (`ESC [ digits ; ... m`, a colour or
/// style) `s` starts with, if it starts with one.
fn colour_len(s: &str) -> Option<usize> {
    let body = s.strip_prefix("\u{1b}[")?;
    let params = body
        .find(|c: char| !(c.is_ascii_digit() || c == ';'))
        .unwrap_or(body.len());
    body[params..].starts_with('m').then_some(2 + params + 1)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};
    use tracing::Level;

    /// What a subscriber with the log writer shows for the events `emit` logs.
    fn logged(ansi: bool, emit: impl FnOnce()) -> String {
        #[derive(Clone, Default)]
        struct Screen(Arc<Mutex<Vec<u8>>>);
        impl Write for Screen {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(buf);
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let screen = Screen::default();
        let to = screen.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Redacted(move || to.clone()))
            .with_ansi(ansi)
            .with_max_level(Level::TRACE)
            .finish();
        tracing::subscriber::with_default(subscriber, emit);
        String::from_utf8(screen.0.lock().unwrap().clone()).unwrap()
    }

    #[test]
    fn every_log_line_is_redacted_whoever_wrote_it() {
        redact::register("LOGGED-SECRET-93817");
        for ansi in [false, true] {
            let out = logged(ansi, || {
                // As s3s logs a request at debug: a presigned URL's path and query.
                tracing::debug!(target: "s3s::service", "req=Request {{ uri: /bucket/a.bak?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=EMUA81%2F20261201%2Feu01&X-Amz-Signature=3e23112a02bc545488b0cfd70f3ee6897d990981f98e345a2bdfdbe98f08036d }}");
                // As tiberius logs a server's error token, at error.
                tracing::error!(target: "tiberius::tds::stream::token", message = "Cannot read 'LOGGED-SECRET-93817' from https://u:pw@s3.example/b/k?sig=1", code = 50000);
                tracing::warn!("Authorization: Bearer abc.def-ghi");
            });
            assert_eq!(out.lines().count(), 3, "{out}");
            for gone in [
                "3e23112a",
                "EMUA81",
                "LOGGED-SECRET-93817",
                "u:pw",
                "sig=1",
                "abc.def",
            ] {
                assert!(!out.contains(gone), "{gone} shown (ansi {ansi}):\n{out}");
            }
            assert!(out.contains("https://s3.example/b/k"), "{out}");
            assert!(out.contains("50000"), "{out:?}");
            // The formatter's own colours stay; nothing else starts a sequence.
            assert_eq!(out.contains("\u{1b}[3"), ansi, "{out:?}");
        }
    }

    #[test]
    fn a_log_line_steps_around_the_progress_bars() {
        use super::super::progress::tests::{Screen, written_around_the_bars};
        let screen = Screen::default();
        let shown = screen.show_bar();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(Redacted({
                let screen = screen.clone();
                move || Recorder(screen.clone())
            }))
            .finish();
        tracing::subscriber::with_default(subscriber, || tracing::warn!("retrying in 2s"));
        drop(shown);
        let ops = screen.ops();
        assert!(written_around_the_bars(&ops, "retrying in 2s"), "{ops:?}");

        /// The log's writes, recorded on the same screen as the bars.
        struct Recorder(Screen);
        impl Write for Recorder {
            fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
                self.0.record(String::from_utf8_lossy(buf).into_owned())?;
                Ok(buf.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
    }

    #[test]
    fn log_lines_are_bounded_and_show_control_characters_escaped() {
        let out = logged(false, || {
            tracing::warn!("{}", "x".repeat(100_000));
            tracing::warn!("{}", "\u{1b}]0;pwned\u{7}");
        });
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines.len(), 2, "{out}");
        assert!(lines[0].len() <= MAX_LINE_BYTES + 8, "{}", lines[0].len());
        assert!(
            lines[0].ends_with(" …"),
            "{}",
            &lines[0][lines[0].len() - 9..]
        );
        assert!(!out.contains('\u{1b}') && !out.contains('\u{7}'), "{out:?}");
        assert_eq!(colour_len("\u{1b}[2;31mx"), Some(7));
        assert_eq!(colour_len("\u{1b}[2J"), None);
        assert_eq!(shown("a\u{1b}[2Jb\n"), "a\\u{1b}[2Jb\n");
    }

    #[test]
    fn rust_log_directives_override_the_level_unless_empty_or_unreadable() {
        let (from_env, why) = log_filter(Level::WARN, Some("info,sqlflex_import=debug"));
        assert!(why.is_none());
        assert!(from_env.would_enable("sqlflex_import::run", &Level::DEBUG));
        assert!(from_env.would_enable("hyper", &Level::INFO));
        assert!(!from_env.would_enable("hyper", &Level::DEBUG));

        // Empty (or blank) is unset: errors and warnings still show.
        for empty in [None, Some(""), Some("  ")] {
            let (filter, why) = log_filter(Level::WARN, empty);
            assert!(why.is_none(), "{empty:?}");
            assert!(
                filter.would_enable("sqlflex_import", &Level::WARN),
                "{empty:?}"
            );
            assert!(
                !filter.would_enable("sqlflex_import", &Level::INFO),
                "{empty:?}"
            );
            assert!(!filter.would_enable("tiberius", &Level::WARN), "{empty:?}");
        }

        let (filter, why) = log_filter(Level::ERROR, Some("sqlflex_import=loud"));
        assert!(why.is_some());
        assert!(filter.would_enable("sqlflex_import", &Level::ERROR));
        assert!(!filter.would_enable("sqlflex_import", &Level::WARN));
    }
}
