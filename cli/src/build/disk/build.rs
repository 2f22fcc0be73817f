//! `bfctl disk build`: the recipe turned into `valkey.qcow2`, without mount
//! or loop devices, so that it runs in a container or a CI sandbox:
//!
//! 1. `mmdebstrap` bootstraps the Debian root filesystem into a tarball,
//!    with the recipe's packages and `rootfs/` copied in;
//! 2. a sparse raw file gets a GPT with a BIOS boot partition, an EFI
//!    system partition and the root partition (`sfdisk`);
//! 3. `mke2fs -d` writes the root filesystem from the tarball straight into
//!    its partition;
//! 4. `grub-mkimage` makes a BIOS core image and an EFI binary, each with
//!    the modules built in and a tiny config that finds the root filesystem
//!    by UUID and reads its `/boot/grub/grub.cfg`;
//! 5. the ESP is formatted in place and gets `EFI/BOOT/BOOTX64.EFI`
//!    (`mkfs.fat --offset`, `mcopy`);
//! 6. the BIOS boot code is written with plain file writes: GRUB's
//!    `boot.img` into the MBR, `core.img` into the BIOS boot partition, and
//!    the sector numbers patched in;
//! 7. `qemu-img convert -c` compresses it into a qcow2.
//!
//! Every UUID, label and time stamp is fixed (time stamps to the recipe's
//! `sourceDateEpoch`), so the same recipe and package versions give the
//! same bytes. The result is cached in `.bfctl/disk/` under the recipe's
//! input hash.

use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use anyhow::{Context, bail};
use serde::{Deserialize, Serialize};

use crate::build::disk::{LoadedRecipe, tools};
use crate::build::image::sha256_digest_file;

/// Filesystem UUID of the root partition (GRUB and fstab find it by this).
pub const ROOT_FS_UUID: &str = "5eed0000-0000-4000-8000-000000000003";
/// ext4 directory hash seed, fixed for reproducible filesystems.
const ROOT_HASH_SEED: &str = "5eed0000-0000-4000-8000-000000000004";
const DISK_GUID: &str = "5EED0000-0000-4000-8000-0000000000AA";
const ESP_VOLUME_ID: &str = "5eed00e5";
/// GPT partition type GUIDs.
const BIOS_BOOT_TYPE: &str = "21686148-6449-6E6F-744E-656564454649";
const ESP_TYPE: &str = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B";
const LINUX_ROOT_X86_64_TYPE: &str = "4F68BCE3-E8CD-4DB1-96E7-FBCAF984B709";
/// First sector of the BIOS boot partition (1 MiB in) and its length.
const BIOS_BOOT_START: u64 = 2048;
const BIOS_BOOT_SECTORS: u64 = 2048;
const ESP_START: u64 = BIOS_BOOT_START + BIOS_BOOT_SECTORS;
/// GRUB modules built into both boot images.
const GRUB_MODULES: &[&str] = &[
    "ext2",
    "part_gpt",
    "normal",
    "linux",
    "configfile",
    "search",
    "search_fs_uuid",
    "serial",
    "terminal",
    "echo",
    "test",
];

/// The sectors of the disk, from the recipe's sizes.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Layout {
    pub disk_sectors: u64,
    pub esp_start: u64,
    pub esp_sectors: u64,
    pub root_start: u64,
    pub root_sectors: u64,
}

impl Layout {
    pub fn new(disk_mib: u64, esp_mib: u64) -> Layout {
        let disk_sectors = disk_mib * 2048;
        let esp_sectors = esp_mib * 2048;
        let root_start = ESP_START + esp_sectors;
        // The backup GPT takes the last 33 sectors; keep 1 MiB alignment.
        let root_sectors = (disk_sectors - root_start - 34) / 2048 * 2048;
        Layout {
            disk_sectors,
            esp_start: ESP_START,
            esp_sectors,
            root_start,
            root_sectors,
        }
    }

    /// The table, in `sfdisk`'s input format.
    pub fn sfdisk_script(&self) -> String {
        format!(
            "label: gpt\nlabel-id: {DISK_GUID}\n\
             start={BIOS_BOOT_START}, size={BIOS_BOOT_SECTORS}, type={BIOS_BOOT_TYPE}, name=bios, uuid=5EED0000-0000-4000-8000-0000000000B1\n\
             start={}, size={}, type={ESP_TYPE}, name=esp, uuid=5EED0000-0000-4000-8000-0000000000B2\n\
             start={}, size={}, type={LINUX_ROOT_X86_64_TYPE}, name=root, uuid=5EED0000-0000-4000-8000-0000000000B3\n",
            self.esp_start, self.esp_sectors, self.root_start, self.root_sectors
        )
    }
}

