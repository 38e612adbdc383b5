//! A MySQL recovery target's GTID state: the replay writes every transaction with its own
//! GTID (`gtid_next`), so before it starts the target's `gtid_executed` must be exactly the
//! base backup's set, and after it the replay's end position.
//!
//! A logical restore does not write the binlog, so a freshly restored target has an empty
//! `gtid_executed`; MySQL 5.7 only accepts `SET GLOBAL gtid_purged` on an empty one. holdfast
//! therefore never runs `RESET MASTER`: a target whose `gtid_executed` holds anything other
//! than the base's set (a server with history of its own) is refused before anything is
//! restored, with exit code 14, and the operator decides whether its binlog history may go.

use mysql_async::prelude::Queryable;

use crate::binlog::gtid::GtidPos;
use crate::source::conn::ConnectionConfig;
use crate::source::server::Flavor;
use crate::{Error, ErrorKind, Result};

fn server_error(what: &str) -> impl FnOnce(mysql_async::Error) -> Error + '_ {
    move |e| Error::with_source(ErrorKind::Server, what.to_string(), e)
}

/// The target server's flavor.
pub async fn target_flavor(server: &ConnectionConfig) -> Result<Flavor> {
    let mut conn = server.connect().await?;
    let version: Option<String> = conn
        .query_first("SELECT @@version")
        .await
        .map_err(server_error("reading the target's version"))?;
    Ok(Flavor::from_version(&version.unwrap_or_default()))
}

async fn gtid_executed(conn: &mut mysql_async::Conn) -> Result<GtidPos> {
    let text: Option<String> = conn
        .query_first("SELECT @@global.gtid_executed")
        .await
        .map_err(server_error("reading the target's gtid_executed"))?;
    text.unwrap_or_default().parse()
}

/// Checked before the base is restored: GTIDs on, and no GTID history other than the base's.
pub async fn check_target(server: &ConnectionConfig, base: &GtidPos) -> Result<()> {
    let mut conn = server.connect().await?;
    let mode: Option<String> = conn
        .query_first("SELECT @@global.gtid_mode")
        .await
        .map_err(server_error("reading the target's gtid_mode"))?;
    let mode = mode.unwrap_or_default();
    if !mode.eq_ignore_ascii_case("ON") {
        return Err(Error::usage(format!(
            "{} has gtid_mode={mode}: the replay gives every transaction its original GTID, \
             which needs gtid_mode=ON and enforce_gtid_consistency=ON on the target",
            server.endpoint()
        )));
    }
    let executed = gtid_executed(&mut conn).await?;
    if !executed.is_empty() && executed != *base {
        return Err(Error::new(
            ErrorKind::TargetNotEmpty,
            format!(
                "{} already has GTID history of its own (gtid_executed={executed}); a \
                 point-in-time recovery must leave it at exactly the backup's set ({base}) \
                 before the replay, which MySQL allows only on an empty gtid_executed. Recover \
                 into a fresh server, or run RESET MASTER on this one yourself if its binary \
                 logs may go; nothing was changed",
                server.endpoint()
            ),
        ));
    }
    Ok(())
}

/// After the restore, before the replay: makes the target's `gtid_executed` the base's set
/// (`SET GLOBAL gtid_purged` on an empty one; nothing if it already is).
pub async fn align_to_base(server: &ConnectionConfig, base: &GtidPos) -> Result<()> {
    let mut conn = server.connect().await?;
    let executed = gtid_executed(&mut conn).await?;
    if executed == *base {
        return Ok(());
    }
    if !executed.is_empty() {
        return Err(Error::new(
            ErrorKind::Server,
            format!(
                "{}: gtid_executed became {executed} during the restore (another client \
                 wrote to it?), not the backup's {base}; the replay cannot give its \
                 transactions their GTIDs",
                server.endpoint()
            ),
        ));
    }
    conn.query_drop(format!("SET GLOBAL gtid_purged = '{base}'"))
        .await
        .map_err(server_error("setting gtid_purged to the backup's GTID set"))
}

/// After the replay: the target's `gtid_executed` must be the replay's end position.
pub async fn verify_position(server: &ConnectionConfig, position: &GtidPos) -> Result<()> {
    let mut conn = server.connect().await?;
    let executed = gtid_executed(&mut conn).await?;
    if executed != *position {
        return Err(Error::integrity(format!(
            "{}: after the replay gtid_executed is {executed}, the replay reached {position}",
            server.endpoint()
        )));
    }
    Ok(())
}
