//! Where things live inside a repository.
//!
//! ```text
//! holdfast.repo                       format, id, wrapped data key (clear; the only clear file
//!                                     of an encrypted repository)
//! locks/exclusive.lock                owner and expiry of the exclusive lock
//! backups/<id>/manifest               written last: the commit point
//! backups/<id>/summary                right after it: the manifest without its table and file
//!                                     lists (a derived cache; optional)
//! backups/<id>/schema.json.zst        schema objects
//! backups/<id>/data/<db>/<table>/<n>.tsv.zst   row chunks (names percent-encoded)
//! policy.json                         the stored retention policy (`holdfast policy set`)
//! pins/<id>.json                      a pinned backup (`holdfast pin`)
//! ```

use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};
use time::OffsetDateTime;

use crate::{Error, Result};

pub const REPO_FILE: &str = "holdfast.repo";
/// The previous `holdfast.repo`, present only while a key change rewrites it.
pub const REPO_FILE_PREVIOUS: &str = "holdfast.repo.previous";
pub const BACKUPS_DIR: &str = "backups/";
pub const LOCKS_DIR: &str = "locks/";
pub const MANIFEST: &str = "manifest";
pub const SUMMARY: &str = "summary";
pub const POLICY_FILE: &str = "policy.json";
pub const PINS_DIR: &str = "pins/";

pub fn pin_path(id: &str) -> String {
    format!("{PINS_DIR}{id}.json")
}

/// The backup id of a `pins/<id>.json` path.
pub fn pin_owner(path: &str) -> Option<&str> {
    path.strip_prefix(PINS_DIR)?.strip_suffix(".json")
}

pub fn backup_dir(id: &str) -> String {
    format!("{BACKUPS_DIR}{id}/")
}

pub fn manifest_path(id: &str) -> String {
    format!("{BACKUPS_DIR}{id}/{MANIFEST}")
}

pub fn summary_path(id: &str) -> String {
    format!("{BACKUPS_DIR}{id}/{SUMMARY}")
}

/// A file of a backup, from its path relative to the backup directory.
pub fn backup_file(id: &str, relative: &str) -> String {
    format!("{BACKUPS_DIR}{id}/{relative}")
}

/// Relative path of a table's data chunk.
pub fn chunk_file(db: &str, table: &str, index: usize) -> String {
    format!(
        "data/{}/{}/{index:05}.tsv.zst",
        encode_name(db),
        encode_name(table)
    )
}

/// Relative path of a pack: many small tables' chunks in one file (manifest format 2).
pub fn pack_file(index: usize) -> String {
    format!("packs/{index:05}.tsv.zst")
}

/// The backup id owning a repository path under `backups/`.
pub fn backup_owner(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(BACKUPS_DIR)?;
    let (id, _) = rest.split_once('/')?;
    Some(id)
}

/// The backup id if `path` is a backup's manifest.
pub fn manifest_owner(path: &str) -> Option<&str> {
    let rest = path.strip_prefix(BACKUPS_DIR)?;
    let (id, file) = rest.split_once('/')?;
    (file == MANIFEST).then_some(id)
}

/// Characters kept as-is in file names; everything else is percent-encoded, so names with
/// spaces, slashes, backticks or unicode map to portable, reversible paths.
const NAME_SET: &AsciiSet = &NON_ALPHANUMERIC.remove(b'_').remove(b'-');

pub fn encode_name(name: &str) -> String {
    utf8_percent_encode(name, NAME_SET).to_string()
}

/// A new backup id: UTC time (sortable) plus a random suffix.
pub fn new_backup_id(now: OffsetDateTime) -> String {
    format!("{}-{:04x}", id_stamp(now), rand::random::<u16>())
}

/// A new backup id that sorts after every id of `existing` started in the same second, so that
/// the order of ids (what `latest`, an incremental's parent and retention go by) stays the order
/// of the backups: two backups started within one second would otherwise be ordered by their
/// random suffixes. The suffix is random above the highest one of that second (the next second
/// if that is `ffff`). `existing` ids of other seconds or other forms do not matter.
pub fn next_backup_id(now: OffsetDateTime, existing: &[String]) -> String {
    next_backup_id_with(now, existing, rand::random())
}

