//! Backup engines. Only the logical engine exists today; the physical engine (mariabackup /
//! xtrabackup) will sit beside it.

pub mod logical;
