//! Fingerprints the migrations this build embeds (`embed_migrations!` reads the same files), so
//! that anything keyed by "the schema this binary creates" — the test harness's migrated template
//! database — can never be mistaken for another build's.

use std::hash::{Hash, Hasher};
use std::path::{Path, PathBuf};

/// FNV-1a: stable across Rust versions and runs, unlike `DefaultHasher`'s promise.
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 = (self.0 ^ u64::from(*b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

fn files(dir: &Path, out: &mut Vec<PathBuf>) -> std::io::Result<()> {
    for entry in std::fs::read_dir(dir)? {
        let path = entry?.path();
        if path.is_dir() {
            files(&path, out)?;
        } else {
            out.push(path);
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let root = Path::new("../../migrations");
    println!("cargo:rerun-if-changed={}", root.display());
    let mut all = Vec::new();
    files(root, &mut all)?;
    all.sort();
    let mut h = Fnv(0xcbf2_9ce4_8422_2325);
    for f in all {
        f.strip_prefix(root).unwrap_or(&f).hash(&mut h);
        std::fs::read(&f)?.hash(&mut h);
    }
    println!(
        "cargo:rustc-env=ADBUDGET_MIGRATIONS_FINGERPRINT={:016x}",
        h.finish()
    );
    Ok(())
}
