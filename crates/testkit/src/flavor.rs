//! Which server a [`TestServer`](crate::TestServer) runs: MariaDB (the distro's `mariadbd`) or
//! MySQL 5.7 (the `mysqld` that `scripts/install-mysql.sh` installs).

/// The server product a [`TestServer`](crate::TestServer) runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Flavor {
    /// `mariadbd` from `$PATH` or /usr/sbin (MariaDB 10.11 on Debian 12).
    #[default]
    MariaDb,
    /// MySQL 5.7 Community Server from `HOLDFAST_MYSQL_BASEDIR` or
    /// [`default_mysql_basedir`](crate::default_mysql_basedir), with GTIDs on.
    MySql,
}

impl Flavor {
    /// Both flavors, for tests that run the same checks on each.
    pub const ALL: [Flavor; 2] = [Flavor::MariaDb, Flavor::MySql];

    /// The server executable's name, for messages.
    pub fn server_binary(self) -> &'static str {
        match self {
            Flavor::MariaDb => "mariadbd",
            Flavor::MySql => "mysqld",
        }
    }
}
