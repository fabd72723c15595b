//! `nhacviec calendar`: the official schedules of 2025 and 2026 as shipped, and the statutory
//! estimate for a year without one. Every pinned line was checked against the government's
//! announcement its `source` names.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::support::{Test, lines};

fn calendar(args: &[&str]) -> Test {
    Test::new().shipped().args(&[&["calendar"], args].concat())
}

/// `calendar --format json` for a year: each day with its entry, checking every entry's shape.
fn calendar_json(year: &str) -> BTreeMap<String, Value> {
    let out = calendar(&["--year", year, "--format", "json"])
        .stderr("")
        .run();
    let entries: Vec<Value> = serde_json::from_str(&out.stdout).unwrap();
    let mut days = BTreeMap::new();
    for e in entries {
        let date = e["date"]
            .as_str()
            .unwrap_or_else(|| panic!("{e}"))
            .to_string();
        assert!(date.starts_with(year), "{e}");
        assert!(e["working"].is_boolean(), "{e}");
        assert!(!e["reason"].as_str().unwrap_or_default().is_empty(), "{e}");
        assert!(
            ["statutory", "official", "local"].contains(&e["layer"].as_str().unwrap_or_default()),
            "{e}"
        );
        let previous = days.insert(date.clone(), e);
        assert!(previous.is_none(), "{date} listed twice");
    }
    days
}

fn state(days: &BTreeMap<String, Value>, date: &str) -> Option<(bool, String)> {
    days.get(date).map(|e| {
        (
            e["working"].as_bool().unwrap(),
            e["layer"].as_str().unwrap().to_string(),
        )
    })
}

#[test]
fn year_2025_as_announced() {
    calendar(&["--year", "2025"])
        .stdout(&lines(&[
            "DATE             STATE    LAYER      REASON",
            "Wed 01/01/2025   off      official   Tết Dương lịch [Bộ luật Lao động 2019, Điều 112]",
            "Mon 27/01/2025   off      official   Tết Âm lịch Ất Tỵ (mùng 1 = thứ Tư 29/01/2025) [Công văn 8726/VPCP-KGVX ngày 26/11/2024]",
            "Tue 28/01/2025   off      official   Tết Âm lịch Ất Tỵ (mùng 1 = thứ Tư 29/01/2025) [Công văn 8726/VPCP-KGVX ngày 26/11/2024]",
            "Wed 29/01/2025   off      official   Tết Âm lịch Ất Tỵ (mùng 1 = thứ Tư 29/01/2025) [Công văn 8726/VPCP-KGVX ngày 26/11/2024]",
            "Thu 30/01/2025   off      official   Tết Âm lịch Ất Tỵ (mùng 1 = thứ Tư 29/01/2025) [Công văn 8726/VPCP-KGVX ngày 26/11/2024]",
            "Fri 31/01/2025   off      official   Tết Âm lịch Ất Tỵ (mùng 1 = thứ Tư 29/01/2025) [Công văn 8726/VPCP-KGVX ngày 26/11/2024]",
            "Mon 07/04/2025   off      official   Giỗ Tổ Hùng Vương (10/3 âm lịch) [Bộ luật Lao động 2019, Điều 112]",
            "Sat 26/04/2025   working  official   làm bù cho thứ Sáu 02/05/2025 [Thông báo nghỉ lễ 30/4 – 1/5 năm 2025 (tháng 4/2025)]",
            "Wed 30/04/2025   off      official   Ngày Chiến thắng 30/4 và Quốc tế Lao động 1/5 [Bộ luật Lao động 2019, Điều 112]",
            "Thu 01/05/2025   off      official   Ngày Chiến thắng 30/4 và Quốc tế Lao động 1/5 [Bộ luật Lao động 2019, Điều 112]",
            "Fri 02/05/2025   off      official   hoán đổi ngày làm việc dịp 30/4 – 1/5 (làm bù thứ Bảy 26/04/2025) [Thông báo nghỉ lễ 30/4 – 1/5 năm 2025 (tháng 4/2025)]",
            "Mon 01/09/2025   off      official   Quốc khánh (1/9 và 2/9) [Bộ luật Lao động 2019, Điều 112; the 1/9 choice UNVERIFIED in the decision text]",
            "Tue 02/09/2025   off      official   Quốc khánh (1/9 và 2/9) [Bộ luật Lao động 2019, Điều 112; the 1/9 choice UNVERIFIED in the decision text]",
            "2025: 12 weekdays off, 1 day working on a weekend day; official schedule for 2025",
        ]))
        .stderr("")
        .run();
}

