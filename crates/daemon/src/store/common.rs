//! The parts of [`JobStore`](super::JobStore) that are the same SQL in SQLite and PostgreSQL,
//! written once as a macro expanded for each backend's concrete sqlx types (sqlx code generic
//! over the database needs a wall of trait bounds; the expansion keeps both readable).
//!
//! A backend provides, as inherent items:
//! - `pool: sqlx::Pool<DB>`;
//! - `begin_write(&self)`: a transaction that may write (SQLite: `BEGIN IMMEDIATE`, so the
//!   writer lock is taken up front and reads inside it are current);
//! - `begin_migration(&self)`: the same, serialised against other processes migrating;
//! - `LOCK_ROW` / `LOCK_SKIP`: the suffix of a `SELECT` that locks the rows it reads (waiting,
//!   or skipping rows others hold); empty for SQLite, where `BEGIN IMMEDIATE` already excludes
//!   every other writer;
//! - `claim_impl`: the claim, which differs (PostgreSQL skips locked rows and treats a
//!   violation of the per-server index as "not now").

macro_rules! job_store_impl {
    ($store:ty, $db:ty) => {
        impl $store {
            /// Creates or upgrades the schema; refuses a newer one.
            async fn migrate(&self, location: &str) -> $crate::store::Result<()> {
                use $crate::store::schema::{
                    step, CREATE_META, READ_VERSION, SCHEMA_VERSION, WRITE_VERSION,
                };
                let mut tx = self.begin_migration().await?;
                sqlx::query(CREATE_META)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                let found: Option<String> = sqlx::query_scalar(READ_VERSION)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(query_err)?;
                let found: i64 = match found {
                    None => 0,
                    Some(v) => v.parse().map_err(|_| {
                        StoreError::Corrupt(format!(
                            "{location}: schema_version {v:?} is not a number"
                        ))
                    })?,
                };
                if found > SCHEMA_VERSION {
                    return Err(StoreError::TooNew {
                        found,
                        supported: SCHEMA_VERSION,
                    });
                }
                if found == SCHEMA_VERSION {
                    tx.commit().await.map_err(query_err)?;
                    return Ok(());
                }
                for from in found..SCHEMA_VERSION {
                    for statement in step(Self::DIALECT, from) {
                        sqlx::query(&statement)
                            .execute(&mut *tx)
                            .await
                            .map_err(query_err)?;
                    }
                }
                sqlx::query(WRITE_VERSION)
                    .bind(SCHEMA_VERSION.to_string())
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                tx.commit().await.map_err(query_err)?;
                tracing::info!(from = found, to = SCHEMA_VERSION, "job store schema migrated");
                Ok(())
            }

            async fn add_transition(
                tx: &mut sqlx::Transaction<'static, $db>,
                t: &Transition,
            ) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO transitions (job_id, at, from_state, to_state, attempt, worker, \
                     message) VALUES ($1, $2, $3, $4, $5, $6, $7)",
                )
                .bind(t.job_id)
                .bind(t.at)
                .bind(t.from.map(|s| s.as_str()))
                .bind(t.to.as_str())
                .bind(t.attempt as i64)
                .bind(t.worker.as_deref())
                .bind(t.message.as_str())
                .execute(&mut **tx)
                .await
                .map_err(query_err)?;
                Ok(())
            }

            /// Marks a job `running` for `worker` (guarded by the state it was read in) and
            /// records the claim.
            async fn mark_claimed(
                tx: &mut sqlx::Transaction<'static, $db>,
                job: &Job,
                worker: &str,
                now: Millis,
                lease_ms: Millis,
            ) -> $crate::store::Result<$crate::store::common::Mark> {
                use $crate::store::common::Mark;
                let sql = format!(
                    "UPDATE jobs SET state = 'running', attempt = attempt + 1, worker = $2, \
                     lease_until = $3, updated_at = $4 WHERE id = $1 AND state = $5 \
                     RETURNING {JOB_COLUMNS}"
                );
                let row = match sqlx::query(&sql)
                    .bind(job.id)
                    .bind(worker)
                    .bind(now.saturating_add(lease_ms))
                    .bind(now)
                    .bind(job.state.as_str())
                    .fetch_optional(&mut **tx)
                    .await
                {
                    Ok(Some(row)) => row,
                    Ok(None) => return Ok(Mark::Gone),
                    Err(e) if rows::is_unique_violation(&e) => return Ok(Mark::Conflict),
                    Err(e) => return Err(query_err(e)),
                };
                let claimed = rows::job(&row)?;
                let t = Transition {
                    job_id: job.id,
                    at: now,
                    from: Some(job.state),
                    to: JobState::Running,
                    attempt: claimed.attempt,
                    worker: Some(worker.to_string()),
                    message: format!(
                        "claimed by {worker} (attempt {} of {})",
                        claimed.attempt, claimed.spec.max_attempts
                    ),
                };
                Self::add_transition(tx, &t).await?;
                Ok(Mark::Claimed(Box::new(claimed)))
            }

            /// The due waiting jobs, best first (as [`queue::pick`] orders them), at most
            /// [`CANDIDATES`], locked with `lock`.
            async fn candidates(
                tx: &mut sqlx::Transaction<'static, $db>,
                now: Millis,
                lock: &str,
            ) -> $crate::store::Result<Vec<Job>> {
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state IN ('queued', 'retrying') \
                     AND run_at <= $1 \
                     ORDER BY priority + ($1 - run_at) / {AGING} DESC, run_at, id \
                     LIMIT {CANDIDATES} {lock}",
                    CANDIDATES = $crate::store::common::CANDIDATES,
                    AGING = queue::AGING_STEP_MS,
                );
                let rows = sqlx::query(&sql)
                    .bind(now)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(query_err)?;
                rows.iter().map(rows::job).collect()
            }

            async fn running(
                tx: &mut sqlx::Transaction<'static, $db>,
            ) -> $crate::store::Result<Vec<Job>> {
                let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running'");
                let rows = sqlx::query(&sql)
                    .fetch_all(&mut **tx)
                    .await
                    .map_err(query_err)?;
                rows.iter().map(rows::job).collect()
            }
        }

        #[async_trait::async_trait]
        impl JobStore for $store {
            async fn enqueue(
                &self,
                spec: &JobSpec,
                run_at: Millis,
                now: Millis,
            ) -> $crate::store::Result<Option<Job>> {
                let trace_id = uuid::Uuid::new_v4().simple().to_string();
                let sql = format!(
                    "INSERT INTO jobs (server, host, repository, kind, priority, timeout_ms, \
                     max_attempts, backoff_base_ms, backoff_cap_ms, schedule, planned_at, \
                     trigger_kind, requested_by, state, attempt, run_at, created_at, updated_at, \
                     trace_id, restore_target, restore_backup, restore_to_time, restore_to_gtid) \
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, \
                     'queued', 0, $14, $15, $15, $16, $17, $18, $19, $20) \
                     ON CONFLICT (schedule, planned_at) DO NOTHING RETURNING {JOB_COLUMNS}"
                );
                let mut tx = self.begin_write().await?;
                let row = sqlx::query(&sql)
                    .bind(spec.server.as_str())
                    .bind(spec.host.as_str())
                    .bind(spec.repository.as_str())
                    .bind(spec.kind.as_str())
                    .bind(spec.priority as i64)
                    .bind(spec.timeout_ms)
                    .bind(spec.max_attempts as i64)
                    .bind(spec.backoff_base_ms)
                    .bind(spec.backoff_cap_ms)
                    .bind(spec.schedule.as_deref())
                    .bind(spec.planned_at)
                    .bind(spec.trigger.as_str())
                    .bind(spec.requested_by.as_deref())
                    .bind(run_at)
                    .bind(now)
                    .bind(trace_id.as_str())
                    .bind(spec.restore.as_ref().map(|r| r.target.as_str()))
                    .bind(spec.restore.as_ref().and_then(|r| r.backup.as_deref()))
                    .bind(spec.restore.as_ref().and_then(|r| r.to_time.as_deref()))
                    .bind(spec.restore.as_ref().and_then(|r| r.to_gtid.as_deref()))
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(query_err)?;
                let Some(row) = row else {
                    tx.rollback().await.map_err(query_err)?;
                    return Ok(None);
                };
                let job = rows::job(&row)?;
                let mut message = format!("queued ({})", spec.trigger.as_str());
                if let Some(who) = &spec.requested_by {
                    message.push_str(&format!(" by {who}"));
                }
                if let Some(schedule) = &spec.schedule {
                    message.push_str(&format!(" for schedule {schedule}"));
                }
                let t = Transition {
                    job_id: job.id,
                    at: now,
                    from: None,
                    to: JobState::Queued,
                    attempt: 0,
                    worker: None,
                    message,
                };
                Self::add_transition(&mut tx, &t).await?;
                tx.commit().await.map_err(query_err)?;
                Ok(Some(job))
            }

            async fn claim(
                &self,
                worker: &str,
                own_running: usize,
                limits: &Limits,
                now: Millis,
                lease_ms: Millis,
            ) -> $crate::store::Result<Option<Job>> {
                if own_running >= limits.global {
                    return Ok(None);
                }
                self.claim_impl(worker, own_running, limits, now, lease_ms)
                    .await
            }

            async fn heartbeat(
                &self,
                id: JobId,
                worker: &str,
                now: Millis,
                lease_ms: Millis,
            ) -> $crate::store::Result<bool> {
                let done = sqlx::query(
                    "UPDATE jobs SET lease_until = $4, updated_at = $3 \
                     WHERE id = $1 AND state = 'running' AND worker = $2",
                )
                .bind(id)
                .bind(worker)
                .bind(now)
                .bind(now.saturating_add(lease_ms))
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(done.rows_affected() == 1)
            }

            async fn transition(
                &self,
                id: JobId,
                change: &Change,
            ) -> $crate::store::Result<bool> {
                if !state::can_move(change.from, change.to) || change.to == JobState::Running {
                    return Err(StoreError::InvalidMove {
                        from: change.from,
                        to: change.to,
                    });
                }
                let mut tx = self.begin_write().await?;
                let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1 {}", Self::LOCK_ROW);
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&mut *tx)
                    .await
                    .map_err(query_err)?;
                let Some(job) = row.as_ref().map(rows::job).transpose()? else {
                    return Ok(false);
                };
                let leaves_running = change.from == JobState::Running;
                if job.state != change.from
                    || (leaves_running
                        && change.worker.is_some()
                        && job.worker != change.worker)
                {
                    return Ok(false);
                }
                let run_at = match change.to {
                    JobState::Retrying | JobState::Queued => change.run_at.unwrap_or(change.at),
                    _ => job.run_at,
                };
                // A rescue back to `queued` gives the attempt back: it never really ran.
                let attempt = if leaves_running && change.to == JobState::Queued {
                    job.attempt.saturating_sub(1)
                } else {
                    job.attempt
                };
                let (worker, lease_until) = if leaves_running {
                    (None, None)
                } else {
                    (job.worker.clone(), job.lease_until)
                };
                let result = match &change.result {
                    Some(r) => Some(r.to_string()),
                    None => job.result.as_ref().map(|r| r.to_string()),
                };
                let done = sqlx::query(
                    "UPDATE jobs SET state = $3, updated_at = $4, run_at = $5, attempt = $6, \
                     worker = $7, lease_until = $8, last_error = $9, exit_code = $10, \
                     result = $11 WHERE id = $1 AND state = $2",
                )
                .bind(id)
                .bind(change.from.as_str())
                .bind(change.to.as_str())
                .bind(change.at)
                .bind(run_at)
                .bind(attempt as i64)
                .bind(worker.as_deref())
                .bind(lease_until)
                .bind(change.error.as_deref().or(job.last_error.as_deref()))
                .bind(change.exit_code.or(job.exit_code).map(i64::from))
                .bind(result.as_deref())
                .execute(&mut *tx)
                .await
                .map_err(query_err)?;
                if done.rows_affected() != 1 {
                    return Ok(false);
                }
                let t = Transition {
                    job_id: id,
                    at: change.at,
                    from: Some(change.from),
                    to: change.to,
                    attempt,
                    worker: change.worker.clone().or(job.worker.clone()),
                    message: change.message.clone(),
                };
                Self::add_transition(&mut tx, &t).await?;
                tx.commit().await.map_err(query_err)?;
                Ok(true)
            }

            async fn rescue_expired(&self, now: Millis) -> $crate::store::Result<Vec<JobId>> {
                let mut tx = self.begin_write().await?;
                let sql = format!(
                    "SELECT {JOB_COLUMNS} FROM jobs WHERE state = 'running' AND lease_until < $1 \
                     ORDER BY id {}",
                    Self::LOCK_SKIP
                );
                let rows = sqlx::query(&sql)
                    .bind(now)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(query_err)?;
                let expired: Vec<Job> =
                    rows.iter().map(rows::job).collect::<$crate::store::Result<_>>()?;
                let mut rescued = Vec::new();
                for job in expired {
                    let to = if job.attempt < job.spec.max_attempts {
                        JobState::Retrying
                    } else {
                        JobState::Failed
                    };
                    let holder = job.worker.as_deref().unwrap_or("unknown");
                    let message = format!(
                        "lease expired (worker {holder} stopped heartbeating; lease ended at {})",
                        job.lease_until.unwrap_or_default()
                    );
                    let done = sqlx::query(
                        "UPDATE jobs SET state = $2, updated_at = $3, run_at = $4, worker = NULL, \
                         lease_until = NULL, last_error = $5 \
                         WHERE id = $1 AND state = 'running' AND lease_until < $3",
                    )
                    .bind(job.id)
                    .bind(to.as_str())
                    .bind(now)
                    .bind(if to == JobState::Retrying { now } else { job.run_at })
                    .bind(message.as_str())
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?;
                    if done.rows_affected() != 1 {
                        continue;
                    }
                    let t = Transition {
                        job_id: job.id,
                        at: now,
                        from: Some(JobState::Running),
                        to,
                        attempt: job.attempt,
                        worker: job.worker.clone(),
                        message,
                    };
                    Self::add_transition(&mut tx, &t).await?;
                    rescued.push(job.id);
                }
                tx.commit().await.map_err(query_err)?;
                Ok(rescued)
            }

            async fn job(&self, id: JobId) -> $crate::store::Result<Option<Job>> {
                let sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE id = $1");
                let row = sqlx::query(&sql)
                    .bind(id)
                    .fetch_optional(&self.pool)
                    .await
                    .map_err(query_err)?;
                row.as_ref().map(rows::job).transpose()
            }

            async fn jobs(&self, filter: &JobFilter) -> $crate::store::Result<Vec<Job>> {
                let mut sql = format!("SELECT {JOB_COLUMNS} FROM jobs WHERE 1 = 1");
                let mut n = 0;
                let mut next = || {
                    n += 1;
                    format!("${n}")
                };
                if !filter.states.is_empty() {
                    let marks: Vec<String> = filter.states.iter().map(|_| next()).collect();
                    sql.push_str(&format!(" AND state IN ({})", marks.join(", ")));
                }
                if filter.server.is_some() {
                    sql.push_str(&format!(" AND server = {}", next()));
                }
                if filter.before_id.is_some() {
                    sql.push_str(&format!(" AND id < {}", next()));
                }
                sql.push_str(" ORDER BY id DESC");
                if filter.limit.is_some() {
                    sql.push_str(&format!(" LIMIT {}", next()));
                }
                let mut q = sqlx::query(&sql);
                for s in &filter.states {
                    q = q.bind(s.as_str());
                }
                if let Some(server) = &filter.server {
                    q = q.bind(server.as_str());
                }
                if let Some(before) = filter.before_id {
                    q = q.bind(before);
                }
                if let Some(limit) = filter.limit {
                    q = q.bind(limit as i64);
                }
                let rows = q.fetch_all(&self.pool).await.map_err(query_err)?;
                rows.iter().map(rows::job).collect()
            }

            async fn transitions(&self, id: JobId) -> $crate::store::Result<Vec<Transition>> {
                let sql = format!(
                    "SELECT {TRANSITION_COLUMNS} FROM transitions WHERE job_id = $1 ORDER BY id"
                );
                let rows = sqlx::query(&sql)
                    .bind(id)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_err)?;
                rows.iter().map(rows::transition).collect()
            }

            async fn transitions_since(
                &self,
                since: Millis,
            ) -> $crate::store::Result<Vec<Transition>> {
                let sql = format!(
                    "SELECT {TRANSITION_COLUMNS} FROM transitions WHERE at >= $1 ORDER BY id"
                );
                let rows = sqlx::query(&sql)
                    .bind(since)
                    .fetch_all(&self.pool)
                    .await
                    .map_err(query_err)?;
                rows.iter().map(rows::transition).collect()
            }

            async fn append_log(&self, id: JobId, line: &LogLine) -> $crate::store::Result<()> {
                sqlx::query(
                    "INSERT INTO job_logs (job_id, at, attempt, line) VALUES ($1, $2, $3, $4)",
                )
                .bind(id)
                .bind(line.at)
                .bind(line.attempt as i64)
                .bind(line.line.as_str())
                .execute(&self.pool)
                .await
                .map_err(query_err)?;
                Ok(())
            }

            async fn log(&self, id: JobId) -> $crate::store::Result<Vec<LogLine>> {
                let rows = sqlx::query(
                    "SELECT at, attempt, line FROM job_logs WHERE job_id = $1 ORDER BY id",
                )
                .bind(id)
                .fetch_all(&self.pool)
                .await
                .map_err(query_err)?;
                rows.iter().map(rows::log_line).collect()
            }

            async fn last_planned(&self, schedule: &str) -> $crate::store::Result<Option<Millis>> {
                sqlx::query_scalar("SELECT MAX(planned_at) FROM jobs WHERE schedule = $1")
                    .bind(schedule)
                    .fetch_one(&self.pool)
                    .await
                    .map_err(query_err)
            }

            async fn prune_history(
                &self,
                before: Millis,
            ) -> $crate::store::Result<$crate::store::Pruned> {
                let ended = JobState::ALL
                    .iter()
                    .filter(|s| s.is_terminal())
                    .map(|s| format!("'{}'", s.as_str()))
                    .collect::<Vec<_>>()
                    .join(", ");
                // The jobs to remove (the same set in each statement: `before` is fixed and an
                // ended job never changes again).
                let doomed = format!(
                    "SELECT j.id FROM jobs j WHERE j.state IN ({ended}) AND j.updated_at < $1 \
                     AND NOT (j.schedule IS NOT NULL AND j.planned_at = \
                       (SELECT MAX(k.planned_at) FROM jobs k WHERE k.schedule = j.schedule))"
                );
                let mut tx = self.begin_write().await?;
                let log_lines = sqlx::query(&format!(
                    "DELETE FROM job_logs WHERE job_id IN ({doomed})"
                ))
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(query_err)?
                .rows_affected();
                let transitions = sqlx::query(&format!(
                    "DELETE FROM transitions WHERE job_id IN ({doomed})"
                ))
                .bind(before)
                .execute(&mut *tx)
                .await
                .map_err(query_err)?
                .rows_affected();
                let jobs = sqlx::query(&format!("DELETE FROM jobs WHERE id IN ({doomed})"))
                    .bind(before)
                    .execute(&mut *tx)
                    .await
                    .map_err(query_err)?
                    .rows_affected();
                tx.commit().await.map_err(query_err)?;
                Ok($crate::store::Pruned {
                    jobs,
                    transitions,
                    log_lines,
                })
            }

            async fn count_by_state(&self) -> $crate::store::Result<Vec<(JobState, i64)>> {
                let found: Vec<(String, i64)> =
                    sqlx::query_as("SELECT state, COUNT(*) FROM jobs GROUP BY state")
                        .fetch_all(&self.pool)
                        .await
                        .map_err(query_err)?;
                rows::counts(found)
            }
        }
    };
}

pub(crate) use job_store_impl;

/// How many due jobs a claim considers (best first): more than any realistic backlog of
/// blocked jobs, few enough to read in one go.
pub(crate) const CANDIDATES: usize = 500;

/// What marking a candidate `running` did.
pub(crate) enum Mark {
    Claimed(Box<crate::jobs::Job>),
    /// The row is no longer in the state it was read in (another claimer or a cancel won).
    Gone,
    /// Another server-loading job runs on the same server (the partial unique index).
    Conflict,
}
