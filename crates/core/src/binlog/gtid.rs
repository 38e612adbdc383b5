//! Global transaction ids of both flavors, and GTID positions.
//!
//! - [`Gtid`]: one transaction's id, either MariaDB's `domain-server-seq` ([`MariaGtid`]) or
//!   MySQL's `source_uuid:gno` ([`MysqlGtid`]).
//! - [`GtidPos`]: "which transactions are in": for MariaDB the last GTID of each replication
//!   domain (as in `gtid_binlog_pos`: sequence numbers grow within a domain, so the last one
//!   says everything before it is in), for MySQL a set of gno intervals per source uuid (as in
//!   `gtid_executed`: `uuid:1-5:7-9,uuid2:1-3`, holes allowed). One position may hold both
//!   kinds; the planner, the archive index and the manifests use this one type whatever the
//!   flavor. Its text is the servers' own syntax, so a MariaDB position reads and writes
//!   exactly as before MySQL support existed.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::{Error, Result};

/// One MariaDB GTID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MariaGtid {
    pub domain: u32,
    pub server: u32,
    pub seq: u64,
}

impl fmt::Display for MariaGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}-{}", self.domain, self.server, self.seq)
    }
}

impl FromStr for MariaGtid {
    type Err = Error;

    fn from_str(s: &str) -> Result<MariaGtid> {
        let bad = || {
            Error::usage(format!(
                "`{s}` is not a GTID: expected domain-server-sequence (MariaDB, e.g. 0-1-42) \
                 or source_uuid:number (MySQL, e.g. 3e11fa47-71ca-11e1-9e33-c80aa9429562:23)"
            ))
        };
        let mut parts = s.trim().splitn(3, '-');
        let mut next = || parts.next().ok_or_else(bad);
        let domain = next()?.parse().map_err(|_| bad())?;
        let server = next()?.parse().map_err(|_| bad())?;
        let seq = next()?.parse().map_err(|_| bad())?;
        Ok(MariaGtid {
            domain,
            server,
            seq,
        })
    }
}

/// One MySQL GTID: the uuid of the server that first committed the transaction, and its
/// transaction number there (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MysqlGtid {
    pub sid: Uuid,
    pub gno: u64,
}

impl fmt::Display for MysqlGtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.sid.hyphenated(), self.gno)
    }
}

impl FromStr for MysqlGtid {
    type Err = Error;

    fn from_str(s: &str) -> Result<MysqlGtid> {
        let bad = || {
            Error::usage(format!(
                "`{s}` is not a MySQL GTID: expected source_uuid:number, e.g. \
                 3e11fa47-71ca-11e1-9e33-c80aa9429562:23"
            ))
        };
        let (sid, gno) = s.trim().split_once(':').ok_or_else(bad)?;
        let sid = Uuid::parse_str(sid).map_err(|_| bad())?;
        let gno: u64 = gno.parse().map_err(|_| bad())?;
        if gno == 0 {
            return Err(bad());
        }
        Ok(MysqlGtid { sid, gno })
    }
}

/// A global transaction id of either flavor. Its text is the server's own:
/// `0-1-42` (MariaDB) or `3e11fa47-71ca-11e1-9e33-c80aa9429562:23` (MySQL).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Gtid {
    MariaDb(MariaGtid),
    MySql(MysqlGtid),
}

/// The ordered stream a GTID belongs to: within one lane, numbers grow in binlog order
/// (a MariaDB domain; a MySQL source uuid on its own server).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Lane {
    Domain(u32),
    Source(Uuid),
}

impl Gtid {
    /// Shorthand for a MariaDB GTID.
    pub fn maria(domain: u32, server: u32, seq: u64) -> Gtid {
        Gtid::MariaDb(MariaGtid {
            domain,
            server,
            seq,
        })
    }

    pub fn lane(&self) -> Lane {
        match self {
            Gtid::MariaDb(g) => Lane::Domain(g.domain),
            Gtid::MySql(g) => Lane::Source(g.sid),
        }
    }

    /// The sequence number within its lane (MariaDB `seq`, MySQL `gno`).
    pub fn number(&self) -> u64 {
        match self {
            Gtid::MariaDb(g) => g.seq,
            Gtid::MySql(g) => g.gno,
        }
    }

    /// The same lane with another number.
    pub fn with_number(&self, n: u64) -> Gtid {
        match *self {
            Gtid::MariaDb(g) => Gtid::MariaDb(MariaGtid { seq: n, ..g }),
            Gtid::MySql(g) => Gtid::MySql(MysqlGtid { gno: n, ..g }),
        }
    }

    pub fn as_maria(&self) -> Option<&MariaGtid> {
        match self {
            Gtid::MariaDb(g) => Some(g),
            Gtid::MySql(_) => None,
        }
    }
}

