//! A seeded corrupter of repository objects (local `file://` repositories).
//!
//! [`Corrupter`] picks an object and a [`Damage`] from a seed, applies it to the file, and
//! returns an [`Applied`] that puts the original bytes back, so one repository serves many
//! injections. The same seed always yields the same sequence of injections, and each
//! [`Injection`] prints as a line that says exactly what was done (replay a failure with its
//! seed, or by hand from that line).

use std::fmt;
use std::path::{Path, PathBuf};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// What to do to an object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Damage {
    /// XOR `mask` (never 0) into the byte at `offset`.
    FlipBits { offset: u64, mask: u8 },
    /// Cut the file to `len` bytes (shorter than it was).
    Truncate { len: u64 },
    /// Remove the file.
    Delete,
    /// Replace the file's content with that of another object `with` (and the reverse).
    Swap { with: String },
}

/// The kinds of [`Damage`], to choose from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DamageKind {
    Flip,
    Truncate,
    Delete,
    Swap,
}

impl DamageKind {
    pub const ALL: [DamageKind; 4] = [
        DamageKind::Flip,
        DamageKind::Truncate,
        DamageKind::Delete,
        DamageKind::Swap,
    ];
}

/// One planned injection: an object (repository path) and its damage.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Injection {
    pub path: String,
    pub damage: Damage,
}

impl fmt::Display for Injection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.damage {
            Damage::FlipBits { offset, mask } => {
                write!(f, "flip {mask:#04x} at byte {offset} of {}", self.path)
            }
            Damage::Truncate { len } => write!(f, "truncate {} to {len} bytes", self.path),
            Damage::Delete => write!(f, "delete {}", self.path),
            Damage::Swap { with } => write!(f, "swap {} with {with}", self.path),
        }
    }
}

/// Seeded choice of injections in the repository at `root`.
pub struct Corrupter {
    root: PathBuf,
    rng: StdRng,
}

impl Corrupter {
    pub fn new(root: &Path, seed: u64) -> Corrupter {
        Corrupter {
            root: root.to_path_buf(),
            rng: StdRng::seed_from_u64(seed),
        }
    }

    /// A seed from `HOLDFAST_TEST_SEED`, or a fresh random one; print it so a failure replays.
    pub fn seed_from_env() -> u64 {
        std::env::var("HOLDFAST_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(rand::random)
    }

    /// Plans one injection into one of `candidates` (repository paths) with one of `kinds`.
    /// A swap partner is another candidate of different content; when there is none (or the
    /// object is empty and the kind needs bytes), the damage falls back to a bit flip or a
    /// delete.
    pub fn plan(&mut self, candidates: &[String], kinds: &[DamageKind]) -> Injection {
        assert!(!candidates.is_empty() && !kinds.is_empty());
        let path = candidates[self.rng.gen_range(0..candidates.len())].clone();
        let kind = kinds[self.rng.gen_range(0..kinds.len())];
        let size = std::fs::metadata(self.root.join(&path))
            .map(|m| m.len())
            .unwrap_or(0);
        let damage = match kind {
            DamageKind::Delete => Damage::Delete,
            _ if size == 0 => Damage::Delete,
            DamageKind::Flip => self.flip(size),
            DamageKind::Truncate => Damage::Truncate {
                len: self.rng.gen_range(0..size),
            },
            DamageKind::Swap => {
                let body = std::fs::read(self.root.join(&path)).unwrap_or_default();
                let others: Vec<&String> = candidates
                    .iter()
                    .filter(|c| {
                        **c != path && std::fs::read(self.root.join(c)).unwrap_or_default() != body
                    })
                    .collect();
                if others.is_empty() {
                    self.flip(size)
                } else {
                    Damage::Swap {
                        with: others[self.rng.gen_range(0..others.len())].clone(),
                    }
                }
            }
        };
        Injection { path, damage }
    }

    fn flip(&mut self, size: u64) -> Damage {
        Damage::FlipBits {
            offset: self.rng.gen_range(0..size),
            mask: 1 << self.rng.gen_range(0..8u32),
        }
    }

    /// Applies an injection; the returned guard restores the original bytes (also on drop).
    pub fn apply(&self, injection: &Injection) -> std::io::Result<Applied> {
        let path = self.root.join(&injection.path);
        let mut saved = vec![(path.clone(), std::fs::read(&path)?)];
        match &injection.damage {
            Damage::FlipBits { offset, mask } => {
                let mut body = saved[0].1.clone();
                body[*offset as usize] ^= mask;
                std::fs::write(&path, body)?;
            }
            Damage::Truncate { len } => {
                std::fs::write(&path, &saved[0].1[..*len as usize])?;
            }
            Damage::Delete => std::fs::remove_file(&path)?,
            Damage::Swap { with } => {
                let other = self.root.join(with);
                let other_body = std::fs::read(&other)?;
                std::fs::write(&path, &other_body)?;
                std::fs::write(&other, &saved[0].1)?;
                saved.push((other, other_body));
            }
        }
        Ok(Applied { saved, done: false })
    }
}

/// An applied injection; [`Applied::undo`] (or dropping it) puts the original bytes back.
pub struct Applied {
    saved: Vec<(PathBuf, Vec<u8>)>,
    done: bool,
}

impl Applied {
    pub fn undo(mut self) -> std::io::Result<()> {
        self.restore()
    }

    fn restore(&mut self) -> std::io::Result<()> {
        if self.done {
            return Ok(());
        }
        self.done = true;
        for (path, body) in &self.saved {
            std::fs::write(path, body)?;
        }
        Ok(())
    }
}

impl Drop for Applied {
    fn drop(&mut self) {
        let _ = self.restore();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_injections_and_undo_restores() {
        let dir = tempfile::tempdir().unwrap();
        let names: Vec<String> = (0..5).map(|i| format!("f{i}")).collect();
        for (i, n) in names.iter().enumerate() {
            std::fs::write(dir.path().join(n), vec![i as u8; 100 + i]).unwrap();
        }
        let plan = |seed| {
            let mut c = Corrupter::new(dir.path(), seed);
            (0..20)
                .map(|_| c.plan(&names, &DamageKind::ALL))
                .collect::<Vec<_>>()
        };
        assert_eq!(plan(7), plan(7));
        assert_ne!(plan(7), plan(8));
        let c = Corrupter::new(dir.path(), 1);
        for inj in plan(7) {
            let before: Vec<Vec<u8>> = names
                .iter()
                .map(|n| std::fs::read(dir.path().join(n)).unwrap())
                .collect();
            let applied = c.apply(&inj).unwrap();
            let during: Vec<Option<Vec<u8>>> = names
                .iter()
                .map(|n| std::fs::read(dir.path().join(n)).ok())
                .collect();
            assert_ne!(
                during,
                before.iter().cloned().map(Some).collect::<Vec<_>>(),
                "{inj} changed nothing"
            );
            applied.undo().unwrap();
            let after: Vec<Vec<u8>> = names
                .iter()
                .map(|n| std::fs::read(dir.path().join(n)).unwrap())
                .collect();
            assert_eq!(after, before, "{inj} was not undone");
        }
    }
}
