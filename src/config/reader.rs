//! A walker over a spanned TOML tree that records every problem instead of stopping at the first.
//!
//! serde's `deny_unknown_fields` stops at the first surprise and cannot say "did you mean";
//! this reader asks each table for the keys the schema knows, reports wrong types and missing
//! keys at their exact position, and, when a table is finished, reports every key nobody asked
//! for with the closest known key as a hint.

use std::borrow::Cow;
use std::ops::Range;

use chrono::{NaiveDate, NaiveTime};
use toml::Spanned;
use toml::de::{DeArray, DeTable, DeValue};

use super::diag::{Diagnostics, Source};
use crate::tr;

/// A value with the byte range it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct At<T> {
    /// The value.
    pub v: T,
    /// Where it is in its source file.
    pub span: Range<usize>,
}

impl<T> At<T> {
    /// Wraps a value with its span.
    pub fn new(v: T, span: Range<usize>) -> At<T> {
        At { v, span }
    }
}

/// The file being read and the diagnostics being collected.
pub struct Cx<'s> {
    /// The file.
    pub src: &'s Source,
    /// Where problems go.
    pub diags: &'s mut Diagnostics,
}

impl Cx<'_> {
    /// Records an error at a span of this file.
    pub fn error(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags.error(self.src, span, msg);
    }

    /// Records a warning at a span of this file.
    pub fn warning(&mut self, span: Range<usize>, msg: impl Into<String>) {
        self.diags.warning(self.src, span, msg);
    }
}

pub type Val<'i> = Spanned<DeValue<'i>>;

/// A TOML table being read: remembers which keys the schema asked for.
pub struct Tbl<'a, 'i> {
    table: &'a DeTable<'i>,
    /// Where the table starts (its header, or its first key).
    pub span: Range<usize>,
    /// How the table is named in messages: `email.smtp`, `[[unit]]`.
    pub name: String,
    known: Vec<&'static str>,
    absent: Vec<&'static str>,
}

/// What a TOML value is, for "must be a string, found an integer".
pub fn type_name(v: &DeValue<'_>) -> String {
    match v {
        DeValue::String(_) => tr!("a string"),
        DeValue::Integer(_) => tr!("an integer"),
        DeValue::Float(_) => tr!("a float"),
        DeValue::Boolean(_) => tr!("a boolean"),
        DeValue::Datetime(_) => tr!("a date-time"),
        DeValue::Array(_) => tr!("an array"),
        DeValue::Table(_) => tr!("a table"),
    }
}

impl<'a, 'i> Tbl<'a, 'i> {
    /// Starts reading a table.
    pub fn new(table: &'a DeTable<'i>, span: Range<usize>, name: impl Into<String>) -> Self {
        Tbl {
            table,
            span,
            name: name.into(),
            known: Vec::new(),
            absent: Vec::new(),
        }
    }

    /// The full name of a key of this table, for messages.
    pub fn key_name(&self, key: &str) -> String {
        if self.name.is_empty() {
            key.to_string()
        } else {
            format!(
                "{}.{key}",
                self.name.trim_start_matches("[[").trim_end_matches("]]")
            )
        }
    }

    /// The raw value of a key, marking the key as known.
    pub fn get(&mut self, key: &'static str) -> Option<&'a Val<'i>> {
        self.known.push(key);
        self.table.get(key)
    }

    /// True if the key is present (and marks it known).
    pub fn has(&mut self, key: &'static str) -> bool {
        self.get(key).is_some()
    }

    fn wrong_type(&self, cx: &mut Cx, key: &str, v: &Val<'i>, want: &str) {
        cx.error(
            v.span(),
            tr!(
                "`{key}` must be {want}, found {found}",
                key = self.key_name(key),
                want,
                found = type_name(v.get_ref())
            ),
        );
    }

    /// Records a key the schema requires but the table lacks. It is reported by
    /// [`Tbl::finish`], unless an unknown key there is a misspelling of it: then the unknown
    /// key's message, with its hint, says it all.
    pub fn missing(&mut self, _cx: &mut Cx, key: &'static str) {
        self.absent.push(key);
    }

    fn report_missing(&self, cx: &mut Cx, key: &str) {
        let msg = if self.name.is_empty() {
            tr!("missing `{key}` in the file", key)
        } else if self.name.starts_with("[[") {
            tr!("missing `{key}` in this `{table}`", key, table = self.name)
        } else {
            tr!("missing `{key}` in `[{table}]`", key, table = self.name)
        };
        cx.error(self.span.clone(), msg);
    }

