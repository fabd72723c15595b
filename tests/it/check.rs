//! `nhacviec check`: the shipped config, and broken configs with their exact messages.
//!
//! The broken configs are `tests/fixtures/broken/*.toml`: each is `tests/fixtures/base.toml` (a
//! minimal valid config) with one defect (`several.toml` and `rule-missing-title.toml` with
//! more, as their first line says). They set `holidays = "none"` and an admin password file so
//! that `check` has no warning of its own to add, whatever the date.
//!
//! `check` warns about a year within the next 12 months with no official calendar schedule;
//! "now" is the clock the harness sets (`NHACVIEC_CLOCK`), so the warnings are pinned for
//! any date the tests choose.

use std::collections::BTreeSet;

use crate::support::{CLOCK, Test, lines, plural, repo_toml};

/// A broken fixture run through `check`, which must fail.
fn broken(name: &str) -> Test {
    Test::new()
        .fixture(&format!("broken/{name}.toml"))
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .status(1)
}

/// The years of the official schedules the shipped config includes.
fn shipped_schedule_years() -> Vec<i32> {
    let config = repo_toml("config/nhacviec.toml");
    config["calendar"]["include"]
        .as_array()
        .unwrap()
        .iter()
        .map(|path| {
            let schedule = repo_toml(&format!("config/{}", path.as_str().unwrap()));
            i32::try_from(schedule["year"].as_integer().unwrap()).unwrap()
        })
        .collect()
}

/// The warning `check` gives for a year ahead with no official schedule.
fn no_schedule(config: &str, year: i32) -> String {
    format!(
        "{config}: warning: no official calendar schedule for {year}: its holidays are the statutory estimate (Tết, Quốc khánh and day swaps may differ); add `calendar/vn-{year}.toml` when the government announces it"
    )
}

/// `check` on the shipped config at `clock`: its warnings, the calendar ones first.
fn shipped_check(clock: &str, calendar: &[i32]) {
    let shown = "{repo}/config/nhacviec.toml";
    let mut warnings: Vec<String> = calendar.iter().map(|y| no_schedule(shown, *y)).collect();
    warnings.push(format!(
        "{shown}: warning: no `server.admin_password_file`: the status page /status is off"
    ));
    let stderr: Vec<&str> = warnings.iter().map(String::as_str).collect();
    Test::new()
        .shipped()
        .clock(clock)
        .args(&["check"])
        .stdout(&format!(
            "{shown}: ok: 10 units, 3 groups, 10 rules, 2 policies, {}\n",
            plural(warnings.len(), "warning")
        ))
        .stderr(&lines(&stderr))
        .run();
}

#[test]
fn shipped_config_is_valid_with_its_warnings() {
    assert_eq!(shipped_schedule_years(), [2025, 2026], "the premise");
    // On 15/09/2025 every year within 12 months has its official schedule.
    shipped_check(CLOCK, &[]);
}

#[test]
fn the_calendar_warning_follows_the_clock() {
    // 2027 comes within 12 months on 01/01/2026 and has no schedule; 2028 not until 2027.
    shipped_check("2025-12-31T23:59:00+07:00", &[]);
    shipped_check("2026-01-01T00:00:00+07:00", &[2027]);
    shipped_check("2027-01-01T08:00:00+07:00", &[2027, 2028]);
}

#[test]
fn a_bad_clock_is_refused_by_every_command() {
    for args in [&["check"][..], &["plan"], &["calendar", "--year", "2026"]] {
        let out = Test::new()
            .shipped()
            .clock("2025-07-04 07:59")
            .args(args)
            .stdout("")
            .status(1)
            .run();
        assert_eq!(
            out.stderr,
            "error: NHACVIEC_CLOCK=`2025-07-04 07:59` is not an instant (premature end of input): write an instant with its offset, optionally followed by a speed, e.g. NHACVIEC_CLOCK=\"2025-07-04T07:59:58+07:00\" or \"2025-07-04T07:59:58+07:00@x600\"\n",
            "{args:?}"
        );
    }
}