impl From<MariaGtid> for Gtid {
    fn from(g: MariaGtid) -> Gtid {
        Gtid::MariaDb(g)
    }
}

impl From<MysqlGtid> for Gtid {
    fn from(g: MysqlGtid) -> Gtid {
        Gtid::MySql(g)
    }
}

impl fmt::Display for Gtid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Gtid::MariaDb(g) => g.fmt(f),
            Gtid::MySql(g) => g.fmt(f),
        }
    }
}

impl FromStr for Gtid {
    type Err = Error;

    fn from_str(s: &str) -> Result<Gtid> {
        if s.contains(':') {
            Ok(Gtid::MySql(s.parse()?))
        } else {
            Ok(Gtid::MariaDb(s.parse()?))
        }
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

/// A set of transaction numbers as sorted, disjoint, non-adjacent inclusive intervals.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IntervalSet {
    ranges: Vec<(u64, u64)>,
}

impl IntervalSet {
    /// The intervals, inclusive at both ends, ascending.
    pub fn ranges(&self) -> &[(u64, u64)] {
        &self.ranges
    }

    pub fn is_empty(&self) -> bool {
        self.ranges.is_empty()
    }

    pub fn contains(&self, n: u64) -> bool {
        let i = self.ranges.partition_point(|&(_, end)| end < n);
        self.ranges.get(i).is_some_and(|&(start, _)| start <= n)
    }

    /// Adds `start..=end` (merging with neighbours it overlaps or touches).
    pub fn insert_range(&mut self, start: u64, end: u64) {
        debug_assert!(start <= end);
        // First interval that ends at or after start - 1 (could merge), last that starts at or
        // before end + 1.
        let lo = self
            .ranges
            .partition_point(|&(_, e)| e.saturating_add(1) < start);
        let hi = self
            .ranges
            .partition_point(|&(s, _)| s <= end.saturating_add(1));
        if lo >= hi {
            self.ranges.insert(lo, (start, end));
            return;
        }
        let merged = (start.min(self.ranges[lo].0), end.max(self.ranges[hi - 1].1));
        self.ranges.splice(lo..hi, [merged]);
    }

    pub fn insert(&mut self, n: u64) {
        self.insert_range(n, n);
    }

    /// True when every number of `other` is in this set.
    pub fn includes(&self, other: &IntervalSet) -> bool {
        other.ranges.iter().all(|&(s, e)| {
            let i = self.ranges.partition_point(|&(_, end)| end < s);
            self.ranges
                .get(i)
                .is_some_and(|&(start, end)| start <= s && e <= end)
        })
    }

    pub fn union(&mut self, other: &IntervalSet) {
        for &(s, e) in &other.ranges {
            self.insert_range(s, e);
        }
    }

    /// The highest number in the set.
    pub fn last(&self) -> Option<u64> {
        self.ranges.last().map(|&(_, e)| e)
    }
}

/// A GTID position (see the module documentation): MariaDB domains and MySQL source sets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GtidPos {
    domains: BTreeMap<u32, MariaGtid>,
    sources: BTreeMap<Uuid, IntervalSet>,
}

impl GtidPos {
    pub fn new() -> GtidPos {
        GtidPos::default()
    }

    /// True when the position already includes `gtid` (MariaDB: same domain, sequence not
    /// greater; MySQL: its number is in its source's set).
    pub fn contains(&self, gtid: &Gtid) -> bool {
        match gtid {
            Gtid::MariaDb(g) => self
                .domains
                .get(&g.domain)
                .is_some_and(|last| g.seq <= last.seq),
            Gtid::MySql(g) => self.sources.get(&g.sid).is_some_and(|s| s.contains(g.gno)),
        }
    }

    /// True when `gtid` is the newest transaction of its lane in this position (MariaDB: the
    /// domain's last GTID; MySQL: the highest number of its source): replaying "up to and
    /// including `gtid`" on top of this position applies nothing.
    pub fn ends_at(&self, gtid: &Gtid) -> bool {
        match gtid {
            Gtid::MariaDb(g) => self.domains.get(&g.domain).is_some_and(|l| l.seq == g.seq),
            Gtid::MySql(g) => self
                .sources
                .get(&g.sid)
                .is_some_and(|s| s.last() == Some(g.gno)),
        }
    }

    /// Records `gtid` as applied (MariaDB: it becomes its domain's last GTID if it is newer;
    /// MySQL: it joins its source's set).
    pub fn advance(&mut self, gtid: Gtid) {
        match gtid {
            Gtid::MariaDb(g) => match self.domains.get(&g.domain) {
                Some(last) if last.seq >= g.seq => {}
                _ => {
                    self.domains.insert(g.domain, g);
                }
            },
            Gtid::MySql(g) => self.sources.entry(g.sid).or_default().insert(g.gno),
        }
    }