    /// An optional string.
    pub fn str(&mut self, cx: &mut Cx, key: &'static str) -> Option<At<String>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(At::new(s.to_string(), v.span())),
            _ => {
                self.wrong_type(cx, key, v, &tr!("a string"));
                None
            }
        }
    }

    /// A required string.
    pub fn req_str(&mut self, cx: &mut Cx, key: &'static str) -> Option<At<String>> {
        if !self.has(key) {
            self.missing(cx, key);
            return None;
        }
        self.str(cx, key)
    }

    /// A required string of one line (a name or title: it goes into message headers and
    /// subjects), with no control character in it.
    pub fn req_line(&mut self, cx: &mut Cx, key: &'static str) -> Option<At<String>> {
        let s = self.req_str(cx, key)?;
        if s.v.chars().any(char::is_control) {
            cx.error(
                s.span.clone(),
                tr!(
                    "`{key}` must be one line, without line breaks or tabs: it is shown in email headers and subjects",
                    key
                ),
            );
        }
        Some(s)
    }

    /// An optional boolean.
    pub fn bool(&mut self, cx: &mut Cx, key: &'static str) -> Option<bool> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Boolean(b) => Some(*b),
            _ => {
                self.wrong_type(cx, key, v, &tr!("true or false"));
                None
            }
        }
    }

    /// An optional integer.
    pub fn int(&mut self, cx: &mut Cx, key: &'static str) -> Option<At<i64>> {
        let v = self.get(key)?;
        match int_of(v) {
            Some(n) => Some(At::new(n, v.span())),
            None => {
                self.wrong_type(cx, key, v, &tr!("an integer"));
                None
            }
        }
    }

    /// An optional list of strings; a single string is taken as a list of one.
    pub fn str_list(&mut self, cx: &mut Cx, key: &'static str) -> Option<Vec<At<String>>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::String(s) => Some(vec![At::new(s.to_string(), v.span())]),
            DeValue::Array(items) => Some(self.strings_of(cx, key, items)),
            _ => {
                self.wrong_type(cx, key, v, &tr!("a list of strings"));
                None
            }
        }
    }

    fn strings_of(&self, cx: &mut Cx, key: &str, items: &DeArray<'i>) -> Vec<At<String>> {
        let mut out = Vec::new();
        for item in items.iter() {
            match item.get_ref() {
                DeValue::String(s) => out.push(At::new(s.to_string(), item.span())),
                other => cx.error(
                    item.span(),
                    tr!(
                        "`{key}` must list strings, found {found}",
                        key = self.key_name(key),
                        found = type_name(other)
                    ),
                ),
            }
        }
        out
    }

    /// An optional sub-table (`[a.b]` or an inline table).
    pub fn table(&mut self, cx: &mut Cx, key: &'static str) -> Option<Tbl<'a, 'i>> {
        let v = self.get(key)?;
        match v.get_ref() {
            DeValue::Table(t) => Some(Tbl::new(t, v.span(), self.key_name(key))),
            _ => {
                self.wrong_type(cx, key, v, &tr!("a table"));
                None
            }
        }
    }

    /// The entries of a table of tables (`[policy.NAME]`), in file order.
    pub fn named_tables(
        &mut self,
        cx: &mut Cx,
        key: &'static str,
    ) -> Vec<(At<String>, Tbl<'a, 'i>)> {
        // Every key of the outer table is a name, so it is not `finish`ed.
        let Some(outer) = self.table(cx, key) else {
            return Vec::new();
        };
        let mut out = Vec::new();
        for (k, v) in outer.table.iter() {
            let name = At::new(k.get_ref().to_string(), k.span());
            match v.get_ref() {
                DeValue::Table(t) => {
                    let label = format!("{key}.{}", name.v);
                    out.push((name, Tbl::new(t, v.span(), label)));
                }
                other => cx.error(
                    v.span(),
                    tr!(
                        "`{key}.{name}` must be a table, found {found}",
                        key,
                        name = name.v,
                        found = type_name(other)
                    ),
                ),
            }
        }
        out
    }

    /// A table of named values (`data = { ten_don_vi = "…" }`): each name with its value, in
    /// file order; the values are not checked here.
    pub fn entries(&mut self, cx: &mut Cx, key: &'static str) -> Vec<(At<String>, &'a Val<'i>)> {
        let Some(outer) = self.table(cx, key) else {
            return Vec::new();
        };
        outer
            .table
            .iter()
            .map(|(k, v)| (At::new(k.get_ref().to_string(), k.span()), v))
            .collect()
    }

    /// An array of tables (`[[unit]]`).
    pub fn tables(&mut self, cx: &mut Cx, key: &'static str) -> Vec<Tbl<'a, 'i>> {
        let Some(v) = self.get(key) else {
            return Vec::new();
        };
        match v.get_ref() {
            DeValue::Array(items) => {
                let mut out = Vec::new();
                for item in items.iter() {
                    match item.get_ref() {
                        DeValue::Table(t) => {
                            out.push(Tbl::new(t, item.span(), format!("[[{key}]]")))
                        }
                        other => cx.error(
                            item.span(),
                            tr!(
                                "`{key}` must hold tables, found {found}",
                                key,
                                found = type_name(other)
                            ),
                        ),
                    }
                }
                out
            }
            DeValue::Table(t) => {
                cx.error(
                    v.span(),
                    tr!("`{key}` is a list: write `[[{key}]]`, not `[{key}]`", key),
                );
                // Read it as a list of one, so what refers to it is not reported too.
                vec![Tbl::new(t, v.span(), format!("[[{key}]]"))]
            }
            _ => {
                self.wrong_type(cx, key, v, &tr!("a list of tables"));
                Vec::new()
            }
        }
    }

    /// Reports every key that the schema did not ask for, and every required key missing.
    pub fn finish(self, cx: &mut Cx) {
        let mut hinted: Vec<&str> = Vec::new();
        for (k, _) in self.table.iter() {
            let key: &str = k.get_ref();
            if self.known.contains(&key) {
                continue;
            }
            let suggestion = super::diag::did_you_mean(key, self.known.iter().copied());
            if let Some(s) = suggestion {
                hinted.push(s);
            }
            let hint = suggestion
                .map(|s| tr!("; did you mean `{k}`?", k = s))
                .unwrap_or_default();
            let msg = if self.name.is_empty() {
                tr!("unknown key `{key}` at the top level{hint}", key, hint)
            } else {
                tr!(
                    "unknown key `{key}` in `{table}`{hint}",
                    key,
                    table = self.name,
                    hint
                )
            };
            cx.error(k.span(), msg);
        }
        for key in &self.absent {
            if !hinted.contains(key) {
                self.report_missing(cx, key);
            }
        }
    }
}

