//! The error every command returns, and how it maps to exit codes.
//!
//! Modules define their own typed errors; at the edge they become [`Error`], which miette renders
//! with a snippet of the offending file when a [`Span`] is known.

use std::sync::Arc;

use miette::{Diagnostic, NamedSource, SourceSpan};

use crate::source::{self, Span};

/// Exit code when every host succeeded.
pub const EXIT_OK: i32 = 0;
/// Exit code when at least one host failed.
pub const EXIT_HOST_FAILED: i32 = 1;
/// Exit code for bad usage or bad input (inventory, vars, templates).
pub const EXIT_BAD_INPUT: i32 = 2;

/// Bad input, optionally located in a source file. Boxed: it travels through many `Result`s.
#[derive(Debug, thiserror::Error)]
#[error("{}", .0.message)]
pub struct InputError(Box<Inner>);

#[derive(Debug)]
struct Inner {
    message: String,
    label: String,
    span: Option<Span>,
    help: Option<String>,
    source_code: Option<NamedSource<Arc<str>>>,
}

impl InputError {
    /// An error about the text at `span`; `label` is printed under the underlined text.
    pub fn at(span: Span, message: impl Into<String>, label: impl Into<String>) -> Self {
        let file = source::get(span.source);
        InputError(Box::new(Inner {
            message: message.into(),
            label: label.into(),
            span: Some(span),
            help: None,
            source_code: Some(NamedSource::new(file.name.clone(), file.text.clone())),
        }))
    }

    /// An error that has no position (a missing file, a bad command-line value).
    pub fn plain(message: impl Into<String>) -> Self {
        InputError(Box::new(Inner { message: message.into(), label: String::new(), span: None, help: None, source_code: None }))
    }

    /// Adds a hint printed after the snippet.
    pub fn with_help(mut self, help: impl Into<String>) -> Self {
        self.0.help = Some(help.into());
        self
    }

    /// The position of the error, if it has one.
    pub fn span(&self) -> Option<Span> {
        self.0.span
    }

    /// The message without position.
    pub fn message(&self) -> &str {
        &self.0.message
    }
}

impl Diagnostic for InputError {
    fn code<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.span.map(|s| Box::new(s.location()) as Box<dyn std::fmt::Display>)
    }

    fn help<'a>(&'a self) -> Option<Box<dyn std::fmt::Display + 'a>> {
        self.0.help.as_ref().map(|h| Box::new(h) as Box<dyn std::fmt::Display>)
    }

    fn source_code(&self) -> Option<&dyn miette::SourceCode> {
        self.0.source_code.as_ref().map(|s| s as &dyn miette::SourceCode)
    }

    fn labels(&self) -> Option<Box<dyn Iterator<Item = miette::LabeledSpan> + '_>> {
        let span = self.0.span?;
        let label = (!self.0.label.is_empty()).then(|| self.0.label.clone());
        Some(Box::new(std::iter::once(miette::LabeledSpan::new_with_span(label, SourceSpan::new(span.offset.into(), span.len)))))
    }
}

/// The error type of every command.
#[derive(Debug, thiserror::Error, Diagnostic)]
pub enum Error {
    /// Bad inventory, vars, templates or arguments: exit 2.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Input(#[from] InputError),
    /// Several input errors found in one pass.
    #[error("{} errors in the input", .0.len())]
    Inputs(#[related] Vec<InputError>),
    /// One or more hosts failed (already reported): exit 1.
    #[error("{0}")]
    HostsFailed(String),
    /// Anything else (I/O on the laptop, internal failures): exit 1.
    #[error("{0}")]
    Other(String),
}

impl Error {
    /// The process exit code this error maps to.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::Input(_) | Error::Inputs(_) => EXIT_BAD_INPUT,
            Error::HostsFailed(_) | Error::Other(_) => EXIT_HOST_FAILED,
        }
    }
}

/// Collapses a list of input errors into one [`Error`].
pub fn from_many(mut errors: Vec<InputError>) -> Error {
    if errors.len() == 1 { Error::Input(errors.remove(0)) } else { Error::Inputs(errors) }
}

/// Result alias for commands.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An error and its sources, joined with `: `, each cause said once (wrappers often repeat
/// their source's text).
pub fn chain(e: &dyn std::error::Error) -> String {
    let mut msg = e.to_string();
    let mut src = e.source();
    while let Some(s) = src {
        let t = s.to_string();
        if !msg.contains(&t) {
            msg = format!("{msg}: {t}");
        }
        src = s.source();
    }
    msg
}