/// What `.bfctl/disk/disk.json` records about the last build.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct BuiltDisk {
    /// The qcow2 file.
    pub path: PathBuf,
    /// `sha256:` of the qcow2's bytes.
    pub digest: String,
    pub size: u64,
    /// The recipe's input hash the disk was built from.
    pub inputs: String,
    /// `package version` lines of every package in the image.
    pub packages: Vec<String>,
    /// Seconds the build took (0 when read from the cache).
    pub build_seconds: f64,
    /// Whether this came from the cache.
    #[serde(default)]
    pub cached: bool,
}

#[derive(Debug, Clone)]
pub struct DiskBuildOptions {
    /// Where `valkey.qcow2` and `disk.json` go (`.bfctl/disk`).
    pub out_dir: PathBuf,
    /// Where downloaded .deb files are kept between builds
    /// (`~/.cache/bfctl/debs`); `None` downloads every time.
    pub package_cache: Option<PathBuf>,
    /// Rebuild even when the cache is current.
    pub force: bool,
}

impl DiskBuildOptions {
    pub fn record_path(&self) -> PathBuf {
        self.out_dir.join("disk.json")
    }

    pub fn disk_path(&self) -> PathBuf {
        self.out_dir.join("valkey.qcow2")
    }
}

/// The cached build, if it was made from `inputs` and its file is intact.
pub fn cached(options: &DiskBuildOptions, inputs: &str) -> Option<BuiltDisk> {
    let text = std::fs::read(options.record_path()).ok()?;
    let mut record: BuiltDisk = serde_json::from_slice(&text).ok()?;
    if record.inputs != inputs {
        return None;
    }
    let digest = sha256_digest_file(&record.path).ok()?;
    (digest == record.digest).then(|| {
        record.cached = true;
        record.build_seconds = 0.0;
        record
    })
}

