//! What building a disk needs from the host, checked before any work
//! starts: every missing piece is named at once, with the Debian package
//! that provides it.

use std::path::Path;

/// One thing the build needs.
struct Requirement {
    /// What is looked for: a command on PATH or an absolute file path.
    what: &'static str,
    /// The Debian package (with its suite when it must be newer).
    package: &'static str,
}

const REQUIREMENTS: &[Requirement] = &[
    Requirement {
        what: "mmdebstrap",
        package: "mmdebstrap",
    },
    Requirement {
        what: "sfdisk",
        package: "fdisk",
    },
    Requirement {
        what: "mke2fs",
        package: "e2fsprogs (>= 1.47.1, bookworm-backports)",
    },
    // mke2fs loads it at run time to read the root filesystem's tarball.
    Requirement {
        what: "/usr/lib/x86_64-linux-gnu/libarchive.so.13",
        package: "libarchive13",
    },
    Requirement {
        what: "grub-mkimage",
        package: "grub-common",
    },
    Requirement {
        what: "/usr/lib/grub/i386-pc/boot.img",
        package: "grub-pc-bin",
    },
    Requirement {
        what: "/usr/lib/grub/x86_64-efi/linux.mod",
        package: "grub-efi-amd64-bin",
    },
    Requirement {
        what: "mkfs.fat",
        package: "dosfstools",
    },
    Requirement {
        what: "mcopy",
        package: "mtools",
    },
    Requirement {
        what: "qemu-img",
        package: "qemu-utils",
    },
];

/// Whether `command` is an executable on PATH (or is an existing path).
pub fn on_path(command: &str) -> bool {
    if command.starts_with('/') {
        return Path::new(command).exists();
    }
    which::which(command).is_ok()
}

/// `mke2fs -V`'s version, e.g. (1, 47, 2).
fn mke2fs_version() -> Option<(u32, u32, u32)> {
    let output = std::process::Command::new("mke2fs")
        .arg("-V")
        .output()
        .ok()?;
    let text = String::from_utf8_lossy(&output.stderr).to_string()
        + &String::from_utf8_lossy(&output.stdout);
    parse_mke2fs_version(&text)
}

fn parse_mke2fs_version(text: &str) -> Option<(u32, u32, u32)> {
    let version = text.split_whitespace().nth(1)?;
    let mut parts = version.split('.').map(|p| p.parse::<u32>().ok());
    Some((
        parts.next()??,
        parts.next()??,
        parts.next().flatten().unwrap_or(0),
    ))
}

/// Fails, naming everything that is missing, unless this process can build
/// a disk: root (mmdebstrap's root mode and chroot need it) and the tools.
pub fn check_host() -> anyhow::Result<()> {
    let mut problems = Vec::new();
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        problems.push(
            "root: mmdebstrap runs package scripts in a chroot (run bfctl disk build as root, e.g. with sudo)"
                .to_string(),
        );
    }
    let mut packages = Vec::new();
    for requirement in REQUIREMENTS {
        if !on_path(requirement.what) {
            problems.push(format!(
                "{} (package {})",
                requirement.what, requirement.package
            ));
            packages.push(requirement.package);
        }
    }
    if on_path("mke2fs") {
        match mke2fs_version() {
            Some(version) if version >= (1, 47, 1) => {}
            found => {
                problems.push(format!(
                    "mke2fs >= 1.47.1 to write a filesystem into a partition from a tar (found {})",
                    found.map_or("an unknown version".to_string(), |(a, b, c)| format!(
                        "{a}.{b}.{c}"
                    ))
                ));
                packages.push("e2fsprogs (>= 1.47.1, bookworm-backports)");
            }
        }
    }
    if problems.is_empty() {
        return Ok(());
    }
    let mut message = format!(
        "bfctl disk build cannot run on this host; missing:\n  - {}",
        problems.join("\n  - ")
    );
    if !packages.is_empty() {
        let names: Vec<&str> = packages
            .iter()
            .map(|p| p.split_whitespace().next().unwrap_or(p))
            .collect();
        message.push_str(&format!(
            "\nOn Debian 12: apt-get install mmdebstrap fdisk libarchive13 dosfstools mtools grub-pc-bin grub-efi-amd64-bin && apt-get install -t bookworm-backports e2fsprogs qemu-utils\n(missing packages: {})",
            names.join(" ")
        ));
    }
    anyhow::bail!(message)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mke2fs_versions_parse() {
        assert_eq!(
            parse_mke2fs_version(
                "mke2fs 1.47.2 (1-Jan-2025)\n\tUsing EXT2FS Library version 1.47.2"
            ),
            Some((1, 47, 2))
        );
        assert_eq!(
            parse_mke2fs_version("mke2fs 1.47.0 (5-Feb-2023)"),
            Some((1, 47, 0))
        );
        assert_eq!(parse_mke2fs_version("garbage"), None);
    }

    #[test]
    fn commands_are_found_on_path_and_absent_ones_are_not() {
        assert!(on_path("sh"));
        assert!(!on_path("bfctl-no-such-tool"));
        assert!(on_path("/bin/sh"));
    }
}
