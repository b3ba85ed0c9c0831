//! Input files kept in memory so every error can point at a file, line and column.
//!
//! Files are registered once when read and never removed; a [`Span`] names a byte range in one of
//! them. The registry is global because errors are built deep inside loaders that have no other
//! reason to carry it around.

use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

/// One input file: the path it was read from and its text.
#[derive(Debug)]
pub struct SourceFile {
    /// Path as the user would recognise it (relative to the working directory when possible).
    pub name: String,
    /// The file's full text.
    pub text: Arc<str>,
}

/// Index of a registered file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct SourceId(u32);

/// A byte range inside a registered file.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Span {
    /// File the range belongs to.
    pub source: SourceId,
    /// Byte offset of the first byte.
    pub offset: usize,
    /// Length in bytes (may be 0 for a point).
    pub len: usize,
}

static FILES: RwLock<Vec<Arc<SourceFile>>> = RwLock::new(Vec::new());

/// Registers text read from `path` and returns its id.
pub fn register(path: &Path, text: String) -> SourceId {
    register_named(display_path(path), text)
}

/// Registers text under a display name (for inputs that are not files, e.g. `-e` arguments).
pub fn register_named(name: String, text: String) -> SourceId {
    let mut files = FILES.write().expect("source registry poisoned");
    files.push(Arc::new(SourceFile { name, text: text.into() }));
    SourceId((files.len() - 1) as u32)
}

/// Returns the registered file for `id`.
pub fn get(id: SourceId) -> Arc<SourceFile> {
    FILES.read().expect("source registry poisoned")[id.0 as usize].clone()
}

/// Shortens an absolute path to one relative to the working directory when it lies below it.
pub fn display_path(path: &Path) -> String {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("."));
    path.strip_prefix(&cwd).unwrap_or(path).display().to_string()
}

/// Returns the closest of `candidates` to `word`, for "did you mean" hints.
pub fn did_you_mean<'a>(word: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, c)| *d <= (c.len() / 3).max(2))
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance between two strings, in characters: insertions, deletions, substitutions and
/// swaps of two neighbours (`prot` is one edit from `port`).
pub fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    for (j, cell) in d[0].iter_mut().enumerate() {
        *cell = j;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut v = (d[i - 1][j] + 1).min(d[i][j - 1] + 1).min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                v = v.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = v;
        }
    }
    d[a.len()][b.len()]
}

impl Span {
    /// A span covering `len` bytes from `offset` in `source`.
    pub fn new(source: SourceId, offset: usize, len: usize) -> Self {
        Span { source, offset, len }
    }

    /// The exact source text the span covers.
    pub fn text(&self) -> String {
        let file = get(self.source);
        let end = (self.offset + self.len).min(file.text.len());
        file.text.get(self.offset.min(end)..end).unwrap_or("").to_string()
    }

    /// 1-based line and column of the span start, for messages that are not rendered by miette.
    pub fn line_col(&self) -> (usize, usize) {
        let file = get(self.source);
        let mut end = self.offset.min(file.text.len());
        while !file.text.is_char_boundary(end) {
            end -= 1;
        }
        let before = &file.text[..end];
        let line = before.matches('\n').count() + 1;
        let col = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, col)
    }

    /// `file:line:col` of the span start.
    pub fn location(&self) -> String {
        let (line, col) = self.line_col();
        format!("{}:{}:{}", get(self.source).name, line, col)
    }
}