fn next_backup_id_with(now: OffsetDateTime, existing: &[String], random: u16) -> String {
    let stamp = id_stamp(now);
    let highest = existing
        .iter()
        .filter_map(|id| id.strip_prefix(stamp.as_str())?.strip_prefix('-'))
        .filter(|suffix| suffix.len() == 4)
        .filter_map(|suffix| u16::from_str_radix(suffix, 16).ok())
        .max();
    let suffix = match highest {
        None => random,
        Some(0xffff) => return next_backup_id_with(now + time::Duration::SECOND, existing, random),
        // Random in (highest, highest + 256], within u16.
        Some(h) => h + 1 + random % (0xffff - h).min(0x100),
    };
    format!("{stamp}-{suffix:04x}")
}

/// `20261121T004512Z`: the UTC second an id starts with.
fn id_stamp(now: OffsetDateTime) -> String {
    let now = now.to_offset(time::UtcOffset::UTC);
    format!(
        "{:04}{:02}{:02}T{:02}{:02}{:02}Z",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second()
    )
}

/// The start time a backup id encodes (`20261121T004512Z-1a2b`), to the second; `None` for
/// an id in another form.
pub fn backup_id_time(id: &str) -> Option<OffsetDateTime> {
    let stamp = id.get(..16)?;
    let format = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    time::PrimitiveDateTime::parse(stamp, &format)
        .ok()
        .map(|t| t.assume_utc())
}

/// Rejects ids that could escape the backups directory.
pub fn validate_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(Error::usage(format!(
            "`{id}` is not a backup id (ids look like 20261121T004512Z-1a2b)"
        )))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_backup_id_tells_its_start_time() {
        let now = OffsetDateTime::from_unix_timestamp(1_763_685_912).unwrap();
        assert_eq!(backup_id_time(&new_backup_id(now)), Some(now));
        assert_eq!(backup_id_time("nightly"), None);
        assert_eq!(backup_id_time("20261399T004512Z-1a2b"), None);
    }

    #[test]
    fn owners() {
        assert_eq!(manifest_owner("backups/X/manifest"), Some("X"));
        assert_eq!(manifest_owner("backups/X/data/a/b/00000.tsv.zst"), None);
        assert_eq!(backup_owner("backups/X/data/a"), Some("X"));
        assert_eq!(backup_owner("locks/exclusive.lock"), None);
    }

    #[test]
    fn names_are_encoded() {
        assert_eq!(encode_name("plain_name-1"), "plain_name-1");
        assert_eq!(encode_name("with space"), "with%20space");
        assert_eq!(encode_name("a/b`c"), "a%2Fb%60c");
        assert_eq!(encode_name("é"), "%C3%A9");
    }

    #[test]
    fn a_new_id_sorts_after_the_ids_of_its_second() {
        let t = time::macros::datetime!(2026-11-21 00:45:12.5 UTC);
        let ids = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        // (existing ids, random draw, expected id)
        let cases: &[(&[&str], u16, &str)] = &[
            (&[], 0x1234, "20261121T004512Z-1234"),
            (&["20261121T004511Z-ffff"], 0x0001, "20261121T004512Z-0001"),
            (&["20261121T004512Z-c000"], 0x0000, "20261121T004512Z-c001"),
            (&["20261121T004512Z-c000"], 0x00ff, "20261121T004512Z-c100"),
            (&["20261121T004512Z-c000"], 0x0100, "20261121T004512Z-c001"),
            (
                &["20261121T004512Z-0010", "20261121T004512Z-fff0", "nightly"],
                0x0005,
                "20261121T004512Z-fff6",
            ),
            (&["20261121T004512Z-fffe"], 0x0007, "20261121T004512Z-ffff"),
            (&["20261121T004512Z-ffff"], 0x0042, "20261121T004513Z-0042"),
        ];
        for (existing, random, expected) in cases {
            let existing = ids(existing);
            let id = next_backup_id_with(t, &existing, *random);
            assert_eq!(id, *expected, "{existing:?} {random:#x}");
            assert!(existing
                .iter()
                .all(|e| e.as_str() < id.as_str() || e == "nightly"));
        }
    }

    #[test]
    fn ids() {
        let t = time::macros::datetime!(2026-11-21 00:45:12 UTC);
        let id = new_backup_id(t);
        assert!(id.starts_with("20261121T004512Z-"), "{id}");
        assert!(validate_id(&id).is_ok());
        assert!(validate_id("../etc").is_err());
        assert!(validate_id("").is_err());
    }
}
