//! Progress reporting from long jobs. The library only calls this trait; the CLI draws bars.

/// Receives progress events; implementations must be cheap, they are called per buffer.
pub trait Progress: Send + Sync {
    /// A new phase starts (`dump`, `load`, `index`); `total` is an estimate in `unit`s, 0 if unknown.
    fn phase(&self, _name: &str, _total: u64, _unit: &str) {}
    /// `amount` more units of the current phase are done.
    fn advance(&self, _amount: u64) {}
    /// A note worth showing (a table finished, a lock taken).
    fn note(&self, _message: &str) {}
}

/// Ignores everything.
pub struct NoProgress;

impl Progress for NoProgress {}
