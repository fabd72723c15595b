//! `[channels.zalo]` and `unit.zalo`: Zalo Notification Service (ZNS) template messages to
//! Vietnamese mobile numbers through the ward's Official Account.
//!
//! A ZNS message is a template approved in Zalo's console, filled with named parameters: the
//! config gives, for each reminder kind, the template id and the value of each parameter as
//! a minijinja template over the same data as the email templates (`"{{ unit.name }}"`),
//! cut to `max_len` characters when given. Numbers are written as people write them
//! (`0912 345 678`, `+84 912 345 678`) and kept as Zalo wants them (`84912345678`).

use std::collections::BTreeMap;
use std::path::Path;

use super::raw::*;
use super::reader::{At, Cx, Tbl, int_of, str_of};
use super::{Secret, Zalo, ZaloTemplate};
use crate::state::TemplateKind;
use crate::tr;

/// The kinds a ZNS template is needed for: the reminders and the leadership's done notice
/// (the digest and the admins' notices do not go to Zalo).
pub const ZALO_KINDS: &[TemplateKind] = &[
    TemplateKind::Before,
    TemplateKind::Due,
    TemplateKind::After,
    TemplateKind::Escalated,
    TemplateKind::Resolved,
];

/// A Vietnamese mobile number as Zalo wants it, `84` and nine digits (`0912 345 678` →
/// `84912345678`), or `None` if it is not one. Mobile numbers start 03, 05, 07, 08 or 09.
pub fn normalise_phone(s: &str) -> Option<String> {
    // Spaces of any kind (a non-breaking one pasted from a spreadsheet), dots, dashes,
    // brackets: "+84 (0) 912 345 678" is "+840912345678".
    let digits: String = s
        .chars()
        .filter(|c| !(c.is_whitespace() || matches!(c, '.' | '-' | '(' | ')')))
        .collect();
    let national = digits
        .strip_prefix("+84")
        .or_else(|| digits.strip_prefix("0084"))
        .or_else(|| digits.strip_prefix("84").filter(|r| r.len() == 9))
        .map_or(digits.as_str(), |r| r);
    let rest = national.strip_prefix('0').unwrap_or(national);
    let ok = rest.len() == 9
        && rest.bytes().all(|b| b.is_ascii_digit())
        && matches!(rest.as_bytes()[0], b'3' | b'5' | b'7' | b'8' | b'9');
    ok.then(|| format!("84{rest}"))
}

/// `unit.zalo`: its numbers, normalised; each one that is not a mobile number is an error.
pub(super) fn read_phones(cx: &mut Cx, t: &mut Tbl) -> Vec<At<String>> {
    let mut out = Vec::new();
    for p in t.str_list(cx, "zalo").unwrap_or_default() {
        match normalise_phone(&p.v) {
            Some(n) => out.push(At::new(n, p.span)),
            None => cx.error(
                p.span,
                tr!(
                    "`{number}` is not a Vietnamese mobile number: write the 10 digits, starting 03, 05, 07, 08 or 09 (e.g. \"0912 345 678\")",
                    number = p.v
                ),
            ),
        }
    }
    out
}

