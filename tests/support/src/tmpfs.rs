//! A small tmpfs for the full-disk tests (mounting needs root; CI runs as root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;

/// A tmpfs mounted on a directory, unmounted (lazily) on drop.
pub struct Tmpfs(PathBuf);

impl Tmpfs {
    /// Mounts a tmpfs of `size` (`2m`, `64m`) on `dir`, creating it; the error carries mount's own
    /// message.
    pub fn mount(dir: &Path, size: &str) -> Result<Tmpfs, String> {
        std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .output()
            .map_err(|e| format!("mount: {e}"))?;
        if !out.status.success() {
            return Err(format!(
                "mount -t tmpfs: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            ));
        }
        Ok(Tmpfs(dir.to_owned()))
    }

    /// [`Tmpfs::mount`]; when that fails, `None` after [`crate::peers::skip_or_fail`] (a test
    /// that needs a full disk never passes without one under `DCIM_REQUIRE_PEERS=1`).
    pub fn mount_or_skip(dir: &Path, size: &str, what: &str) -> Option<Tmpfs> {
        match Tmpfs::mount(dir, size) {
            Ok(t) => Some(t),
            Err(e) => {
                crate::peers::skip_or_fail(&format!(
                    "cannot mount a tmpfs for {what} (needs root): {e}"
                ));
                None
            }
        }
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

/// Fills the file system of `dir` (a file `filler` in it) until it refuses one more byte;
/// returns the bytes written. Panics when a write fails for another reason than a full disk
/// (ENOSPC): a test that believed such a disk full would check nothing.
pub fn fill(dir: &Path) -> u64 {
    let mut f = std::fs::File::create(dir.join("filler")).expect("creating the filler file");
    let chunk = vec![0u8; 16 * 1024];
    let mut n = 0u64;
    loop {
        match f.write(&chunk) {
            Ok(0) => break,
            Ok(k) => n += k as u64,
            Err(e) => {
                assert_eq!(e.raw_os_error(), Some(28), "filling {}: {e}", dir.display());
                break;
            }
        }
    }
    // Whatever is left in partial pages: single bytes.
    while f.write(&[0]).is_ok_and(|k| k == 1) {
        n += 1;
    }
    n
}