/// Builds the disk (or returns the cached one), reporting each step.
pub fn build(
    recipe: &LoadedRecipe,
    options: &DiskBuildOptions,
    mut progress: impl FnMut(&str),
) -> anyhow::Result<BuiltDisk> {
    if let Some(built) = cached(options, &recipe.inputs).filter(|_| !options.force) {
        progress("recipe unchanged: using the cached disk");
        return Ok(built);
    }
    tools::check_host()?;
    let started = Instant::now();
    std::fs::create_dir_all(&options.out_dir)
        .with_context(|| format!("creating {}", options.out_dir.display()))?;
    // Removed on every path, including errors.
    let work = tempfile::Builder::new()
        .prefix("build-")
        .tempdir_in(&options.out_dir)
        .with_context(|| format!("creating a work directory in {}", options.out_dir.display()))?;
    // BFCTL_DISK_KEEP_WORK=1 keeps the intermediate files (rootfs.tar,
    // disk.raw, the boot images) for comparing two builds.
    let work = if std::env::var_os("BFCTL_DISK_KEEP_WORK").is_some() {
        let kept = work.keep();
        progress(&format!("keeping the work directory {}", kept.display()));
        kept
    } else {
        work.path().to_path_buf()
    };
    let work = work.as_path();
    let epoch = recipe.recipe.source_date_epoch;
    let layout = Layout::new(recipe.recipe.disk_mib, recipe.recipe.esp_mib);

    progress("staging the files the recipe adds to the root filesystem");
    let early = work.join("early");
    let overlay = work.join("overlay");
    stage_files(&early, &early_files(recipe), epoch)?;
    stage_files(&overlay, &overlay_files(recipe), epoch)?;

    progress(&format!(
        "bootstrapping Debian {} with {} packages (mmdebstrap, a few minutes)",
        recipe.recipe.suite,
        recipe.recipe.packages.len()
    ));
    let rootfs = work.join("rootfs.tar");
    let packages_list = work.join("packages.txt");
    let mut mmdebstrap =
        mmdebstrap_command(recipe, &early, &overlay, &rootfs, &packages_list, options)?;
    run(&mut mmdebstrap, "mmdebstrap", &mut progress)?;
    let packages: Vec<String> = std::fs::read_to_string(&packages_list)
        .with_context(|| format!("reading {}", packages_list.display()))?
        .lines()
        .map(str::to_string)
        .collect();

    progress("partitioning the disk (GPT: BIOS boot, EFI system, root)");
    let raw = work.join("disk.raw");
    std::fs::File::create(&raw)
        .and_then(|file| file.set_len(layout.disk_sectors * 512))
        .with_context(|| format!("creating {}", raw.display()))?;
    let mut sfdisk = Command::new("sfdisk");
    sfdisk.arg("--quiet").arg(&raw);
    run_with_input(&mut sfdisk, "sfdisk", layout.sfdisk_script().as_bytes())?;

    progress("writing the root filesystem into its partition (mke2fs -d)");
    let mut mke2fs = Command::new("mke2fs");
    mke2fs
        .args(["-q", "-t", "ext4", "-L", "root", "-U", ROOT_FS_UUID, "-E"])
        .arg(format!(
            "hash_seed={ROOT_HASH_SEED},offset={}",
            layout.root_start * 512
        ))
        .arg("-d")
        .arg(&rootfs)
        .arg(&raw)
        .arg(format!("{}k", layout.root_sectors / 2))
        .env("E2FSPROGS_FAKE_TIME", epoch.to_string());
    run(&mut mke2fs, "mke2fs", &mut progress)?;

    progress("making the GRUB boot images (BIOS and UEFI)");
    let early_config = work.join("early.cfg");
    std::fs::write(
        &early_config,
        format!(
            "search --no-floppy --fs-uuid --set=root {ROOT_FS_UUID}\nset prefix=($root)/boot/grub\nconfigfile $prefix/grub.cfg\n"
        ),
    )?;
    let core_image = work.join("core.img");
    let efi_image = work.join("BOOTX64.EFI");
    for (format, output, extra) in [
        ("i386-pc", &core_image, "biosdisk"),
        ("x86_64-efi", &efi_image, "efi_gop"),
    ] {
        let mut grub = Command::new("grub-mkimage");
        grub.args(["-O", format, "-o"])
            .arg(output)
            .arg("-c")
            .arg(&early_config)
            .args(["-p", "/boot/grub", extra])
            .args(GRUB_MODULES)
            .env("SOURCE_DATE_EPOCH", epoch.to_string());
        run(&mut grub, "grub-mkimage", &mut progress)?;
    }

    progress("writing the EFI system partition");
    let esp_offset = format!("{}@@{}", raw.display(), layout.esp_start * 512);
    let mut mkfs_fat = Command::new("mkfs.fat");
    mkfs_fat
        // No volume label: mkfs.fat dates the label's directory entry with
        // the current time, whatever SOURCE_DATE_EPOCH says (mtools does
        // honour it for the entries it writes).
        .args(["-F", "16", "-i", ESP_VOLUME_ID, "--offset"])
        .arg(layout.esp_start.to_string())
        .arg(&raw)
        .arg((layout.esp_sectors / 2).to_string())
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    run(&mut mkfs_fat, "mkfs.fat", &mut progress)?;
    let mut mmd = Command::new("mmd");
    mmd.args(["-i", &esp_offset, "::/EFI", "::/EFI/BOOT"])
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    run(&mut mmd, "mmd", &mut progress)?;
    let mut mcopy = Command::new("mcopy");
    mcopy
        .args(["-i", &esp_offset, "-m"])
        .arg(&efi_image)
        .arg("::/EFI/BOOT/BOOTX64.EFI")
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    set_mtime(&efi_image, epoch)?;
    run(&mut mcopy, "mcopy", &mut progress)?;

    progress("installing the BIOS boot code");
    install_bios_boot(
        &raw,
        &core_image,
        Path::new("/usr/lib/grub/i386-pc/boot.img"),
    )?;

    progress("compressing into a qcow2");
    let qcow2 = work.join("valkey.qcow2");
    let mut convert = Command::new("qemu-img");
    convert
        .args([
            "convert",
            "-c",
            "-O",
            "qcow2",
            "-o",
            "compression_type=zlib",
            "-m",
            "1",
        ])
        .arg(&raw)
        .arg(&qcow2);
    run(&mut convert, "qemu-img convert", &mut progress)?;

    let final_path = options.disk_path();
    let move_disk = if std::env::var_os("BFCTL_DISK_KEEP_WORK").is_some() {
        std::fs::copy(&qcow2, &final_path).map(|_| ())
    } else {
        std::fs::rename(&qcow2, &final_path)
    };
    move_disk.with_context(|| format!("moving the disk to {}", final_path.display()))?;
    let built = BuiltDisk {
        digest: sha256_digest_file(&final_path)?,
        size: std::fs::metadata(&final_path)?.len(),
        path: final_path,
        inputs: recipe.inputs.clone(),
        packages,
        build_seconds: started.elapsed().as_secs_f64(),
        cached: false,
    };
    crate::files::write_atomically(&options.record_path(), &serde_json::to_vec_pretty(&built)?)?;
    Ok(built)
}