/// An integer value, if it is one and fits.
pub fn int_of(v: &Val<'_>) -> Option<i64> {
    match v.get_ref() {
        DeValue::Integer(i) => i64::from_str_radix(&i.as_str().replace('_', ""), i.radix()).ok(),
        _ => None,
    }
}

/// A string value's text, if it is a string.
pub fn str_of<'v>(v: &'v Val<'_>) -> Option<&'v Cow<'v, str>> {
    match v.get_ref() {
        DeValue::String(s) => Some(s),
        _ => None,
    }
}

/// Parses `YYYY-MM-DD`, explaining what is wrong with a bad one.
pub fn parse_date(s: &str) -> Result<NaiveDate, String> {
    let parts: Vec<&str> = s.split('-').collect();
    let shape_ok = parts.len() == 3
        && parts[0].len() == 4
        && parts[1].len() == 2
        && parts[2].len() == 2
        && parts.iter().all(|p| p.bytes().all(|b| b.is_ascii_digit()));
    if !shape_ok {
        return Err(tr!(
            "`{value}` is not a date; write YYYY-MM-DD, e.g. \"2025-10-15\"",
            value = s
        ));
    }
    let (y, m, d) = (
        parts[0].parse::<i32>().unwrap_or(0),
        parts[1].parse::<u32>().unwrap_or(0),
        parts[2].parse::<u32>().unwrap_or(0),
    );
    if !(1..=12).contains(&m) {
        return Err(tr!(
            "`{value}` is not a date: there is no month {month}",
            value = s,
            month = m
        ));
    }
    NaiveDate::from_ymd_opt(y, m, d).ok_or_else(|| {
        let last = crate::calendar::days_in_month(y, m);
        tr!(
            "`{value}` is not a date: {month} has {last} days",
            value = s,
            month = format!("{y}-{m:02}"),
            last
        )
    })
}

/// Parses `HH:MM` (24-hour).
pub fn parse_time(s: &str) -> Result<NaiveTime, String> {
    let ok = s.len() == 5 && s.as_bytes()[2] == b':';
    let t = if ok {
        NaiveTime::parse_from_str(s, "%H:%M").ok()
    } else {
        None
    };
    t.ok_or_else(|| {
        tr!(
            "`{value}` is not a time of day; write HH:MM (24-hour), e.g. \"08:00\"",
            value = s
        )
    })
}

impl Tbl<'_, '_> {
    /// An optional date: a string `"YYYY-MM-DD"` or a TOML local date.
    pub fn date(&mut self, cx: &mut Cx, key: &'static str) -> Option<At<NaiveDate>> {
        let v = self.get(key)?;
        date_of(cx, v, &self.key_name(key))
    }

    /// An optional time of day `"HH:MM"`.
    pub fn time(&mut self, cx: &mut Cx, key: &'static str) -> Option<At<NaiveTime>> {
        let s = self.str(cx, key)?;
        match parse_time(&s.v) {
            Ok(t) => Some(At::new(t, s.span)),
            Err(e) => {
                cx.error(s.span, e);
                None
            }
        }
    }
}

/// A date from a string or a TOML date value.
pub fn date_of(cx: &mut Cx, v: &Val<'_>, name: &str) -> Option<At<NaiveDate>> {
    match v.get_ref() {
        DeValue::String(s) => match parse_date(s) {
            Ok(d) => Some(At::new(d, v.span())),
            Err(e) => {
                cx.error(v.span(), e);
                None
            }
        },
        DeValue::Datetime(dt) => match (dt.date, dt.time) {
            (Some(d), None) => NaiveDate::from_ymd_opt(d.year.into(), d.month.into(), d.day.into())
                .map(|d| At::new(d, v.span())),
            _ => {
                cx.error(
                    v.span(),
                    tr!(
                        "`{name}` must be a date without a time, e.g. \"2025-10-15\"",
                        name
                    ),
                );
                None
            }
        },
        other => {
            cx.error(
                v.span(),
                tr!(
                    "`{name}` must be a date \"YYYY-MM-DD\", found {found}",
                    name,
                    found = type_name(other)
                ),
            );
            None
        }
    }
}
