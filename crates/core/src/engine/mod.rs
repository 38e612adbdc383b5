//! Backup engines: [`logical`] (rows as TSV through N snapshot connections) and [`physical`]
//! (`mariabackup` / `xtrabackup` streams, full and incremental).

pub mod logical;
pub mod physical;
