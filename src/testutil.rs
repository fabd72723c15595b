//! Helpers shared by the unit tests.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

use chrono::NaiveDate;

use crate::config::{self, Config, Severity};

/// A fresh folder under the system's temporary folder, removed when dropped.
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// A new, empty folder whose name mentions `name`.
    pub fn new(name: &str) -> TempDir {
        static N: AtomicUsize = AtomicUsize::new(0);
        let p = std::env::temp_dir().join(format!(
            "nhacviec-unit-{name}-{}-{}",
            std::process::id(),
            N.fetch_add(1, Ordering::SeqCst)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
        TempDir(p)
    }

    /// A path inside it.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A config from text, as if it were the file `/nonexistent/nhacviec.toml` (relative paths
/// point nowhere) read on 01/06/2025; panics, listing them, on any error.
pub fn config(text: &str) -> Config {
    config_at(Path::new("/nonexistent/nhacviec.toml"), text)
}

/// A config from text, as if it were the file `path`.
pub fn config_at(path: &Path, text: &str) -> Config {
    let today = NaiveDate::from_ymd_opt(2025, 6, 1).unwrap_or_default();
    let loaded = config::load_str(path, text.to_string(), today);
    let errors: Vec<String> = loaded
        .diagnostics
        .iter()
        .filter(|x| x.severity == Severity::Error)
        .map(ToString::to_string)
        .collect();
    assert!(errors.is_empty(), "{errors:#?}");
    loaded.config.unwrap_or_else(|| panic!("no config"))
}

/// The units of [`ward`]: the coordinator `vhxh`, `vp` (escalating to `lanh-dao`), `kt` and
/// the leadership `lanh-dao`, in this order (indices 0 to 3), each with one address
/// `ID@example.invalid`. Inline tables, so they stand before `[organization]`.
pub const UNITS: &str = r#"unit = [
  { id = "vhxh", name = "Phòng Văn hóa – Xã hội", email = ["vhxh@example.invalid"] },
  { id = "vp", name = "Văn phòng HĐND và UBND phường", email = ["vp@example.invalid"], escalate_to = ["lanh-dao"] },
  { id = "kt", name = "Phòng Kinh tế", email = ["kt@example.invalid"] },
  { id = "lanh-dao", name = "Lãnh đạo UBND phường", email = ["lanhdao@example.invalid"] },
]
"#;

/// The config text of the unit tests' ward: [`UNITS`], `[organization]` with `org`'s lines,
/// then `extra` (sections, policies, rules).
pub fn ward(org: &str, extra: &str) -> String {
    format!("{UNITS}[organization]\nname = \"UBND phường Thử\"\n{org}\n{extra}")
}

/// [`ward`], read as a config.
pub fn ward_config(org: &str, extra: &str) -> Config {
    config(&ward(org, extra))
}

/// A `[[rule]]` of kind report: its id, its title, then `fields` (`period`, `due`, `units`
/// and any other), one `key = value` a line.
pub fn rule(id: &str, title: &str, fields: &str) -> String {
    format!("\n[[rule]]\nid = \"{id}\"\nkind = \"report\"\ntitle = \"{title}\"\n{fields}\n")
}