    /// Adds MySQL transactions `start..=end` of source `sid`.
    pub fn add_range(&mut self, sid: Uuid, start: u64, end: u64) {
        self.sources
            .entry(sid)
            .or_default()
            .insert_range(start, end);
    }

    /// Adds everything `other` holds.
    pub fn union(&mut self, other: &GtidPos) {
        for g in other.domains.values() {
            self.advance(Gtid::MariaDb(*g));
        }
        for (sid, set) in &other.sources {
            self.sources.entry(*sid).or_default().union(set);
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

    /// The last MariaDB GTID of `domain`.
    pub fn get(&self, domain: u32) -> Option<&MariaGtid> {
        self.domains.get(&domain)
    }

    /// The MariaDB part: the last GTID of each domain.
    pub fn gtids(&self) -> impl Iterator<Item = &MariaGtid> {
        self.domains.values()
    }

    /// The MySQL part: each source uuid with its set.
    pub fn sources(&self) -> impl Iterator<Item = (&Uuid, &IntervalSet)> {
        self.sources.iter()
    }

    /// True when the position holds MySQL GTIDs.
    pub fn has_sources(&self) -> bool {
        !self.sources.is_empty()
    }

    pub fn is_empty(&self) -> bool {
        self.domains.is_empty() && self.sources.is_empty()
    }

    /// True when everything `other` holds is in this position.
    pub fn includes(&self, other: &GtidPos) -> bool {
        other
            .domains
            .values()
            .all(|g| self.contains(&Gtid::MariaDb(*g)))
            && other
                .sources
                .iter()
                .all(|(sid, set)| self.sources.get(sid).is_some_and(|mine| mine.includes(set)))
    }
}

impl fmt::Display for GtidPos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut first = true;
        let mut sep = |f: &mut fmt::Formatter<'_>| {
            if !std::mem::take(&mut first) {
                f.write_str(",")
            } else {
                Ok(())
            }
        };
        for g in self.domains.values() {
            sep(f)?;
            write!(f, "{g}")?;
        }
        for (sid, set) in &self.sources {
            if set.is_empty() {
                continue;
            }
            sep(f)?;
            write!(f, "{}", sid.hyphenated())?;
            for &(s, e) in set.ranges() {
                if s == e {
                    write!(f, ":{s}")?;
                } else {
                    write!(f, ":{s}-{e}")?;
                }
            }
        }
        Ok(())
    }
}

impl FromStr for GtidPos {
    type Err = Error;

    /// Parses `gtid_binlog_pos` syntax (comma-separated MariaDB GTIDs, at most one per domain)
    /// and `gtid_executed` syntax (comma-separated `uuid:interval[:interval…]`, with the
    /// newlines MySQL puts after the commas); an empty string is the empty position.
    fn from_str(s: &str) -> Result<GtidPos> {
        let mut pos = GtidPos::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if part.contains(':') {
                let (sid, set) = parse_source_set(part)?;
                pos.sources.entry(sid).or_default().union(&set);
                continue;
            }
            let gtid: MariaGtid = part.parse()?;
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

/// `uuid:1-5:7:9-12`, with mysql_common's parser (which checks the uuid and that no interval is
/// empty or starts at 0).
fn parse_source_set(part: &str) -> Result<(Uuid, IntervalSet)> {
    let sid: mysql_common::packets::Sid<'_> = part.parse().map_err(|e: std::io::Error| {
        Error::usage(format!(
            "`{part}` is not a MySQL GTID set: {e}; expected uuid:interval[:interval…], e.g. \
             3e11fa47-71ca-11e1-9e33-c80aa9429562:1-5:7"
        ))
    })?;
    if sid.tag().is_some() {
        return Err(Error::usage(format!(
            "`{part}` is a tagged GTID (MySQL 8.4); holdfast reads untagged GTIDs only"
        )));
    }
    let mut set = IntervalSet::default();
    for i in sid.intervals() {
        // mysql_common's intervals are end-exclusive.
        set.insert_range(i.start(), i.end() - 1);
    }
    Ok((Uuid::from_bytes(sid.uuid()), set))
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

    const A: &str = "3e11fa47-71ca-11e1-9e33-c80aa9429562";
    const B: &str = "f72e8c95-e574-11f1-ab95-02fc00000001";

