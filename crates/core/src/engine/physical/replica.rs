//! Backups from a replica: how far behind it is, and waiting for it to catch up.

use std::time::{Duration, Instant};

use mysql_async::prelude::*;
use mysql_async::{Conn, Row};

use crate::progress::Progress;
use crate::source::Flavor;
use crate::{Error, ErrorKind, Result};

/// The replication state of the source, if it is a replica.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplicaState {
    /// `Seconds_Behind_Master` of the most lagging channel; `None` while a SQL thread is stopped.
    pub lag_seconds: Option<u64>,
}

/// `None` when the server replicates from nobody.
pub async fn replica_state(conn: &mut Conn, flavor: Flavor) -> Result<Option<ReplicaState>> {
    let rows: Vec<Row> = match flavor {
        Flavor::MariaDb => conn.query("SHOW ALL SLAVES STATUS").await?,
        Flavor::MySql => match conn.query("SHOW REPLICA STATUS").await {
            Ok(rows) => rows,
            Err(_) => conn.query("SHOW SLAVE STATUS").await?,
        },
    };
    if rows.is_empty() {
        return Ok(None);
    }
    let mut worst: Option<u64> = Some(0);
    for row in &rows {
        let lag: Option<Option<u64>> = row
            .get_opt::<Option<u64>, _>("Seconds_Behind_Master")
            .or_else(|| row.get_opt::<Option<u64>, _>("Seconds_Behind_Source"))
            .and_then(|r| r.ok());
        match lag.flatten() {
            Some(l) => worst = worst.map(|w| w.max(l)),
            None => worst = None,
        }
    }
    Ok(Some(ReplicaState { lag_seconds: worst }))
}

/// Waits (up to `wait`) until the replica's lag is at most `max_lag`; refuses otherwise.
/// Returns the lag when the backup may start (`None`: replica with a stopped SQL thread, whose
/// data does not move).
pub async fn wait_for_lag(
    conn: &mut Conn,
    flavor: Flavor,
    max_lag: Duration,
    wait: Duration,
    progress: &dyn Progress,
) -> Result<Option<ReplicaState>> {
    let started = Instant::now();
    let mut noted = false;
    loop {
        let Some(state) = replica_state(conn, flavor).await? else {
            return Ok(None);
        };
        match state.lag_seconds {
            Some(lag) if lag > max_lag.as_secs() => {
                if started.elapsed() >= wait {
                    return Err(Error::new(
                        ErrorKind::Server,
                        format!(
                            "the source is a replica {lag}s behind its primary, more than \
                             --max-replica-lag {}s, and did not catch up within \
                             --replica-lag-wait {}s; back up when it has caught up, or raise \
                             the limits",
                            max_lag.as_secs(),
                            wait.as_secs()
                        ),
                    ));
                }
                if !noted {
                    progress.note(&format!(
                        "replica is {lag}s behind its primary; waiting for it to catch up to \
                         {}s",
                        max_lag.as_secs()
                    ));
                    noted = true;
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            _ => return Ok(Some(state)),
        }
    }
}
