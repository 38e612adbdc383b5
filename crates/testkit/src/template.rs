//! A cached, freshly initialised datadir that new servers copy instead of running
//! `mariadb-install-db` (about 2.5 s) or `mysqld --initialize-insecure` (about 5 s) every time.
//!
//! nextest runs each test in its own process, so the cache lives on disk under the temp dir,
//! keyed by the flavor, the server binary (path, size, mtime), the uid and the options that
//! affect initialisation. One process builds it under an exclusive `flock` while the others wait; it
//! is built in a scratch directory and renamed into place, so a template that exists is
//! complete. Copies are sparse (`cp --sparse=always`), so a new datadir costs a few MB of writes.

use crate::binaries::{binary, require_mysql};
use crate::Flavor;
use holdfast::sandbox::ServerInstall;
use holdfast::source::Flavor as SourceFlavor;
use std::collections::hash_map::DefaultHasher;
use std::fs::{File, OpenOptions};
use std::hash::{Hash, Hasher};
use std::os::unix::fs::MetadataExt;
use std::os::unix::io::AsRawFd;
use std::path::{Path, PathBuf};
use std::process::Command;

/// Bump when the way templates are built changes.
const FORMAT: u32 = 4;
const MARKER: &str = "holdfast-template-ready";

/// Options that must be given at initialisation time (they fix on-disk formats); when a test
/// passes one in `extra_args`, it is also passed to `mariadb-install-db` and keys the template.
const INIT_OPTIONS: &[&str] = &[
    "innodb-page-size",
    "innodb-data-file-path",
    "innodb-undo-tablespaces",
    "innodb-undo-directory",
    "lower-case-table-names",
    "innodb-checksum-algorithm",
];

/// Options always used at initialisation, matching the server's startup options.
pub(crate) const BASE_INIT_ARGS: &[&str] = &["--innodb-log-file-size=64M"];

/// Run by `mysqld --initialize-insecure`: root without a password over TCP too, with the same
/// grants as root@localhost (PROXY included), like MariaDB's installer makes them.
const MYSQL_TCP_ROOT: &str = "\
CREATE USER 'root'@'127.0.0.1' IDENTIFIED WITH mysql_native_password BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION;
GRANT PROXY ON ''@'' TO 'root'@'127.0.0.1' WITH GRANT OPTION;
CREATE USER 'root'@'::1' IDENTIFIED WITH mysql_native_password BY '';
GRANT ALL PRIVILEGES ON *.* TO 'root'@'::1' WITH GRANT OPTION;
GRANT PROXY ON ''@'' TO 'root'@'::1' WITH GRANT OPTION;
";

/// The subset of `extra_args` that affects initialisation.
pub(crate) fn init_args(extra_args: &[String]) -> Vec<String> {
    extra_args
        .iter()
        .filter(|arg| {
            let name = arg
                .trim_start_matches('-')
                .split('=')
                .next()
                .unwrap_or("")
                .replace('_', "-");
            let name = name.strip_prefix("loose-").unwrap_or(&name).to_string();
            INIT_OPTIONS.contains(&name.as_str())
        })
        .cloned()
        .collect()
}

/// Copies a freshly initialised datadir of `flavor` to `dest` (which must not exist).
pub(crate) fn copy_fresh_datadir(dest: &Path, flavor: Flavor, init_args: &[String]) {
    sparse_copy(&template_datadir(flavor, init_args), dest);
}

