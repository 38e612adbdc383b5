//! Incremental chains: a full physical backup followed by incrementals, each starting at the
//! LSN its parent ended at. Restores and `verify` walk the chain from a backup to its base.

use crate::manifest::{BackupManifest, PhysicalInfo};
use crate::repo::Repository;
use crate::{Error, ErrorKind, Result};

/// The physical part of a manifest, or an error saying the backup is not physical.
pub fn physical_info(m: &BackupManifest) -> Result<&PhysicalInfo> {
    m.physical
        .as_ref()
        .filter(|_| m.is_physical())
        .ok_or_else(|| {
            Error::usage(format!(
                "backup {} is a {} backup, not a physical one",
                m.id, m.engine
            ))
        })
}

/// Why `child` cannot be applied on top of `parent`, if it cannot.
pub fn check_link(parent: &BackupManifest, child: &BackupManifest) -> Result<(), String> {
    let (Some(p), Some(c)) = (&parent.physical, &child.physical) else {
        return Err(format!(
            "backup {} names {} as its parent, which is a {} backup; incrementals apply only on \
             top of physical backups",
            child.id, parent.id, parent.engine
        ));
    };
    if p.tool != c.tool {
        return Err(format!(
            "backup {} was taken with {} but its parent {} with {}",
            child.id, c.tool, parent.id, p.tool
        ));
    }
    if c.from_lsn != p.to_lsn {
        return Err(format!(
            "backup {} starts at LSN {} but its parent {} ends at LSN {}: the chain has a gap",
            child.id, c.from_lsn, parent.id, p.to_lsn
        ));
    }
    Ok(())
}

/// Every backup needed to restore `target`, base (full) first, `target` last. A missing parent
/// or a broken link is an [`ErrorKind::Integrity`] error naming the backups involved.
pub async fn resolve_chain(
    repo: &Repository,
    target: &BackupManifest,
) -> Result<Vec<BackupManifest>> {
    physical_info(target)?;
    let mut chain = vec![target.clone()];
    loop {
        let child = chain.last().expect("chain is never empty");
        let Some(parent_id) = child.parent().map(str::to_string) else {
            break;
        };
        if chain.iter().any(|m| m.id == parent_id) {
            return Err(Error::integrity(format!(
                "backup {} has a parent loop through {parent_id}",
                target.id
            )));
        }
        let parent = match repo.load_manifest(&parent_id).await {
            Ok(m) => m,
            Err(e) if e.kind() == ErrorKind::NotFound => {
                return Err(Error::integrity(format!(
                    "backup {} is an incremental on top of {parent_id}, which is missing from the \
                     repository: the chain is broken and {} cannot be restored; restore an \
                     older complete chain, or take a new full backup (`holdfast backup --engine \
                     physical`)",
                    child.id, target.id
                )))
            }
            Err(e) => return Err(e),
        };
        check_link(&parent, child).map_err(Error::integrity)?;
        chain.push(parent);
    }
    chain.reverse();
    Ok(chain)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::{ConsistentPoint, LockTimes, ServerInfo, MANIFEST_FORMAT};

    fn physical(id: &str, parent: Option<&str>, from: u64, to: u64) -> BackupManifest {
        let now = time::OffsetDateTime::UNIX_EPOCH;
        BackupManifest {
            format: MANIFEST_FORMAT,
            id: id.into(),
            engine: "physical".into(),
            tool_version: "t".into(),
            server: ServerInfo {
                flavor: "mariadb".into(),
                version: "10.11".into(),
                server_id: 1,
                server_uuid: String::new(),
                hostname: "h".into(),
            },
            started: now,
            finished: now,
            consistent_point: ConsistentPoint::default(),
            lock_held_ms: 0,
            compression: "zstd".into(),
            schema_file: String::new(),
            tables: vec![],
            files: vec![],
            includes_users: false,
            physical: Some(PhysicalInfo {
                tool: "mariabackup".into(),
                tool_version: "x".into(),
                kind: if parent.is_some() {
                    "incremental"
                } else {
                    "full"
                }
                .into(),
                parent: parent.map(str::to_string),
                from_lsn: from,
                to_lsn: to,
                last_lsn: to,
                stream_file: "stream.xbstream.zst".into(),
                stream_bytes: 0,
                log_file: "mariabackup.log.zst".into(),
                locks: LockTimes::default(),
                replica_of: None,
            }),
            scope: None,
        }
    }

    #[test]
    fn links() {
        let full = physical("a", None, 0, 100);
        let inc = physical("b", Some("a"), 100, 150);
        assert_eq!(check_link(&full, &inc), Ok(()));
        let gap = physical("c", Some("a"), 120, 150);
        assert!(check_link(&full, &gap).unwrap_err().contains("gap"));
        let mut logical = full.clone();
        logical.engine = "logical".into();
        logical.physical = None;
        assert!(check_link(&logical, &inc).unwrap_err().contains("logical"));
        let mut other_tool = inc.clone();
        other_tool.physical.as_mut().unwrap().tool = "xtrabackup".into();
        assert!(check_link(&full, &other_tool).is_err());
    }
}
