//! The Zalo Official Account's tokens: the one place they are kept (`zalo_tokens`, one row).
//!
//! A refresh token can be used once. So a new pair is committed here before it is used (a
//! crash right after Zalo answered still leaves the new refresh token stored), and when
//! Zalo says the refresh token is invalid or expired the channel is locked, with the
//! reason, until an admin imports a new one (`nhacviec zalo token --import FILE`).

use chrono::{DateTime, Utc};
use rusqlite::{OptionalExtension as _, params};

use super::{Result, Store, ms, opt_ms};

/// The tokens as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct ZaloTokens {
    /// The live access token, if one was issued.
    pub access_token: Option<String>,
    /// When it expires.
    pub access_expires_at: Option<DateTime<Utc>>,
    /// The refresh token (single use).
    pub refresh_token: String,
    /// When it was issued (they live about three months).
    pub refresh_issued_at: DateTime<Utc>,
    /// Why the channel cannot send, when Zalo refused the refresh token.
    pub locked: Option<String>,
}

// Never printed: the tokens are secrets.
impl std::fmt::Debug for ZaloTokens {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ZaloTokens")
            .field("access_expires_at", &self.access_expires_at)
            .field("refresh_issued_at", &self.refresh_issued_at)
            .field("locked", &self.locked)
            .finish_non_exhaustive()
    }
}

impl Store {
    /// The tokens, if any were ever stored.
    pub fn zalo_tokens(&self) -> Result<Option<ZaloTokens>> {
        let row = self
            .conn()
            .query_row(
                "SELECT access_token, access_expires_at, refresh_token, refresh_issued_at, locked
                   FROM zalo_tokens WHERE id = 1",
                [],
                |r| {
                    Ok((
                        r.get::<_, Option<String>>(0)?,
                        r.get::<_, Option<i64>>(1)?,
                        r.get::<_, String>(2)?,
                        r.get::<_, i64>(3)?,
                        r.get::<_, Option<String>>(4)?,
                    ))
                },
            )
            .optional()?;
        let Some((access_token, expires, refresh_token, issued, locked)) = row else {
            return Ok(None);
        };
        Ok(Some(ZaloTokens {
            access_token,
            access_expires_at: opt_ms(expires)?,
            refresh_token,
            refresh_issued_at: opt_ms(Some(issued))?.unwrap_or_default(),
            locked,
        }))
    }

    /// Stores the first refresh token (from the config's bootstrap file) when none is stored
    /// yet; true if it was stored. A stored one is never replaced here: the file is read once.
    pub fn zalo_bootstrap(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn().execute(
            "INSERT OR IGNORE INTO zalo_tokens (id, refresh_token, refresh_issued_at, updated_at)
             VALUES (1, ?1, ?2, ?2)",
            params![refresh_token, ms(now)],
        )?;
        Ok(n == 1)
    }

    /// Stores a new pair from Zalo, in one statement, before it is used.
    pub fn zalo_store_pair(
        &self,
        access_token: &str,
        access_expires_at: DateTime<Utc>,
        refresh_token: &str,
        now: DateTime<Utc>,
    ) -> Result<()> {
        self.conn().execute(
            "INSERT INTO zalo_tokens
                    (id, access_token, access_expires_at, refresh_token, refresh_issued_at,
                     locked, updated_at)
             VALUES (1, ?1, ?2, ?3, ?4, NULL, ?4)
             ON CONFLICT (id) DO UPDATE SET
                    access_token = ?1, access_expires_at = ?2, refresh_token = ?3,
                    refresh_issued_at = ?4, locked = NULL, updated_at = ?4",
            params![access_token, ms(access_expires_at), refresh_token, ms(now)],
        )?;
        Ok(())
    }

    /// Locks the channel: Zalo refused the refresh token `refused` (`why` says how to issue
    /// a new one). Nothing happens if another token has replaced it meanwhile (an import).
    pub fn zalo_lock(&self, why: &str, refused: &str, now: DateTime<Utc>) -> Result<bool> {
        let n = self.conn().execute(
            "UPDATE zalo_tokens SET locked = ?1, access_token = NULL, updated_at = ?2
              WHERE id = 1 AND refresh_token = ?3",
            params![why, ms(now), refused],
        )?;
        Ok(n == 1)
    }

    /// Replaces the refresh token with one an admin issued (after a lock-out), unlocking the
    /// channel; the access token goes (the next send refreshes).
    pub fn zalo_import(&self, refresh_token: &str, now: DateTime<Utc>) -> Result<()> {
        self.conn().execute(
            "INSERT INTO zalo_tokens (id, refresh_token, refresh_issued_at, updated_at)
             VALUES (1, ?1, ?2, ?2)
             ON CONFLICT (id) DO UPDATE SET
                    access_token = NULL, access_expires_at = NULL, refresh_token = ?1,
                    refresh_issued_at = ?2, locked = NULL, updated_at = ?2",
            params![refresh_token, ms(now)],
        )?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    #[test]
    fn bootstrap_once_then_pairs_then_a_lock_and_an_import() {
        let dir = crate::testutil::TempDir::new("zalo");
        let t0 = Utc.with_ymd_and_hms(2025, 10, 1, 1, 0, 0).unwrap();
        let store = Store::open(&dir.0.join("db"), t0).unwrap();
        assert!(store.zalo_tokens().unwrap().is_none());
        assert!(store.zalo_bootstrap("r1", t0).unwrap());
        assert!(
            !store.zalo_bootstrap("r0", t0).unwrap(),
            "the file is read once"
        );
        let t = store.zalo_tokens().unwrap().unwrap();
        assert_eq!((t.refresh_token.as_str(), t.access_token), ("r1", None));
        let t1 = t0 + Duration::hours(1);
        store
            .zalo_store_pair("a2", t1 + Duration::hours(25), "r2", t1)
            .unwrap();
        let t = store.zalo_tokens().unwrap().unwrap();
        assert_eq!(t.refresh_token, "r2");
        assert_eq!(t.access_token.as_deref(), Some("a2"));
        assert_eq!(t.access_expires_at, Some(t1 + Duration::hours(25)));
        assert_eq!(t.refresh_issued_at, t1);
        assert!(!format!("{t:?}").contains("r2"), "Debug shows no token");
        assert!(
            !store.zalo_lock("stale", "r1", t1).unwrap(),
            "not the stored token"
        );
        assert!(store.zalo_lock("issue a new one", "r2", t1).unwrap());
        let t = store.zalo_tokens().unwrap().unwrap();
        assert_eq!(t.locked.as_deref(), Some("issue a new one"));
        assert_eq!(t.access_token, None);
        store.zalo_import("r3", t1).unwrap();
        let t = store.zalo_tokens().unwrap().unwrap();
        assert_eq!((t.refresh_token.as_str(), t.locked), ("r3", None));
    }
}
