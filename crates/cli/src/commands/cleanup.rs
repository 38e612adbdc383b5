//! `holdfast cleanup`: remove the debris of interrupted writes. Files of backups that never
//! committed (an interrupted or killed backup, an upload cut off by a network failure), and
//! incomplete uploads (S3 multipart uploads a killed process never completed, files staged on
//! local disk and never renamed into place). Takes the exclusive lock, so a backup in progress
//! is never touched; uploads younger than the lock TTL are kept unless `--any-age`. Also what
//! a killed `expire` left: binlog data objects whose index entry it had removed, and pins of
//! backups it had removed; and what a killed `binlog stream` left: a segment's data object
//! written before its index entry (only while no stream runs: a running stream owns the
//! archive's tail and removes its own debris when it starts); and what a killed compaction
//! left: data objects no index entry names, numbered up to the archive's newest (while no
//! compaction runs). Also writes the summary of every committed backup that lacks one (written
//! before summaries existed, or a crash right after its manifest) or whose summary is unreadable.

use std::process::ExitCode;

use anyhow::Result;
use holdfast::repo::uploads::UploadPolicy;
use holdfast::retention;
use serde_json::json;

use crate::args::{GlobalArgs, RepoArgs};
use crate::output::outln;
use crate::output::{describe_upload, human_bytes, print_json};

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    repo: RepoArgs,
    /// Only report what would be removed.
    #[arg(long)]
    dry_run: bool,
    /// Also abort incomplete uploads started less than 5 minutes ago (the lock's lifetime).
    /// Safe right after a crash: cleanup holds the exclusive lock, so no backup is running;
    /// while another holdfast process holds a lock (`binlog stream`), recent uploads are kept.
    #[arg(long)]
    any_age: bool,
}

pub async fn run(global: &GlobalArgs, args: Args) -> Result<ExitCode> {
    let repo = args.repo.open().await?;
    let lock = repo.lock("cleanup").await?;
    let policy = UploadPolicy {
        min_age: if args.any_age {
            None
        } else {
            UploadPolicy::stale_only().min_age
        },
        other_writers: Vec::new(),
    };
    let swept = async {
        let orphans = if args.dry_run {
            repo.orphans().await?
        } else {
            repo.remove_orphans(&lock).await?
        };
        let uploads = repo.sweep_uploads(&lock, &policy, args.dry_run).await?;
        let expired = if args.dry_run {
            retention::expired_segment_debris(&repo).await?
        } else {
            retention::remove_expire_debris(&repo, &lock).await?
        };
        let stream = holdfast::binlog::stream::stream_debris(&repo, args.dry_run).await?;
        let archive = holdfast::binlog::archive::Archive::new(repo.storage().clone());
        let compaction =
            holdfast::binlog::compact::compaction_debris(&archive, args.dry_run).await?;
        let summaries = repo.write_missing_summaries(&lock, args.dry_run).await?;
        Ok::<_, holdfast::Error>((orphans, uploads, expired, stream, compaction, summaries))
    }
    .await;
    lock.release().await?;
    let (orphans, uploads, expired, stream, compaction, summaries) = swept?;
    if global.json {
        print_json(&json!({
            "dry_run": args.dry_run,
            "orphans": orphans,
            "incomplete_uploads": uploads,
            "expire_debris": expired,
            "stream_debris": {
                "removed": stream.as_deref().unwrap_or_default(),
                "skipped_stream_running": stream.is_none(),
            },
            "compaction_debris": {
                "removed": compaction.as_deref().unwrap_or_default(),
                "skipped_compaction_running": compaction.is_none(),
            },
            "summaries_written": summaries,
        }))?;
        return Ok(ExitCode::SUCCESS);
    }
    let verb = |done: &'static str, would: &'static str| if args.dry_run { would } else { done };
    let stream_objects = stream.as_deref().unwrap_or_default();
    let compaction_objects = compaction.as_deref().unwrap_or_default();
    if orphans.is_empty()
        && uploads.aborted.is_empty()
        && uploads.kept.is_empty()
        && expired.is_empty()
        && stream_objects.is_empty()
        && compaction_objects.is_empty()
        && summaries.is_empty()
    {
        outln!("nothing to clean up in {}", repo.storage().location());
    }
    for o in &orphans {
        outln!(
            "{} uncommitted backup {}: {} files, {}",
            verb("removed", "would remove"),
            o.id,
            o.files,
            human_bytes(o.bytes)
        );
    }
    if !expired.segment_objects.is_empty() {
        outln!(
            "{} {} binlog object(s) of expired segments ({}), left by an interrupted expire",
            verb("removed", "would remove"),
            expired.segment_objects.len(),
            human_bytes(expired.segment_bytes)
        );
    }
    if !stream_objects.is_empty() {
        outln!(
            "{} {} binlog data object(s) without an index entry, left by a killed binlog stream",
            verb("removed", "would remove"),
            stream_objects.len()
        );
    }
    if !compaction_objects.is_empty() {
        outln!(
            "{} {} binlog data object(s) no index entry names, left by a killed compaction",
            verb("removed", "would remove"),
            compaction_objects.len()
        );
    }
    if compaction.is_none() {
        outln!("kept the binlog archive's unreferenced objects: a compaction is running");
    }
    if stream.is_none() {
        outln!("kept the binlog archive's tail: a binlog stream is running (it removes its own debris when it starts)");
    }
    for id in &summaries {
        outln!(
            "{} the missing summary of backup {id} (from its manifest)",
            verb("wrote", "would write")
        );
    }
    for p in &expired.pins {
        outln!(
            "{} {p}: the pin of a backup that no longer exists",
            verb("removed", "would remove")
        );
    }
    for u in &uploads.aborted {
        outln!(
            "{} incomplete upload {}",
            verb("aborted", "would abort"),
            describe_upload(u)
        );
    }
    for u in &uploads.kept {
        outln!(
            "kept incomplete upload {}: {}",
            describe_upload(u),
            u.kept_because.as_deref().unwrap_or_default()
        );
    }
    if !uploads.listed {
        eprintln!(
            "note: {} cannot list incomplete uploads; configure a lifecycle rule for incomplete \
             multipart uploads on the bucket to reclaim the parts of killed uploads",
            repo.storage().location()
        );
    }
    Ok(ExitCode::SUCCESS)
}
