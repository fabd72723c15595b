//! Each unit's link generation: the number its page and feed token is derived from
//! ([`crate::token::TokenKey::unit_token`]). A unit with no row is at generation 0; rotating
//! a leaked link bumps it, so the old link is a 404 and the next messages carry the new one.

use std::collections::HashMap;

use chrono::{DateTime, Utc};
use rusqlite::params;

use super::{Result, Store, immediate, ms};

impl Store {
    /// The generation of every unit that has one other than 0.
    pub fn unit_generations(&self) -> Result<HashMap<String, u32>> {
        let conn = self.reader();
        let mut st = conn.prepare_cached("SELECT unit, generation FROM unit_links")?;
        let rows = st.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                u32::try_from(r.get::<_, i64>(1)?).unwrap_or(u32::MAX),
            ))
        })?;
        Ok(rows.collect::<rusqlite::Result<_>>()?)
    }

    /// Bumps `unit`'s generation: its old link stops working. Returns the new generation.
    pub fn rotate_unit_link(&self, unit: &str, now: DateTime<Utc>) -> Result<u32> {
        let mut conn = self.conn();
        let tx = immediate(&mut conn)?;
        tx.execute(
            "INSERT INTO unit_links (unit, generation, rotated_at) VALUES (?1, 1, ?2)
             ON CONFLICT (unit) DO UPDATE SET generation = generation + 1, rotated_at = ?2",
            params![unit, ms(now)],
        )?;
        let g: i64 = tx.query_row(
            "SELECT generation FROM unit_links WHERE unit = ?1",
            params![unit],
            |r| r.get(0),
        )?;
        tx.commit()?;
        Ok(u32::try_from(g).unwrap_or(u32::MAX))
    }
}