#[test]
fn a_name_must_be_one_line() {
    let text = crate::support::read(
        &std::path::Path::new(crate::support::REPO).join("tests/fixtures/base.toml"),
    )
    .replacen(
        "name = \"Văn phòng",
        "name = \"Văn phòng\\r\\nBcc: x@example.invalid",
        1,
    );
    let out = Test::new()
        .config(&text)
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .status(1)
        .run();
    assert!(
        out.stderr.contains(": error: `name` must be one line, without line breaks or tabs: it is shown in email headers and subjects\n"),
        "{}",
        out.stderr
    );
}

#[test]
fn base_fixture_is_valid_and_silent() {
    // Every broken fixture is this file with one defect: it must have none of its own.
    let out = Test::new()
        .fixture("base.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .stderr("")
        .run();
    assert!(
        out.stdout
            .starts_with("nhacviec.toml: ok: 2 units, 0 groups, 2 rules, "),
        "{}",
        out.stdout
    );
}

#[test]
fn warnings_alone_do_not_fail() {
    Test::new()
        .fixture("unused-policy.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .stdout("nhacviec.toml: ok: 2 units, 0 groups, 2 rules, 2 policies, 1 warning\n")
        .stderr("nhacviec.toml:15:9: warning: policy `nhiem-vu` is not used by any rule\n")
        .run();
}

#[test]
fn missing_config_file() {
    Test::new()
        .config_path("{tmp}/khong-co.toml")
        .args(&["check"])
        .stderr(&lines(&[
            "{tmp}/khong-co.toml: error: cannot read the config file: No such file or directory (os error 2)",
            "{tmp}/khong-co.toml: 1 error; the config was not applied",
        ]))
        .stdout("")
        .status(1)
        .run();
}

#[test]
fn toml_syntax_error() {
    broken("syntax-error")
        .stderr(&lines(&[
            "nhacviec.toml:4:31: error: TOML syntax: invalid basic string, expected `\"`",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .stdout("")
        .run();
}

#[test]
fn unknown_key_with_hint() {
    broken("unknown-key")
        .stderr(&lines(&[
            "nhacviec.toml:28:1: error: unknown key `titel` in `[[rule]]`; did you mean `title`?",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn unknown_unit_with_hint() {
    broken("unknown-unit")
        .stderr(&lines(&[
            "nhacviec.toml:31:10: error: unknown unit or group `vhx`; did you mean `vhxh`?",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn unknown_group_with_hint() {
    broken("unknown-group")
        .stderr(&lines(&[
            "nhacviec.toml:35:10: error: unknown unit or group `phong-bna`; did you mean `phong-ban`?",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn duplicate_unit_id() {
    broken("duplicate-unit")
        .stderr(&lines(&[
            "nhacviec.toml:26:6: error: duplicate unit id `vp` (first defined on line 16)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn impossible_date() {
    broken("bad-date")
        .stderr(&lines(&[
            "nhacviec.toml:32:19: error: `2025-02-30` is not a date: 2025-02 has 28 days",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn bad_offset() {
    broken("bad-offset")
        .stderr(&lines(&[
            "nhacviec.toml:16:18: error: bad offset `7x`: write a number and a unit: d (calendar days), wd (working days), h (hours) or m (minutes), e.g. \"3wd\"",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn unknown_time_zone() {
    broken("unknown-timezone")
        .stderr(&lines(&[
            "nhacviec.toml:5:12: error: unknown time zone `Asia/Ho_Chi_Min`; did you mean `Asia/Ho_Chi_Minh`? (an IANA name; Vietnam is `Asia/Ho_Chi_Minh`)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn missing_secret_file() {
    broken("missing-secret")
        .stderr(&lines(&[
            "nhacviec.toml:19:17: error: secret file `secrets/nope` does not exist (looked at secrets/nope); create it holding only the secret, readable by the daemon's user",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn missing_secret_file_named_by_absolute_path() {
    // With the config named by its absolute path, the secret is looked for next to it, and
    // the message gives that place in full.
    broken("missing-secret")
        .config_path("{tmp}/nhacviec.toml")
        .stderr(&lines(&[
            "{tmp}/nhacviec.toml:19:17: error: secret file `secrets/nope` does not exist (looked at {tmp}/secrets/nope); create it holding only the secret, readable by the daemon's user",
            "{tmp}/nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn rule_owed_by_nobody() {
    broken("owed-by-nobody")
        .stderr(&lines(&[
            "nhacviec.toml:29:1: error: rule `bao-cao-9-thang` is owed by nobody: its `units` name no unit",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn unit_with_no_way_to_reach_it() {
    broken("unreachable-unit")
        .stderr(&lines(&[
            "nhacviec.toml:20:1: error: unit `vhxh` has no way to reach it: give it an `email` (or `telegram`, `webhook`, `zalo`)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn escalate_from_not_among_after() {
    broken("escalate-from")
        .stderr(&lines(&[
            "nhacviec.toml:17:17: error: `escalate_from = \"5wd\"` is not one of policy `default`'s `after` steps (1wd, 3wd)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn unknown_policy_with_hint() {
    broken("unknown-policy")
        .stderr(&lines(&[
            "nhacviec.toml:32:10: error: unknown policy `defualt`; did you mean `default`?",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn unit_written_as_a_table() {
    // The fixture's only unit is written `[unit]`: it is reported, then read as a list of
    // one, so the rules that name it are not reported too (the coordinator `vhxh` does not
    // exist in this fixture).
    broken("unit-not-array")
        .stderr(&lines(&[
            "nhacviec.toml:6:15: error: unknown unit `vhxh`",
            "nhacviec.toml:15:1: error: `unit` is a list: write `[[unit]]`, not `[unit]`",
            "nhacviec.toml: 2 errors; the config was not applied",
        ]))
        .run();
}

#[test]
fn several_problems_reported_at_once_in_file_order() {
    // Found by different passes (syntax of values, names, references), reported together.
    broken("several")
        .stderr(&lines(&[
            "nhacviec.toml:6:12: error: unknown time zone `Asia/Ho_Chi_Min`; did you mean `Asia/Ho_Chi_Minh`? (an IANA name; Vietnam is `Asia/Ho_Chi_Minh`)",
            "nhacviec.toml:17:18: error: bad offset `7x`: write a number and a unit: d (calendar days), wd (working days), h (hours) or m (minutes), e.g. \"3wd\"",
            "nhacviec.toml:29:1: error: unit `vp` has no way to reach it: give it an `email` (or `telegram`, `webhook`, `zalo`)",
            "nhacviec.toml:30:6: error: duplicate unit id `vp` (first defined on line 20)",
            "nhacviec.toml:37:1: error: unknown key `refrence` in `[[rule]]`; did you mean `reference`?",
            "nhacviec.toml:40:10: error: unknown unit or group `vhx`; did you mean `vhxh`?",
            "nhacviec.toml:41:19: error: `2025-02-30` is not a date: 2025-02 has 28 days",
            "nhacviec.toml: 7 errors; the config was not applied",
        ]))
        .run();
}

#[test]
fn a_rule_missing_its_title_still_has_its_units_checked() {
    // The misspelt `titel` is reported once, as an unknown key, not also as a missing `title`.
    broken("rule-missing-title")
        .stderr(&lines(&[
            "nhacviec.toml:28:1: error: unknown key `titel` in `[[rule]]`; did you mean `title`?",
            "nhacviec.toml:31:10: error: unknown unit or group `vhx`; did you mean `vhxh`?",
            "nhacviec.toml: 2 errors; the config was not applied",
        ]))
        .run();
}

#[test]
fn a_unit_missing_its_name_is_not_also_reported_unknown() {
    broken("unit-missing-name")
        .stderr(&lines(&[
            "nhacviec.toml:15:1: error: missing `name` in this `[[unit]]`",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

/// The base fixture with `from` replaced by `to` (one defect made inline).
fn base_with(from: &str, to: &str) -> Test {
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/base.toml"),
    )
    .unwrap();
    assert!(base.contains(from), "the base fixture has no `{from}`");
    Test::new()
        .config(&base.replacen(from, to, 1))
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .status(1)
}

#[test]
fn an_offset_is_not_a_time_zone() {
    base_with("timezone = \"Asia/Ho_Chi_Minh\"", "timezone = \"UTC+7\"")
        .stderr(&lines(&[
            "nhacviec.toml:8:12: error: `UTC+7` is an offset, not a time zone: write an IANA name (Vietnam, UTC+7, is `Asia/Ho_Chi_Minh`)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn a_bad_address_is_not_also_an_unreachable_unit() {
    base_with("vanphong@example.invalid", "vanphong.example.invalid")
        .stderr(&lines(&[
            "nhacviec.toml:21:10: error: `vanphong.example.invalid` is not an email address (write name@domain)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn enumerated_values_get_a_hint_or_the_list() {
    base_with("kind = \"report\"", "kind = \"reprot\"")
        .stderr(&lines(&[
            "nhacviec.toml:30:8: error: unknown kind `reprot`; did you mean `report`?",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
    base_with("kind = \"report\"", "kind = \"bao-cao\"")
        .stderr(&lines(&[
            "nhacviec.toml:30:8: error: unknown kind `bao-cao`; use \"report\" (báo cáo) or \"task\" (nhiệm vụ)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

#[test]
fn a_rule_without_kind_is_an_error_even_with_an_id_that_looks_alike() {
    // `id` is close to `kind` by spelling: that must not hide the missing key.
    let base = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/base.toml"),
    )
    .unwrap();
    let text = base.replacen("kind = \"report\"\n", "", 1);
    Test::new()
        .config(&text)
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .status(1)
        .stderr(&lines(&[
            "nhacviec.toml:28:1: error: missing `kind` in this `[[rule]]`",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

/// Channel addresses and settings `run` could not use: a chat id that is not one, a webhook
/// over plain http to another host, not https or with a port out of range, a secret that is
/// not `whsec_<base64>`, more than two secret files, a bot token that is not one (a URL
/// pasted in its place: the error does not show it).
#[test]
fn channel_addresses_and_secrets() {
    broken("channels")
        .file(
            "secrets/a",
            "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n",
        )
        .file("secrets/b", "KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n")
        .file("secrets/tg", "https://api.telegram.org/bot123\n")
        .stderr(&lines(&[
            "nhacviec.toml:16:29: error: the webhook secret must look like whsec_<base64>; make one with: echo \"whsec_$(head -c 32 /dev/urandom | base64)\" (file secrets/b)",
            "nhacviec.toml:16:42: error: `secret_file` lists at most 2 files (the new secret and the old one while it is rotated)",
            "nhacviec.toml:19:18: error: the Telegram bot token is not one: it looks like 123456789:AA… (digits, a colon, then 20 or more letters, digits, `_` and `-`), as @BotFather gave it (file secrets/tg)",
            "nhacviec.toml:24:12: error: `unit.telegram` must be a chat id (\"-1001234567\" for a group, a number for a person) or a public channel's \"@name\"; see docs/channels.md for how to find it",
            "nhacviec.toml:25:12: error: webhook `http://eoffice.example.vn/hook` is not https: webhooks go over https, except to a receiver on this server (127.0.0.1, ::1, localhost)",
            "nhacviec.toml:25:81: error: webhook `ftp://x` is not an https URL",
            "nhacviec.toml:31:11: error: webhook `https://h:99999/x` is not a URL (write https://host/path)",
            "nhacviec.toml: 7 errors; the config was not applied",
        ]))
        .run();
}

/// `organization.admins` takes email addresses and unit ids; anything else is neither.
#[test]
fn admins_are_addresses_or_units() {
    let text = "[organization]\nname = \"UBND phường Thử Nghiệm\"\nadmins = [\"quantri\", \"vhx\", \"vhxh\", \"quantri@example.invalid\"]\n\
                [calendar]\nholidays = \"none\"\n\
                [[unit]]\nid = \"vhxh\"\nname = \"Phòng Văn hóa – Xã hội\"\nemail = [\"vhxh@example.invalid\"]\n\
                [[rule]]\nid = \"r\"\nkind = \"task\"\ntitle = \"Nhiệm vụ\"\nperiod = \"once\"\ndue = { date = \"2025-10-15\" }\nunits = [\"all\"]\n";
    Test::new()
        .config(text)
        .args(&["check"])
        .status(1)
        .stderr(&lines(&[
            "nhacviec.toml:3:11: error: `quantri` in `admins` is neither an email address (name@domain) nor a unit",
            "nhacviec.toml:3:22: error: `vhx` in `admins` is neither an email address (name@domain) nor a unit; did you mean `vhxh`?",
            "nhacviec.toml: warning: no `server.admin_password_file`: the status page /status is off",
            "nhacviec.toml: 2 errors, 1 warning; the config was not applied",
        ]))
        .run();
}

/// A unit on Telegram or a webhook needs the channel set up with its secret; a unit reached
/// only by them is fine (no "email only" warning any more).
#[test]
fn a_channel_a_unit_uses_needs_its_section() {
    let text = "[organization]\nname = \"UBND phường Thử Nghiệm\"\nadmins = [\"quantri@example.invalid\"]\n\
                [calendar]\nholidays = \"none\"\n[server]\nadmin_password_file = \"secrets/admin-password\"\n\
                [[unit]]\nid = \"vp\"\nname = \"Văn phòng\"\ntelegram = \"-1001234567890\"\nwebhook = \"https://eoffice.example.vn/hook\"\n\
                [[rule]]\nid = \"r\"\nkind = \"task\"\ntitle = \"Nhiệm vụ\"\nperiod = \"once\"\ndue = { date = \"2025-10-15\" }\nunits = [\"all\"]\n";
    Test::new()
        .config(text)
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .status(1)
        .stderr(&lines(&[
            "nhacviec.toml:11:12: error: unit `vp` has `telegram` but `[channels.telegram]` (the bot token) is not configured",
            "nhacviec.toml:12:11: error: unit `vp` has `webhook` but `[channels.webhook]` (the signing secret) is not configured",
            "nhacviec.toml: 2 errors; the config was not applied",
        ]))
        .run();
    let set_up = format!(
        "{text}[channels.telegram]\nbot_token_file = \"secrets/tg\"\n[channels.webhook]\nsecret_file = \"secrets/wh\"\n"
    );
    Test::new()
        .config(&set_up)
        .file("secrets/admin-password", "mật khẩu\n")
        .file(
            "secrets/tg",
            "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw\n",
        )
        .file(
            "secrets/wh",
            "whsec_KioqKioqKioqKioqKioqKioqKioqKioqKioqKio=\n",
        )
        .args(&["check"])
        .stdout("nhacviec.toml: ok: 1 unit, 0 groups, 1 rule, 1 policy\n")
        .run();
}

/// `[channels.zalo]` as `run` needs it: a template for each kind Zalo messages are sent for
/// (and no other kind), parameters that parse and render on sample data, `max_len` only for
/// parameters the template has, Vietnamese mobile numbers; a bootstrap file not there yet
/// is a warning (the database may hold the tokens already).
#[test]
fn zalo_templates_and_numbers() {
    let head = "[organization]\nname = \"UBND phường Thử Nghiệm\"\nadmins = [\"quantri@example.invalid\"]\n\
                [calendar]\nholidays = \"none\"\n[server]\nadmin_password_file = \"secrets/admin-password\"\n\
                [channels.zalo]\napp_id = \"1234567890\"\nsecret_key_file = \"secrets/zalo-secret\"\nrefresh_token_file = \"secrets/zalo-refresh\"\n";
    let tail = "[[unit]]\nid = \"vp\"\nname = \"Văn phòng\"\nzalo = [\"0912 345 678\", \"0212 345 678\"]\n\
                [[rule]]\nid = \"r\"\nkind = \"task\"\ntitle = \"Nhiệm vụ\"\nperiod = \"once\"\ndue = { date = \"2025-10-15\" }\nunits = [\"all\"]\n";
    let broken = format!(
        "{head}[channels.zalo.templates.before]\nid = \"301001\"\ndata = {{ ten = \"{{{{ unit.name }}}}\", han = \"{{{{ last_day.date }}}}\" }}\nmax_len = {{ han = 10, khong_co = 5 }}\n\
         [channels.zalo.templates.due]\nid = \"301002\"\ndata = {{ ten = \"{{{{ unit.name }}\" }}\n\
         [channels.zalo.templates.digest]\nid = \"301009\"\ndata = {{ x = \"y\" }}\n{tail}"
    );
    Test::new()
        .config(&broken)
        .file("secrets/admin-password", "mật khẩu\n")
        .file("secrets/zalo-secret", "khoa-bi-mat\n")
        .args(&["check"])
        .status(1)
        .stderr(&lines(&[
            "nhacviec.toml:8:1: error: no `[channels.zalo.templates.after]`: every reminder kind needs its approved ZNS template (its id and parameters)",
            "nhacviec.toml:8:1: error: no `[channels.zalo.templates.escalated]`: every reminder kind needs its approved ZNS template (its id and parameters)",
            "nhacviec.toml:8:1: error: no `[channels.zalo.templates.resolved]`: every reminder kind needs its approved ZNS template (its id and parameters)",
            "nhacviec.toml:11:22: warning: `refresh_token_file` secrets/zalo-refresh does not exist: fine once the database holds the tokens (the daemon takes them at its first start); before that, put the OA's refresh token in it",
            "nhacviec.toml:15:23: error: `khong_co` is not one of this template's `data` parameters",
            "nhacviec.toml:18:16: error: parameter `ten`: unexpected `}`, expected end of variable block",
            "nhacviec.toml:19:26: error: `digest` is not a kind Zalo messages are sent for: before, due, after, escalated, resolved",
            "nhacviec.toml:25:25: error: `0212 345 678` is not a Vietnamese mobile number: write the 10 digits, starting 03, 05, 07, 08 or 09 (e.g. \"0912 345 678\")",
            "nhacviec.toml: 7 errors, 1 warning; the config was not applied",
        ]))
        .run();
    // Well formed, but a parameter names a variable messages do not have.
    let kinds = ["before", "due", "after", "escalated", "resolved"];
    let mut templates = String::new();
    for (i, k) in kinds.iter().enumerate() {
        let value = if *k == "due" {
            "{{ unit.nam }}"
        } else {
            "{{ unit.name }}"
        };
        templates.push_str(&format!(
            "[channels.zalo.templates.{k}]\nid = \"30100{i}\"\ndata = {{ ten = \"{value}\" }}\n"
        ));
    }
    Test::new()
        .config(&format!("{head}{templates}{}", tail.replace(", \"0212 345 678\"", "")))
        .file("secrets/admin-password", "mật khẩu\n")
        .file("secrets/zalo-secret", "khoa-bi-mat\n")
        .file("secrets/zalo-refresh", "ma-lam-moi\n")
        .args(&["check"])
        .status(1)
        .stderr(&lines(&[
            "nhacviec.toml: error: template channels.zalo.templates.due: parameter `ten`: `unit.nam` is undefined (line 1)",
            "nhacviec.toml: 1 error; the config was not applied",
        ]))
        .run();
}

/// Tried as a ward admin would: a config that runs but reaches nobody. With real mail going
/// out, links on this machine's own address and the example sender are warned about, as are
/// a `public_url` on another port of this machine than the listener, and a secret file any
/// user can read; an empty status-page password is refused.
#[test]
fn a_config_not_ready_for_a_ward_says_what_to_change() {
    let base = crate::support::read(
        &std::path::Path::new(crate::support::REPO).join("tests/fixtures/base.toml"),
    );
    let text =
        base.replace(
            "admins = [\"quantri@example.invalid\"]",
            "admins = [\"quantri@example.invalid\"]\npublic_url = \"http://127.0.0.1:9090\"",
        )
        .replace(
            "admin_password_file = \"secrets/admin-password\"",
            "admin_password_file = \"secrets/admin-password\"\nlisten = \"127.0.0.1:8080\"",
        ) + "\n[email]\nfrom = \"Nhắc việc <nhacviec@example.invalid>\"\ntransport = \"smtp\"\n\
           [email.smtp]\nhost = \"mail.thu-nghiem.example.vn\"\nusername = \"nhacviec\"\n\
           password_file = \"pw/smtp\"\n";
    let out = Test::new()
        .config(&text)
        .file("secrets/admin-password", "\n")
        .file("pw/smtp", "mật khẩu thư\n")
        .args(&["check"])
        .status(1)
        .run();
    crate::support::assert_contains(
        &out.stderr,
        &[
            "warning: `public_url` is http://127.0.0.1:9090, this machine's own address",
            "warning: `from` is still the example sender (Nhắc việc <nhacviec@example.invalid>)",
            "warning: `public_url` (http://127.0.0.1:9090) names port 9090 but the daemon listens on 127.0.0.1:8080",
            "warning: secret file `pw/smtp` is readable by every user of this machine",
            "error: the status-page password in `secrets/admin-password` is empty: anyone could log in",
            "1 error, 4 warnings",
        ],
    );
    // The file transport sends nothing: the same links and sender are not worth a warning.
    let quiet = Test::new()
        .fixture("base.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .args(&["check"])
        .stderr("")
        .run();
    assert_eq!(quiet.status, 0);
}

/// The shipped config with the examples of its comments applied: the indented comment lines
/// (`#   key = value`) of a block just above a section replace or add that section's keys; a
/// block that starts with its own header (`#   [[rule]]`) is appended as written. The
/// sections whose comments hold an example, by name.
fn with_comment_examples(text: &str) -> (String, BTreeSet<String>) {
    let section = |header: &str| header.trim_matches(['[', ']']).to_string();
    let mut out: Vec<String> = Vec::new();
    let mut appended: Vec<Vec<String>> = Vec::new();
    let mut pending: Vec<String> = Vec::new();
    let mut replaced: BTreeSet<String> = BTreeSet::new();
    let mut shown = BTreeSet::new();
    let key = |line: &str| line.split('=').next().unwrap_or("").trim().to_string();
    for line in text.lines() {
        if let Some(example) = line.strip_prefix("#   ") {
            pending.push(example.to_string());
            continue;
        }
        if pending.first().is_some_and(|l| l.starts_with('[')) {
            let header = section(pending[0].split_whitespace().next().unwrap());
            shown.insert(header.split('.').next().unwrap().to_string());
            appended.push(std::mem::take(&mut pending));
        }
        if line.starts_with('[') {
            replaced.clear();
            if !pending.is_empty() {
                shown.insert(section(line).split('.').next().unwrap().to_string());
                out.push(line.to_string());
                replaced = pending
                    .iter()
                    .filter(|l| l.contains('='))
                    .map(|l| key(l))
                    .collect();
                out.append(&mut pending);
                continue;
            }
        }
        pending.clear();
        if line.contains('=') && !line.starts_with('#') && replaced.contains(&key(line)) {
            continue;
        }
        out.push(line.to_string());
    }
    let mut text = out.join("\n");
    for block in appended {
        text.push_str("\n\n");
        text.push_str(&block.join("\n"));
    }
    (text, shown)
}

#[test]
fn every_section_of_the_shipped_config_has_an_example_that_passes_check() {
    let shipped = crate::support::read(std::path::Path::new(crate::support::SHIPPED));
    let (text, shown) = with_comment_examples(&shipped);
    let sections = [
        "calendar",
        "digest",
        "email",
        "group",
        "organization",
        "policy",
        "rule",
        "server",
        "storage",
        "unit",
    ];
    assert_eq!(shown, sections.iter().map(|s| s.to_string()).collect());
    // The examples are meant for a real ward: `/etc` and `/var/lib` paths, which this test
    // points back into its own directory.
    let text = text
        .replace("/var/lib/nhacviec/", "var/")
        .replace("/etc/nhacviec/secrets/", "secrets/");
    assert!(text.contains("\n[policy.hop]\n") && text.contains("\nid = \"cong-an\"\n"));
    let out = Test::new()
        .config(&text)
        .shipped_calendar()
        .file("secrets/admin-password", "mật khẩu dài\n")
        .file("secrets/smtp-password", "mật khẩu ứng dụng\n")
        .args(&["check"])
        .run();
    assert!(
        out.stdout
            .contains(": ok: 11 units, 4 groups, 12 rules, 3 policies"),
        "{}{}",
        out.stdout,
        out.stderr
    );
    assert!(!out.stderr.contains("error"), "{}", out.stderr);
}

#[test]
fn trusted_proxies_must_be_addresses_or_ranges() {
    broken("trusted-proxies")
        .stderr(&lines(&[
            "nhacviec.toml:11:33: error: `10.0.0.0/33` in `server.trusted_proxies` is not an IP address or a CIDR range; write e.g. \"127.0.0.1\", \"10.0.0.0/8\" or \"2001:db8::/32\"",
            "nhacviec.toml:11:48: error: `nginx.local` in `server.trusted_proxies` is not an IP address or a CIDR range; write e.g. \"127.0.0.1\", \"10.0.0.0/8\" or \"2001:db8::/32\"",
            "nhacviec.toml:11:63: warning: `10.0.0.1/8` in `server.trusted_proxies` has bits set past its prefix length; it is read as `10.0.0.0/8`",
            "nhacviec.toml:11:77: warning: `0.0.0.0/0` in `server.trusted_proxies` trusts every address: any client could then choose the address it is counted and recorded by; list only the proxies in front of nhacviec",
            "nhacviec.toml: 2 errors, 2 warnings; the config was not applied",
        ]))
        .stdout("")
        .run();
}