/// A file bfctl writes into the root filesystem.
struct StagedFile {
    path: String,
    mode: u32,
    data: Vec<u8>,
}

/// Files that must be in place before the kernel package is installed:
/// the initramfs settings, so its first initramfs is the right one.
fn early_files(recipe: &LoadedRecipe) -> Vec<StagedFile> {
    let modules: String = recipe
        .recipe
        .initramfs_modules
        .iter()
        .map(|m| format!("{m}\n"))
        .collect();
    vec![
        StagedFile {
            path: "etc/initramfs-tools/conf.d/bfctl.conf".into(),
            mode: 0o644,
            data: b"# Written by bfctl disk build: only the listed modules, zstd.\nMODULES=list\nCOMPRESS=zstd\n".to_vec(),
        },
        StagedFile {
            path: "etc/initramfs-tools/modules".into(),
            mode: 0o644,
            data: format!("# Written by bfctl disk build: what finds the root disk.\n{modules}").into_bytes(),
        },
    ]
}

/// `rootfs/` from the recipe plus the files derived from bfctl's constants.
fn overlay_files(recipe: &LoadedRecipe) -> Vec<StagedFile> {
    let mut files: Vec<StagedFile> = recipe
        .overlay
        .iter()
        .map(|file| StagedFile {
            path: file.path.clone(),
            mode: if file.executable { 0o755 } else { 0o644 },
            data: file.data.clone(),
        })
        .collect();
    files.push(StagedFile {
        path: "etc/fstab".into(),
        mode: 0o644,
        data: format!("UUID={ROOT_FS_UUID} / ext4 defaults,noatime 0 1\n").into_bytes(),
    });
    files.push(StagedFile {
        path: "boot/grub/grub.cfg".into(),
        mode: 0o644,
        data: format!(
            "serial --unit=0 --speed=115200\n\
             terminal_input serial console\n\
             terminal_output serial console\n\
             set timeout=0\n\
             menuentry \"Debian with Valkey\" {{\n\
             \x20 linux /vmlinuz root=UUID={ROOT_FS_UUID} ro console=tty0 console=ttyS0,115200\n\
             \x20 initrd /initrd.img\n\
             }}\n"
        )
        .into_bytes(),
    });
    files
}

/// Writes `files` under `dir`, every file and directory dated `epoch`.
fn stage_files(dir: &Path, files: &[StagedFile], epoch: u64) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    let mut directories = std::collections::BTreeSet::new();
    directories.insert(dir.to_path_buf());
    for file in files {
        let path = dir.join(&file.path);
        let parent = path.parent().context("a staged file has a parent")?;
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
        let mut ancestor = Some(parent);
        while let Some(directory) = ancestor.filter(|d| d.starts_with(dir)) {
            directories.insert(directory.to_path_buf());
            ancestor = directory.parent();
        }
        std::fs::write(&path, &file.data).with_context(|| format!("writing {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(file.mode))?;
        set_mtime(&path, epoch)?;
    }
    for directory in directories {
        std::fs::set_permissions(&directory, std::fs::Permissions::from_mode(0o755))?;
        set_mtime(&directory, epoch)?;
    }
    Ok(())
}

fn set_mtime(path: &Path, epoch: u64) -> anyhow::Result<()> {
    let time = std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch);
    std::fs::File::open(path)
        .and_then(|file| {
            file.set_times(
                std::fs::FileTimes::new()
                    .set_modified(time)
                    .set_accessed(time),
            )
        })
        .with_context(|| format!("dating {}", path.display()))
}

