//! The Valkey VM disk, for real: `bfctl disk build` run twice from scratch
//! gives the same bytes, a third run is a cache hit, and the image boots
//! under QEMU (TCG) with BIOS and with UEFI: Valkey answers only with the
//! password from the NoCloud seed, and a key written before a power cut is
//! there after a restart with a fresh root disk and the same data disk.
//!
//! Needs root and Debian's disk tools (`.ci/install-deps` installs them);
//! without them the build fails with the list of what to install.

mod support;

use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use bfctl::disk::LoadedRecipe;
use bfctl::disk::build::{BuiltDisk, DiskBuildOptions, build};
use support::qemu::{Firmware, Vm, blank_disk, nocloud_seed, overlay};

/// TCG boots took 50-120 s on these machines; two VMs may share 2 cores.
const BOOT_TIMEOUT: Duration = Duration::from_secs(600);

fn recipe() -> LoadedRecipe {
    LoadedRecipe::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../disk")).unwrap()
}

fn test_dir(name: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join("disk-test")
        .join(name);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn options(out_dir: PathBuf, force: bool) -> DiskBuildOptions {
    DiskBuildOptions {
        out_dir,
        // Shared by the two builds: the second downloads nothing.
        package_cache: Some(test_dir("debs")),
        force,
    }
}

fn build_logged(options: &DiskBuildOptions) -> BuiltDisk {
    let started = Instant::now();
    let built = build(&recipe(), options, |line| {
        if !line.starts_with("mmdebstrap: ") {
            eprintln!("[{:6.1}s] {line}", started.elapsed().as_secs_f64());
        }
    })
    .unwrap_or_else(|error| panic!("bfctl disk build failed: {error:#}"));
    eprintln!(
        "built {} {} ({} bytes, {:.0} s, cached: {})",
        built.path.display(),
        built.digest,
        built.size,
        built.build_seconds,
        built.cached
    );
    built
}

/// The first build of this test run, made from scratch (forced).
fn first_build() -> &'static BuiltDisk {
    static FIRST: OnceLock<BuiltDisk> = OnceLock::new();
    FIRST.get_or_init(|| build_logged(&options(test_dir("first"), true)))
}

/// Builds run one at a time (each is a mmdebstrap of the whole system).
fn build_lock() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[test]
fn two_builds_give_the_same_bytes_and_an_unchanged_recipe_is_not_rebuilt() {
    let first = {
        let _lock = build_lock();
        first_build().clone()
    };
    let second = {
        let _lock = build_lock();
        build_logged(&options(test_dir("second"), true))
    };
    assert_eq!(
        first.packages, second.packages,
        "the mirror changed between the two builds; run again"
    );
    assert_eq!(
        first.digest, second.digest,
        "two builds of the same recipe and packages differ"
    );
    assert!(!second.cached);
    eprintln!(
        "FIGURE two identical builds: {} and {}",
        first.digest, second.digest
    );

    let started = Instant::now();
    let third = build_logged(&options(test_dir("second"), false));
    assert!(third.cached, "an unchanged recipe was rebuilt");
    assert_eq!(third.digest, second.digest);
    eprintln!(
        "FIGURE cached build: {:.2} s",
        started.elapsed().as_secs_f64()
    );

    // What the issue limits: under 120 MiB compressed, no secret inside.
    assert!(
        first.size < 120 * 1024 * 1024,
        "the disk is {} bytes, over 120 MiB",
        first.size
    );
    assert!(
        first
            .packages
            .iter()
            .any(|p| p.starts_with("valkey-server ")),
        "{:?}",
        first.packages
    );
}

/// Boots a fresh overlay of the built disk with `data` and `seed`, waits for
/// Valkey and returns the VM and the boot-to-PING time.
fn boot(
    work: &Path,
    name: &str,
    data: &Path,
    seed: &Path,
    firmware: Firmware,
    password: &str,
) -> (Vm, Duration) {
    let root = work.join(format!("{name}-root.qcow2"));
    let _ = std::fs::remove_file(&root);
    overlay(&first_build().path, &root);
    let mut vm = Vm::boot(work, &root, data, seed, firmware);
    let took = vm.wait_for_valkey(password, BOOT_TIMEOUT);
    eprintln!(
        "FIGURE {firmware:?} boot {name}: PING after {:.1} s",
        took.as_secs_f64()
    );
    (vm, took)
}

#[test]
fn bios_boot_needs_the_seed_password_and_keeps_data_across_a_restart() {
    {
        let _lock = build_lock();
        first_build();
    }
    let work = test_dir("bios");
    let password = bfctl::plan::generate_password();
    let seed = work.join("seed.img");
    nocloud_seed(&seed, &bfctl::plan::cloud_init_user_data(&password));
    let data = work.join("data.qcow2");
    let _ = std::fs::remove_file(&data);
    blank_disk(&data, "1G");

    let (mut vm, _) = boot(&work, "first", &data, &seed, Firmware::Bios, &password);
    // Without the password, and with a wrong one, nothing is served.
    let mut anonymous = vm.connect(None).expect("a connection without AUTH");
    let refused = redis::cmd("GET")
        .arg("ventas:total")
        .query::<Option<String>>(&mut anonymous)
        .unwrap_err();
    assert!(refused.to_string().contains("NOAUTH"), "{refused}");
    assert!(vm.connect(Some("not-the-password")).is_err());

    let mut connection = vm.connect(Some(&password)).unwrap();
    let _: () = redis::cmd("SET")
        .arg("bfctl:test")
        .arg("survives restarts")
        .query(&mut connection)
        .unwrap();
    let persistence: String = redis::cmd("INFO")
        .arg("persistence")
        .query(&mut connection)
        .unwrap();
    assert!(persistence.contains("aof_enabled:1"), "{persistence}");
    // appendfsync everysec: give the fsync a moment, then cut the power.
    std::thread::sleep(Duration::from_secs(3));
    vm.kill();
    drop(vm);

    // A new root disk (the containerDisk is ephemeral), the same data disk.
    let (vm, _) = boot(
        &work,
        "after-restart",
        &data,
        &seed,
        Firmware::Bios,
        &password,
    );
    let mut connection = vm.connect(Some(&password)).unwrap();
    let value: Option<String> = redis::cmd("GET")
        .arg("bfctl:test")
        .query(&mut connection)
        .unwrap();
    assert_eq!(value.as_deref(), Some("survives restarts"));
}

#[test]
fn uefi_boot_serves_valkey() {
    {
        let _lock = build_lock();
        first_build();
    }
    let work = test_dir("uefi");
    let password = bfctl::plan::generate_password();
    let seed = work.join("seed.img");
    nocloud_seed(&seed, &bfctl::plan::cloud_init_user_data(&password));
    let data = work.join("data.qcow2");
    let _ = std::fs::remove_file(&data);
    blank_disk(&data, "1G");
    let (vm, _) = boot(&work, "first", &data, &seed, Firmware::Uefi, &password);
    let mut connection = vm.connect(Some(&password)).unwrap();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query(&mut connection)
        .unwrap();
    assert!(info.contains("valkey_version:"), "{info}");
}