#[test]
fn year_2026_as_announced() {
    calendar(&["--year", "2026"])
        .stdout(&lines(&[
            "DATE             STATE    LAYER      REASON",
            "Thu 01/01/2026   off      official   Tết Dương lịch [Bộ luật Lao động 2019, Điều 112]",
            "Fri 02/01/2026   off      official   hoán đổi ngày làm việc dịp Tết Dương lịch (làm bù thứ Bảy 10/01/2026) [Công văn 12729/VPCP-KGVX ngày 25/12/2025]",
            "Sat 10/01/2026   working  official   làm bù cho thứ Sáu 02/01/2026 [Công văn 12729/VPCP-KGVX ngày 25/12/2025]",
            "Mon 16/02/2026   off      official   Tết Âm lịch Bính Ngọ (mùng 1 = thứ Ba 17/02/2026) [Thông báo nghỉ Tết Âm lịch 2026 (tháng 10/2025)]",
            "Tue 17/02/2026   off      official   Tết Âm lịch Bính Ngọ (mùng 1 = thứ Ba 17/02/2026) [Thông báo nghỉ Tết Âm lịch 2026 (tháng 10/2025)]",
            "Wed 18/02/2026   off      official   Tết Âm lịch Bính Ngọ (mùng 1 = thứ Ba 17/02/2026) [Thông báo nghỉ Tết Âm lịch 2026 (tháng 10/2025)]",
            "Thu 19/02/2026   off      official   Tết Âm lịch Bính Ngọ (mùng 1 = thứ Ba 17/02/2026) [Thông báo nghỉ Tết Âm lịch 2026 (tháng 10/2025)]",
            "Fri 20/02/2026   off      official   Tết Âm lịch Bính Ngọ (mùng 1 = thứ Ba 17/02/2026) [Thông báo nghỉ Tết Âm lịch 2026 (tháng 10/2025)]",
            "Mon 27/04/2026   off      official   nghỉ bù Giỗ Tổ Hùng Vương (Chủ nhật 26/04/2026) [Thông báo nghỉ lễ năm 2026 (tháng 2/2026); Bộ luật Lao động 2019, Điều 111.3]",
            "Thu 30/04/2026   off      official   Ngày Chiến thắng 30/4 và Quốc tế Lao động 1/5 [Bộ luật Lao động 2019, Điều 112; Thông báo nghỉ lễ năm 2026 (tháng 2/2026)]",
            "Fri 01/05/2026   off      official   Ngày Chiến thắng 30/4 và Quốc tế Lao động 1/5 [Bộ luật Lao động 2019, Điều 112; Thông báo nghỉ lễ năm 2026 (tháng 2/2026)]",
            "Sat 22/08/2026   working  official   làm bù cho thứ Hai 31/08/2026 [Đề xuất của Bộ Nội vụ, đã được chấp thuận]",
            "Mon 31/08/2026   off      official   hoán đổi ngày làm việc dịp Quốc khánh (làm bù thứ Bảy 22/08/2026) [Đề xuất của Bộ Nội vụ, đã được chấp thuận]",
            "Tue 01/09/2026   off      official   Quốc khánh (1/9 và 2/9) [Bộ luật Lao động 2019, Điều 112]",
            "Wed 02/09/2026   off      official   Quốc khánh (1/9 và 2/9) [Bộ luật Lao động 2019, Điều 112]",
            "Tue 24/11/2026   off      official   Ngày Văn hóa Việt Nam [Nghị quyết 80-NQ/TW (01/2026); thư viện holidays (PyPI) tính là ngày lễ từ 2026]",
            "2026: 14 weekdays off, 2 days working on a weekend day; official schedule for 2026",
        ]))
        .stderr("")
        .run();
}

