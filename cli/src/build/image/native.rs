//! The `native` builder: `cargo build` of the service binaries, then one
//! layer per image holding the binary, on a base image read by digest.
//!
//! The binary must run on the base whatever the build host's libc: a
//! dynamically linked binary needs the base to carry a glibc at least as new
//! as every `GLIBC_x.y` symbol version the binary asks for ([`check_libc`]).

use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, bail};

use crate::build::image::oci::Descriptor;

/// Builds the services' binaries with cargo; returns where they are.
/// `on_line` sees cargo's progress lines.
pub fn cargo_build(
    workspace: &Path,
    packages: &[&str],
    profile: &str,
    mut on_line: impl FnMut(&str),
) -> anyhow::Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(&cargo);
    command.current_dir(workspace).args([
        "build",
        "--locked",
        "--profile",
        profile,
        "--color",
        "never",
    ]);
    for package in packages {
        command.args(["-p", package]);
    }
    let mut child = command
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("running {cargo} build in {}", workspace.display()))?;
    let mut stderr = String::new();
    if let Some(mut pipe) = child.stderr.take() {
        let mut buffer = [0u8; 4096];
        let mut line = String::new();
        loop {
            let read = pipe.read(&mut buffer)?;
            if read == 0 {
                break;
            }
            for ch in String::from_utf8_lossy(&buffer[..read]).chars() {
                if ch == '\n' {
                    on_line(line.trim());
                    stderr.push_str(&line);
                    stderr.push('\n');
                    line.clear();
                } else {
                    line.push(ch);
                }
            }
        }
    }
    let status = child.wait()?;
    if !status.success() {
        let tail: Vec<&str> = stderr.lines().rev().take(20).collect();
        bail!(
            "cargo build of {} failed ({status}):\n{}",
            packages.join(", "),
            tail.into_iter().rev().collect::<Vec<_>>().join("\n")
        );
    }
    let directory = if profile == "dev" { "debug" } else { profile };
    Ok(workspace.join("target").join(directory))
}

/// The highest `GLIBC_2.N` symbol version in an ELF file: for a program,
/// the versions it needs (`.gnu.version_r`); for libc itself, the versions it
/// defines (`.gnu.version_d`). Read from those sections with the `object`
/// crate's version iterators, not by searching the bytes, so string
/// constants cannot fool it. `None` for a non-ELF file
/// or one without glibc versions.
pub fn highest_glibc_version(bytes: &[u8]) -> Option<(u32, u32)> {
    use object::read::elf::{ElfFile64, FileHeader};
    let file = ElfFile64::<object::Endianness>::parse(bytes).ok()?;
    let endian = file.endian();
    let sections = file.elf_header().sections(endian, bytes).ok()?;
    let mut names: Vec<&[u8]> = Vec::new();
    if let Ok(Some((mut needs, link))) = sections.gnu_verneed(endian, bytes) {
        let strings = sections.strings(endian, bytes, link).ok()?;
        while let Ok(Some((_, mut auxes))) = needs.next() {
            while let Ok(Some(aux)) = auxes.next() {
                names.extend(aux.name(endian, strings).ok());
            }
        }
    }
    if let Ok(Some((mut defs, link))) = sections.gnu_verdef(endian, bytes) {
        let strings = sections.strings(endian, bytes, link).ok()?;
        while let Ok(Some((_, mut auxes))) = defs.next() {
            // The first aux names the version; later ones its parents.
            if let Ok(Some(aux)) = auxes.next() {
                names.extend(aux.name(endian, strings).ok());
            }
        }
    }
    names
        .into_iter()
        .filter_map(|name| std::str::from_utf8(name).ok())
        .filter_map(|name| name.strip_prefix("GLIBC_2."))
        .filter_map(|rest| rest.split('.').next()?.parse::<u32>().ok())
        .map(|minor| (2, minor))
        .max()
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Whether the binary asks for a dynamic loader (is not static).
pub fn is_dynamic(binary: &[u8]) -> bool {
    find(binary, b"/lib64/ld-linux-x86-64.so.2").is_some()
}

/// Finds `libc.so.6` in the base's layers and reads its glibc version.
pub fn base_glibc(layers: &[(Descriptor, Vec<u8>)]) -> anyhow::Result<Option<(u32, u32)>> {
    for (descriptor, bytes) in layers.iter().rev() {
        let decoder = flate2::read::GzDecoder::new(bytes.as_slice());
        let mut archive = tar::Archive::new(decoder);
        let entries = archive
            .entries()
            .with_context(|| format!("reading base layer {}", descriptor.digest))?;
        for entry in entries {
            let mut entry = entry?;
            let path = entry.path()?.display().to_string();
            if (path.ends_with("/libc.so.6") || path == "libc.so.6")
                && entry.header().entry_type().is_file()
            {
                let mut data = Vec::new();
                entry.read_to_end(&mut data)?;
                return Ok(highest_glibc_version(&data));
            }
        }
    }
    Ok(None)
}

/// Fails unless `binary` can run on a base whose glibc is `base`.
pub fn check_libc(service: &str, binary: &[u8], base: Option<(u32, u32)>) -> anyhow::Result<()> {
    if !is_dynamic(binary) {
        return Ok(());
    }
    let needed = highest_glibc_version(binary);
    match (needed, base) {
        (_, None) => bail!(
            "{service} is dynamically linked against glibc, but the base image has no libc.so.6: use a base with glibc (images.base) or a static binary"
        ),
        (Some(needed), Some(base)) if needed > base => bail!(
            "{service} needs glibc {}.{} but the base image has {}.{}: build on an older system or pick a newer base (images.base)",
            needed.0,
            needed.1,
            base.0,
            base.1
        ),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_binary_needing_a_newer_glibc_than_the_base_is_refused() {
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let needed = highest_glibc_version(&me).expect("the test binary uses glibc versions");
        let older = (needed.0, needed.1 - 1);
        let error = check_libc("gateway", &me, Some(older)).unwrap_err();
        assert!(
            error.to_string().contains(&format!(
                "needs glibc 2.{} but the base image has 2.{}",
                needed.1, older.1
            )),
            "{error}"
        );
        assert!(check_libc("gateway", &me, Some(needed)).is_ok());
        assert!(
            check_libc("gateway", &me, None).is_err(),
            "no libc in the base"
        );
        assert!(
            check_libc("static", b"not an ELF file", None).is_ok(),
            "static needs no libc"
        );
        // A string constant naming a newer version does not count.
        assert!(needed < (2, 99), "GLIBC_2.99 appears only as a string here");
    }

    #[test]
    fn this_hosts_service_binaries_fit_this_hosts_glibc() {
        // The check on real inputs: the test binary itself against the
        // host's libc.so.6 (what a base built from this host carries).
        let me = std::fs::read(std::env::current_exe().unwrap()).unwrap();
        let libc = std::fs::read("/lib/x86_64-linux-gnu/libc.so.6").unwrap();
        let provided = highest_glibc_version(&libc);
        assert!(provided.is_some_and(|v| v >= (2, 17)), "{provided:?}");
        check_libc("test", &me, provided).unwrap();
    }
}
