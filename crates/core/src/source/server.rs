//! What server we are talking to: flavor, version, identity.

use mysql_async::prelude::*;
use mysql_async::Conn;

use crate::manifest::ServerInfo;
use crate::Result;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flavor {
    MariaDb,
    MySql,
}

impl Flavor {
    pub fn from_version(version: &str) -> Flavor {
        if version.to_ascii_lowercase().contains("mariadb") {
            Flavor::MariaDb
        } else {
            Flavor::MySql
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadb",
            Flavor::MySql => "mysql",
        }
    }
}

/// The server's identity and the settings that matter for backups.
#[derive(Debug, Clone)]
pub struct ServerIdentity {
    pub flavor: Flavor,
    pub version: String,
    pub server_id: u32,
    pub server_uuid: String,
    pub hostname: String,
    pub log_bin: bool,
}

impl ServerIdentity {
    pub async fn read(conn: &mut Conn) -> Result<ServerIdentity> {
        let (version, server_id, hostname, log_bin): (String, u32, String, u8) = conn
            .query_first("SELECT @@version, @@server_id, @@hostname, @@log_bin")
            .await?
            .ok_or_else(|| crate::Error::server("the server returned no row for @@version"))?;
        let flavor = Flavor::from_version(&version);
        let server_uuid = match flavor {
            Flavor::MySql => conn
                .query_first("SELECT @@server_uuid")
                .await?
                .unwrap_or_default(),
            Flavor::MariaDb => String::new(),
        };
        Ok(ServerIdentity {
            flavor,
            version,
            server_id,
            server_uuid,
            hostname,
            log_bin: log_bin == 1,
        })
    }

    pub fn info(&self) -> ServerInfo {
        ServerInfo {
            flavor: self.flavor.name().to_string(),
            version: self.version.clone(),
            server_id: self.server_id,
            server_uuid: self.server_uuid.clone(),
            hostname: self.hostname.clone(),
        }
    }

    /// `major.minor` as numbers, for feature checks.
    pub fn major_minor(&self) -> (u32, u32) {
        let mut it = self
            .version
            .split(|c: char| !c.is_ascii_digit())
            .filter(|s| !s.is_empty());
        let major = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        let minor = it.next().and_then(|s| s.parse().ok()).unwrap_or(0);
        (major, minor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flavors() {
        assert_eq!(
            Flavor::from_version("10.11.19-MariaDB-0+deb12u1"),
            Flavor::MariaDb
        );
        assert_eq!(Flavor::from_version("8.0.36"), Flavor::MySql);
    }
}
