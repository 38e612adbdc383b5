//! Replays binlog files into a server with holdfast's portable applier; prints the report as
//! JSON. A bench and debugging driver (bench/replay.sh), not the user-facing command:
//!
//! ```text
//! cargo run --release -p holdfast --example replay -- mysql://root@127.0.0.1:3306/ FILE...
//! ```
//! The password, if any, comes from `MYSQL_PWD`.

use holdfast::binlog::apply::{Applier, ApplyOptions, Stop};
use holdfast::binlog::gtid::GtidPos;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let url = args
        .next()
        .ok_or("usage: replay MYSQL_URL BINLOG_FILE...")?;
    let mut opts = mysql_async::OptsBuilder::from_opts(mysql_async::Opts::from_url(&url)?);
    if let Ok(pwd) = std::env::var("MYSQL_PWD") {
        opts = opts.pass(Some(pwd));
    }
    let conn = mysql_async::Conn::new(opts).await?;
    let mut applier = Applier::new(conn, ApplyOptions::new(GtidPos::new(), Stop::End)).await?;
    for path in args {
        let file = tokio::fs::File::open(&path).await?;
        let reader = tokio::io::BufReader::with_capacity(1 << 20, file);
        if !applier.apply(&path, reader).await? {
            break;
        }
    }
    let (report, conn) = applier.finish().await?;
    conn.disconnect().await?;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}