#[test]
fn year_2026_as_json() {
    let days = calendar_json("2026");
    assert_eq!(days.len(), 16);
    for working in ["2026-01-10", "2026-08-22"] {
        assert_eq!(
            state(&days, working),
            Some((true, "official".into())),
            "{working}"
        );
    }
    for off in ["2026-01-02", "2026-08-31", "2026-11-24"] {
        assert_eq!(state(&days, off), Some((false, "official".into())), "{off}");
    }
    // A holiday on a Sunday (Giỗ Tổ, 26/04) is no deviation: its compensation (27/04) is.
    assert_eq!(state(&days, "2026-04-26"), None);
    assert_eq!(state(&days, "2026-04-27"), Some((false, "official".into())));
}

#[test]
fn year_without_a_schedule_is_the_statutory_estimate() {
    let days = calendar_json("2027");
    assert!(days.values().all(|e| e["layer"] == "statutory"), "{days:?}");
    // Tết 2027: mùng 1 is Saturday 06/02. Five days 05/02–09/02; the Saturday is compensated
    // on the working day before the block (Thu 04/02), the Sunday on the one after (Wed 10/02).
    let tet: Vec<&str> = days
        .iter()
        .filter(|(d, e)| d.starts_with("2027-02") && e["working"] == false)
        .map(|(d, _)| d.as_str())
        .collect();
    assert_eq!(
        tet,
        [
            "2027-02-04",
            "2027-02-05",
            "2027-02-08",
            "2027-02-09",
            "2027-02-10"
        ]
    );
    calendar(&["--year", "2027"])
        .stdout(&lines(&[
            "DATE             STATE    LAYER      REASON",
            "Fri 01/01/2027   off      statutory  Tết Dương lịch [Bộ luật Lao động 2019, Điều 112]",
            "Thu 04/02/2027   off      statutory  nghỉ bù cho Tết Âm lịch (mùng 1), thứ Bảy 06/02/2027 [Bộ luật Lao động 2019, Điều 111.3 (ước tính)]",
            "Fri 05/02/2027   off      statutory  Tết Âm lịch (ngày cuối năm âm lịch) [Bộ luật Lao động 2019, Điều 112]",
            "Mon 08/02/2027   off      statutory  Tết Âm lịch (mùng 3) [Bộ luật Lao động 2019, Điều 112]",
            "Tue 09/02/2027   off      statutory  Tết Âm lịch (mùng 4) [Bộ luật Lao động 2019, Điều 112]",
            "Wed 10/02/2027   off      statutory  nghỉ bù cho Tết Âm lịch (mùng 2), Chủ nhật 07/02/2027 [Bộ luật Lao động 2019, Điều 111.3 (ước tính)]",
            "Fri 16/04/2027   off      statutory  Giỗ Tổ Hùng Vương (10/3 âm lịch) [Bộ luật Lao động 2019, Điều 112]",
            "Fri 30/04/2027   off      statutory  Ngày Chiến thắng (30/4) [Bộ luật Lao động 2019, Điều 112]",
            "Mon 03/05/2027   off      statutory  nghỉ bù cho Ngày Quốc tế Lao động (1/5), thứ Bảy 01/05/2027 [Bộ luật Lao động 2019, Điều 111.3 (ước tính)]",
            "Thu 02/09/2027   off      statutory  Quốc khánh (2/9) [Bộ luật Lao động 2019, Điều 112]",
            "Fri 03/09/2027   off      statutory  Quốc khánh (ngày liền kề 2/9) [Bộ luật Lao động 2019, Điều 112]",
            "Wed 24/11/2027   off      statutory  Ngày Văn hóa Việt Nam (24/11) [Nghị quyết 80-NQ/TW (01/2026): Ngày Văn hóa Việt Nam là ngày nghỉ có hưởng lương]",
            "2027: 12 weekdays off, 0 days working on a weekend day; no official schedule for 2027: statutory estimate, check it against the government's announcement",
        ]))
        .stderr("")
        .run();
}