fn sparse_copy(from: &Path, to: &Path) {
    let out = Command::new("cp")
        .arg("-a")
        .arg("--sparse=always")
        .arg(from)
        .arg(to)
        .output()
        .expect("holdfast-testkit: cannot run cp");
    assert!(
        out.status.success(),
        "holdfast-testkit: copying datadir {} to {} failed: {}",
        from.display(),
        to.display(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Returns the template's datadir, building it first if needed.
fn template_datadir(flavor: Flavor, init_args: &[String]) -> PathBuf {
    let server = match flavor {
        Flavor::MariaDb => binary("mariadbd"),
        Flavor::MySql => require_mysql().mysqld,
    };
    let mut hasher = DefaultHasher::new();
    FORMAT.hash(&mut hasher);
    flavor.hash(&mut hasher);
    server.hash(&mut hasher);
    if let Ok(meta) = server.metadata() {
        (meta.len(), meta.mtime(), meta.mtime_nsec(), meta.ino()).hash(&mut hasher);
    }
    BASE_INIT_ARGS.hash(&mut hasher);
    init_args.hash(&mut hasher);
    // SAFETY: getuid has no preconditions.
    let uid = unsafe { libc::getuid() };
    let name = format!("holdfast-testkit-tpl-{uid}-{:016x}", hasher.finish());
    let tmp = std::env::temp_dir();
    let dir = tmp.join(&name);
    let datadir = dir.join("data");
    if dir.join(MARKER).exists() && datadir.join("mysql").is_dir() {
        return datadir;
    }

    let _lock = FileLock::acquire(&tmp.join(format!("{name}.lock")));
    if dir.join(MARKER).exists() && datadir.join("mysql").is_dir() {
        return datadir;
    }
    // A broken leftover (say, files removed by a temp cleaner): rebuild.
    let _ = std::fs::remove_dir_all(&dir);

    let build = tempfile::Builder::new()
        .prefix(&format!(".{name}-build-"))
        .tempdir_in(&tmp)
        .expect("holdfast-testkit: cannot create a temp dir for the datadir template");
    // Initialise into `raw`, then keep a sparse copy as `data`: the redo log and system
    // tablespace are mostly zeros (76 MB apparent, ~6 MB used).
    let build_raw = build.path().join("raw");
    let log = build.path().join("install-db.log");
    // The initialiser command is core's (the one drills use); the MySQL root accounts over
    // TCP and the log file are the test kit's.
    let (install, init_file) = match flavor {
        Flavor::MariaDb => (
            ServerInstall::from_server(SourceFlavor::MariaDb, binary("mariadbd")),
            None,
        ),
        Flavor::MySql => {
            let mysql = require_mysql();
            // MariaDB's installer also makes root@127.0.0.1 and root@::1 (tests connect over
            // TCP); MySQL's makes only root@localhost.
            let init_file = build.path().join("init.sql");
            std::fs::write(&init_file, MYSQL_TCP_ROOT)
                .expect("holdfast-testkit: cannot write the MySQL init file");
            let install = ServerInstall {
                flavor: SourceFlavor::MySql,
                server: mysql.mysqld,
                basedir: Some(mysql.basedir),
                messages_dir: Some(mysql.messages_dir),
                install_db: None,
            };
            (install, Some(init_file))
        }
    };
    let mut cmd = install
        .init_command(&build_raw, init_file.as_deref())
        .unwrap_or_else(|e| {
            panic!("holdfast-testkit: cannot initialise a {flavor:?} datadir: {e}")
        });
    if flavor == Flavor::MySql {
        cmd.arg(format!("--log-error={}", log.display()));
    }
    cmd.args(BASE_INIT_ARGS).args(init_args);
    let log_file = OpenOptions::new()
        .create(true)
        .append(true)
        .open(&log)
        .expect("holdfast-testkit: cannot create the initialisation log");
    cmd.stdout(log_file.try_clone().expect("dup log file"))
        .stderr(log_file);
    let status = cmd.status().unwrap_or_else(|e| {
        panic!("holdfast-testkit: cannot initialise a {flavor:?} datadir: {e}")
    });
    assert!(
        status.success(),
        "holdfast-testkit: initialising a {flavor:?} datadir failed ({status}):\n{}",
        std::fs::read_to_string(&log).unwrap_or_default()
    );
    if flavor == Flavor::MySql {
        // MySQL writes the server UUID (the source id of its GTIDs) to auto.cnf on first start;
        // every copy must make its own, or all test servers would share one.
        let _ = std::fs::remove_file(build_raw.join("auto.cnf"));
    }
    sparse_copy(&build_raw, &build.path().join("data"));
    let _ = std::fs::remove_dir_all(&build_raw);
    File::create(build.path().join(MARKER)).expect("holdfast-testkit: cannot write marker");
    let build = build.keep();
    std::fs::rename(&build, &dir).unwrap_or_else(|e| {
        panic!(
            "holdfast-testkit: cannot move template {} into place at {}: {e}",
            build.display(),
            dir.display()
        )
    });
    datadir
}

/// An exclusive `flock` held until dropped.
struct FileLock(File);

impl FileLock {
    fn acquire(path: &Path) -> FileLock {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .unwrap_or_else(|e| panic!("holdfast-testkit: cannot open {}: {e}", path.display()));
        // SAFETY: flock on a valid, owned descriptor.
        let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX) };
        assert_eq!(
            rc,
            0,
            "holdfast-testkit: flock {} failed: {}",
            path.display(),
            std::io::Error::last_os_error()
        );
        FileLock(file)
    }
}

impl Drop for FileLock {
    fn drop(&mut self) {
        // SAFETY: as above; closing the file would release the lock anyway.
        unsafe { libc::flock(self.0.as_raw_fd(), libc::LOCK_UN) };
    }
}
