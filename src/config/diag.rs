//! Diagnostics: what `check` prints and what a failed reload logs.
//!
//! Every problem found in a config file (or a file it includes) becomes one [`Diagnostic`]
//! that knows its file and byte offset. They are collected, never thrown, so that `check`
//! reports every problem at once, each as `FILE:LINE:COL: error: message`, the form editors
//! and terminals jump to.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// How bad a problem is: errors stop a config from being used, warnings do not.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Severity {
    /// The config cannot be applied.
    Error,
    /// The config works but probably not as the admin meant.
    Warning,
}

/// One problem, located in a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// Error or warning.
    pub severity: Severity,
    /// The file as the user would name it (relative paths stay relative).
    pub file: PathBuf,
    /// 1-based line and column (in characters), or `None` for a problem with the file as a whole.
    pub position: Option<(usize, usize)>,
    /// What is wrong and, where it helps, what to do.
    pub message: String,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Translated like gcc's: `FILE:LINE:COL: lỗi: …` under a Vietnamese locale.
        let sev = match self.severity {
            Severity::Error => crate::tr!("error"),
            Severity::Warning => crate::tr!("warning"),
        };
        match self.position {
            Some((line, col)) => write!(
                f,
                "{}:{line}:{col}: {sev}: {}",
                self.file.display(),
                self.message
            ),
            None => write!(f, "{}: {sev}: {}", self.file.display(), self.message),
        }
    }
}

/// A file's text with the index needed to turn byte offsets into line and column.
#[derive(Debug)]
pub struct Source {
    /// The path as shown in diagnostics.
    pub path: PathBuf,
    /// The whole text.
    pub text: String,
    line_starts: Vec<usize>,
}

impl Source {
    /// Wraps a file's text.
    pub fn new(path: impl Into<PathBuf>, text: String) -> Source {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Source {
            path: path.into(),
            text,
            line_starts,
        }
    }

    /// 1-based line and character column of a byte offset.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.line_starts.partition_point(|&s| s <= offset) - 1;
        let start = self.line_starts[line];
        let col = self
            .text
            .get(start..offset)
            .map_or(offset - start, |s| s.chars().count());
        (line + 1, col + 1)
    }
}

/// Collects diagnostics for one load: the config file and everything it includes.
#[derive(Debug, Default)]
pub struct Diagnostics {
    items: Vec<Diagnostic>,
}

impl Diagnostics {
    /// Records a problem at a span of a source.
    pub fn at(&mut self, sev: Severity, src: &Source, span: Range<usize>, message: String) {
        self.items.push(Diagnostic {
            severity: sev,
            file: src.path.clone(),
            position: Some(src.line_col(span.start)),
            message,
        });
    }

    /// Records an error at a span.
    pub fn error(&mut self, src: &Source, span: Range<usize>, message: impl Into<String>) {
        self.at(Severity::Error, src, span, message.into());
    }

    /// Records a warning at a span.
    pub fn warning(&mut self, src: &Source, span: Range<usize>, message: impl Into<String>) {
        self.at(Severity::Warning, src, span, message.into());
    }

    /// Records a problem with a file as a whole (it cannot be read, say).
    pub fn file_error(&mut self, path: &Path, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Error,
            file: path.to_path_buf(),
            position: None,
            message: message.into(),
        });
    }

    /// Records a warning about a file as a whole.
    pub fn file_warning(&mut self, path: &Path, message: impl Into<String>) {
        self.items.push(Diagnostic {
            severity: Severity::Warning,
            file: path.to_path_buf(),
            position: None,
            message: message.into(),
        });
    }

    /// True when at least one error (not warning) was recorded.
    pub fn has_errors(&self) -> bool {
        self.items.iter().any(|d| d.severity == Severity::Error)
    }

    /// The diagnostics: files in the order they were first mentioned, each by position,
    /// problems with a file as a whole after its positioned ones.
    pub fn into_vec(self) -> Vec<Diagnostic> {
        let mut files: Vec<&Path> = Vec::new();
        for d in &self.items {
            if !files.contains(&d.file.as_path()) {
                files.push(&d.file);
            }
        }
        let mut keyed: Vec<(usize, bool, (usize, usize), usize)> = self
            .items
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let file = files.iter().position(|f| *f == d.file).unwrap_or(0);
                (file, d.position.is_none(), d.position.unwrap_or((0, 0)), i)
            })
            .collect();
        keyed.sort();
        let order: Vec<usize> = keyed.into_iter().map(|k| k.3).collect();
        let mut items: Vec<Option<Diagnostic>> = self.items.into_iter().map(Some).collect();
        order.into_iter().filter_map(|i| items[i].take()).collect()
    }

    /// How many errors and warnings.
    pub fn counts(&self) -> (usize, usize) {
        let errors = self
            .items
            .iter()
            .filter(|d| d.severity == Severity::Error)
            .count();
        (errors, self.items.len() - errors)
    }
}

/// The known name closest to `word`, if it is close enough to be what the user meant.
pub fn did_you_mean<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let limit = (word.chars().count() / 3).max(1) + 1;
    did_you_mean_within(word, known, limit)
}

/// Like [`did_you_mean`] with an explicit largest edit distance.
pub fn did_you_mean_within<'a>(
    word: &str,
    known: impl IntoIterator<Item = &'a str>,
    limit: usize,
) -> Option<&'a str> {
    known
        .into_iter()
        .map(|k| (edit_distance(word, k), k))
        .filter(|&(d, k)| d <= limit && d < k.chars().count())
        .min_by_key(|&(d, _)| d)
        .map(|(_, k)| k)
}

/// A hint sentence for an unknown name: "; did you mean `x`?" or nothing.
pub fn hint<'a>(word: &str, known: impl IntoIterator<Item = &'a str>) -> String {
    did_you_mean(word, known)
        .map(|k| crate::tr!("; did you mean `{k}`?", k))
        .unwrap_or_default()
}

/// "; did you mean `x`?" when a known word is close, else "; " and the fallback advice.
pub fn hint_or<'a>(word: &str, known: impl IntoIterator<Item = &'a str>, fallback: &str) -> String {
    match did_you_mean(word, known) {
        Some(k) => crate::tr!("; did you mean `{k}`?", k),
        None => format!("; {fallback}"),
    }
}

/// Levenshtein distance over characters, case-insensitively.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().flat_map(char::to_lowercase).collect();
    let b: Vec<char> = b.chars().flat_map(char::to_lowercase).collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.iter().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let sub = prev[j] + usize::from(ca != cb);
            cur[j + 1] = sub.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_col_counts_characters_not_bytes() {
        let src = Source::new("x.toml", "a = 1\nname = \"Phòng\" x\n".to_string());
        let off = src.text.find('x').unwrap_or(0);
        assert_eq!(src.line_col(off), (2, 16));
        assert_eq!(src.line_col(0), (1, 1));
        assert_eq!(src.line_col(6), (2, 1));
    }

    #[test]
    fn suggestions() {
        let units = ["vhxh", "vp", "kt", "lanh-dao"];
        assert_eq!(did_you_mean("vhx", units), Some("vhxh"));
        assert_eq!(did_you_mean("lanhdao", units), Some("lanh-dao"));
        assert_eq!(did_you_mean("zzzzzz", units), None);
        assert_eq!(did_you_mean("titel", ["title", "kind"]), Some("title"));
        assert_eq!(hint("zzzz", ["title"]), "");
    }
}