/// The mmdebstrap invocation: root mode, the `apt` variant, the recipe's
/// packages, documentation left out, the staged files copied in, services
/// enabled, root's password locked and the package list written out. With
/// SOURCE_DATE_EPOCH set, mmdebstrap sorts the tarball and clamps every
/// time stamp to it.
fn mmdebstrap_command(
    recipe: &LoadedRecipe,
    early: &Path,
    overlay: &Path,
    rootfs: &Path,
    packages_list: &Path,
    options: &DiskBuildOptions,
) -> anyhow::Result<Command> {
    let epoch = recipe.recipe.source_date_epoch;
    let mut command = Command::new("mmdebstrap");
    command
        .args([
            "--mode=root",
            "--variant=apt",
            "--architectures=amd64",
            "--format=tar",
        ])
        .arg(format!("--include={}", recipe.recipe.packages.join(",")));
    for pattern in [
        "path-exclude=/usr/share/man/*",
        "path-exclude=/usr/share/doc/*",
        "path-include=/usr/share/doc/*/copyright",
        "path-exclude=/usr/share/locale/*",
        "path-exclude=/usr/share/info/*",
    ] {
        command.arg(format!("--dpkgopt={pattern}"));
    }
    if let Some(cache) = &options.package_cache {
        std::fs::create_dir_all(cache).with_context(|| format!("creating {}", cache.display()))?;
        let cache = cache.display();
        command
            .arg("--skip=essential/unlink")
            .arg("--setup-hook=mkdir -p \"$1\"/var/cache/apt/archives/")
            .arg(format!(
                "--setup-hook=sync-in {cache} /var/cache/apt/archives/"
            ))
            .arg(format!(
                "--customize-hook=sync-out /var/cache/apt/archives {cache}"
            ));
    }
    command
        .arg(format!("--essential-hook=sync-in {} /", early.display()))
        .arg(format!("--customize-hook=sync-in {} /", overlay.display()))
        .arg("--customize-hook=printf '\\n# bfctl: listen on the pod network, password and AOF (docs/disk.md)\\ninclude /etc/valkey/bfctl.conf\\n' >> \"$1/etc/valkey/valkey.conf\"")
        .arg("--customize-hook=chroot \"$1\" systemctl enable systemd-networkd.service bfctl-seed.service bfctl-data-disk.service valkey-server.service")
        .arg("--customize-hook=chroot \"$1\" passwd --lock root")
        .arg("--customize-hook=mkdir -p \"$1/usr/share/bfctl\" && chroot \"$1\" dpkg-query --show --showformat '${Package} ${Version}\\n' > \"$1/usr/share/bfctl/packages.txt\"")
        .arg(format!(
            "--customize-hook=download /usr/share/bfctl/packages.txt {}",
            packages_list.display()
        ))
        .arg(&recipe.recipe.suite)
        .arg(rootfs)
        .arg(format!("deb {} {} main", recipe.recipe.mirror, recipe.recipe.suite))
        .env("SOURCE_DATE_EPOCH", epoch.to_string());
    Ok(command)
}

/// Writes GRUB's BIOS boot code: `boot.img` (its first 440 bytes, leaving
/// the partition table alone) into the MBR, `core.img` into the BIOS boot
/// partition, and the three values `grub-install` would patch: where
/// core.img starts, where the rest of core.img starts, and a jump over the
/// boot-drive check (some BIOSes pass a wrong drive number).
pub fn install_bios_boot(raw: &Path, core_image: &Path, boot_image: &Path) -> anyhow::Result<()> {
    let core =
        std::fs::read(core_image).with_context(|| format!("reading {}", core_image.display()))?;
    let boot =
        std::fs::read(boot_image).with_context(|| format!("reading {}", boot_image.display()))?;
    anyhow::ensure!(
        boot.len() >= 440,
        "{} is shorter than 440 bytes",
        boot_image.display()
    );
    anyhow::ensure!(
        core.len() as u64 <= BIOS_BOOT_SECTORS * 512,
        "core.img ({} bytes) does not fit the BIOS boot partition",
        core.len()
    );
    let mut disk = std::fs::OpenOptions::new()
        .write(true)
        .open(raw)
        .with_context(|| format!("opening {}", raw.display()))?;
    let mut write_at = |offset: u64, bytes: &[u8]| -> anyhow::Result<()> {
        disk.seek(SeekFrom::Start(offset))?;
        disk.write_all(bytes)
            .with_context(|| format!("writing boot code into {}", raw.display()))
    };
    write_at(BIOS_BOOT_START * 512, &core)?;
    write_at(0, &boot[..440])?;
    // boot.img: LBA of core.img's first sector (GRUB_BOOT_MACHINE_KERNEL_SECTOR).
    write_at(0x5c, &BIOS_BOOT_START.to_le_bytes())?;
    // diskboot.img (core.img's first sector): LBA of the rest of core.img.
    write_at(
        BIOS_BOOT_START * 512 + 500,
        &(BIOS_BOOT_START + 1).to_le_bytes(),
    )?;
    // boot.img: NOP out the "use the drive the BIOS passed" jump.
    write_at(0x66, &[0x90, 0x90])?;
    Ok(())
}

