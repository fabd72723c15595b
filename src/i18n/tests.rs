use std::collections::{BTreeMap, HashMap};
use std::path::Path;

use super::*;

/// Every `tr!("…")` message in `src/` (outside this module), by text, with where it is.
fn messages_in_sources() -> BTreeMap<String, String> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut found = BTreeMap::new();
    let mut dirs = vec![root.clone()];
    while let Some(dir) = dirs.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            panic!("cannot list {}", dir.display());
        };
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                if p != root.join("i18n") {
                    dirs.push(p);
                }
            } else if p.extension().is_some_and(|x| x == "rs") {
                let text = std::fs::read_to_string(&p).unwrap_or_default();
                for (msg, line) in tr_literals(&text) {
                    found
                        .entry(msg)
                        .or_insert_with(|| format!("{}:{line}", p.display()));
                }
            }
        }
    }
    found
}

/// The string literal after each `tr!(` of a Rust file, unescaped, with its line.
fn tr_literals(text: &str) -> Vec<(String, usize)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(i) = text[from..].find("tr!(") {
        let at = from + i;
        from = at + 4;
        let before = text[..at].chars().next_back();
        if before.is_some_and(|c| c.is_alphanumeric() || c == '_') {
            continue;
        }
        let rest = text[from..].trim_start();
        let Some(body) = rest.strip_prefix('"') else {
            continue;
        };
        let mut msg = String::new();
        let mut chars = body.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '"' => break,
                '\\' => match chars.next() {
                    Some('n') => msg.push('\n'),
                    Some('t') => msg.push('\t'),
                    Some('\n') => {
                        while chars.peek().is_some_and(|c| c.is_whitespace()) {
                            chars.next();
                        }
                    }
                    Some(other) => msg.push(other),
                    None => {}
                },
                c => msg.push(c),
            }
        }
        let line = text[..at].matches('\n').count() + 1;
        out.push((msg, line));
    }
    out
}

#[test]
fn the_vietnamese_catalogue_has_every_message_and_no_other() {
    let vi: HashMap<String, String> = match toml::from_str(VI_SOURCE) {
        Ok(v) => v,
        Err(e) => panic!("src/i18n/vi.toml: {e}"),
    };
    let used = messages_in_sources();
    assert!(used.len() > 20, "found only {} tr! messages", used.len());
    let mut problems = Vec::new();
    for (msg, at) in &used {
        match vi.get(msg) {
            None => problems.push(format!("{at}: no Vietnamese for {msg:?}")),
            Some(t) if t.trim().is_empty() => problems.push(format!("{at}: empty for {msg:?}")),
            Some(t) if placeholders(t) != placeholders(msg) => problems.push(format!(
                "{at}: {msg:?} fills {:?}, its Vietnamese {:?}",
                placeholders(msg),
                placeholders(t)
            )),
            Some(_) => {}
        }
    }
    for msg in vi.keys() {
        if !used.contains_key(msg) {
            problems.push(format!("vi.toml: {msg:?} is used by no tr!"));
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));
}

#[test]
fn fill_replaces_names_and_keeps_braces() {
    let n = 3;
    let args: [(&str, &dyn Display); 2] = [("n", &n), ("key", &"title")];
    assert_eq!(fill("{n} errors in `{key}`", &args), "3 errors in `title`");
    assert_eq!(fill("{{ x }} {n}", &args), "{ x } 3");
    assert_eq!(fill("{unknown} {", &args), "{unknown} {");
    assert_eq!(placeholders("{b} {a} {{c}} {b}"), vec!["a", "b"]);
}

#[test]
fn the_locale_picks_the_language() {
    let env = |pairs: &'static [(&'static str, &'static str)]| {
        move |name: &str| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    };
    assert_eq!(Lang::of_locale(env(&[("LANG", "vi_VN.UTF-8")])), Lang::Vi);
    assert_eq!(Lang::of_locale(env(&[("LANG", "C")])), Lang::En);
    assert_eq!(Lang::of_locale(env(&[])), Lang::En);
    assert_eq!(
        Lang::of_locale(env(&[("LC_ALL", "C.UTF-8"), ("LANG", "vi_VN.UTF-8")])),
        Lang::En
    );
    assert_eq!(
        Lang::of_locale(env(&[
            ("LC_ALL", ""),
            ("LC_MESSAGES", "vi_VN"),
            ("LANG", "C")
        ])),
        Lang::Vi
    );
}

#[test]
fn the_scanner_reads_literals_across_lines() {
    let src = "let a = tr!(\n    \"one `{x}` \\\"q\\\"\",\n    x);\nlet b = str!(\"no\");\n";
    assert_eq!(tr_literals(src), vec![("one `{x}` \"q\"".to_string(), 1)]);
}
