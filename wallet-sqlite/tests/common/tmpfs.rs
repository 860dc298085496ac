//! A small tmpfs for tests of a full disk (ENOSPC). Used by the integration tests (through
//! `common`) and by the VFS's unit tests (by path).
#![allow(dead_code, clippy::unwrap_used, clippy::print_stdout)] // test helper

use std::path::PathBuf;
use std::process::Command;

/// A tmpfs mounted for one test, unmounted (lazily, so an open file cannot stop it) on drop.
pub(crate) struct Tmpfs {
    dir: PathBuf,
    _parent: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts a tmpfs of `size_kib` KiB, or returns `None` when skipping was asked for.
    pub(crate) fn mount(size_kib: u32) -> Option<Tmpfs> {
        let parent = tempfile::tempdir().unwrap();
        let dir = parent.path().join("mnt");
        std::fs::create_dir(&dir).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size_kib}k"), "tmpfs"])
            .arg(&dir)
            .status();
        match status {
            Ok(s) if s.success() => Some(Tmpfs {
                dir,
                _parent: parent,
            }),
            _ if std::env::var("WALLET_TEST_NO_MOUNT").as_deref() == Ok("1") => {
                println!("SKIPPED: cannot mount a tmpfs and WALLET_TEST_NO_MOUNT=1");
                None
            }
            other => panic!(
                "cannot mount a tmpfs ({other:?}): this test needs root with CAP_SYS_ADMIN; \
                 set WALLET_TEST_NO_MOUNT=1 to skip it on purpose"
            ),
        }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.dir).status();
    }
}
