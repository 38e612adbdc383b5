//! MariaDB global transaction ids: `domain-server-seq`, and positions (the last GTID applied in
//! each replication domain, as in `gtid_binlog_pos` / `gtid_slave_pos`).

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Gtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for Gtid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Gtid> {
        let bad = || {
            Error::usage(format!(
                "`{s}` is not a MariaDB GTID: expected domain-server-sequence, e.g. 0-1-42"
            ))
        };
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let domain = next()?.parse().map_err(|_| bad())?;
        let server = next()?.parse().map_err(|_| bad())?;
        let seq = next()?.parse().map_err(|_| bad())?;
        Ok(Gtid {
            domain,
            server,
            seq,
        })
    }
}

impl Serialize for Gtid {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Gtid {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<Gtid, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

/// A MariaDB GTID position: the last GTID of each domain. Sequence numbers grow within a domain
/// (whichever server wrote them), so a GTID is "in" a position when its sequence number is at
/// or below the position's for its domain.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    domains: BTreeMap<u32, Gtid>,
}

impl GtidPos {
    pub fn new() -> GtidPos {
        GtidPos::default()
    }

    /// True when the position already includes `gtid` (same domain, sequence not greater).
    pub fn contains(&self, gtid: &Gtid) -> bool {
        self.domains
            .get(&gtid.domain)
            .is_some_and(|last| gtid.seq <= last.seq)
    }

    /// Records `gtid` as applied: it becomes its domain's last GTID if it is newer.
    pub fn advance(&mut self, gtid: Gtid) {
        match self.domains.get(&gtid.domain) {
            Some(last) if last.seq >= gtid.seq => {}
            _ => {
                self.domains.insert(gtid.domain, gtid);
            }
        }
    }

    /// Builds a position from a binlog state (possibly several servers per domain).
    pub fn from_gtids(gtids: impl IntoIterator<Item = Gtid>) -> GtidPos {
        let mut pos = GtidPos::new();
        for g in gtids {
            pos.advance(g);
        }
        pos
    }

    pub fn get(&self, domain: u32) -> Option<&Gtid> {
        self.domains.get(&domain)
    }

    pub fn gtids(&self) -> impl Iterator<Item = &Gtid> {
        self.domains.values()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty()
    }

    /// True when every domain of `other` is at or below this position.
    pub fn includes(&self, other: &GtidPos) -> bool {
        other.gtids().all(|g| self.contains(g))
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, g) in self.domains.values().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{g}")?;
        }
        Ok(())
    }
}

impl FromStr for GtidPos {
    type Err = Error;

    /// Parses `gtid_binlog_pos` syntax: comma-separated GTIDs, at most one per domain; an empty
    /// string is the empty position.
    fn from_str(s: &str) -> Result<GtidPos> {
        let mut pos = GtidPos::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let gtid: Gtid = part.parse()?;
            if pos.domains.insert(gtid.domain, gtid).is_some() {
                return Err(Error::usage(format!(
                    "GTID position `{s}` names domain {} twice",
                    gtid.domain
                )));
            }
        }
        Ok(pos)
    }
}

impl Serialize for GtidPos {
    fn serialize<S: serde::Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for GtidPos {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> std::result::Result<GtidPos, D::Error> {
        let s = String::deserialize(d)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gtid_text_round_trips_and_rejects_garbage() {
        let g: Gtid = "0-1-42".parse().unwrap();
        assert_eq!(
            g,
            Gtid {
                domain: 0,
                server: 1,
                seq: 42
            }
        );
        assert_eq!(g.to_string(), "0-1-42");
        for bad in ["", "0-1", "a-1-2", "0-1-2-3", "0--2", "-1-1-1"] {
            assert!(bad.parse::<Gtid>().is_err(), "{bad}");
        }
    }

    #[test]
    fn positions_contain_by_domain_and_sequence() {
        let pos: GtidPos = "0-1-100, 2-5-7".parse().unwrap();
        assert_eq!(pos.to_string(), "0-1-100,2-5-7");
        let table = [
            ("0-1-100", true),
            ("0-9-99", true), // another server in the same domain: sequence decides
            ("0-1-101", false),
            ("2-5-8", false),
            ("1-1-1", false), // unknown domain
        ];
        for (g, want) in table {
            assert_eq!(pos.contains(&g.parse().unwrap()), want, "{g}");
        }
        assert!("0-1-1,0-2-2".parse::<GtidPos>().is_err());
        assert!("".parse::<GtidPos>().unwrap().is_empty());
    }

    #[test]
    fn advance_keeps_the_newest_per_domain() {
        let mut pos = GtidPos::new();
        pos.advance("0-1-5".parse().unwrap());
        pos.advance("0-2-3".parse().unwrap());
        pos.advance("1-1-1".parse().unwrap());
        assert_eq!(pos.to_string(), "0-1-5,1-1-1");
        let older: GtidPos = "0-1-4".parse().unwrap();
        assert!(pos.includes(&older));
        assert!(!older.includes(&pos));
    }
}