    #[test]
    fn gtid_text_round_trips_and_rejects_garbage() {
        let g: Gtid = "0-1-42".parse().unwrap();
        assert_eq!(g, Gtid::maria(0, 1, 42));
        assert_eq!(g.to_string(), "0-1-42");
        let m: Gtid = format!("{A}:23").parse().unwrap();
        assert_eq!(m.number(), 23);
        assert_eq!(m.to_string(), format!("{A}:23"));
        assert_eq!(
            format!("{}:7", A.to_uppercase()).parse::<Gtid>().unwrap(),
            m.with_number(7)
        );
        for bad in [
            "",
            "0-1",
            "a-1-2",
            "0-1-2-3",
            "0--2",
            "-1-1-1",
            "nope:1",
            &format!("{A}:0"),
            &format!("{A}:1-5"),
            &format!("{A}:"),
        ] {
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

    #[test]
    fn interval_sets_insert_merge_and_include() {
        // (inserted ranges, expected ranges)
        type Ranges = &'static [(u64, u64)];
        let cases: &[(Ranges, Ranges)] = &[
            (&[(1, 1)], &[(1, 1)]),
            (&[(1, 1), (2, 2), (3, 3)], &[(1, 3)]),
            (&[(5, 5), (1, 1), (3, 3)], &[(1, 1), (3, 3), (5, 5)]),
            (&[(1, 1), (3, 3), (2, 2)], &[(1, 3)]),
            (&[(1, 5), (7, 9), (4, 8)], &[(1, 9)]),
            (&[(1, 5), (7, 9), (6, 6)], &[(1, 9)]),
            (&[(10, 20), (1, 2), (30, 40), (3, 29)], &[(1, 40)]),
            (&[(10, 20), (12, 15)], &[(10, 20)]),
            (&[(10, 20), (21, 21), (22, 22)], &[(10, 22)]),
            (&[(10, 20), (1, 9)], &[(1, 20)]),
            (&[(10, 20), (1, 8)], &[(1, 8), (10, 20)]),
            (
                &[(u64::MAX - 1, u64::MAX), (1, 1)],
                &[(1, 1), (u64::MAX - 1, u64::MAX)],
            ),
        ];
        for (inserts, want) in cases {
            let mut set = IntervalSet::default();
            for &(s, e) in *inserts {
                set.insert_range(s, e);
            }
            assert_eq!(set.ranges(), *want, "{inserts:?}");
        }
        let mut set = IntervalSet::default();
        set.insert_range(1, 5);
        set.insert_range(7, 9);
        for (n, want) in [
            (0, false),
            (1, true),
            (5, true),
            (6, false),
            (7, true),
            (10, false),
        ] {
            assert_eq!(set.contains(n), want, "{n}");
        }
        let sub = |r: &[(u64, u64)]| {
            let mut s = IntervalSet::default();
            for &(a, b) in r {
                s.insert_range(a, b);
            }
            s
        };
        let inclusion = [
            (&[(2, 4)][..], true),
            (&[(1, 5), (8, 8)][..], true),
            (&[(5, 7)][..], false),
            (&[(9, 10)][..], false),
            (&[][..], true),
        ];
        for (other, want) in inclusion {
            assert_eq!(set.includes(&sub(other)), want, "{other:?}");
        }
        assert_eq!(set.last(), Some(9));
    }

    #[test]
    fn mysql_sets_parse_print_and_compare_like_gtid_executed() {
        let text = format!("{B}:1-3,\n{A}:1-5:7-9:11");
        let pos: GtidPos = text.parse().unwrap();
        assert_eq!(pos.to_string(), format!("{A}:1-5:7-9:11,{B}:1-3"));
        assert_eq!(pos.to_string().parse::<GtidPos>().unwrap(), pos);
        let g = |s: &str, n: u64| Gtid::MySql(format!("{s}:{n}").parse().unwrap());
        let table = [
            (g(A, 1), true),
            (g(A, 6), false),
            (g(A, 9), true),
            (g(A, 10), false),
            (g(A, 11), true),
            (g(B, 4), false),
        ];
        for (gtid, want) in table {
            assert_eq!(pos.contains(&gtid), want, "{gtid}");
        }
        assert!(pos.ends_at(&g(A, 11)));
        assert!(!pos.ends_at(&g(A, 9)));
        // The same uuid twice is a union (MySQL accepts it).
        let twice: GtidPos = format!("{A}:1-2,{A}:3-4").parse().unwrap();
        assert_eq!(twice.to_string(), format!("{A}:1-4"));
        let mut grown = GtidPos::new();
        for n in [3, 1, 2, 5] {
            grown.advance(g(A, n));
        }
        assert_eq!(grown.to_string(), format!("{A}:1-3:5"));
        assert!(pos.includes(&grown) && !grown.includes(&pos));
        let mut u = grown.clone();
        u.union(&pos);
        assert_eq!(u, pos);
        // Flavors mix in one position, MariaDB first.
        let mixed: GtidPos = format!("{A}:1-2,0-1-5").parse().unwrap();
        assert_eq!(mixed.to_string(), format!("0-1-5,{A}:1-2"));
        for bad in [
            format!("{A}:0-3"),
            format!("{A}:5-3"),
            format!("{A}:x"),
            "zz:1".to_string(),
            format!("{A}:tag:1"),
        ] {
            assert!(bad.parse::<GtidPos>().is_err(), "{bad}");
        }
    }
}