/// Runs a build step, its output (stdout and stderr) passed on line by
/// line to `progress`; the last lines are kept for the error.
fn run(command: &mut Command, name: &str, progress: &mut impl FnMut(&str)) -> anyhow::Result<()> {
    use std::io::BufRead;
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    let (sender, lines) = std::sync::mpsc::channel::<String>();
    let stdout = child.stdout.take().context("piped stdout")?;
    let stderr = child.stderr.take().context("piped stderr")?;
    let readers = [
        Box::new(stdout) as Box<dyn std::io::Read + Send>,
        Box::new(stderr),
    ]
    .map(|stream| {
        let sender = sender.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stream)
                .lines()
                .map_while(Result::ok)
            {
                if sender.send(line).is_err() {
                    break;
                }
            }
        })
    });
    drop(sender);
    let mut tail: std::collections::VecDeque<String> = std::collections::VecDeque::new();
    for line in lines {
        progress(&format!("{name}: {line}"));
        tail.push_back(line);
        if tail.len() > 25 {
            tail.pop_front();
        }
    }
    for reader in readers {
        let _ = reader.join();
    }
    let status = child
        .wait()
        .with_context(|| format!("waiting for {name}"))?;
    if !status.success() {
        bail!(
            "{name} failed ({status}); its last output:\n{}",
            tail.iter()
                .map(|l| format!("  {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }
    Ok(())
}

fn run_with_input(command: &mut Command, name: &str, input: &[u8]) -> anyhow::Result<()> {
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command
        .spawn()
        .with_context(|| format!("starting {name}"))?;
    child
        .stdin
        .take()
        .context("piped stdin")?
        .write_all(input)
        .with_context(|| format!("writing to {name}"))?;
    let output = child
        .wait_with_output()
        .with_context(|| format!("waiting for {name}"))?;
    if !output.status.success() {
        bail!(
            "{name} failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_layout_fits_and_is_aligned() {
        let layout = Layout::new(2048, 64);
        assert_eq!(layout.esp_start, 4096);
        assert_eq!(layout.root_start, 4096 + 64 * 2048);
        assert_eq!(layout.root_start % 2048, 0);
        assert_eq!(layout.root_sectors % 2048, 0);
        assert!(layout.root_start + layout.root_sectors <= layout.disk_sectors - 33);
        let script = layout.sfdisk_script();
        assert!(script.contains("start=4096, size=131072"), "{script}");
    }

    #[test]
    fn bios_boot_code_lands_where_grub_expects_it() {
        let dir = tempfile::tempdir().unwrap();
        let raw = dir.path().join("disk.raw");
        std::fs::File::create(&raw)
            .unwrap()
            .set_len(4 * 1024 * 1024)
            .unwrap();
        let core = dir.path().join("core.img");
        std::fs::write(&core, vec![0xc0; 1500]).unwrap();
        let boot = dir.path().join("boot.img");
        std::fs::write(&boot, vec![0xb0; 512]).unwrap();
        install_bios_boot(&raw, &core, &boot).unwrap();
        let bytes = std::fs::read(&raw).unwrap();
        assert_eq!(bytes[0x5c..0x64], 2048u64.to_le_bytes());
        assert_eq!(bytes[0x66..0x68], [0x90, 0x90]);
        assert_eq!(bytes[440], 0, "the partition table area is untouched");
        assert_eq!(bytes[2048 * 512], 0xc0);
        assert_eq!(
            bytes[2048 * 512 + 500..2048 * 512 + 508],
            2049u64.to_le_bytes()
        );
        assert_eq!(bytes[2048 * 512 + 1499], 0xc0);

        std::fs::write(&core, vec![0; 2 * 1024 * 1024]).unwrap();
        let error = install_bios_boot(&raw, &core, &boot)
            .unwrap_err()
            .to_string();
        assert!(error.contains("does not fit"), "{error}");
    }
}
