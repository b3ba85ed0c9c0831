//! Terminal output: colour choice, host-coloured prefixes, and redaction of everything printed.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::vars::secret::Redactor;

static COLOR: AtomicBool = AtomicBool::new(false);

/// `--color` values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorChoice {
    /// Colour when stdout is a terminal and `NO_COLOR` is unset.
    Auto,
    /// Always colour.
    Always,
    /// Never colour.
    Never,
}

/// Decides once, at start-up, whether to colour output.
pub fn init_color(choice: ColorChoice) {
    let on = match choice {
        ColorChoice::Always => true,
        ColorChoice::Never => false,
        ColorChoice::Auto => std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal(),
    };
    COLOR.store(on, Ordering::Relaxed);
}

/// Whether output is coloured.
pub fn color_enabled() -> bool {
    COLOR.load(Ordering::Relaxed)
}

/// ANSI styles used in output.
#[derive(Debug, Clone, Copy)]
pub enum Style {
    /// Success (`ok`).
    Green,
    /// Changes (`changed`).
    Yellow,
    /// Failures.
    Red,
    /// Headings and host names.
    Bold,
    /// Secondary text.
    Dim,
    /// Cyan, for diffs' headers.
    Cyan,
}

/// Wraps `text` in the style's escape codes when colour is on.
pub fn paint(style: Style, text: &str) -> String {
    if !color_enabled() {
        return text.to_string();
    }
    let code = match style {
        Style::Green => "32",
        Style::Yellow => "33",
        Style::Red => "31",
        Style::Bold => "1",
        Style::Dim => "2",
        Style::Cyan => "36",
    };
    format!("\x1b[{code}m{text}\x1b[0m")
}

/// A stable colour per host, so interleaved output from many hosts stays readable.
pub fn host_prefix(host: &str, width: usize) -> String {
    let padded = format!("{host:<width$}");
    if !color_enabled() {
        return padded;
    }
    const PALETTE: [u8; 6] = [36, 35, 34, 32, 33, 96];
    let h = host.bytes().fold(0u32, |a, b| a.wrapping_mul(31).wrapping_add(u32::from(b)));
    format!("\x1b[{}m{padded}\x1b[0m", PALETTE[h as usize % PALETTE.len()])
}

/// Prints to stdout with secrets redacted.
pub fn out(text: &str) {
    let mut stdout = std::io::stdout().lock();
    let _ = stdout.write_all(Redactor::redact(text).as_bytes());
    let _ = stdout.flush();
}

/// A `tracing` writer that redacts secrets before writing to stderr.
#[derive(Clone, Copy, Default)]
pub struct RedactingStderr;

impl Write for RedactingStderr {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let text = String::from_utf8_lossy(buf);
        std::io::stderr().write_all(Redactor::redact(&text).as_bytes())?;
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for RedactingStderr {
    type Writer = RedactingStderr;
    fn make_writer(&'a self) -> Self::Writer {
        RedactingStderr
    }
}