/// `[channels.zalo]`.
pub(super) fn read_zalo(
    cx: &mut Cx,
    z: &mut Tbl,
    base: &Path,
    secrets: &mut Vec<(At<String>, Secret)>,
) -> Option<Zalo> {
    let app_id = match z.get("app_id") {
        None => {
            z.missing(cx, "app_id");
            None
        }
        Some(v) => match (str_of(v), int_of(v)) {
            (Some(s), _) if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) => {
                Some(s.to_string())
            }
            (None, Some(n)) if n > 0 => Some(n.to_string()),
            _ => {
                cx.error(
                    v.span(),
                    tr!("`channels.zalo.app_id` must be the app's id from Zalo for Developers (digits)"),
                );
                None
            }
        },
    };
    let secret_key = secret(cx, z, "secret_key_file", "secret_key_env", base, secrets);
    if secret_key.is_none() {
        z.missing(cx, "secret_key_file");
    }
    let refresh_token_file = match z.str(cx, "refresh_token_file") {
        Some(f) => {
            let path = rel(base, &f.v);
            if !path.is_file() {
                cx.warning(
                    f.span,
                    tr!(
                        "`refresh_token_file` {path} does not exist: fine once the database holds the tokens (the daemon takes them at its first start); before that, put the OA's refresh token in it",
                        path = path.display()
                    ),
                );
            }
            Some(path)
        }
        None => {
            z.missing(cx, "refresh_token_file");
            None
        }
    };
    let url = |cx: &mut Cx, z: &mut Tbl, key: &'static str, default: &str| {
        z.str(cx, key)
            .map(|u| {
                if let Some(why) = super::rules::webhook_url_problem(&u.v) {
                    cx.error(
                        u.span.clone(),
                        tr!("`{key}` `{url}` {why}", key, url = u.v, why),
                    );
                }
                u.v.trim_end_matches('/').to_string()
            })
            .unwrap_or_else(|| default.to_string())
    };
    let api_url = url(cx, z, "api_url", "https://business.openapi.zalo.me");
    let oauth_url = url(cx, z, "oauth_url", "https://oauth.zaloapp.com");
    let development = match z.str(cx, "mode") {
        None => false,
        Some(m) if m.v == "production" => false,
        Some(m) if m.v == "development" => true,
        Some(m) => {
            cx.error(
                m.span,
                tr!("`mode` is \"production\" (the default) or \"development\" (sends only to the OA's own admins, to try a template)"),
            );
            false
        }
    };
    let max_per_minute = per_minute(cx, z, "channels.zalo", 300);
    let mut templates = BTreeMap::new();
    let mut seen = Vec::new();
    let span = z.span.clone();
    for (name, mut t) in z.named_tables(cx, "templates") {
        let Some(&kind) = ZALO_KINDS.iter().find(|k| k.as_str() == name.v) else {
            let kinds: Vec<&str> = ZALO_KINDS.iter().map(|k| k.as_str()).collect();
            cx.error(
                name.span,
                tr!(
                    "`{name}` is not a kind Zalo messages are sent for: {kinds}",
                    name = name.v,
                    kinds = kinds.join(", ")
                ),
            );
            continue;
        };
        seen.push(kind);
        if let Some(tpl) = read_template(cx, &mut t) {
            templates.insert(kind, tpl);
        }
        t.finish(cx);
    }
    for kind in ZALO_KINDS {
        if !seen.contains(kind) {
            cx.error(
                span.clone(),
                tr!(
                    "no `[channels.zalo.templates.{kind}]`: every reminder kind needs its approved ZNS template (its id and parameters)",
                    kind
                ),
            );
        }
    }
    Some(Zalo {
        app_id: app_id?,
        secret_key: secret_key?,
        refresh_token_file: refresh_token_file?,
        api_url,
        oauth_url,
        development,
        max_per_minute,
        templates,
    })
}

/// One kind's `{ id = "…", data = { param = "{{ … }}" }, max_len = { param = 30 } }`.
fn read_template(cx: &mut Cx, t: &mut Tbl) -> Option<ZaloTemplate> {
    let id = t.req_str(cx, "id");
    let mut data = Vec::new();
    for (param, v) in t.entries(cx, "data") {
        match str_of(v) {
            Some(expr) => {
                let mut env = minijinja::Environment::new();
                env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
                if let Err(e) = env.template_from_str(expr) {
                    let msg = match e.detail() {
                        Some(detail) => {
                            tr!("parameter `{param}`: {detail}", param = param.v, detail)
                        }
                        None => tr!("parameter `{param}`: syntax error", param = param.v),
                    };
                    cx.error(v.span(), msg);
                }
                data.push((param.v, expr.to_string()));
            }
            None => cx.error(
                v.span(),
                tr!(
                    "parameter `{param}` must be a string, e.g. \"{{{{ unit.name }}}}\"",
                    param = param.v
                ),
            ),
        }
    }
    if data.is_empty() {
        cx.error(
            t.span.clone(),
            tr!("no `data`: give the value of each parameter of the ZNS template"),
        );
    }
    let mut max_len = BTreeMap::new();
    for (param, v) in t.entries(cx, "max_len") {
        match int_of(v)
            .and_then(|n| usize::try_from(n).ok())
            .filter(|&n| n > 0)
        {
            Some(n) if data.iter().any(|(p, _)| *p == param.v) => {
                max_len.insert(param.v, n);
            }
            Some(_) => cx.error(
                param.span,
                tr!(
                    "`{param}` is not one of this template's `data` parameters",
                    param = param.v
                ),
            ),
            None => cx.error(
                v.span(),
                tr!("a `max_len` is a positive number of characters"),
            ),
        }
    }
    Some(ZaloTemplate {
        id: id?.v,
        data,
        max_len,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_people_write_them() {
        for (written, kept) in [
            ("0912 345 678", Some("84912345678")),
            ("+84 912 345 678", Some("84912345678")),
            ("84912345678", Some("84912345678")),
            ("0912.345.678", Some("84912345678")),
            ("035-123-4567", Some("84351234567")),
            ("+84 (0) 912 345 678", Some("84912345678")),
            ("0084 912 345 678", Some("84912345678")),
            ("0912\u{a0}345\u{a0}678", Some("84912345678")),
            ("0212 345 678", None),
            ("091234567", None),
            ("09123456789", None),
            ("1900 1234", None),
            ("số điện thoại", None),
        ] {
            assert_eq!(normalise_phone(written).as_deref(), kept, "{written}");
        }
    }
}
