//! The admin's commands in the locale's language: Vietnamese under `LANG=vi_VN.UTF-8`,
//! English otherwise, the same `FILE:LINE:COL` either way; machine-read output (JSON)
//! and the daemon's log never translated.

use crate::support::{CLOCK, Test, assert_contains, assert_lacks, lines};

const VI: &str = "vi_VN.UTF-8";

/// `check` on `tests/fixtures/broken/several.toml` (seven errors found by different passes)
/// under `locale`.
fn several(locale: &str) -> String {
    Test::new()
        .fixture("broken/several.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .lang(locale)
        .args(&["check"])
        .status(1)
        .run()
        .stderr
}

/// `FILE:LINE:COL` of a diagnostic line (or `FILE` for the file as a whole).
fn position(line: &str) -> &str {
    match line.find(": ") {
        Some(i) => &line[..i],
        None => line,
    }
}

#[test]
fn check_speaks_vietnamese_under_a_vietnamese_locale_with_the_same_positions() {
    let vi = several(VI);
    let en = several("C");
    assert_eq!(
        vi,
        lines(&[
            "nhacviec.toml:6:12: lỗi: không có múi giờ `Asia/Ho_Chi_Min`; có phải `Asia/Ho_Chi_Minh`? (cần tên IANA; Việt Nam là `Asia/Ho_Chi_Minh`)",
            "nhacviec.toml:17:18: lỗi: khoảng thời gian `7x` không hợp lệ: hãy viết một số kèm đơn vị: d (ngày lịch), wd (ngày làm việc), h (giờ) hoặc m (phút), ví dụ \"3wd\"",
            "nhacviec.toml:29:1: lỗi: đơn vị `vp` không có cách nào để nhận nhắc việc: hãy khai báo `email` (hoặc `telegram`, `webhook`, `zalo`) cho đơn vị",
            "nhacviec.toml:30:6: lỗi: trùng mã đơn vị `vp` (đã khai báo lần đầu ở dòng 20)",
            "nhacviec.toml:37:1: lỗi: không có khóa `refrence` trong `[[rule]]`; có phải `reference`?",
            "nhacviec.toml:40:10: lỗi: không có đơn vị hoặc nhóm `vhx`; có phải `vhxh`?",
            "nhacviec.toml:41:19: lỗi: `2025-02-30` không phải là ngày: tháng 2025-02 chỉ có 28 ngày",
            "nhacviec.toml: 7 lỗi; cấu hình không được áp dụng",
        ])
    );
    assert_contains(
        &en,
        &[
            "nhacviec.toml:6:12: error: unknown time zone `Asia/Ho_Chi_Min`",
            "nhacviec.toml: 7 errors; the config was not applied",
        ],
    );
    let (vi, en): (Vec<&str>, Vec<&str>) = (vi.lines().collect(), en.lines().collect());
    assert_eq!(vi.len(), en.len());
    for (v, e) in vi.iter().zip(&en) {
        assert_eq!(position(v), position(e), "{v}\n{e}");
        assert_ne!(v, e);
    }
    // LC_ALL and LC_MESSAGES come before LANG, as POSIX says; `vi` alone is Vietnamese too.
    let out = Test::new()
        .fixture("broken/unknown-unit.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .lang("vi")
        .args(&["check"])
        .status(1)
        .run();
    assert_contains(&out.stderr, &["lỗi: không có đơn vị hoặc nhóm `vhx`"]);
}

#[test]
fn a_warning_and_the_summary_of_a_valid_config_in_vietnamese() {
    Test::new()
        .fixture("unused-policy.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .lang(VI)
        .args(&["check"])
        .stdout("nhacviec.toml: hợp lệ: 2 đơn vị, 0 nhóm, 2 nhiệm vụ, 2 lịch nhắc, 1 cảnh báo\n")
        .stderr(
            "nhacviec.toml:15:9: cảnh báo: lịch nhắc `nhiem-vu` không được nhiệm vụ nào sử dụng\n",
        )
        .run();
}

#[test]
fn plan_calendar_and_status_speak_vietnamese_and_json_stays_the_same() {
    let plan = |locale: &str, format: &str| {
        Test::new()
            .shipped()
            .lang(locale)
            .args(&[
                "plan",
                "--rule",
                "bao-cao-9-thang",
                "--from",
                "01/09/2025",
                "--to",
                "31/10/2025",
                "--format",
                format,
            ])
            .run()
            .stdout
    };
    let table = plan(VI, "table");
    assert_contains(
        &table,
        &[
            "1 kỳ hạn, 8 nghĩa vụ của đơn vị, từ thứ Hai 01/09/2025 đến thứ Sáu 31/10/2025\n",
            "  hạn        trước Chủ nhật 05/10/2025 (00:00)\n",
            "  ngày cuối  thứ Sáu 03/10/2025  (dời: thứ Bảy 04/10/2025 là ngày nghỉ: cuối tuần)\n",
            "(8 đơn vị)\n",
            "  lần nhắc   before-14d   thứ Sáu 19/09/2025 08:00\n",
            "  + báo lãnh đạo\n",
        ],
    );
    assert_lacks(&table, "deadline", "the table's labels are Vietnamese");
    assert_eq!(plan(VI, "json"), plan("C", "json"), "JSON is for programs");

    let calendar = Test::new()
        .shipped()
        .lang(VI)
        .args(&["calendar", "--year", "2025"])
        .run()
        .stdout;
    assert_contains(
        &calendar,
        &[
            "NGÀY ",
            " LÝ DO\n",
            "thứ Tư 01/01/2025 ",
            " nghỉ ",
            " chính thức ",
            "ngày cuối tuần phải làm việc; lịch nghỉ chính thức năm 2025\n",
        ],
    );
    assert!(calendar.starts_with("NGÀY "), "{calendar}");

    // Before the first start: what will come, in Vietnamese; the exit code stays 0.
    let status = Test::new()
        .shipped()
        .lang(VI)
        .clock(CLOCK)
        .args(&["status"])
        .run()
        .stdout;
    assert_contains(
        &status,
        &[
            "chưa có cơ sở dữ liệu tại ",
            "lần nhắc kế tiếp theo kế hoạch: before-14d của bao-cao-9-thang/2025-9M lúc 08:00 thứ Sáu 19/09/2025.\n",
        ],
    );

    // A date the command line cannot read, explained in the locale's language.
    let bad = Test::new()
        .shipped()
        .lang(VI)
        .args(&["plan", "--from", "31/02/2026"])
        .status(2)
        .run();
    assert_contains(
        &bad.stderr,
        &["`31/02/2026` không phải là ngày: viết dạng 2026-12-01 hoặc 01/12/2026"],
    );
}

#[test]
fn the_daemon_logs_in_english_under_a_vietnamese_locale() {
    let out = Test::new()
        .fixture("broken/unknown-unit.toml")
        .file("secrets/admin-password", "mật khẩu\n")
        .lang(VI)
        .args(&["run"])
        .status(1)
        .run();
    assert_contains(&out.stderr, &["error: unknown unit or group `vhx`"]);
    assert_lacks(&out.stderr, "lỗi", "the log is English");
}

#[test]
fn links_preview_and_send_test_explain_in_vietnamese() {
    // Before the daemon's first start: no database, said in the locale's language.
    let links = |locale: &str| {
        Test::new()
            .shipped()
            .lang(locale)
            .args(&["links"])
            .status(1)
            .run()
            .stderr
    };
    assert_contains(
        &links(VI),
        &[
            "lỗi: chưa có cơ sở dữ liệu tại ",
            ": `nhacviec run` sẽ tạo nó (kiểm tra `storage.path`)\n",
        ],
    );
    assert_contains(&links("C"), &["error: no database at "]);

    // A step the obligation does not have: its steps listed, the words Vietnamese.
    let preview = Test::new()
        .shipped()
        .lang(VI)
        .args(&[
            "preview",
            "--obligation",
            "bao-cao-9-thang/2025-9M/vp",
            "--step",
            "after-99d",
        ])
        .status(1)
        .run();
    assert_contains(
        &preview.stderr,
        &[
            "lỗi: `after-99d` không phải một lần nhắc của bao-cao-9-thang/2025-9M; các lần nhắc của nó là before-14d, ",
        ],
    );

    // An address the channel cannot take, refused before anything is sent.
    let send = Test::new()
        .shipped()
        .lang(VI)
        .args(&[
            "send-test",
            "--channel",
            "telegram",
            "--to",
            "nhom-van-phong",
        ])
        .status(1)
        .run();
    assert_eq!(
        send.stderr,
        "lỗi: `nhom-van-phong` không phải mã cuộc trò chuyện Telegram: hãy viết một số (\"-1001234567\" cho một nhóm) hoặc \"@name\" của một kênh công khai\n"
    );
    assert_lacks(&send.stderr, "error", "the message is Vietnamese");
}
